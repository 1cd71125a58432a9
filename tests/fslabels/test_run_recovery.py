"""A label run recovering from what goes wrong after some work is stored, with the real engine
over the tiny models: a video decoded again for new work that cannot be read now (or changed),
captions that failed (temporal labels are not asked from them), a manifest changed between
runs (status and build count only its items)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fslabels.backends import BACKENDS
from fslabels.config import LabelRunConfig
from fslabels.dataset import build_dataset
from fslabels.run import export_rows, run_labels, run_status
from fslabels.run.session import Session
from fslabels.store import Record, RunStore
from fsmodel.schema import LABEL_META, SCORES, SPATIAL, TEMPORAL
from fsmodel.synthetic import Event, write_video
from tests.fslabels import faulty_backend
from tests.fslabels.test_run import N, tiny_config, write_label_inputs

VIDEO = "clip0.mp4"


@pytest.fixture
def config(tiny_models, vocab_size) -> LabelRunConfig:
    return LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size))


@pytest.fixture
def backends(vl_backend, text_backend):
    return {"spatial": vl_backend, "captions": vl_backend, "temporal": text_backend}


def _with_questions(manifest: Path, out: Path, video: str, questions: list[str]) -> Path:
    """The manifest with more questions on ``video``, appended (the others keep their order)."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows += [{"video": video, "question": q, "options": ["A. early", "B. late"]} for q in questions]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _stored_candidates(work: Path) -> Record:
    with RunStore(work, create=False) as store:
        return store.get("candidates", VIDEO, store.get_meta("fingerprints")["candidates"])


def _stage(work: Path, stage: str) -> dict[str, int]:
    return run_status(work)["stages"][stage]


def test_a_failed_re_decode_never_replaces_the_stored_candidates(tmp_path, config, backends):
    manifest, videos, items = write_label_inputs(tmp_path, videos=1)
    work = tmp_path / "work"
    run_labels(config, manifest, videos, work, progress=False, backends=backends)
    stored = _stored_candidates(work)
    rows, caption_rows = export_rows(work)
    assert stored.ok and len(rows) == items

    # a new question, run with the wrong --videos: the video is decoded again for its frames
    # and cannot be read; only the unit that needed them fails, naming the cause
    more = _with_questions(manifest, tmp_path / "more.jsonl", VIDEO, ["Is the square blue?"])
    summary = run_labels(config, more, tmp_path / "elsewhere", work, progress=False,
                         backends=backends)  # fmt: skip
    assert summary.stages["candidates"].cached == 1 and summary.stages["candidates"].failed == 0
    spatial = [f for f in summary.failures if f["stage"] == "spatial"]
    assert len(spatial) == 1
    assert f"video {VIDEO} could not be decoded again" in spatial[0]["error"]
    assert "no such file" in spatial[0]["error"]
    kept = _stored_candidates(work)
    assert kept.ok and kept.payload == stored.payload and kept.attempts == 1
    assert export_rows(work) == (rows, caption_rows)  # the new question has no row yet
    assert _stage(work, "candidates") == {"done": 1, "failed": 0, "blocked": 0, "pending": 0,
                                          "expected": 1}  # fmt: skip
    assert _stage(work, "fused") == {"done": items, "failed": 1, "blocked": 0, "pending": 0,
                                     "expected": items + 1}  # fmt: skip

    # --retry-failed with the right --videos: the new question is labelled, the others kept
    retried = run_labels(config, more, videos, work, progress=False, retry_failed=True,
                         backends=backends)  # fmt: skip
    assert retried.done == items + 1 and retried.stages["spatial"].done == 1
    new_rows, _ = export_rows(work)
    assert new_rows[:items] == rows and len(new_rows) == items + 1

    # the file changed since it was sampled: its new work fails; what is stored stays
    write_video(videos / VIDEO, num_frames=90, events=[Event(4, 12, "circle", "red")], seed=5)
    changed = _with_questions(more, tmp_path / "changed.jsonl", VIDEO, ["Is anything green?"])
    summary = run_labels(config, changed, videos, work, progress=False, backends=backends)
    spatial = [f for f in summary.failures if f["stage"] == "spatial"]
    assert len(spatial) == 1 and "changed since its candidates were sampled" in spatial[0]["error"]
    assert "frame indices differ from the stored ones" in spatial[0]["error"]
    assert _stored_candidates(work).payload == stored.payload
    assert export_rows(work)[0] == new_rows

    # a store written before this rule, whose good candidates a failed decode replaced:
    # export skips that video's caption row instead of raising, and its finished samples
    # count as done, not as blocked
    fingerprint = stored.fingerprint
    with RunStore(work) as store:
        store.put([Record("candidates", VIDEO, fingerprint, "failed", {"path": "x"}, "VideoError")])
    rows_now, caption_rows_now = export_rows(work)
    assert rows_now == new_rows and caption_rows_now == []
    assert _stage(work, "fused") == {"done": items + 1, "failed": 1, "blocked": 0, "pending": 0,
                                     "expected": items + 2}  # fmt: skip


