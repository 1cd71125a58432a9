"""The framesel lmms-eval model, run by the real lmms-eval (0.7.3) offline over generated videos.

lmms-eval lives in a venv of its own (``make setup-lmms``: it pins what the main venv cannot
take); its python is named by ``FRAMESEL_LMMS_PYTHON`` (the Makefile sets it). Without it the
lmms-eval tests FAIL under ``CI=true`` and are skipped elsewhere.

One subprocess in that venv finds ``framesel`` through the ``lmms_eval.models`` entry point,
and runs ``lmms_eval.evaluator.simple_evaluate`` on two local task YAMLs (a generation task and
a log-likelihood multiple-choice task, ``dataset_path: json``) with the tiny Qwen2-VL as the
downstream model and the tiny selector, once with ``selector:nms`` and once with ``uniform``.
The plugin's trace says which frames the model saw; this test checks them against framesel's
sampler and selector run here, in the main venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fsmodel.selection import select
from fsmodel.synthetic import Event, write_video
from fsmodel.video import sample_candidates

REPO = Path(__file__).resolve().parents[2]
ON_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
TIMEOUT = 600
N, K = 16, 4

_TASK_UTILS = """
def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    options = "\\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(doc["options"]))
    return f"{doc['question']}\\n{options}\\nAnswer with the option's letter from the given choices directly."


def doc_to_choice(doc):
    return [chr(65 + i) for i in range(len(doc["options"]))]


def doc_to_target(doc):
    return doc["answer"]


def process_results(doc, results):
    reply = results[0].strip()
    return {"accuracy": float(reply[:1] == doc["answer"]), "replied": float(bool(reply))}
"""

_GENERATE_YAML = """
task: framesel_tiny_generate
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
generation_kwargs:
  max_new_tokens: 3
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
  - metric: replied
    aggregation: mean
    higher_is_better: true
"""

_CHOICE_YAML = """
task: framesel_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
test_split: test
output_type: multiple_choice
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_choice: !function utils.doc_to_choice
doc_to_target: !function utils.doc_to_target
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

_DRIVER = r"""
import importlib.metadata as md
import json
import sys

spec = json.loads(sys.argv[1])
entry_points = {ep.name: ep.value for ep in md.entry_points(group="lmms_eval.models")}
if "framesel" not in entry_points:
    print("FRAMESEL-JSON " + json.dumps({"entry_points": entry_points, "missing": True}))
    sys.exit(0)
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.models import get_model
from lmms_eval.tasks import TaskManager

cls = get_model("framesel")
out = {"entry_points": entry_points, "class": f"{cls.__module__}.{cls.__qualname__}", "runs": []}
manager = TaskManager(include_path=spec["include"])
for model_args in spec["model_args"]:
    result = simple_evaluate(
        model="framesel",
        model_args=model_args,
        tasks=spec["tasks"],
        task_manager=manager,
        batch_size=1,
        device="cpu",
        log_samples=True,
        verbosity="WARNING",
    )
    samples = {
        task: [{"doc_id": s["doc_id"], "resps": s["resps"]} for s in rows]
        for task, rows in result["samples"].items()
    }
    out["runs"].append(
        {
            "model_args": model_args,
            "model_configs": result.get("config", {}).get("model_args"),
            "results": result["results"],
            "samples": samples,
        }
    )
print("FRAMESEL-JSON " + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def lmms_python() -> Path:
    """The lmms-eval venv's python (FRAMESEL_LMMS_PYTHON, else .venv-lmms); fail on CI, else
    skip."""
    named = os.environ.get("FRAMESEL_LMMS_PYTHON")
    path = Path(named) if named else REPO / ".venv-lmms" / "bin" / "python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        reason = (
            f"no lmms-eval venv python at {path} "
            f"({'FRAMESEL_LMMS_PYTHON' if named else 'FRAMESEL_LMMS_PYTHON is unset; default'}); "
            "run `make setup-lmms` (scripts/setup_lmms.sh) or `make test`"
        )
        if ON_CI:
            pytest.fail(f"CI must run the lmms-eval tests: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Two videos with known events, three multiple-choice questions, two task YAMLs."""
    root = tmp_path_factory.mktemp("lmms-tasks")
    first = write_video(
        root / "videos" / "a.mp4", num_frames=64, events=[Event(8, 23, "circle", "red")]
    )
    second = write_video(
        root / "videos" / "b.mp4", num_frames=48, events=[Event(30, 45, "square", "blue")]
    )
    docs = [
        {"video": str(first.path), "question": first.events[0].question,
         "options": ["early", "late"], "answer": "A"},
        {"video": str(second.path), "question": second.events[0].question,
         "options": ["early", "late", "never"], "answer": "B"},
        {"video": str(second.path), "question": "What colour is the square?",
         "options": ["blue", "red"], "answer": "A"},
    ]  # fmt: skip
    docs_path = root / "docs.jsonl"
    docs_path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    include = root / "tasks"
    include.mkdir()
    (include / "utils.py").write_text(_TASK_UTILS)
    (include / "framesel_tiny_generate.yaml").write_text(_GENERATE_YAML.format(docs=docs_path))
    (include / "framesel_tiny_choice.yaml").write_text(_CHOICE_YAML.format(docs=docs_path))
    return {"include": include, "docs": docs, "root": root}


