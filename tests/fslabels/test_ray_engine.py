"""The Ray engine (`fslabels.run.ray_engine`) on a real local Ray instance (``ray.init(num_cpus=2)``)
with the tiny models: the same rows as the local engine, resume after the driver is killed with
SIGKILL, and worker failures (a worker killed mid-batch is retried; a poisoned item is recorded
as failed and the run goes on)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token files under the home directory
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from cli.main import main
from fslabels.backends import BACKENDS
from fslabels.config import LabelRunConfig
from fslabels.run import (
    MODEL_STAGES,
    BackendLoadError,
    LabelContext,
    export_rows,
    run_labels,
    run_status,
)
from fslabels.run.ray_engine import RayEngineConfig
from fslabels.store import STAGES, RunStore
from fsmodel.synthetic import Event, write_video
from tests.fslabels import faulty_backend
from tests.fslabels.test_run import tiny_config, write_label_inputs

KILL_DEADLINE_S = 150
# Two CPUs: the decoder and the two backend pools (tiny Qwen2-VL; tiny Qwen2) fit with room.
SMALL = {"actors": 1, "cpus_per_actor": 0.5, "decode_cpus": 0.25}


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance for the module (2 CPUs, a capped object store), its GCS address."""
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 1024**2,
        logging_level="WARNING",
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def config(tiny_models, vocab_size) -> LabelRunConfig:
    return LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size))


def _failures(summary_or_status) -> list[tuple[str, str, str]]:
    failures = summary_or_status["failures"] if isinstance(summary_or_status, dict) else (
        summary_or_status.failures
    )  # fmt: skip
    return sorted((f["stage"], f["item"], f["error"]) for f in failures)


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, ray_address, config):
    manifest, videos, items = write_label_inputs(tmp_path, videos=2, bad=True)
    local = run_labels(config, manifest, videos, tmp_path / "local", progress=False)
    ray_run = run_labels(config, manifest, videos, tmp_path / "ray", progress=False,
                         engine="ray", engine_options={**SMALL, "actors": 2})  # fmt: skip

    assert ray_run.engine["name"] == "ray" and ray_run.engine["videos_sent"] == 4
    assert [pool["stages"] for pool in ray_run.engine["pools"]] == [
        ["captions", "spatial"],  # one Qwen2-VL serves both, as in the local engine
        ["temporal"],
    ]
    assert ray_run.fingerprints == local.fingerprints
    assert (ray_run.done, ray_run.failed) == (local.done, local.failed) == (items - 2, 2)
    assert export_rows(tmp_path / "ray") == export_rows(tmp_path / "local")  # bit for bit
    for stage, stats in local.stages.items():  # the same units computed, the same requests
        mine = ray_run.stages[stage]
        assert (mine.done, mine.failed, mine.cached, mine.requests) == (
            stats.done, stats.failed, stats.cached, stats.requests,
        ), stage  # fmt: skip
    assert _failures(ray_run) == _failures(local)
    state, expected = run_status(tmp_path / "ray"), run_status(tmp_path / "local")
    assert state["stages"] == expected["stages"]
    assert state["runs"][-1]["summary"]["engine"]["name"] == "ray"

    # a re-run has nothing for Ray to do: no video is sent, nothing is recomputed
    again = run_labels(config, manifest, videos, tmp_path / "ray", progress=False,
                       engine="ray", engine_options=SMALL)  # fmt: skip
    assert again.engine["videos_sent"] == 0 and "pools" not in again.engine
    assert sum(s.requests for s in again.stages.values()) == 0
    assert again.stages["fused"].cached == items - 2
    # the local engine resumes a Ray run (and vice versa): same store, same fingerprints
    resumed = run_labels(config, manifest, videos, tmp_path / "ray", progress=False)
    assert sum(s.requests for s in resumed.stages.values()) == 0


def _progress(work: Path) -> int | None:
    """Fused rows committed so far, or None before the store has a run."""
    try:
        with RunStore(work, create=False) as store:
            fingerprints = store.get_meta("fingerprints")
            return None if fingerprints is None else store.counts(fingerprints)["fused"]["done"]
    except (FileNotFoundError, ValueError):
        return None


