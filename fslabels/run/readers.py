"""Reading a run: `export_rows` (schema-v1 rows), `run_status` and `load_sample`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fslabels.manifest import LabelItem
from fslabels.run.compute import payload_scores
from fslabels.store import STAGES, RunStore
from fsmodel.schema import CAPTIONS, FRAME_INDICES, LABEL_META, SCORES, TIMESTAMPS, VIDEO_ID
from fsmodel.video import VideoError, sample_candidates


def run_state(
    store: RunStore, fingerprints: Mapping[str, str], items: Sequence[LabelItem]
) -> dict[str, Any]:
    """Done samples and every failure under the current fingerprints, for these items."""
    by_video: dict[str, list[str]] = {}
    for item in items:
        by_video.setdefault(item.video, []).append(item.sample_id)
    sample_ids = {item.sample_id for item in items}
    fused = store.statuses("fused", sample_ids, fingerprints["fused"])
    done = sum(status == "done" for status in fused.values())
    failures = []
    for stage in STAGES:
        for record in store.records(stage, fingerprints[stage], status="failed"):
            if stage in ("candidates", "captions"):
                affected = by_video.get(record.item)
            else:
                affected = [record.item] if record.item in sample_ids else None
            if affected:
                failures.append(
                    {
                        "stage": stage,
                        "item": record.item,
                        "samples": affected,
                        "error": record.error,
                        "attempts": record.attempts,
                    }
                )
    return {"done": done, "failures": failures}


# --- reading a run ------------------------------------------------------------------------------


def _open(workdir: str | os.PathLike[str]) -> tuple[RunStore, dict[str, str]]:
    store = RunStore(workdir, create=False)
    fingerprints = store.get_meta("fingerprints")
    if fingerprints is None:
        store.close()
        raise ValueError(f"{workdir}: the run store has no run yet")
    return store, fingerprints


@contextmanager
def open_run(workdir: str | os.PathLike[str]) -> Iterator[tuple[RunStore, dict[str, str]]]:
    """The run store of ``workdir`` (read-only use) and its fingerprints, closed on exit: for
    readers that need several views of one run (`rows_of`, `status_of`) from one open store.

    Raises:
        FileNotFoundError: ``workdir`` holds no run store.
        ValueError: the store has no run yet.
    """
    store, fingerprints = _open(workdir)
    try:
        yield store, fingerprints
    finally:
        store.close()


def export_rows(
    workdir: str | os.PathLike[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished label rows (schema v1, manifest order) and caption rows (one per video) of
    the latest run in ``workdir``, for ``fsmodel.schema.save_label_dataset``.

    Samples that failed have no row (`run_status` lists them). Caption rows are those of the
    videos that have label rows (a failed caption is ``""``).

    Raises:
        FileNotFoundError: ``workdir`` holds no run store.
    """
    with open_run(workdir) as (store, fp):
        return rows_of(store, fp)


