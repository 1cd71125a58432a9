"""`framesel model train | eval | push`: config + --set overrides, progress, resume, clear errors,
recall tables and plots, tagged pushes."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli.main import main
from fsmodel.training.synthetic_data import random_event_spec, write_event_dataset

N = 16


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    specs = [random_event_spec(rng, f"c{i}", 32, lengths=[4]) for i in range(4)]
    return write_event_dataset(tmp_path_factory.mktemp("cli-labels"), specs, N)


@pytest.fixture(scope="module")
def train_yaml(tiny_models, labels, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-train")
    path = root / "train.yaml"
    config = {
        "stage": 1,
        "model": str(tiny_models["selector"]),
        "output_dir": str(root / "run"),
        "data": {"source": str(labels)},
        "optim": {"epochs": 1, "batch_size": 2},
        "cache": {"dir": str(root / "cache")},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def training(train_yaml) -> tuple[Path, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["model", "train", "--config", str(train_yaml), "--set", "optim.epochs=2"])
    assert code == 0
    return Path(yaml.safe_load(train_yaml.read_text())["output_dir"]) / "final", printed.getvalue()


@pytest.fixture(scope="module")
def trained(training) -> Path:
    return training[0]


def test_train_writes_a_selector_metrics_and_the_resolved_config(training):
    trained, out = training
    assert "Trained selector:" in out and "recall@8 on train" in out
    run = trained.parent
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["optim"]["epochs"] == 2 and resolved["optim"]["lr"] == 0.001  # --set, paper
    events = [
        json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert events.count("eval") == 2 and "train" in events
    assert (trained / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lr"], "--set expects key=value"),
        (["optim.colour=red"], "unknown config key optim.colour"),
        (["optim.epochs=0"], "optim.epochs must be an integer >= 1 or null, got 0"),
        (["data.source=/nowhere/labels"], "label dataset '/nowhere/labels' not found"),
    ],
)
def test_train_errors_are_one_line_and_exit_1(train_yaml, capsys, overrides, message):
    args = ["model", "train", "--config", str(train_yaml)]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 1
    assert message in " ".join(capsys.readouterr().err.split())


def test_train_reports_a_video_missing_and_candidates_that_do_not_match(
    train_yaml, labels, tmp_path, capsys
):
    from fsmodel.schema import load_label_dataset, save_label_dataset

    rows = load_label_dataset(labels).to_list()
    rows[0]["frame_indices"] = [i + 1 for i in rows[0]["frame_indices"]]
    shifted = save_label_dataset(rows, tmp_path / "shifted")
    args = ["model", "train", "--config", str(train_yaml), "--set", f"data.source={shifted}",
            "--set", f"data.video_root={labels}", "--set", f"output_dir={tmp_path / 'run'}"]  # fmt: skip
    assert main(args) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"sample {rows[0]['sample_id']}" in err and "not the sampler's" in err
    assert main([*args[:-2], "--set", "data.video_root=/nowhere"]) == 1
    assert "video file(s) missing" in " ".join(capsys.readouterr().err.split())


def test_eval_prints_recall_for_each_strategy_and_draws_examples(trained, labels, tmp_path, capsys):
    plot = tmp_path / "eval.png"
    args = ["model", "eval", str(trained), "--data", str(labels), "--k", "4", "--plot", str(plot),
            "--cache-dir", str(tmp_path / "cache"), "--json"]  # fmt: skip
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(payload["recall@4"]) == {"nms", "topk", "uniform"} and payload["samples"] == 4
    assert plot.stat().st_size > 10_000
    assert main(args[:-1]) == 0  # the table
    table = capsys.readouterr().out
    assert "recall@4" in table and "uniform" in table and "nms" in table


def test_push_tags_a_release_and_refuses_the_tag_twice(trained, hub, capsys):
    args = ["model", "push", str(trained), "--repo", "tester/cli-selector", "--tag", "v1"]
    assert main(args) == 0
    assert 'revision="v1"' in capsys.readouterr().out
    assert hub.refs("tester/cli-selector")["tags"].keys() == {"v1"}
    assert main(args) == 1
    assert "already has a tag 'v1'" in " ".join(capsys.readouterr().err.split())
    untagged = args[:-2]
    assert main(untagged) == 0 and "Pushed tester/cli-selector" in capsys.readouterr().out
    assert main(untagged) == 0
    assert "already holds this selector (commit" in " ".join(capsys.readouterr().out.split())


def test_model_help_lists_the_commands_without_importing_torch():
    code = (
        "import sys; from cli.main import main; main(['model', '--help'])\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("train", "push", "eval", "select", "init"):
        assert command in done.stdout


@pytest.mark.slow
def test_train_runs_as_two_processes_under_torchrun(train_yaml, tmp_path):
    """DDP on the CPU (gloo): each rank takes its slice of every global batch; rank 0 writes."""
    import os
    import shutil

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    out = tmp_path / "ddp"
    args = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "cli.main", "model",
            "train", "--config", str(train_yaml), "--set", "stage=2", "--set", "optim.lr=1e-3",
            "--set", f"output_dir={out}", "--set", "optim.epochs=2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Trained selector:") == 1  # one rank reports
    checkpoint = sorted((out / "checkpoints").glob("step-*"))[-1]
    assert {p.name for p in checkpoint.glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["total_steps"] == 2  # 4 rows, 2 per rank: one global batch per epoch
    assert (out / "final" / "model.safetensors").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