def test_driver_killed_mid_run_then_resumed_equals_the_local_engine(
    tmp_path, ray_address, tiny_models, vocab_size
):
    # every stage on the tiny Qwen2-VL: one backend pool (fewer actors to start, twice)
    vl = {"model": str(tiny_models["qwen2-vl"]), "backend_options": {"batch_size": 8}}
    config = LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size, temporal=vl))
    manifest, videos, items = write_label_inputs(tmp_path, videos=4)
    local = run_labels(config, manifest, videos, tmp_path / "local", progress=False)
    config_file = tmp_path / "labels.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    killed = tmp_path / "killed"
    args = ["labels", "run", "--manifest", str(manifest), "--videos", str(videos), "--work",
            str(killed), "--config", str(config_file), "--no-progress", "--engine", "ray",
            "--address", ray_address, "--actors", "1"]  # fmt: skip
    # the driver is a real process joining the module's Ray instance by its address
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    at_kill = None
    deadline = time.monotonic() + KILL_DEADLINE_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = _progress(killed)
            if done:  # one video's rows are in; the others are on the workers
                proc.send_signal(signal.SIGKILL)
                at_kill_t = time.monotonic() - deadline + KILL_DEADLINE_S
                at_kill = done
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and at_kill is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=60)
    assert at_kill is not None, f"the driver ended before it was killed: {stderr.decode()[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    committed = _progress(killed)
    assert 0 < committed < items  # some, not all, videos were committed
    with RunStore(killed, create=False) as store:
        assert store.runs()[-1]["finished"] is None  # the killed run never finished

    resumed = run_labels(config, manifest, videos, killed, progress=False, engine="ray",
                         engine_options=SMALL)  # fmt: skip
    assert [pool["stages"] for pool in resumed.engine["pools"]] == [list(MODEL_STAGES)]
    assert resumed.engine["videos_sent"] < 4  # committed videos are not sent again
    assert resumed.stages["fused"].cached >= committed
    assert resumed.done == items
    assert export_rows(killed) == export_rows(tmp_path / "local")
    assert _failures(resumed) == _failures(local)
    print("TIMING", at_kill_t, {k: v for k, v in resumed.engine.items() if "seconds" in k})


def _poison_inputs(root: Path) -> tuple[Path, Path, dict[str, str]]:
    """Three videos; the first question of each carries a fault marker the faulty backend
    acts on (markers reach the backend in the spatial requests only)."""
    video_dir = root / "videos"
    rows, markers = [], {}
    for v, mode in enumerate(("exit-once", "exit", "raise")):
        clip = write_video(video_dir / f"p{v}.mp4", num_frames=32,
                           events=[Event(4, 12, "circle", "red")], seed=v)  # fmt: skip
        marker = f"[{mode}]"
        markers[marker] = mode
        for q in (f"Is there a red circle? {marker}", "What happens?", "Is anything blue?"):
            rows.append({"video": clip.path.name, "question": q})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, video_dir, markers


def test_worker_failures_are_retried_then_recorded(
    tmp_path, ray_address, tiny_models, vocab_size, monkeypatch
):
    manifest, videos, markers = _poison_inputs(tmp_path)
    # a plugin backend registered in the driver only: the engine registers it on its workers
    monkeypatch.setitem(BACKENDS, faulty_backend.FAULTY, faulty_backend.TARGET)
    (tmp_path / "markers").mkdir()
    faulty = {"backend": faulty_backend.FAULTY, "backend_options": {
        "batch_size": 8, "faults": markers, "marker_dir": str(tmp_path / "markers")}}  # fmt: skip
    config = LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size, spatial=faulty,
                                                  captions=faulty))  # fmt: skip
    reference = LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size))
    run_labels(reference, manifest, videos, tmp_path / "local", progress=False)

    options = RayEngineConfig(**SMALL, max_task_retries=1)
    summary = run_labels(config, manifest, videos, tmp_path / "ray", progress=False,
                         engine="ray", engine_options=options)  # fmt: skip
    assert summary.engine["lost_videos"] == 1
    failures = {(f["stage"], f["item"]): f for f in summary.failures}
    rows = {row["sample_id"]: row for row in export_rows(tmp_path / "ray")[0]}
    reference_rows = {row["sample_id"]: row for row in export_rows(tmp_path / "local")[0]}
    with RunStore(tmp_path / "ray", create=False) as store:
        items = {(i.video, i.question): i.sample_id for i in store.items()}

    # p0: its worker died mid-batch once; the batch was retried on a restarted actor
    p0 = [sid for (video, _), sid in items.items() if video == "p0.mp4"]
    assert len(list((tmp_path / "markers").iterdir())) == 1  # it did die once
    assert all(rows[sid] == reference_rows[sid] for sid in p0)

    # p1: its worker died on every attempt: recorded as failed against the video, run went on
    lost = failures[("candidates", "p1.mp4")]
    assert "lost on the Ray cluster" in lost["error"] and "2 attempt(s)" in lost["error"]
    assert len(lost["samples"]) == 3 and not any(sid in rows for sid in lost["samples"])

    # p2: the first question's spatial batch raised: recorded against the questions of that
    # batch (two questions of 8 frames per call of 16) with the error; the third is labelled
    raised = [f for (stage, _), f in failures.items() if stage == "spatial"]
    assert len(raised) == 2
    assert all("spatial labelling raised RuntimeError: poisoned request '[raise]'" in f["error"]
               for f in raised)  # fmt: skip
    p2 = [sid for (video, _), sid in items.items() if video == "p2.mp4"]
    unharmed = [sid for sid in p2 if sid not in {f["item"] for f in raised}]
    assert len(unharmed) == 1 and rows[unharmed[0]] == reference_rows[unharmed[0]]

    state = run_status(tmp_path / "ray")
    assert state["stages"]["candidates"]["failed"] == 1 and state["done"] == 4


