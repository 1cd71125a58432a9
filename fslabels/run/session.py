"""What every engine does around the work: the `Session` (inputs, store, plans, summary), the `Run`
(commits and accounting) and the progress bars."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fslabels.backends import Backend
from fslabels.config import LabelRunConfig
from fslabels.manifest import LabelItem, group_by_video, read_manifest
from fslabels.run.context import Fingerprints, LabelContext
from fslabels.run.plan import Step, VideoWork
from fslabels.run.readers import run_state
from fslabels.store import STAGES, Record, RunStore

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


class Run:
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


class Session:
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

    def __enter__(self) -> Session:
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
                "prompts": ctx.prompts(),
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
        state = run_state(self.store, fingerprints, self.items)
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
