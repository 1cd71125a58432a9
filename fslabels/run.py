"""A resumable label run: manifest → candidates → captions, spatial, temporal → fused rows.

`run_labels` walks the manifest one video at a time:

1. **candidates**: the video is decoded once (``fsmodel.video.sample_candidates``) for all its
   questions; indices, timestamps and the video's metadata are stored. A video whose every
   sample is finished is not decoded at all on a re-run.
2. **captions**: every candidate frame is captioned once per video (question-independent).
3. **spatial**: one request per (question, frame); the requests of several questions of the
   video are concatenated into one backend call of up to ``spatial.batch_size`` requests (a
   question's frames are never split across batches), then one call for the forced answers.
4. **temporal**: one request per question from the video's numbered captions, up to
   ``temporal.batch_size`` questions per call, unreadable replies retried. A video whose
   captions record failed gets no temporal request: its questions' temporal labels are recorded
   as failed (``captions failed: …``), so their rows use the spatial source alone (below), and
   ``retry_failed`` redoes the captions and then them.
5. **fused**: the schema-v1 row, validated with `fsmodel.schema.check_label_rows`.

Each batch is committed to the run store (`fslabels.store`) in one transaction as soon as it is
finished, keyed by ``(stage, item, fingerprint)``; a re-run skips what is stored. Failures (a
video that cannot be decoded, a request that failed, a reply that cannot be read) are stored
against their items with the error and the raw reply, the run goes on, and they are retried
only when asked (``retry_failed=True``); spatial retries only the frames that failed. An
exception raised while computing a unit (a bug, an unexpected input) is recorded against that
unit with its type and message, by either engine.

A video whose candidates are stored is decoded again only for the frames of work still to do
(a new question, a retried failure). That decode never replaces the stored candidates: if the
video cannot be read now (moved, another ``videos_root``), or its frame indices differ from the
stored ones (the file changed), only the units that needed its frames fail, naming the cause.

**Fingerprints** (`Fingerprints`), each a hash of what changes that stage's output:

- candidates: n, frame size, reader.
- captions / spatial: the candidates fingerprint + the labeler's settings (prompt hash,
  sampling parameters, max tokens, top-logprobs, chain of thought) + the backend's fingerprint
  (backend name, model id, revision, dtype, processor settings ...).
- temporal: the captions fingerprint + the temporal labeler's settings and backend.
- fused: the spatial and temporal fingerprints + the fusion weights and `FUSION_RULE`.

Batch sizes, worker counts, devices, timeouts and endpoints are in none of them.

**When a source fails** (the documented rule for schema-v1 rows, which hold no missing
values): the fused score uses the other source alone (`fslabels.fusion.fuse`, never an average
with zeros); the failed source's column is filled with 0.0; the row's ``label_meta`` names the
failed source and its error (``failed``) and the filled frame positions (``filled``). A sample
in which some frame has a score from neither source has no row: it is a failure of the fused
stage, reported with both sources' errors.

**Engines.** The per-unit functions (`decode_video`, `caption_video`, `spatial_batch`,
`temporal_batch`, `fuse_sample`) take a `LabelContext` and return `Record`\\ s; `VideoWork`
plans one video's work from the store and runs them as `Step`\\ s without touching the store.
The local engine (``engine="local"``, this module) runs each video's steps in this process and
commits each step as it finishes; the Ray engine (``engine="ray"``, `fslabels.ray_engine`) runs
the same steps as Ray Data stages on a cluster and commits them on the driver. Same decisions,
same batches, same records under the same fingerprints.

Example:
    >>> config = LabelRunConfig.load("labels.yaml")  # doctest: +SKIP
    >>> summary = run_labels(config, "manifest.jsonl", "videos/", "work/")  # doctest: +SKIP
    >>> rows, caption_rows = export_rows("work/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.backends import Backend, ChatResponse, get_backend
from fslabels.config import LabelRunConfig, StageConfig
from fslabels.manifest import LabelItem, group_by_video, read_manifest
from fslabels.spatial import FrameFailure, SpatialLabeler, SpatialResult
from fslabels.store import STAGES, Record, RunStore
from fslabels.temporal import (
    CAPTION_PROMPT,
    Captioner,
    CaptionResult,
    TemporalJob,
    TemporalLabeler,
    TemporalResult,
)

__all__ = [
    "ENGINES",
    "FUSION_RULE",
    "BackendLoadError",
    "Fingerprints",
    "LabelContext",
    "RunSummary",
    "SampleView",
    "SpatialJob",
    "StageStats",
    "Step",
    "VideoWork",
    "caption_video",
    "decode_video",
    "export_rows",
    "fuse_sample",
    "load_sample",
    "run_labels",
    "run_status",
    "spatial_batch",
    "temporal_batch",
]

# Versions the fill rule above: a change of rule keys new fused rows.
FUSION_RULE = "fill-failed-with-zeros/v1"
FILL_VALUE = 0.0
MODEL_STAGES = ("captions", "spatial", "temporal")

logger = logging.getLogger(__name__)


class BackendLoadError(ValueError):
    """A stage's backend cannot load (a missing model or API key ...)."""


