"""The per-unit work of a label run, shared by every engine: each function takes a `LabelContext`
and returns `Record`\\ s (decode, caption, spatial, temporal, fuse), touching no store."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.backends import ChatResponse
from fslabels.manifest import LabelItem
from fslabels.run.context import FILL_VALUE, FUSION_RULE, LabelContext
from fslabels.spatial import SpatialResult
from fslabels.store import Record
from fslabels.temporal import (
    CaptionResult,
    TemporalJob,
    TemporalResult,
)
from fsmodel.schema import (
    FRAME_INDICES,
    LABEL_META,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    SchemaError,
    check_label_rows,
)
from fsmodel.video import VideoError, sample_candidates


def _cost(
    ctx: LabelContext, stage: str, cost: float | None, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """The backend's own cost, else the run's price table applied to the tokens, else None."""
    if cost is not None:
        return cost
    price = ctx.config.prices.get(getattr(ctx.config, stage).model)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


_HEAVY_REPLY_FIELDS = ("top_logprobs", "tokens", "token_logprobs")


def _reply(response: ChatResponse, keep_logprobs: bool) -> dict[str, Any]:
    """A response as stored: everything with ``keep_logprobs``, else without the per-token
    distributions (the bulk of it: tokens x alternatives floats)."""
    if keep_logprobs:
        return response.to_dict()
    return {
        f.name: getattr(response, f.name)
        for f in dataclasses.fields(response)
        if f.name not in _HEAVY_REPLY_FIELDS
    }


# --- per-video and per-batch work (what a distributed engine would reuse) -------------------


def candidates_payload(candidates: Any) -> dict[str, Any]:
    """What a candidates record stores of `fsmodel.video.Candidates` (everything but the
    frames); label runs and evals store the same."""
    return {
        "frame_indices": candidates.indices.tolist(),
        "timestamps": candidates.timestamps.tolist(),
        "num_frames": candidates.num_frames,
        "fps": candidates.fps,
        "duration": candidates.duration,
        "reader": candidates.reader,
        "frame_shape": list(candidates.frames.shape[1:]),
    }


def decode_video(
    ctx: LabelContext, video: str, path: str | os.PathLike[str]
) -> tuple[Any | None, Record]:
    """Sample the video's candidates: ``(Candidates or None, the candidates record)``.

    A `fsmodel.video.VideoError` (missing, unreadable, truncated file) becomes a failed record.
    """

    config = ctx.config
    fingerprint = ctx.fingerprints.candidates
    start = time.perf_counter()
    try:
        candidates = sample_candidates(
            path, config.num_candidates, size=config.frame_size, reader=config.video_reader
        )
    except VideoError as err:
        return None, Record(
            "candidates",
            video,
            fingerprint,
            "failed",
            {"path": str(path)},
            error=f"VideoError: {err}",
            seconds=time.perf_counter() - start,
        )
    payload = candidates_payload(candidates)
    record = Record(
        "candidates", video, fingerprint, "done", payload, seconds=time.perf_counter() - start
    )
    return candidates, record


def caption_video(ctx: LabelContext, video: str, frames: Sequence[Any]) -> Record:
    """Caption every candidate frame of one video (``captions.batch_size`` requests per call)."""
    start = time.perf_counter()
    captioner = ctx.captioner
    requests = captioner.requests(frames)
    size = ctx.config.captions.batch_size
    responses: list[ChatResponse] = []
    for first in range(0, len(requests), size):
        responses += captioner.backend.generate(requests[first : first + size])
    result = captioner.parse(responses)
    return captions_record(
        ctx, video, result, responses, len(requests), time.perf_counter() - start
    )


def captions_record(
    ctx: LabelContext,
    video: str,
    result: CaptionResult,
    responses: Sequence[ChatResponse],
    requests: int,
    seconds: float,
) -> Record:
    failures = [f._asdict() for f in result.failures]
    payload: dict[str, Any] = {"captions": result.captions, "failures": failures}
    if ctx.config.keep_logprobs:
        payload["replies"] = [_reply(r, True) for r in responses]
    n = len(result.captions)
    error = (
        f"{len(failures)} of {n} captions failed; first: frame "
        f"{failures[0]['position']}: {failures[0]['error']}"
        if failures
        else None
    )
    return Record(
        "captions",
        video,
        ctx.fingerprints.captions,
        "failed" if failures else "done",
        payload,
        error=error,
        requests=requests,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=_cost(ctx, "captions", result.cost, result.prompt_tokens, result.completion_tokens),
        seconds=seconds,
    )


@dataclass
class SpatialJob:
    """One question's spatial work: the frames at ``positions`` (all of them, or the ones that
    failed before), merged into ``previous`` (the stored payload) when retrying."""

    sample_id: str
    question: str
    options: Sequence[str]
    positions: Sequence[int]
    previous: Mapping[str, Any] | None = None


def spatial_batch(
    ctx: LabelContext, frames: Sequence[Any], jobs: Sequence[SpatialJob]
) -> list[Record]:
    """Spatial labels of several questions of one video in one backend call (then one call for
    the forced answers); one record per job."""
    start = time.perf_counter()
    labeler = ctx.spatial
    requests = [
        labeler.request(frames[p], job.question, job.options) for job in jobs for p in job.positions
    ]
    responses = labeler.backend.generate(requests)
    force = labeler.force_requests(requests, responses)
    forced = (
        dict(zip(force, labeler.backend.generate(list(force.values())), strict=True))
        if force
        else {}
    )
    n = len(frames)
    records, first = [], 0
    for job in jobs:
        last = first + len(job.positions)
        mine = responses[first:last]
        mine_forced = {i - first: forced[i] for i in range(first, last) if i in forced}
        result = labeler.parse(mine, mine_forced)
        records.append(spatial_record(ctx, job, n, result, mine, mine_forced))
        first = last
    seconds = (time.perf_counter() - start) / max(1, len(records))
    for record in records:
        record.seconds = seconds
    return records


def spatial_record(
    ctx: LabelContext,
    job: SpatialJob,
    n: int,
    result: SpatialResult,
    responses: Sequence[ChatResponse],
    forced: Mapping[int, ChatResponse],
    requests: int | None = None,
) -> Record:
    """One job's record (``requests``: sent for it, default one per response)."""
    payload = _spatial_payload(job, n, result, responses, forced, ctx.config.keep_logprobs)
    failures = payload["failures"]
    error = (
        f"{len(failures)} of {n} frames have no spatial score; first: frame "
        f"{failures[0]['position']}: {failures[0]['error']}"
        if failures
        else None
    )
    return Record(
        "spatial",
        job.sample_id,
        ctx.fingerprints.spatial,
        "failed" if failures else "done",
        payload,
        error=error,
        requests=len(responses) + len(forced) if requests is None else requests,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=_cost(ctx, "spatial", result.cost, result.prompt_tokens, result.completion_tokens),
    )