def rows_of(
    store: RunStore, fp: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`export_rows` of an open run store (see `open_run`)."""

    items = store.items()
    fused = store.get_many("fused", [i.sample_id for i in items], fp["fused"])
    rows = [
        fused[i.sample_id].payload for i in items if i.sample_id in fused and fused[i.sample_id].ok
    ]
    with_rows = {row["video"] for row in rows}
    videos = list(dict.fromkeys(i.video for i in items if i.video in with_rows))
    video_ids = {i.video: i.video_id for i in items}
    candidates = store.get_many("candidates", videos, fp["candidates"])
    captions = store.get_many("captions", videos, fp["captions"])
    caption_rows, seen = [], set()
    for video in videos:
        # a failed candidates record has no frames (a label run never stores one over
        # good candidates; a store written before that rule may hold one)
        if video not in captions or video not in candidates or not candidates[video].ok:
            continue
        if video_ids[video] in seen:
            continue
        seen.add(video_ids[video])
        caption_rows.append(
            {
                VIDEO_ID: video_ids[video],
                FRAME_INDICES: candidates[video].payload["frame_indices"],
                TIMESTAMPS: candidates[video].payload["timestamps"],
                CAPTIONS: captions[video].payload["captions"],
            }
        )
    return rows, caption_rows


def run_status(workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """The state of the run in ``workdir`` (safe while a run writes to it).

    Only the items of the run's current manifest are counted (records of items that an earlier
    manifest had stay in the store, and are not counted).

    Returns:
        ``{"workdir", "items", "videos", "done", "stages": {stage: {"done", "failed",
        "blocked" (waiting on a video that failed), "pending", "expected"}},
        "usage": {stage: {"requests", "prompt_tokens",
        "completion_tokens", "cost", "seconds"}}, "failures": [...], "runs": [...],
        "fingerprints"}``. ``usage`` counts every attempt ever made in this work directory.

    Raises:
        FileNotFoundError: ``workdir`` holds no run store.
    """
    with open_run(workdir) as (store, fp):
        return status_of(store, fp, workdir)


def status_of(
    store: RunStore, fp: Mapping[str, str], workdir: str | os.PathLike[str]
) -> dict[str, Any]:
    """`run_status` of an open run store (see `open_run`)."""
    items = store.items()
    videos = list(dict.fromkeys(item.video for item in items))
    samples = [item.sample_id for item in items]
    state = run_state(store, fp, items)
    bad_videos = {f["item"] for f in state["failures"] if f["stage"] == "candidates"}
    bad_samples = {item.sample_id for item in items if item.video in bad_videos}
    stages = {}
    for stage in STAGES:
        keys = videos if stage in ("candidates", "captions") else samples
        waiting = {"candidates": set(), "captions": bad_videos}.get(stage, bad_samples)
        statuses = store.statuses(stage, keys, fp[stage])
        done = sum(status == "done" for status in statuses.values())
        failed = len(statuses) - done
        blocked = len(waiting - statuses.keys())
        stages[stage] = {
            "done": done,
            "failed": failed,
            "blocked": blocked,
            "pending": len(keys) - done - failed - blocked,
            "expected": len(keys),
        }
    return {
        "workdir": str(workdir),
        "items": len(items),
        "videos": len(videos),
        "done": state["done"],
        "stages": stages,
        "usage": store.usage(),
        "failures": state["failures"],
        "runs": store.runs(),
        "fingerprints": fp,
        "videos_root": store.get_meta("videos_root"),
    }


@dataclass
class SampleView:
    """One sample of a run, for pictures and inspection.

    Attributes:
        item: the `LabelItem`.
        candidates: the decoded `fsmodel.video.Candidates`, or None when the video is not
            readable now.
        frame_indices, timestamps: as stored.
        spatial, temporal, scores: ``[n]`` float64, NaN where a source has no value.
        label_meta: the row's metadata (``{}`` without a row).
        errors: ``{stage: error}`` of the stages that failed.
        rationales: the spatial explanations.
        captions: the video's captions.
    """

    item: LabelItem
    candidates: Any
    frame_indices: list[int]
    timestamps: list[float]
    spatial: np.ndarray
    temporal: np.ndarray
    scores: np.ndarray
    label_meta: dict[str, Any]
    errors: dict[str, str]
    rationales: list[str]
    captions: list[str]


def load_sample(
    workdir: str | os.PathLike[str],
    sample_id: str,
    videos_root: str | os.PathLike[str] | None = None,
    decode: bool = True,
) -> SampleView:
    """Everything the store knows about one sample, with its candidate frames decoded again.

    Args:
        workdir: the run's work directory.
        sample_id: the sample's id, or a unique prefix of it.
        videos_root: where the videos are (default: the run's).
        decode: decode the candidate frames (for pictures).

    Raises:
        FileNotFoundError: ``workdir`` holds no run store.
        ValueError: no such sample (or an ambiguous prefix), or its video has no stored
            candidates (it failed: the error is named).
    """
    import json

    store, fp = _open(workdir)
    try:
        items = store.items()
        matches = [i for i in items if i.sample_id == sample_id] or [
            i for i in items if i.sample_id.startswith(sample_id)
        ]
        if len(matches) != 1:
            known = ", ".join(i.sample_id for i in items[:5])
            why = "is ambiguous" if matches else "is not in the run"
            raise ValueError(f"sample {sample_id!r} {why} (samples: {known}, ...)")
        item = matches[0]
        candidates = store.get("candidates", item.video, fp["candidates"])
        if candidates is None or not candidates.ok:
            error = candidates.error if candidates else "not sampled yet"
            raise ValueError(
                f"sample {item.sample_id}: video {item.video} has no candidates ({error})"
            )
        n = len(candidates.payload["frame_indices"])
        records = {
            stage: store.get(stage, key, fp[stage])
            for stage, key in (
                ("captions", item.video),
                ("spatial", item.sample_id),
                ("temporal", item.sample_id),
                ("fused", item.sample_id),
            )
        }
        root = Path(videos_root or store.get_meta("videos_root") or ".")
        config = store.get_meta("config") or {}
    finally:
        store.close()
    fused = records["fused"]
    scores = (
        np.asarray(fused.payload[SCORES], np.float64)
        if fused is not None and fused.ok
        else np.full(n, np.nan)
    )
    meta = json.loads(fused.payload[LABEL_META]) if fused is not None and fused.ok else {}
    frames = None
    if decode:
        try:
            frames = sample_candidates(
                root / item.video,
                n,
                size=config.get("frame_size"),
                reader=config.get("video_reader", "pyav"),
            )
        except VideoError:
            frames = None
    spatial, temporal = records["spatial"], records["temporal"]
    return SampleView(
        item=item,
        candidates=frames,
        frame_indices=candidates.payload["frame_indices"],
        timestamps=candidates.payload["timestamps"],
        spatial=payload_scores(spatial.payload if spatial else None, n),
        temporal=payload_scores(temporal.payload if temporal else None, n),
        scores=scores,
        label_meta=meta,
        errors={
            stage: record.error or "failed"
            for stage, record in records.items()
            if record is not None and not record.ok
        },
        rationales=spatial.payload.get("rationales", []) if spatial else [],
        captions=records["captions"].payload.get("captions", []) if records["captions"] else [],
    )