# --- fingerprints and the labelling context ---------------------------------------------------


@dataclass(frozen=True)
class Fingerprints:
    """The fingerprint of each stage (see the module docstring)."""

    candidates: str
    captions: str
    spatial: str
    temporal: str
    fused: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class LabelContext:
    """The labelers, backends and fingerprints of one run config: what a worker needs.

    Args:
        config: the run config.
        backends: ``{stage: backend}`` to use instead of building them from the config
            (``"captions"``, ``"spatial"``, ``"temporal"``); they are not unloaded by `close`.
            Stages with identical backend settings share one backend instance (the default
            captions and spatial stages share one Qwen2-VL).

    Building a context loads nothing: backends load on their first request.
    """

    def __init__(
        self, config: LabelRunConfig, backends: Mapping[str, Backend] | None = None
    ) -> None:
        self.config = config
        given = dict(backends or {})
        unknown = [k for k in given if k not in MODEL_STAGES]
        if unknown:
            raise ValueError(f"backends has unknown stage(s) {unknown}; stages: {MODEL_STAGES}")
        self._owned: list[Backend] = []
        shared: dict[str, Backend] = {}
        self.backends: dict[str, Backend] = {}
        for stage in MODEL_STAGES:
            if stage in given:
                self.backends[stage] = given[stage]
                continue
            spec: StageConfig = getattr(config, stage)
            options = _backend_options(spec, config.prices)
            key = stable_hash({"backend": spec.backend, "model": spec.model, **options})
            if key not in shared:
                shared[key] = get_backend(spec.backend, model=spec.model, **options)
                self._owned.append(shared[key])
            self.backends[stage] = shared[key]
        s, c, t = config.spatial, config.captions, config.temporal
        self.spatial = SpatialLabeler(
            self.backends["spatial"],
            cot=s.cot,
            max_new_tokens=s.max_new_tokens,
            top_logprobs=s.top_logprobs,
            force_top_logprobs=s.force_top_logprobs,
            temperature=s.temperature,
        )
        self.captioner = Captioner(
            self.backends["captions"],
            prompt=c.prompt or CAPTION_PROMPT,
            max_new_tokens=c.max_new_tokens,
            temperature=c.temperature,
        )
        self.temporal = TemporalLabeler(
            self.backends["temporal"],
            max_new_tokens=t.max_new_tokens,
            temperature=t.temperature,
            max_attempts=t.max_attempts,
            structured_output=t.structured_output,
        )
        self.fingerprints = self._fingerprints()

    def _fingerprints(self) -> Fingerprints:
        config = self.config
        candidates = stable_hash(
            {
                "stage": "candidates",
                "num_candidates": config.num_candidates,
                "frame_size": config.frame_size,
                "reader": config.video_reader,
            }
        )
        captions = stable_hash({"candidates": candidates, **self.captioner.settings()})
        spatial = stable_hash({"candidates": candidates, **self.spatial.settings()})
        temporal = stable_hash({"captions": captions, **self.temporal.settings()})
        fused = stable_hash(
            {
                "stage": "fused",
                "spatial": spatial,
                "temporal": temporal,
                "weights": list(config.fusion.weights),
                "rule": FUSION_RULE,
            }
        )
        return Fingerprints(candidates, captions, spatial, temporal, fused)

    def settings(self) -> dict[str, Any]:
        """What produced the labels (for cards): each stage's settings and fingerprint."""
        return {
            "fingerprints": self.fingerprints.as_dict(),
            "captions": self.captioner.settings(),
            "spatial": self.spatial.settings(),
            "temporal": self.temporal.settings(),
            "fusion": {"weights": list(self.config.fusion.weights), "rule": FUSION_RULE},
        }

    def backend_groups(self) -> list[tuple[str, ...]]:
        """The model stages grouped by the backend instance they share, in stage order (the
        Ray engine runs one actor pool per group)."""
        groups: dict[int, list[str]] = {}
        for stage in MODEL_STAGES:
            groups.setdefault(id(self.backends[stage]), []).append(stage)
        return [tuple(stages) for stages in groups.values()]

    def load(self, stages: Sequence[str] = MODEL_STAGES) -> None:
        """Load the stages' backends now (default: every stage's), so a missing model or API
        key stops a run before any work rather than midway.

        Raises:
            BackendLoadError: naming the stage, backend and model, with the cause.
        """
        for stage in stages:
            backend = self.backends[stage]
            try:
                backend.load()
            except ImportError:
                raise
            except Exception as err:
                spec: StageConfig = getattr(self.config, stage)
                raise BackendLoadError(
                    f"cannot load the {stage} backend ({backend.name}, model {spec.model!r}): "
                    f"{type(err).__name__}: {err}"
                ) from err

    def close(self) -> None:
        """Unload the backends this context built."""
        for backend in self._owned:
            backend.unload()


