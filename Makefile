# The few commands a contributor needs. Each one sets up .venv first (idempotent).
VENV ?= .venv
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test lint format bench clean

setup:
	@bash scripts/setup.sh

demo: setup          ## offline demo on the embedded defaults
	$(VENV)/bin/framesel demo --out demo-output

test: setup          ## lint + the whole test suite (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest

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