def _spatial_payload(
    job: SpatialJob,
    n: int,
    result: Any,
    responses: Sequence[ChatResponse],
    forced: Mapping[int, ChatResponse],
    keep_logprobs: bool,
) -> dict[str, Any]:
    """The stored payload: the previous one (retry) with the job's positions replaced."""
    previous = job.previous or {}
    scores = list(previous.get("scores") or [None] * n)
    rationales = list(previous.get("rationales") or [""] * n)
    was_forced = list(previous.get("forced") or [False] * n)
    replies = list(previous.get("replies") or [None] * n)
    forced_replies = dict(previous.get("forced_replies") or {})
    redone = set(job.positions)
    failures = [f for f in previous.get("failures", []) if f["position"] not in redone]
    for k, p in enumerate(job.positions):
        score = float(result.scores[k])
        scores[p] = score if np.isfinite(score) else None
        rationales[p] = result.rationales[k]
        was_forced[p] = bool(result.forced[k])
        replies[p] = _reply(responses[k], keep_logprobs)
        forced_replies.pop(str(p), None)
        if k in forced:
            forced_replies[str(p)] = _reply(forced[k], keep_logprobs)
    for failure in result.failures:
        failures.append(
            {
                "position": job.positions[failure.position],
                "error": failure.error,
                "raw": failure.raw,
            }
        )
    failures.sort(key=lambda f: f["position"])
    return {
        "scores": scores,
        "rationales": rationales,
        "forced": was_forced,
        "failures": failures,
        "replies": replies,
        "forced_replies": forced_replies,
    }


def captions_hash(captions: Sequence[str], timestamps: Sequence[float]) -> str:
    """What a temporal label read: its captions and timestamps (a changed caption, e.g. after
    a retried caption, makes the stored temporal label stale)."""
    return stable_hash({"captions": list(captions), "timestamps": [float(t) for t in timestamps]})