def _backend_options(spec: StageConfig, prices: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The stage's backend options, with the run's price table for backends that price."""
    from fslabels.backends import backend_class

    options = dict(spec.backend_options)
    fields = {f.name for f in dataclasses.fields(backend_class(spec.backend).config_class)}
    if "prices" in fields and "prices" not in options and prices:
        options["prices"] = {model: tuple(price) for model, price in prices.items()}
    return options


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
    from fsmodel.video import VideoError, sample_candidates

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
    return _captions_record(
        ctx, video, result, responses, len(requests), time.perf_counter() - start
    )


def _captions_record(
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
        records.append(_spatial_record(ctx, job, n, result, mine, mine_forced))
        first = last
    seconds = (time.perf_counter() - start) / max(1, len(records))
    for record in records:
        record.seconds = seconds
    return records


def _spatial_record(
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
        _temporal_record(ctx, item, result, read, seconds)
        for item, result in zip(items, results, strict=True)
    ]


def _temporal_record(
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


def _scores(payload: Mapping[str, Any] | None, n: int) -> np.ndarray:
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

    n = len(candidates["frame_indices"])
    s = _scores(spatial.payload if spatial else None, n)
    t = _scores(temporal.payload if temporal else None, n)
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


# --- one video's work: planned from the store, done by either engine -------------------------


@dataclass
class Step:
    """Finished work of one stage of one video: the records to commit and their accounting.

    Attributes:
        stage: one of ``STAGES``.
        records: the records to write (empty when nothing was computed).
        seconds: wall time spent.
        cached: units found finished in the store (not recomputed).
        progress: progress-bar units this step accounts for (frames, questions ...).
    """

    stage: str
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    cached: int = 0
    progress: int = 0


def _todo(record: Record | None, retry: bool) -> bool:
    """Whether a unit is to be computed: never stored, or a stored failure being retried."""
    return record is None or (not record.ok and retry)


def error_text(err: BaseException) -> str:
    """``"TypeName: message"``: how a stored failure names its exception."""
    return f"{type(err).__name__}: {err}"


@dataclass
class VideoWork:
    """One video's questions and what the store holds for them: the unit both engines schedule.

    `plan` reads the store once; the steps (`decode`, `caption`, `spatial_steps`,
    `temporal_steps`, `fuse`, or all of them with `steps`) compute what is missing with the
    per-unit functions above, update this object's records and return `Step`\\ s, never touching
    the store: the local engine commits each step as it comes, the Ray engine runs the steps on
    its workers (a `VideoWork` pickles) and commits them on the driver. Both make the same
    decisions (what is cached, what is retried, how requests are batched), so both write the
    same records.

    Args:
        video: the video's path in the manifest (the store key of its per-video stages).
        path: where to read it.
        items: its questions, in manifest order.
        retry: recompute stored failures.
        candidates, captions: the stored per-video records (or None).
        spatial, temporal, fused: the stored per-sample records, by sample id.
        changed: samples whose spatial or temporal record was computed now.
        frames_error: why the frames of a video whose candidates are stored cannot be used now
            (its re-decode failed, or the file changed): every unit needing them fails with it.
    """

    video: str
    path: str
    items: list[LabelItem]
    retry: bool = False
    candidates: Record | None = None
    captions: Record | None = None
    spatial: dict[str, Record] = field(default_factory=dict)
    temporal: dict[str, Record] = field(default_factory=dict)
    fused: dict[str, Record] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    frames_error: str | None = None

    @classmethod
    def plan(
        cls,
        store: RunStore,
        fingerprints: Fingerprints,
        video: str,
        items: Sequence[LabelItem],
        videos_root: str | os.PathLike[str],
        retry: bool = False,
    ) -> VideoWork:
        """The video's work as the store has it now."""
        ids = [item.sample_id for item in items]
        fp = fingerprints
        return cls(
            video=video,
            path=str(Path(videos_root) / video),
            items=list(items),
            retry=retry,
            candidates=store.get("candidates", video, fp.candidates),
            captions=store.get("captions", video, fp.captions),
            spatial=store.get_many("spatial", ids, fp.spatial),
            temporal=store.get_many("temporal", ids, fp.temporal),
            fused=store.get_many("fused", ids, fp.fused),
        )

    # --- what is to do -------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, Any] | None:
        """The stored candidates payload, or None while the video is unsampled or failed."""
        record = self.candidates
        return record.payload if record is not None and record.ok else None

    def captions_todo(self) -> bool:
        return _todo(self.captions, self.retry)

    def spatial_todo(self) -> list[LabelItem]:
        return [item for item in self.items if _todo(self.spatial.get(item.sample_id), self.retry)]

    def temporal_todo(self) -> list[LabelItem]:
        """Questions without a temporal label, or whose label read other captions than the
        stored ones (retried since); needs the captions."""
        assert self.meta is not None and self.captions is not None
        read = captions_hash(self.captions.payload["captions"], self.meta["timestamps"])
        return [
            item
            for item in self.items
            if _todo(self.temporal.get(item.sample_id), self.retry)
            or self.temporal[item.sample_id].payload.get("captions_hash") != read
        ]

    def needs_frames(self) -> bool:
        """Whether a model stage will read the decoded frames."""
        return self.captions_todo() or bool(self.spatial_todo())

    def needs_decode(self) -> bool:
        """The video is decoded when it has no record yet (or a failed one, retried) or a
        later stage needs its frames."""
        record = self.candidates
        return _todo(record, self.retry) or (record.ok and self.needs_frames())

    # --- the steps -----------------------------------------------------------------------

    def steps(
        self, ctx: LabelContext, isolate: bool = False, lost: str | None = None
    ) -> Iterator[Step]:
        """Every stage of the video, in order (the local engine's loop body).

        Args:
            ctx: the run's context.
            isolate: an exception raised while computing a unit is recorded as that unit's
                failure and the video goes on (else it propagates).
            lost: record every unit still to do as failed with this error, computing nothing
                (work that a distributed engine lost for good).
        """
        frames, step = self.decode(ctx, isolate, lost)
        yield step
        if self.meta is None:  # a bad video: recorded once against it; its samples get none
            yield from self.blocked(ctx)
            return
        yield self.caption(ctx, frames, isolate, lost)
        yield from self.spatial_steps(ctx, frames, isolate, lost)
        yield from self.temporal_steps(ctx, isolate, lost)
        yield self.fuse(ctx)

    def _attempt(self, compute: Any, fail: Any, isolate: bool, lost: str | None, what: str) -> Any:
        """``compute()``, or ``fail(error)`` when the work is lost or (``isolate``) raised."""
        if lost is not None:
            return fail(lost)
        try:
            return compute()
        except Exception as err:
            if not isolate:
                raise
            logger.exception("%s of video %s failed", what, self.video)
            return fail(f"{what} raised {error_text(err)}")

    def decode(
        self, ctx: LabelContext, isolate: bool = False, lost: str | None = None
    ) -> tuple[Any, Step]:
        """``(frames or None, the candidates step)``: decoded only when `needs_decode`."""
        if not self.needs_decode() or (lost is not None and self.meta is not None):
            return None, Step("candidates", cached=1, progress=1)
        start = time.perf_counter()

        def fail(error: str) -> tuple[None, Record]:
            payload = {"path": self.path}
            return None, Record(
                "candidates", self.video, ctx.fingerprints.candidates, "failed", payload, error
            )

        candidates, fresh = self._attempt(
            lambda: decode_video(ctx, self.video, self.path), fail, isolate, lost, "decoding"
        )
        seconds = time.perf_counter() - start
        stored = self.meta
        if stored is None:  # sampled now (first time, or a retried failure): this is the record
            fresh.seconds = fresh.seconds or seconds
            self.candidates = fresh
            return (None if candidates is None else candidates.frames), Step(
                "candidates", [fresh], seconds, progress=1
            )
        # Stored already, decoded again for its frames: the stored record stays (the labels
        # made from it are good); what cannot use these frames fails in its own step.
        if candidates is None:
            self.frames_error = (
                f"video {self.video} could not be decoded again for the frames of its new work "
                f"({fresh.error}); its stored candidates are kept"
            )
        else:
            self.frames_error = _changed_video(self.video, candidates.indices, stored)
        if self.frames_error is not None:
            logger.error("%s", self.frames_error)
            return None, Step("candidates", [], seconds, cached=1, progress=1)
        return candidates.frames, Step("candidates", [], seconds, cached=1, progress=1)

    def blocked(self, ctx: LabelContext) -> list[Step]:
        """Progress of the stages that the samples of a failed video never reach."""
        n, k = ctx.config.num_candidates, len(self.items)
        return [
            Step("captions", progress=n),
            Step("spatial", progress=n * k),
            Step("temporal", progress=k),
            Step("fused", progress=k),
        ]

    def caption(
        self, ctx: LabelContext, frames: Any, isolate: bool = False, lost: str | None = None
    ) -> Step:
        """The video's captions, unless stored."""
        n = ctx.config.num_candidates
        if not self.captions_todo():
            return Step("captions", cached=1, progress=n)
        start = time.perf_counter()

        def fail(error: str) -> Record:
            result = CaptionResult([""] * n, [FrameFailure(i, error, "") for i in range(n)])
            return _captions_record(ctx, self.video, result, [], 0, 0.0)

        record = self._attempt(
            lambda: caption_video(ctx, self.video, frames),
            fail,
            isolate,
            lost if lost is not None else self.frames_error,
            "captioning",
        )
        self.captions = record
        return Step("captions", [record], time.perf_counter() - start, progress=n)

    def spatial_steps(
        self, ctx: LabelContext, frames: Any, isolate: bool = False, lost: str | None = None
    ) -> Iterator[Step]:
        """Spatial labels of the video's questions, several questions per backend call (a
        question's frames are never split); one step per call."""
        n = ctx.config.num_candidates
        todo = self.spatial_todo()
        cached = len(self.items) - len(todo)
        yield Step("spatial", cached=cached, progress=n * cached)
        jobs = []
        for item in todo:
            previous = self.spatial.get(item.sample_id)
            positions = list(range(n))
            if previous is not None:  # a retry: only the frames that failed
                failed = sorted({f["position"] for f in previous.payload["failures"]})
                positions = failed or positions
            jobs.append(
                SpatialJob(
                    item.sample_id,
                    item.question,
                    item.options,
                    positions,
                    previous.payload if previous is not None else None,
                )
            )
        for group in _batches([len(j.positions) for j in jobs], ctx.config.spatial.batch_size):
            batch = [jobs[i] for i in group]
            start = time.perf_counter()

            def fail(error: str, batch: list[SpatialJob] = batch) -> list[Record]:
                return [_failed_spatial(ctx, job, n, error) for job in batch]

            records = self._attempt(
                lambda batch=batch: spatial_batch(ctx, frames, batch),
                fail,
                isolate,
                lost if lost is not None else self.frames_error,
                "spatial labelling",
            )
            for record in records:
                self.spatial[record.item] = record
                self.changed.add(record.item)
            yield Step("spatial", records, time.perf_counter() - start, progress=n * len(group))

    def temporal_steps(
        self, ctx: LabelContext, isolate: bool = False, lost: str | None = None
    ) -> Iterator[Step]:
        """Temporal labels from the video's captions, several questions per call; a stored
        label that read other captions (retried since) is stale and redone. With failed
        captions nothing is asked: the labels fail with ``captions failed: …``."""
        assert self.meta is not None and self.captions is not None
        n = ctx.config.num_candidates
        captions, timestamps = self.captions.payload["captions"], self.meta["timestamps"]
        read = captions_hash(captions, timestamps)
        if lost is None and not self.captions.ok:
            lost = f"captions failed: {self.captions.error}"
        todo = self.temporal_todo()
        cached = len(self.items) - len(todo)
        yield Step("temporal", cached=cached, progress=cached)
        for group in _batches([1] * len(todo), ctx.config.temporal.batch_size):
            batch = [todo[i] for i in group]
            start = time.perf_counter()

            def fail(error: str, batch: list[LabelItem] = batch) -> list[Record]:
                return [
                    _temporal_record(
                        ctx,
                        item,
                        TemporalResult(np.full(n, np.nan), [], "", error=error),
                        read,
                        0.0,
                    )
                    for item in batch
                ]

            records = self._attempt(
                lambda batch=batch: temporal_batch(ctx, batch, captions, timestamps),
                fail,
                isolate,
                lost,
                "temporal labelling",
            )
            for record in records:
                self.temporal[record.item] = record
                self.changed.add(record.item)
            yield Step("temporal", records, time.perf_counter() - start, progress=len(group))

    def fuse(self, ctx: LabelContext) -> Step:
        """Fused rows whenever missing, failed (cheap to redo) or an input changed now."""
        assert self.meta is not None
        start = time.perf_counter()
        rows, cached = [], 0
        for item in self.items:
            current = self.fused.get(item.sample_id)
            if current is not None and current.ok and item.sample_id not in self.changed:
                cached += 1
                continue
            rows.append(
                fuse_sample(
                    ctx,
                    item,
                    self.meta,
                    self.spatial.get(item.sample_id),
                    self.temporal.get(item.sample_id),
                )
            )
        for row in rows:
            self.fused[row.item] = row
        seconds = time.perf_counter() - start if rows else 0.0
        return Step("fused", rows, seconds, cached=cached, progress=len(self.items))


def _failed_spatial(ctx: LabelContext, job: SpatialJob, n: int, error: str) -> Record:
    """A spatial record in which every frame of the job failed with ``error``."""
    k = len(job.positions)
    result = SpatialResult(
        np.full(k, np.nan), [""] * k, [FrameFailure(i, error, "") for i in range(k)]
    )
    return _spatial_record(ctx, job, n, result, [ChatResponse.failed(error)] * k, {}, requests=0)


def _changed_video(video: str, indices: np.ndarray, stored: Mapping[str, Any]) -> str | None:
    """Why frames decoded again cannot stand for the stored candidates (their indices differ:
    the file changed since it was sampled), or None when they can."""
    decoded, before = [int(i) for i in indices], list(stored["frame_indices"])
    if decoded == before:
        return None
    if len(decoded) != len(before):
        differ = f"{len(decoded)} frames decoded, {len(before)} stored"
    else:
        k = next(k for k, (a, b) in enumerate(zip(decoded, before, strict=True)) if a != b)
        differ = f"position {k}: frame {decoded[k]} decoded, frame {before[k]} stored"
    return (
        f"video {video} changed since its candidates were sampled: "
        f"its frame indices differ from the stored ones ({differ}); put the original file back, "
        "or label it in a new work directory"
    )


# --- the run ----------------------------------------------------------------------------------


@dataclass
class StageStats:
    """One stage in one invocation of `run_labels`.

    Attributes:
        done, failed: units computed now (videos for candidates and captions, samples for the
            others) that succeeded or failed.
        cached: units found finished in the store (not recomputed).
        requests: backend requests sent (caption requests = candidates x videos).
        prompt_tokens, completion_tokens, cost (None when unpriced), seconds (wall time).
    """

    done: int = 0
    failed: int = 0
    cached: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    seconds: float = 0.0

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            if record.ok:
                self.done += 1
            else:
                self.failed += 1
            self.requests += record.requests
            self.prompt_tokens += record.prompt_tokens
            self.completion_tokens += record.completion_tokens
            if record.cost is not None:
                self.cost = (self.cost or 0.0) + record.cost


@dataclass
class RunSummary:
    """What `run_labels` did.

    Attributes:
        workdir: the work directory.
        items, videos: samples and videos in the manifest.
        done: samples with a valid label row (now or from earlier runs).
        failed: samples without one.
        stages: `StageStats` per stage, for this invocation.
        wall_seconds: this invocation's wall time.
        failures: every failed unit under the current fingerprints: ``{"stage", "item",
            "samples" (sample ids it affects), "error"}`` (a source that failed for a sample
            that still has a row from the other source is listed too).
        fingerprints: the stage fingerprints.
        engine: the engine's name and what it reports (the Ray engine: pools, timings).
    """

    workdir: str
    items: int
    videos: int
    done: int
    failed: int
    stages: dict[str, StageStats]
    wall_seconds: float
    failures: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "local"})

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.stages.values())

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.stages.values())

    @property
    def cost(self) -> float | None:
        costs = [s.cost for s in self.stages.values() if s.cost is not None]
        return sum(costs) if costs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
        )
        return data


