"""`framesel labels run | status | show` end to end on the tiny models, including a run killed
with SIGKILL mid-way and resumed: its labels equal those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from PIL import Image

from cli.main import main
from fslabels.run import export_rows
from fslabels.store import RunStore
from fsmodel.schema import LABEL_META, check_caption_rows, check_label_rows
from tests.fslabels.test_run import N, tiny_config, write_label_inputs

KILL_DEADLINE_S = 180


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_label_inputs(tmp_path_factory.mktemp("cli-label-inputs"), videos=3, bad=True)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, tiny_models):
    vocab_size = json.loads((tiny_models["qwen2"] / "config.json").read_text())["vocab_size"]
    path = tmp_path_factory.mktemp("cli-label-config") / "labels.yaml"
    # one question's frames per spatial batch: many small commits for the kill test to land in
    config = tiny_config(tiny_models, vocab_size, spatial={"batch_size": N})
    path.write_text(yaml.safe_dump(config))
    return path


def _run_args(inputs, config_file, work, *extra):
    manifest, videos, _ = inputs
    return ["labels", "run", "--manifest", str(manifest), "--videos", str(videos), "--work",
            str(work), "--config", str(config_file), "--no-progress", *extra]  # fmt: skip


def test_run_status_show(tmp_path, inputs, config_file, capsys):
    _, _, items = inputs
    work = tmp_path / "work"
    # --set overrides the config file (here: nothing that changes labels)
    assert main(_run_args(inputs, config_file, work, "--set", "temporal.batch_size=2")) == 0
    out = capsys.readouterr().out
    assert "Label run" in out and "captions" in out and "failure(s)" in out
    assert f"{items} samples of 5 videos: {items - 2} labelled, 2 without a row" in " ".join(
        out.split()
    )
    rows, caption_rows = export_rows(work)
    check_label_rows(rows, num_candidates=N)  # schema v1, end to end through the CLI
    check_caption_rows(caption_rows, num_candidates=N)
    assert len(rows) == items - 2 and len(caption_rows) == 3

    # a second run resumes: nothing to do, and says so in JSON
    assert main(_run_args(inputs, config_file, work, "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert all(stage["requests"] == 0 for stage in summary["stages"].values())
    assert summary["stages"]["captions"]["cached"] == 3 and summary["done"] == items - 2

    assert main(["labels", "status", str(work)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{items} samples of 5 videos · {items - 2} labelled" in out
    assert "corrupt.mp4" in out and "not a readable video" in out and "missing.mp4" in out
    assert main(["labels", "status", str(work), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["usage"]["captions"]["requests"] == N * 3  # candidates x videos, ever
    assert state["stages"]["spatial"]["done"] == items - 2
    assert state["stages"]["spatial"]["blocked"] == 2
    stats = state["statistics"]
    assert stats["samples"] == items - 2
    assert sum(stats["histograms"]["spatial"]["counts"]) == (items - 2) * N
    assert "label statistics" in out and "frames > 0.5" in out

    picture = tmp_path / "show" / "sample.png"
    sample_id = rows[0]["sample_id"]
    assert main(["labels", "show", str(work), sample_id, "--out", str(picture)]) == 0
    out = capsys.readouterr().out
    assert sample_id in out and "temporal failed" in out
    image = Image.open(picture)
    assert image.width > 300 and image.height > 3 * 60  # three sheets: spatial, temporal, fused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["labels", "status", "{tmp}/none"], "holds no label run"),
        (["labels", "show", "{tmp}/none", "abc", "--out", "{tmp}/x.png"], "holds no label run"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, args, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 1
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_bad_config_values_are_reported(tmp_path, inputs, config_file, capsys):
    args = _run_args(inputs, config_file, tmp_path / "w", "--set", "spatial.batch_size=0")
    assert main(args) == 1
    assert "spatial.batch_size must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # rejected before any work


def _progress(work):
    """``(spatial done, fused done)`` as committed so far, or None before the store exists."""
    try:
        with RunStore(work, create=False) as store:
            fingerprints = store.get_meta("fingerprints")
            if fingerprints is None:
                return None
            counts = store.counts(fingerprints)
            return counts["spatial"]["done"], counts["fused"]["done"]
    except (FileNotFoundError, ValueError):
        return None


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, inputs, config_file,
                                                                 capsys):  # fmt: skip
    _, _, items = inputs
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *_run_args(inputs, config_file, killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    at_kill = None
    deadline = time.monotonic() + KILL_DEADLINE_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = _progress(killed)
            # the first video's rows and part of the second video's spatial labels are in
            if state is not None and state[0] >= 4:
                proc.send_signal(signal.SIGKILL)
                at_kill = state
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and at_kill is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=60)
    assert at_kill is not None, (
        f"the run ended before it could be killed: {stderr.decode()[-2000:]}"
    )
    assert proc.returncode == -signal.SIGKILL
    spatial_done, fused_done = _progress(killed)
    assert at_kill[1] >= 3 and fused_done < items - 2  # some, not all, work is committed
    assert spatial_done >= at_kill[0]
    with RunStore(killed, create=False) as store:
        assert store.runs()[-1]["finished"] is None  # the killed run never finished

    assert main(_run_args(inputs, config_file, killed, "--json")) == 0  # resume
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["stages"]["spatial"]["cached"] >= spatial_done  # committed work was kept
    assert resumed["done"] == items - 2
    assert main(_run_args(inputs, config_file, clean, "--json")) == 0  # uninterrupted
    capsys.readouterr()

    rows, caption_rows = export_rows(killed)
    clean_rows, clean_caption_rows = export_rows(clean)
    assert len(rows) == items - 2
    assert rows == clean_rows  # exactly the same labels, bit for bit (greedy, same batches)
    assert caption_rows == clean_caption_rows
    assert all(json.loads(r[LABEL_META])["sources"] == ["spatial"] for r in rows)


def test_a_backend_that_cannot_load_stops_the_run_before_any_work(
    tmp_path, inputs, config_file, capsys, monkeypatch
):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "w"
    args = _run_args(inputs, config_file, work, "--set", "temporal.backend=openai",
                     "--set", "temporal.model=gpt-4o-mini")  # fmt: skip
    assert main(args) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot load the temporal backend (openai, model 'gpt-4o-mini')" in err
    assert "OPENAI_API_KEY" in err
    with RunStore(work, create=False) as store:
        assert all(store.records(stage) == [] for stage in ("candidates", "captions", "spatial"))


def test_status_groups_identical_failures_and_lists_them_all_on_request():
    from rich.console import Console

    from cli.labels import _print_failures

    failures = [
        {"stage": "temporal", "item": f"s{i:02d}", "samples": [f"s{i:02d}"], "attempts": 2,
         "error": "the reply is empty (gave up after 2 attempts)"}
        for i in range(30)
    ] + [{"stage": "candidates", "item": "bad.mp4", "samples": ["s98", "s99"], "attempts": 1,
          "error": "bad.mp4 is not a readable video"}]  # fmt: skip
    console = Console(record=True, width=200)
    _print_failures(console, failures)
    lines = console.export_text().splitlines()
    assert lines[0] == "31 failure(s), 2 distinct (--all lists each)"
    assert lines[1] == (
        "  temporal ×30 (30 sample(s): s00, s01, s02, +27 more): the reply is empty (gave up "
        "after 2 attempts)"
    )
    assert lines[2] == "  candidates ×1 (2 sample(s): bad.mp4): bad.mp4 is not a readable video"
    assert len(lines) == 3
    console = Console(record=True, width=200)
    _print_failures(console, failures, every=True)
    assert len(console.export_text().splitlines()) == 32