MARK = "[no captions]"


def _caption_config(tiny_models, vocab_size, faults: dict[str, str]) -> LabelRunConfig:
    """Captions on the faulty backend, whose prompt carries a marker that makes it raise."""
    captions = {
        "backend": faulty_backend.FAULTY,
        "prompt": f"Describe this frame in one sentence. {MARK}",
        "backend_options": {"batch_size": 4, "faults": faults},
    }
    return LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size, captions=captions))


def test_failed_captions_fail_temporal_without_asking_and_retry_redoes_both(
    tmp_path, tiny_models, vocab_size, vl_backend, text_backend, monkeypatch
):
    monkeypatch.setitem(BACKENDS, faulty_backend.FAULTY, faulty_backend.TARGET)
    manifest, videos, items = write_label_inputs(tmp_path, videos=1)
    work = tmp_path / "work"
    backends = {"spatial": vl_backend, "temporal": text_backend}
    broken = _caption_config(tiny_models, vocab_size, {MARK: "raise"})

    # the caption call raises: recorded against the video's captions, the run goes on (as on
    # Ray); the temporal labels are not asked from the empty captions
    summary = run_labels(broken, manifest, videos, work, progress=False, backends=backends)
    failures = {f["stage"]: f for f in summary.failures}
    assert "captioning raised RuntimeError: poisoned request" in failures["captions"]["error"]
    temporal = [f for f in summary.failures if f["stage"] == "temporal"]
    assert len(temporal) == items and summary.stages["temporal"].requests == 0
    assert all(f["error"].startswith("captions failed: ") for f in temporal)
    assert all("poisoned request" in f["error"] for f in temporal)
    rows, _ = export_rows(work)
    assert len(rows) == items  # fused from the spatial source alone (the documented rule)
    for row in rows:
        meta = json.loads(row[LABEL_META])
        assert meta["sources"] == ["spatial"]
        assert meta["failed"]["temporal"].startswith("captions failed: ")
        assert row[TEMPORAL] == [0.0] * N and row[SCORES] == row[SPATIAL]

    # --retry-failed with a backend that now works (same fingerprints): both are redone
    fixed = _caption_config(tiny_models, vocab_size, {})
    retried = run_labels(fixed, manifest, videos, work, progress=False, retry_failed=True,
                         backends=backends)  # fmt: skip
    assert retried.fingerprints == summary.fingerprints
    assert retried.stages["captions"].done == 1 and retried.stages["captions"].requests == N
    # the tiny text model never writes JSON: asked now, it gives up (2 attempts each)
    assert retried.stages["temporal"].requests == 2 * items
    temporal = [f for f in retried.failures if f["stage"] == "temporal"]
    assert len(temporal) == items and all("gave up" in f["error"] for f in temporal)
    assert all(f["attempts"] == 2 for f in temporal)


def test_status_and_build_count_only_the_current_manifest(tmp_path, config, backends):
    manifest, videos, items = write_label_inputs(tmp_path, videos=2)
    work = tmp_path / "work"
    run_labels(config, manifest, videos, work, progress=False, backends=backends)
    assert run_status(work)["stages"]["fused"]["done"] == items

    # a new manifest: one video's questions and a new one; its run stops before any work
    # (it recorded the manifest first, as every run does)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    kept = [r for r in rows if r["video"] == VIDEO]
    smaller = tmp_path / "smaller.jsonl"
    smaller.write_text("".join(json.dumps(r) + "\n" for r in kept))
    changed = _with_questions(smaller, tmp_path / "changed.jsonl", VIDEO, ["Is anything green?"])
    with Session(config, changed, videos, work, backends) as session:
        session.prepare(retry=False)

    fused = run_status(work)["stages"]["fused"]
    assert fused == {"done": len(kept), "failed": 0, "blocked": 0, "pending": 1,
                     "expected": len(kept) + 1}  # fmt: skip
    assert run_status(work)["stages"]["candidates"]["done"] == 1
    with pytest.raises(ValueError, match="1 of 4 samples unfinished"):
        build_dataset(work, tmp_path / "dataset")