_UNITS = {
    "candidates": "videos",
    "captions": "frames",
    "spatial": "frames",
    "temporal": "questions",
    "fused": "rows",
}


class ProgressBars:
    """One progress bar per stage (rich, on stderr), or nothing (also the eval's bar).

    Args:
        enabled: show bars; ``False``: every method does nothing.
        totals: ``{stage: units to do}``, one bar each, in order.
        units: ``{stage: what a unit is}`` shown beside each bar (default: the label stages').
    """

    def __init__(
        self, enabled: bool, totals: Mapping[str, int], units: Mapping[str, str] = _UNITS
    ) -> None:
        self._progress = None
        self._tasks: dict[str, Any] = {}
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),  # stdout stays free for results (--json)
        )
        for stage, total in totals.items():
            self._tasks[stage] = self._progress.add_task(stage, total=total, unit=units[stage])

    def __enter__(self) -> ProgressBars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, stage: str, amount: int) -> None:
        if self._progress is not None and amount:
            self._progress.advance(self._tasks[stage], amount)


def as_items(manifest_or_items: Any) -> list[LabelItem]:
    """The items of a manifest file, or the given `LabelItem`\\ s checked (types, no sample
    id twice); shared by label runs and evals.

    Raises:
        TypeError: an item that is not a `LabelItem`.
        ValueError: the same (video_id, question) twice, or an unreadable manifest.
    """
    if isinstance(manifest_or_items, (str, os.PathLike)):
        return read_manifest(manifest_or_items)
    items = list(manifest_or_items)
    for i, item in enumerate(items):
        if not isinstance(item, LabelItem):
            raise TypeError(f"items[{i}] is a {type(item).__name__}, not a LabelItem")
    sample_ids = [item.sample_id for item in items]
    if len(set(sample_ids)) != len(sample_ids):
        raise ValueError("items hold the same (video_id, question) more than once")
    return items