def temporal_batch(
    ctx: LabelContext,
    items: Sequence[LabelItem],
    captions: Sequence[str],
    timestamps: Sequence[float],
) -> list[Record]:
    """Temporal labels of several questions of one video in one backend call per attempt."""
    start = time.perf_counter()
    jobs = [TemporalJob(captions, timestamps, item.question, item.options) for item in items]
    results = ctx.temporal.label_batch(jobs)
    seconds = (time.perf_counter() - start) / max(1, len(items))
    read = captions_hash(captions, timestamps)
    return [
        temporal_record(ctx, item, result, read, seconds)
        for item, result in zip(items, results, strict=True)
    ]


def temporal_record(
    ctx: LabelContext, item: LabelItem, result: TemporalResult, read: str, seconds: float
) -> Record:
    payload = {
        "frames": result.frames,
        "scores": result.scores.tolist(),
        "raw": result.raw,
        "replies": result.replies,
        "attempts": result.attempts,
        "notes": result.notes,
        "error": result.error,
        "captions_hash": read,
    }
    return Record(
        "temporal",
        item.sample_id,
        ctx.fingerprints.temporal,
        "done" if result.ok else "failed",
        payload,
        error=result.error,
        requests=result.attempts,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=_cost(ctx, "temporal", result.cost, result.prompt_tokens, result.completion_tokens),
        seconds=seconds,
    )


def payload_scores(payload: Mapping[str, Any] | None, n: int) -> np.ndarray:
    if payload is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else v for v in payload["scores"]], dtype=np.float64)


def fuse_sample(
    ctx: LabelContext,
    item: LabelItem,
    candidates: Mapping[str, Any],
    spatial: Record | None,
    temporal: Record | None,
) -> Record:
    """The schema-v1 row of one sample from its stored spatial and temporal records, under the
    rule in the module docstring; a failed record when no valid row can be made."""
    from fslabels.fusion import fuse

    n = len(candidates["frame_indices"])
    s = payload_scores(spatial.payload if spatial else None, n)
    t = payload_scores(temporal.payload if temporal else None, n)
    errors = {
        name: (record.error if record else "not labelled")
        for name, record in (("spatial", spatial), ("temporal", temporal))
        if record is None or not record.ok
    }
    fingerprint = ctx.fingerprints.fused

    def failed(error: str) -> Record:
        return Record("fused", item.sample_id, fingerprint, "failed", {"errors": errors}, error)

    try:
        fused = fuse(s, t, ctx.config.fusion.weights)
    except ValueError as err:
        return failed(f"cannot fuse: {err}")
    if not fused.complete:
        unlabelled = fused.metadata["unlabelled"]
        because = "; ".join(f"{name}: {error}" for name, error in errors.items())
        return failed(
            f"{len(unlabelled)} of {n} frames have no score from either source ({because})"
        )
    filled = {
        name: np.flatnonzero(~np.isfinite(values)).tolist()
        for name, values in (("spatial", s), ("temporal", t))
        if not np.isfinite(values).all()
    }
    meta: dict[str, Any] = {
        "sources": fused.metadata["sources"],
        "weights": fused.metadata["weights"],
        "rule": FUSION_RULE,
        "failed": {name: error for name, error in errors.items() if name in filled},
        "filled": {name: {"value": FILL_VALUE, "positions": p} for name, p in filled.items()},
        "note": fused.metadata["note"],
    }
    if spatial is not None:
        meta["spatial_forced"] = int(sum(spatial.payload.get("forced", [])))
    if temporal is not None and temporal.ok:
        meta["temporal_frames"] = temporal.payload["frames"]
        if temporal.payload.get("notes"):
            meta["temporal_notes"] = temporal.payload["notes"]
    row = {
        **item.row(),
        FRAME_INDICES: list(candidates["frame_indices"]),
        TIMESTAMPS: list(candidates["timestamps"]),
        SPATIAL: _column(s),
        TEMPORAL: _column(t),
        SCORES: fused.scores.astype(np.float32).tolist(),
        LABEL_META: _json_text(meta),
    }
    try:
        check_label_rows([row], num_candidates=n)
    except SchemaError as err:
        return failed(str(err))
    return Record("fused", item.sample_id, fingerprint, "done", row)


def _column(values: np.ndarray) -> list[float]:
    return np.where(np.isfinite(values), values, FILL_VALUE).astype(np.float32).tolist()


def _json_text(value: Any) -> str:
    from fslabels.store import to_json

    return to_json(value)