def test_engine_errors_name_the_problem(tmp_path, capsys, monkeypatch, config, ray_address):
    manifest, videos, _ = write_label_inputs(tmp_path, videos=1)
    config_file = tmp_path / "labels.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    base = ["labels", "run", "--manifest", str(manifest), "--videos", str(videos), "--work",
            str(tmp_path / "w"), "--config", str(config_file), "--no-progress"]  # fmt: skip

    assert main([*base, "--engine", "ray", "--address", "127.0.0.1:9"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no Ray cluster answers at --address 127.0.0.1:9" in err and "ray start --head" in err
    assert not (tmp_path / "w").exists()  # refused before the store was touched

    assert main([*base, "--engine", "ray", "--address", "headnode"]) == 1
    assert "is not 'auto', 'HOST:PORT'" in capsys.readouterr().err

    assert main([*base, "--engine", "spark"]) == 1
    assert "unknown engine 'spark'; engines: local, ray" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(
        ImportError, match=re.escape("Install it with: pip install 'framesel[ray]'")
    ):
        run_labels(config, manifest, videos, tmp_path / "w", progress=False, engine="ray")
    assert main([*base, "--engine", "ray"]) == 1
    assert "needs the 'ray' package" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "w").exists()

    monkeypatch.undo()
    # a backend that cannot load on its actors stops the run before anything is written
    broken = config.with_overrides([f"temporal.model={tmp_path / 'no-model'}"])
    with pytest.raises(BackendLoadError, match="cannot load the temporal backend"):
        run_labels(broken, manifest, videos, tmp_path / "b", progress=False, engine="ray",
                   engine_options=SMALL)  # fmt: skip
    with RunStore(tmp_path / "b", create=False) as store:
        assert all(store.records(stage) == [] for stage in STAGES)

    with pytest.raises(ValueError, match="actors must be a number >= 1, got 0"):
        RayEngineConfig(actors=0)
    with pytest.raises(ValueError, match="unknown stage 'fused'"):
        RayEngineConfig(num_gpus={"fused": 1})


def test_a_caption_that_raises_is_recorded_alike_by_both_engines(
    tmp_path, ray_address, tiny_models, vocab_size, monkeypatch
):
    monkeypatch.setitem(BACKENDS, faulty_backend.FAULTY, faulty_backend.TARGET)
    manifest, videos, items = write_label_inputs(tmp_path, videos=1)
    # captions and spatial share one faulty backend (one pool); only the caption prompt
    # carries the marker that makes it raise
    faulty = {"backend": faulty_backend.FAULTY,
              "backend_options": {"batch_size": 8, "faults": {"[no captions]": "raise"}}}  # fmt: skip
    captions = {**faulty, "prompt": "Describe this frame in one sentence. [no captions]"}
    config = LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size, captions=captions,
                                                  spatial=faulty))  # fmt: skip
    local = run_labels(config, manifest, videos, tmp_path / "local", progress=False)
    ray_run = run_labels(config, manifest, videos, tmp_path / "ray", progress=False,
                         engine="ray", engine_options=SMALL)  # fmt: skip

    assert _failures(ray_run) == _failures(local)
    (captions_failure,) = [f for f in local.failures if f["stage"] == "captions"]
    assert "captioning raised RuntimeError: poisoned request" in captions_failure["error"]
    temporal = [f for f in local.failures if f["stage"] == "temporal"]
    assert len(temporal) == items and all(f["error"].startswith("captions failed: ")
                                          for f in temporal)  # fmt: skip
    assert local.stages["temporal"].requests == ray_run.stages["temporal"].requests == 0
    assert local.done == ray_run.done == items  # from the spatial source alone
    assert export_rows(tmp_path / "ray") == export_rows(tmp_path / "local")


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason="the backend that cannot load is one on device cuda, which loads on a CUDA machine",
)
def test_a_backend_that_cannot_load_writes_no_record_even_for_driver_only_videos(
    tmp_path, ray_address, config
):
    manifest, videos, _ = write_label_inputs(tmp_path, videos=2)
    first = tmp_path / "first.jsonl"
    first.write_text("".join(line + "\n" for line in manifest.read_text().splitlines()
                             if '"clip0.mp4"' in line))  # fmt: skip
    work = tmp_path / "work"
    run_labels(config, first, videos, work, progress=False)
    # other fusion weights: clip0 has only its fused rows to redo (on the driver); clip1 needs
    # the workers, whose temporal backend cannot load (the device is in no fingerprint)
    broken = config.with_overrides(
        ["fusion.spatial_weight=1", "temporal.backend_options.device=cuda"]
    )
    fingerprints = LabelContext(broken).fingerprints
    assert fingerprints.temporal == LabelContext(config).fingerprints.temporal
    with pytest.raises(BackendLoadError, match="cannot load the temporal backend"):
        run_labels(broken, manifest, videos, work, progress=False, engine="ray",
                   engine_options={**SMALL, "num_gpus": 0})  # fmt: skip
    with RunStore(work, create=False) as store:
        assert store.records("fused", fingerprints.fused) == []
        assert [r.item for r in store.records("candidates")] == ["clip0.mp4"]