@pytest.fixture(scope="module")
def selections(tasks, tiny_models, tmp_path_factory):
    """A selections dataset for the tasks' questions, made here (framesel select run + build)."""
    from fslabels.evaluation.selections import build_selections, run_selection

    root = tmp_path_factory.mktemp("lmms-selections")
    manifest = root / "qa.jsonl"
    rows = [{"video": Path(d["video"]).name, "question": d["question"]} for d in tasks["docs"]]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"num_candidates": N, "frame_size": 48, "ks": [K], "strategies": ["selector:nms"],
              "scorers": {"selector": {"model": str(tiny_models["selector"])}}}  # fmt: skip
    run_selection(config, manifest, tasks["root"] / "videos", root / "work", progress=False)
    return build_selections(root / "work", root / "selections")


@pytest.fixture(scope="module")
def evaluated(lmms_python, tasks, tiny_models, selections, tmp_path_factory):
    """One lmms-eval process: the entry point, then simple_evaluate with selector:nms, with
    uniform, and with selector:nms from stored selections (no selector model given)."""
    out = tmp_path_factory.mktemp("lmms-run")
    traces = {"selector:nms": out / "trace-nms.jsonl", "uniform": out / "trace-uniform.jsonl"}
    stored_trace = out / "trace-stored.jsonl"
    downstream = f"pretrained={tiny_models['qwen2-vl']},k={K},frame_size=48,max_new_tokens=3"
    common = f"{downstream},selector={tiny_models['selector']},num_candidates={N}"
    spec = {
        "include": str(tasks["include"]),
        "tasks": ["framesel_tiny_generate", "framesel_tiny_choice"],
        "model_args": [f"{common},strategy={s},trace={t}" for s, t in traces.items()]
        + [f"{downstream},strategy=selector:nms,selections={selections},trace={stored_trace}"],
    }
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(out / "hf-home"),
        "HF_MODULES_CACHE": str(out / "hf-modules"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_MODE": "disabled",
    }
    proc = subprocess.run(
        [str(lmms_python), "-c", _DRIVER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=out,
        env=env,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FRAMESEL-JSON ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"the lmms-eval run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    result = json.loads(lines[-1].removeprefix("FRAMESEL-JSON "))
    if result.get("missing"):
        pytest.fail(
            f"{lmms_python} has no 'framesel' model in the lmms_eval.models entry points (found: "
            f"{sorted(result['entry_points'])}): pyproject.toml must declare "
            '[project.entry-points."lmms_eval.models"] framesel = '
            '"fslabels.evaluation.lmms_plugin:model_manifests"; then run `make setup-lmms`',
            pytrace=False,
        )
    result["traces"] = {
        s: [json.loads(line) for line in path.read_text().splitlines()]
        for s, path in traces.items()
    }
    result["stored_trace"] = [json.loads(x) for x in stored_trace.read_text().splitlines()]
    return result


def test_framesel_is_an_lmms_eval_entry_point_model(evaluated):
    assert (
        evaluated["entry_points"]["framesel"] == "fslabels.evaluation.lmms_plugin:model_manifests"
    )
    assert evaluated["class"] == "fslabels.evaluation.lmms_plugin.FramesQAModel"


def test_simple_evaluate_scores_both_task_kinds(evaluated, tasks):
    for run in evaluated["runs"]:
        generate = run["results"]["framesel_tiny_generate"]
        choice = run["results"]["framesel_tiny_choice"]
        # Real metrics, computed by lmms-eval from the plugin's replies and log-likelihoods.
        assert 0.0 <= generate["accuracy,none"] <= 1.0
        assert 0.0 <= choice["acc,none"] <= 1.0
        replies = run["samples"]["framesel_tiny_generate"]
        assert len(replies) == len(tasks["docs"])
        assert all(isinstance(r["resps"][0][0], str) for r in replies)
        # One loss per option, finite: lmms-eval takes the argmin over them.
        for sample in run["samples"]["framesel_tiny_choice"]:
            doc = tasks["docs"][sample["doc_id"]]
            losses = [float(r[0][0]) for r in sample["resps"]]
            assert len(losses) == len(doc["options"]) and all(np.isfinite(losses))
            assert all(loss > 0 for loss in losses)  # a mean negative log-likelihood


def test_model_args_name_the_selector_strategy_and_k(evaluated, tiny_models):
    # lmms-eval's response cache keys on model_args: the two runs must differ there.
    args = [run["model_args"] for run in evaluated["runs"]][:2]
    assert len(set(args)) == 2
    for run in args:
        assert f"selector={tiny_models['selector']}" in run and f"k={K}" in run
    assert "strategy=selector:nms" in args[0] and "strategy=uniform" in args[1]


def test_the_model_saw_exactly_the_strategys_frames(evaluated, tasks, tiny_models):
    """The trace names the frames each question got; they are the candidates framesel's
    sampler gives here, picked by the strategy, one selection per question (shared by a
    multiple-choice question's options, and by both tasks)."""
    from transformers import AutoModel

    selector = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    traces = evaluated["traces"]
    for strategy, lines in traces.items():
        # One selection per question: both tasks ask the same (video, prompt), and a
        # multiple-choice question's options share it, so each doc appears once.
        assert sorted(line["doc_id"] for line in lines) == list(range(len(tasks["docs"])))
        for line in lines:
            doc = tasks["docs"][line["doc_id"]]
            candidates = sample_candidates(doc["video"], N, size=48)
            if strategy == "uniform":
                positions = select(np.zeros(N), K, "uniform")
            else:
                context = (
                    f"{doc['question']}\n"
                    + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(doc["options"]))
                    + "\nAnswer with the option's letter from the given choices directly."
                )
                result = selector.select_frames(candidates, context, k=K, strategy="nms")
                positions = result.positions
            assert line["video"] == doc["video"]
            assert line["strategy"] == strategy and line["k"] == K
            assert line["positions"] == positions.tolist()
            assert line["frame_indices"] == candidates.indices[positions].tolist()
            np.testing.assert_allclose(
                line["timestamps"], candidates.timestamps[positions], atol=1e-6
            )
    nms = {t["doc_id"]: t["positions"] for t in traces["selector:nms"]}
    uniform = {t["doc_id"]: t["positions"] for t in traces["uniform"]}
    assert any(nms[key] != uniform[key] for key in nms), "the selector picked uniform's frames"


def test_stored_selections_feed_the_model_without_a_selector(evaluated, tasks, selections):
    """model_args selections=DIR: the frames each question got are the stored picks (the task
    prompt wraps the stored question), though no selector was given to the plugin."""
    from fslabels.evaluation.selections import read_config

    picks = {(Path(r["video"]).name, r["question"]): r for r in read_config(selections)}
    lines = evaluated["stored_trace"]
    assert sorted(line["doc_id"] for line in lines) == list(range(len(tasks["docs"])))
    for line in lines:
        doc = tasks["docs"][line["doc_id"]]
        stored = picks[(Path(doc["video"]).name, doc["question"])]
        assert line["frame_indices"] == stored["frame_indices"]
        assert line["positions"] == stored["positions"]
    run = evaluated["runs"][2]
    assert 0.0 <= run["results"]["framesel_tiny_choice"]["acc,none"] <= 1.0
