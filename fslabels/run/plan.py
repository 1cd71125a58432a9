"""One video's work, planned from the store (`VideoWork`) and done as `Step`\\ s by either engine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fslabels.backends import ChatResponse
from fslabels.manifest import LabelItem
from fslabels.run.compute import (
    SpatialJob,
    caption_video,
    captions_hash,
    captions_record,
    decode_video,
    fuse_sample,
    spatial_batch,
    spatial_record,
    temporal_batch,
    temporal_record,
)
from fslabels.run.context import Fingerprints, LabelContext
from fslabels.spatial import FrameFailure, SpatialResult
from fslabels.store import Record, RunStore
from fslabels.temporal import (
    CaptionResult,
    TemporalResult,
)

logger = logging.getLogger(__name__)


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
            return captions_record(ctx, self.video, result, [], 0, 0.0)

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
        for group in batches([len(j.positions) for j in jobs], ctx.config.spatial.batch_size):
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
        for group in batches([1] * len(todo), ctx.config.temporal.batch_size):
            batch = [todo[i] for i in group]
            start = time.perf_counter()

            def fail(error: str, batch: list[LabelItem] = batch) -> list[Record]:
                return [
                    temporal_record(
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
    return spatial_record(ctx, job, n, result, [ChatResponse.failed(error)] * k, {}, requests=0)


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


def batches(sizes: Sequence[int], limit: int) -> list[list[int]]:
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