def _batches(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Consecutive groups of indices whose sizes sum to at most ``limit`` (a unit larger than
    the limit forms a group of its own). Deterministic: a resumed run, whose pending work is a
    suffix cut at a batch boundary, forms the same batches, so the backend sees the same
    inputs."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > limit:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups


class _Run:
    """The accounting of one invocation, the same for every engine: commits steps to the store,
    sums the stage statistics and advances the progress bars."""

    def __init__(self, store: RunStore, bars: ProgressBars) -> None:
        self.store = store
        self.bars = bars
        self.stats = {stage: StageStats() for stage in STAGES}
        self.commit_seconds = 0.0

    def _put(self, records: list[Record]) -> None:
        if records:
            start = time.perf_counter()
            self.store.put(records)
            self.commit_seconds += time.perf_counter() - start

    def apply(self, steps: Iterable[Step], together: bool = False) -> None:
        """Commit the steps' records, each step in its own transaction as it comes (or all of
        them in one with ``together``), and account for them."""
        if together:
            steps = list(steps)
            self._put([record for step in steps for record in step.records])
        for step in steps:
            if not together:
                self._put(step.records)
            stats = self.stats[step.stage]
            stats.add(step.records)
            stats.seconds += step.seconds
            stats.cached += step.cached
            self.bars.advance(step.stage, step.progress)


class _Session:
    """What every engine does around the work of a run: check the inputs, open and lock the
    store, record the manifest and config, plan each video's work, and sum up at the end.

    Raises (when built): see `run_labels`.
    """

    def __init__(
        self,
        config: LabelRunConfig | Mapping[str, Any],
        manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
        videos_root: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        backends: Mapping[str, Backend] | None = None,
    ) -> None:
        self.started = time.perf_counter()
        if isinstance(config, Mapping):
            config = LabelRunConfig.from_dict(config)
        if not isinstance(config, LabelRunConfig):
            raise TypeError(f"config must be a LabelRunConfig, got {type(config).__name__}")
        self.config = config
        self.items = as_items(manifest_or_items)
        if not self.items:
            raise ValueError("nothing to label: the manifest has no items")
        self.root = Path(videos_root).resolve()
        self.workdir = workdir
        self.groups = group_by_video(self.items)
        self.ctx = LabelContext(config, backends)
        self.store = RunStore(workdir)
        self.run_id: int | None = None

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        self.ctx.close()

    def prepare(self, retry: bool) -> bool:
        """Become the store's writer and record the manifest and config; returns whether any
        model stage has work (a fully resumed run loads no model)."""
        store, ctx = self.store, self.ctx
        store.lock()
        store.set_items(self.items)
        store.set_meta(
            {
                "config": self.config.to_dict(),
                "config_yaml": self.config.to_yaml(),
                "videos_root": str(self.root),
                "fingerprints": ctx.fingerprints.as_dict(),
                "settings": ctx.settings(),
            }
        )
        return _has_work(store, ctx.fingerprints, self.groups, retry)

    def begin_run(self) -> None:
        self.run_id = self.store.begin_run(self.config.to_yaml())

    def totals(self) -> dict[str, int]:
        """Progress-bar totals per stage."""
        n, videos, items = self.config.num_candidates, len(self.groups), len(self.items)
        return {
            "candidates": videos,
            "captions": n * videos,
            "spatial": n * items,
            "temporal": items,
            "fused": items,
        }

    def plans(self, retry: bool) -> Iterator[VideoWork]:
        """Each video's work, planned from the store when it is asked for."""
        for video, group in self.groups.items():
            yield VideoWork.plan(self.store, self.ctx.fingerprints, video, group, self.root, retry)

    def finish(
        self, stats: dict[str, StageStats], engine: dict[str, Any] | None = None
    ) -> RunSummary:
        """The summary of this invocation, recorded as its run's."""
        fingerprints = self.ctx.fingerprints.as_dict()
        state = _state(self.store, fingerprints, self.items)
        summary = RunSummary(
            workdir=str(self.workdir),
            items=len(self.items),
            videos=len(self.groups),
            done=state["done"],
            failed=len(self.items) - state["done"],
            stages=stats,
            wall_seconds=time.perf_counter() - self.started,
            failures=state["failures"],
            fingerprints=fingerprints,
            engine=dict(engine or {"name": "local"}),
        )
        if self.run_id is not None:
            self.store.finish_run(self.run_id, summary.to_dict())
        return summary


# Engines other than the in-process one: name -> "module:function", imported when asked for.
ENGINES: dict[str, str] = {"ray": "fslabels.ray_engine:run_labels_ray"}


def run_labels(
    config: LabelRunConfig,
    manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
    videos_root: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    progress: bool = True,
    retry_failed: bool = False,
    backends: Mapping[str, Backend] | None = None,
    engine: str = "local",
    engine_options: Any = None,
) -> RunSummary:
    """Label every (video, question) of a manifest, resumably (see the module docstring).

    Args:
        config: the run config (`LabelRunConfig`, or a mapping of its fields).
        manifest_or_items: a JSONL/CSV manifest path, or `LabelItem`\\ s (e.g. from
            `fslabels.manifest.items_from_hub`).
        videos_root: the directory the items' ``video`` paths are relative to.
        workdir: the work directory; its run store (``run.sqlite``) is created or resumed.
        progress: show a progress bar per stage.
        retry_failed: recompute stored failures (failed videos, captions, the failed frames of
            spatial labels, temporal labels); otherwise they are reported and kept.
        backends: ``{stage: backend}`` overriding the config's (see `LabelContext`; local
            engine only).
        engine: ``"local"`` (this process, one video at a time) or ``"ray"`` (Ray Data stages
            across a cluster, `fslabels.ray_engine`); both write the same records.
        engine_options: the engine's options (``"ray"``: a `fslabels.ray_engine.RayEngineConfig`
            or a mapping of its fields, e.g. ``{"address": "auto", "actors": 4}``).

    Returns:
        A `RunSummary`. The run completes even when items fail: they are in
        ``summary.failures`` and in the store.

    Raises:
        ValueError: an invalid config or manifest (``ManifestError``), an unknown engine.
        FileNotFoundError: a missing manifest.
        StoreLockedError: another run is writing to ``workdir``.
        BackendLoadError: a backend cannot load (before any work is done).
        ImportError: the engine's extra is not installed (``pip install 'framesel[ray]'``).

    Example:
        >>> summary = run_labels(LabelRunConfig(), "manifest.jsonl", "videos", "work")  # doctest: +SKIP
        >>> summary.done, summary.failed, summary.cost  # doctest: +SKIP
    """
    if engine != "local":
        if engine not in ENGINES:
            raise ValueError(
                f"unknown engine {engine!r}; engines: {', '.join(['local', *ENGINES])}"
            )
        if backends is not None:
            raise ValueError(
                f"backends= (loaded backend objects) work with the local engine only; the "
                f"{engine} engine builds its backends on its workers from the run config"
            )
        import importlib

        module, _, function = ENGINES[engine].partition(":")
        run = getattr(importlib.import_module(module), function)
        return run(config, manifest_or_items, videos_root, workdir, progress=progress,
                   retry_failed=retry_failed, options=engine_options)  # fmt: skip
    if engine_options is not None:
        raise ValueError("engine_options are for another engine than 'local'")
    with _Session(config, manifest_or_items, videos_root, workdir, backends) as session:
        if session.prepare(retry_failed):
            session.ctx.load()  # fail before any work, not midway
        session.begin_run()
        with ProgressBars(progress, session.totals()) as bars:
            run = _Run(session.store, bars)
            for work in session.plans(retry_failed):
                run.apply(work.steps(session.ctx, isolate=True))
        return session.finish(run.stats)


def _has_work(
    store: RunStore, fp: Fingerprints, groups: Mapping[str, list[LabelItem]], retry: bool
) -> bool:
    """Whether any model stage has something to compute (a fully resumed run loads no model)."""

    def todo(statuses: Mapping[str, str], keys: Sequence[str]) -> bool:
        return any(k not in statuses or (retry and statuses[k] != "done") for k in keys)

    videos = list(groups)
    candidates = store.statuses("candidates", videos, fp.candidates)
    if todo(candidates, videos):
        return True
    good = [v for v in videos if candidates[v] == "done"]
    if todo(store.statuses("captions", good, fp.captions), good):
        return True
    samples = [item.sample_id for v in good for item in groups[v]]
    return todo(store.statuses("spatial", samples, fp.spatial), samples) or todo(
        store.statuses("temporal", samples, fp.temporal), samples
    )


def _state(
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
    from fsmodel.schema import CAPTIONS, FRAME_INDICES, TIMESTAMPS, VIDEO_ID

    store, fp = _open(workdir)
    try:
        items = store.items()
        fused = store.get_many("fused", [i.sample_id for i in items], fp["fused"])
        rows = [
            fused[i.sample_id].payload
            for i in items
            if i.sample_id in fused and fused[i.sample_id].ok
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
    finally:
        store.close()


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
    store, fp = _open(workdir)
    try:
        items = store.items()
        videos = list(dict.fromkeys(item.video for item in items))
        samples = [item.sample_id for item in items]
        state = _state(store, fp, items)
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
    finally:
        store.close()


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

    from fsmodel.schema import LABEL_META, SCORES

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
        from fsmodel.video import VideoError, sample_candidates

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
        spatial=_scores(spatial.payload if spatial else None, n),
        temporal=_scores(temporal.payload if temporal else None, n),
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
