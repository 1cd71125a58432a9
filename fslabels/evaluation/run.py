"""A resumable downstream-QA eval: does selection help?

`run_eval` walks a video-QA set one video at a time:

1. **candidates**: the video's n candidates are decoded once (``fsmodel.video``) and shared by
   every strategy and every question of the video; the decode time is stored. For ``uniform``,
   the time to decode only the k frames it picks is measured too (``uniform_decode``): uniform
   sampling never needs the other n - k frames, and the efficiency comparison must say so.
2. **scores**: each scorer the strategies use scores each question's candidates once (the curve
   does not depend on k or on the rule), with its cost.
3. **answer**: for every (strategy, k) cell the rule picks k candidates from the curve, and the
   frozen downstream model (`fslabels.evaluation.answerer.Answerer`) answers from exactly those frames;
   the exact prompt, the reply, both multiple-choice predictions (letter likelihood and
   generation), correctness and seconds are stored.

Every record is committed to the eval store (`fslabels.evaluation.store.EvalStore`) as soon as it is
computed, keyed by a fingerprint of what produced it: candidates (n, frame size, reader),
scores (+ the scorer's model and settings), answers (+ the strategy's rule and scorer, k, the
downstream model and its settings, the prompt templates). Models count by their content
(`fslabels.evaluation.scorers.model_content_id`: a directory's files, a Hub id's commit), so a model
retrained in place is a new model. A re-run computes only what is missing, so adding a
strategy, a k or a question computes only the new cells. Gold answers are resolved on every
run (``answer_format``) and checked against the stored answers, which are re-scored without
the model when their gold changed. Failures (a video
that cannot be decoded, a scorer or model error, a gold answer that names no option) are stored
against the cells they affect, the run goes on, and they are retried only when asked.

Time per question is split into decode (a video's decode time shared by its questions; for
``uniform`` only its k frames), selection (scoring + rule) and answering (processor + model).

Example:
    >>> config = EvalConfig.load("eval.yaml")  # doctest: +SKIP
    >>> summary = run_eval(config, "manifest.jsonl", "videos/", "work/")  # doctest: +SKIP
    >>> print(summary.report.rows[0])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.evaluation.answerer import Answerer
from fslabels.evaluation.config import EvalConfig
from fslabels.evaluation.prompts import (
    MC_TEMPLATE,
    OPEN_TEMPLATE,
    OPTION_TEMPLATE,
    build_prompt,
    gold_answer,
    match_open_answer,
    prompt_hash,
)
from fslabels.evaluation.scorers import Scorer, build_scorer
from fslabels.evaluation.store import EvalRecord, EvalStore
from fslabels.evaluation.strategies import Strategy, build_strategy, uniform_selection
from fslabels.manifest import LabelItem, group_by_video
from fslabels.run import ProgressBars, as_items, candidates_payload, error_text
from fsmodel.video import VideoError, sample_candidates

__all__ = ["EvalFingerprints", "EvalSummary", "eval_fingerprints", "run_eval"]

logger = logging.getLogger(__name__)

META_KEY = "eval"
_BAR = "eval qa"  # the progress bar's one stage


@dataclass(frozen=True)
class EvalFingerprints:
    """The fingerprints of one eval config (see the module docstring).

    Attributes:
        candidates: of the decoded candidates.
        scorers: ``{scorer name: fingerprint of its curves}``.
        cells: ``{strategy: {k: fingerprint of its answers}}`` (k as a string key).
    """

    candidates: str
    scorers: dict[str, str]
    cells: dict[str, dict[str, str]]

    def cell(self, strategy: str, k: int) -> str:
        return self.cells[strategy][str(k)]

    def as_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "scorers": self.scorers, "cells": self.cells}


def eval_fingerprints(
    config: EvalConfig, strategies: Iterable[Strategy], answerer: Answerer | None
) -> EvalFingerprints:
    """The fingerprints of every stage and cell (loads the answerer's processor, no weights;
    without an answerer, as in a selection run, there are no answer cells)."""
    candidates = stable_hash(
        {
            "stage": "candidates",
            "num_candidates": config.num_candidates,
            "frame_size": config.frame_size,
            "reader": config.video_reader,
        }
    )
    answering = (
        None if answerer is None else {"answerer": answerer.fingerprint(), "prompts": prompt_hash()}
    )
    scorers: dict[str, str] = {}
    cells: dict[str, dict[str, str]] = {}
    for strategy in strategies:
        if strategy.scorer is not None:
            scorers[strategy.scorer.name] = stable_hash(
                {"candidates": candidates, **strategy.scorer.fingerprint()}
            )
        if answering is not None:
            cells[strategy.name] = {
                str(k): stable_hash(
                    {
                        "candidates": candidates,
                        "strategy": strategy.fingerprint(),
                        "k": k,
                        **answering,
                    }
                )
                for k in config.ks
            }
    return EvalFingerprints(candidates, scorers, cells)


@dataclass
class EvalSummary:
    """What `run_eval` did.

    Attributes:
        workdir: the work directory.
        items, videos: questions and videos evaluated.
        cells: answer cells in the run (items x strategies x ks).
        computed: cells answered now; ``failed``: cells that failed now; ``cached``: cells found
            in the store (done or failed before).
        wall_seconds: this invocation's wall time.
        report: the `fslabels.evaluation.report.EvalReport` of the whole run (cached cells included).
    """

    workdir: str
    items: int
    videos: int
    cells: int
    computed: int
    failed: int
    cached: int
    wall_seconds: float
    report: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "report"}
        if self.report is not None:
            out["report"] = self.report.to_dict()
        return out


@dataclass
class _Cell:
    item: LabelItem
    strategy: Strategy
    k: int
    fingerprint: str


@dataclass
class _Counts:
    computed: int = 0
    failed: int = 0
    cached: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _judge(answer: Mapping[str, Any], gold: str) -> dict[str, Any]:
    """Correctness of a stored answer (its ``multiple_choice``, ``reply``, ``choice`` and
    ``likelihood_choice``) against ``gold``: ``gold``, ``correct_generate``, ``unparsed`` and
    ``correct_likelihood``."""
    reply = answer.get("reply")
    if not answer.get("multiple_choice"):
        return {
            "gold": gold,
            "correct_generate": match_open_answer(reply or "", gold),
            "unparsed": False,
            "correct_likelihood": None,
        }
    likelihood = answer.get("likelihood_choice")
    return {
        "gold": gold,
        "correct_generate": None if reply is None else answer.get("choice") == gold,
        "unparsed": reply is not None and answer.get("choice") is None,
        "correct_likelihood": None if likelihood is None else likelihood == gold,
    }


def build_strategies(
    config: EvalConfig, scorers: Mapping[str, Scorer] | None = None
) -> tuple[list[Strategy], list[Any]]:
    """The config's strategies, with the scorers they name built from the config unless given
    (strategies sharing a scorer share its loaded model). Returns ``(strategies, built)``:
    ``built`` are the scorers made here, for the caller to unload."""
    given = dict(scorers or {})
    built: dict[str, Scorer] = {}
    for spec in config.strategies:
        name = spec.partition(":")[0]
        if spec != "uniform" and name not in given and name not in built:
            built[name] = build_scorer(name, config.scorers.get(name))
    strategies = [
        build_strategy(s, {**built, **given}, config.rule_options) for s in config.strategies
    ]
    return strategies, list(built.values())


def _items(manifest_or_items: Any, limit: int | None) -> list[LabelItem]:
    items = as_items(manifest_or_items)
    if not items:
        raise ValueError("there is nothing to evaluate: the manifest holds no items")
    return items[:limit] if limit else items


class _Eval:
    """The state of one `run_eval` invocation."""

    def __init__(
        self,
        config: EvalConfig,
        store: EvalStore,
        strategies: list[Strategy],
        answerer: Answerer | None,
        fingerprints: EvalFingerprints,
        videos_root: Path,
        retry_failed: bool,
        bar: ProgressBars,
        bar_key: str = _BAR,
    ) -> None:
        self.config = config
        self.store = store
        self.strategies = strategies
        self.answerer = answerer
        self.fp = fingerprints
        self.videos_root = videos_root
        self.retry = retry_failed
        self.bar = bar
        self.bar_key = bar_key
        self.counts = _Counts()

    def _todo(self, record: EvalRecord | None) -> bool:
        return record is None or (not record.ok and self.retry)

    def _pending(self, items: list[LabelItem], golds: Mapping[str, str]) -> list[_Cell]:
        """The cells to compute. Gold answers are not part of a cell's fingerprint (they do not
        change what the model sees), so they are checked here against every stored answer:
        a stored answer whose gold changed (``answer_format``) is re-scored in place, a cell
        that failed because its item's answer did not resolve is computed once it does, and a
        stored answer whose item no longer resolves becomes pending (and fails as a bad item).
        """
        ids = [item.sample_id for item in items]
        pending: list[_Cell] = []
        for strategy in self.strategies:
            for k in self.config.ks:
                fp = self.fp.cell(strategy.name, k)
                stored = self.store.get_results("answer", ids, fp)
                for item in items:
                    record = stored.get(item.sample_id)
                    gold = golds.get(item.sample_id)
                    if (
                        self._todo(record)
                        or (record.ok and gold is None)
                        or (not record.ok and record.payload.get("bad_item") and gold is not None)
                    ):
                        pending.append(_Cell(item, strategy, k, fp))
                        continue
                    if record.ok and record.payload.get("gold") != gold:
                        self._rescore(record, gold)
                    self.counts.cached += 1
                    self.bar.advance(self.bar_key, 1)
        return pending

    def _rescore(self, record: EvalRecord, gold: str) -> None:
        payload = {**record.payload, **_judge(record.payload, gold)}
        self.store.put_results([dataclasses.replace(record, payload=payload)])

    def _fail(self, cells: list[_Cell], error: str, **context: Any) -> None:
        if not cells:
            return
        self.store.put_results(
            EvalRecord(
                "answer",
                c.item.sample_id,
                c.fingerprint,
                "failed",
                {"strategy": c.strategy.name, "k": c.k, **context},
                error=error,
            )
            for c in cells
        )
        self.counts.failed += len(cells)
        self.bar.advance(self.bar_key, len(cells))

    def evaluate_video(self, video: str, items: list[LabelItem]) -> None:
        # Gold answers are resolved on every run (cheap, no model); items whose answer names no
        # option fail at once, without decoding anything.
        golds: dict[str, str] = {}
        bad: dict[str, str] = {}
        for item in items:
            try:
                golds[item.sample_id] = gold_answer(
                    item.answer, item.options, self.config.answer_format
                )
                build_prompt(item.question, item.options)
            except ValueError as err:
                golds.pop(item.sample_id, None)
                bad[item.sample_id] = (
                    f"bad item {item.sample_id} ({video}, {item.question!r}): {err}"
                )
        pending = self._pending(items, golds)
        for sample_id, error in bad.items():
            cells = [c for c in pending if c.item.sample_id == sample_id]
            self._fail(cells, error, bad_item=True)
        pending = [c for c in pending if c.item.sample_id in golds]
        if not pending:
            return
        candidates = self._candidates(video)
        if isinstance(candidates, str):
            self._fail(pending, candidates)
            return
        self._uniform_decode(video, candidates, pending)
        curves = self._scores(candidates, pending)
        for cell in pending:
            self._answer(cell, candidates, curves, golds[cell.item.sample_id])

    def select_video(self, video: str, items: list[LabelItem]) -> None:
        """A selection run's work for one video: its candidates and every scorer's curve for each
        of its questions (picks are derived from them: `fslabels.evaluation.selections`). Nothing
        is decoded when all of it is stored."""
        scorers = {s.scorer.name: s for s in self.strategies if s.scorer is not None}
        ids = [item.sample_id for item in items]
        stored = self.store.get_result("candidates", video, self.fp.candidates)
        missing = self._todo(stored) or any(
            self._todo(self.store.get_results("scores", ids, self.fp.scorers[name]).get(i))
            for name in scorers
            for i in ids
        )
        units = len(items) * len(self.strategies)
        if not missing:
            self.counts.cached += units
            self.bar.advance(self.bar_key, units)
            return
        candidates = self._candidates(video)
        if isinstance(candidates, str):
            self.counts.failed += units
            self.bar.advance(self.bar_key, units)
            return
        cells = [_Cell(item, s, 0, "") for item in items for s in scorers.values()]
        curves = self._scores(candidates, cells)
        for item in items:
            for strategy in self.strategies:
                scorer = strategy.scorer
                ok = scorer is None or curves[(scorer.name, item.sample_id)].ok
                if ok:
                    self.counts.computed += 1
                else:
                    self.counts.failed += 1
        self.bar.advance(self.bar_key, units)

    def _candidates(self, video: str) -> Any:
        """The decoded candidates, or the error string of a video that cannot be decoded."""

        config = self.config
        stored = self.store.get_result("candidates", video, self.fp.candidates)
        if stored is not None and not stored.ok and not self.retry:
            return f"video {video}: {stored.error}"
        path = self.videos_root / video
        start = time.perf_counter()
        try:
            candidates = sample_candidates(
                path, config.num_candidates, size=config.frame_size, reader=config.video_reader
            )
        except VideoError as err:
            seconds = time.perf_counter() - start
            error = f"VideoError: {err}"
            self.store.put_results(
                [
                    EvalRecord(
                        "candidates",
                        video,
                        self.fp.candidates,
                        "failed",
                        {"path": str(path)},
                        error=error,
                        seconds=seconds,
                    )
                ]
            )
            return f"video {video}: {error}"
        seconds = time.perf_counter() - start
        if stored is None or not stored.ok:
            payload = {**candidates_payload(candidates), "decode_seconds": seconds}
            self.store.put_results(
                [
                    EvalRecord(
                        "candidates", video, self.fp.candidates, "done", payload, seconds=seconds
                    )
                ]
            )
        return candidates

    def _uniform_decode(self, video: str, candidates: Any, pending: list[_Cell]) -> None:
        """Time decoding only the k frames ``uniform`` picks, once per (video, k)."""
        ks = sorted({c.k for c in pending if not c.strategy.needs_candidates})
        for k in ks:
            item = f"{video}#k={k}"
            if not self._todo(self.store.get_result("uniform_decode", item, self.fp.candidates)):
                continue
            config = self.config
            try:
                selection = uniform_selection(
                    self.videos_root / video,
                    k,
                    config.num_candidates,
                    config.frame_size,
                    config.video_reader,
                )
            except Exception as err:  # a decode that worked for n frames: record, go on
                self.store.put_results(
                    [
                        EvalRecord(
                            "uniform_decode",
                            item,
                            self.fp.candidates,
                            "failed",
                            {"k": k},
                            error_text(err),
                        )
                    ]
                )
                continue
            same = bool(np.array_equal(selection.frames, candidates.frames[selection.positions]))
            if not same:
                logger.warning(
                    "%s: uniform's own decode differs from its candidates' frames", video
                )
            payload = {
                "k": k,
                "frame_indices": selection.indices.tolist(),
                "decode_seconds": selection.cost.decode_seconds,
                "frames_decoded": selection.cost.frames_decoded,
                "same_frames": same,
            }
            self.store.put_results(
                [
                    EvalRecord(
                        "uniform_decode",
                        item,
                        self.fp.candidates,
                        "done",
                        payload,
                        seconds=selection.cost.decode_seconds,
                    )
                ]
            )

    def _scores(self, candidates: Any, pending: list[_Cell]) -> dict[tuple[str, str], Any]:
        """``{(scorer, sample id): stored scores record}`` for every pending scored cell."""
        needed: dict[str, dict[str, LabelItem]] = {}
        scorer_of: dict[str, Scorer] = {}
        for cell in pending:
            scorer = cell.strategy.scorer
            if scorer is not None:
                needed.setdefault(scorer.name, {})[cell.item.sample_id] = cell.item
                scorer_of[scorer.name] = scorer
        out: dict[tuple[str, str], Any] = {}
        for name, items in needed.items():
            fp = self.fp.scorers[name]
            stored = self.store.get_results("scores", list(items), fp)
            for sample_id, item in items.items():
                record = stored.get(sample_id)
                if self._todo(record):
                    record = self._score(scorer_of[name], fp, candidates, item)
                out[(name, sample_id)] = record
        return out

    def _score(self, scorer: Scorer, fp: str, candidates: Any, item: LabelItem) -> EvalRecord:
        start = time.perf_counter()
        try:
            curve = Strategy(scorer.name, scorer).score(candidates, item.question, item.options)
        except Exception as err:
            record = EvalRecord(
                "scores",
                item.sample_id,
                fp,
                "failed",
                {"scorer": scorer.name},
                error=f"{scorer.name} scorer: {error_text(err)}",
                seconds=time.perf_counter() - start,
            )
        else:
            record = EvalRecord(
                "scores",
                item.sample_id,
                fp,
                "done",
                {
                    "scorer": scorer.name,
                    "scores": curve.scores.tolist(),
                    "failed_positions": curve.failed_positions,
                    "cost": curve.cost.to_dict(),
                },
                seconds=curve.cost.score_seconds,
            )
        self.store.put_results([record])
        return record

    def _answer(
        self, cell: _Cell, candidates: Any, curves: Mapping[tuple[str, str], Any], gold: str
    ) -> None:
        from fslabels.evaluation.scorers import Cost, ScoreCurve

        item, strategy, k = cell.item, cell.strategy, cell.k
        curve = None
        if strategy.scorer is not None:
            record = curves[(strategy.scorer.name, item.sample_id)]
            if not record.ok:
                self._fail([cell], f"selection failed: {record.error}")
                return
            curve = ScoreCurve(np.asarray(record.payload["scores"], np.float64), Cost())
        prompt = build_prompt(item.question, item.options)
        context: dict[str, Any] = {"strategy": strategy.name, "k": k, "user_text": prompt.text}
        try:
            picks, rule_seconds = strategy.pick(curve, candidates.indices, k)
            positions = picks.positions
            context.update(
                positions=positions.tolist(),
                frame_indices=candidates.indices[positions].tolist(),
                distinct_frames=picks.distinct,
                timestamps=candidates.timestamps[positions].tolist(),
                rule_seconds=rule_seconds,
            )
            result = self.answerer.answer(candidates.frames[positions], prompt)
        except Exception as err:
            self._fail([cell], f"answering failed: {error_text(err)}", **context)
            return
        payload = {**context, **result.to_dict(), "gold": gold}
        payload["multiple_choice"] = prompt.multiple_choice
        payload.update(_judge(payload, gold))
        self.store.put_results(
            [
                EvalRecord(
                    "answer",
                    item.sample_id,
                    cell.fingerprint,
                    "done",
                    payload,
                    seconds=result.seconds,
                )
            ]
        )
        self.counts.computed += 1
        self.bar.advance(self.bar_key, 1)


def run_eval(
    config: EvalConfig | Mapping[str, Any],
    manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
    videos_root: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    progress: bool = True,
    retry_failed: bool = False,
    scorers: Mapping[str, Scorer] | None = None,
    answerer: Answerer | None = None,
) -> EvalSummary:
    """Evaluate every (strategy, k) on every question, resumably (see the module docstring).

    Args:
        config: the eval config (`EvalConfig` or a mapping of its fields).
        manifest_or_items: a JSONL/CSV manifest (`fslabels.manifest`), or `LabelItem`\\ s (e.g.
            from `fslabels.manifest.items_from_hub`). Multiple-choice items carry ``options``;
            ``answer`` is the option's letter, 0-based index or text (open-ended: the text).
        videos_root: the directory the items' ``video`` paths are relative to.
        workdir: the work directory; its store (``run.sqlite``) is created or resumed.
        progress: show a progress bar.
        retry_failed: recompute stored failures.
        scorers: ``{scorer name: Scorer}`` to use instead of building them from the config
            (already-loaded models; they are not unloaded here).
        answerer: the downstream model to use instead of building it from the config.

    Returns:
        An `EvalSummary` with the run's report. Items that fail are recorded and reported;
        the run completes.

    Raises:
        ValueError: an invalid config or manifest, or a work directory holding a label run.
        FileNotFoundError: a missing manifest.
        fslabels.store.StoreLockedError: another eval is writing to ``workdir``.
    """
    from fslabels.evaluation.report import build_report

    started = time.perf_counter()
    if isinstance(config, Mapping):
        config = EvalConfig.from_dict(config)
    if not isinstance(config, EvalConfig):
        raise TypeError(f"config must be an EvalConfig, got {type(config).__name__}")
    items = _items(manifest_or_items, config.limit)
    videos_root = Path(videos_root)
    strategies, owned = build_strategies(config, scorers)
    if answerer is None:
        answerer = Answerer(config.answerer)
        owned.append(answerer)
    fingerprints = eval_fingerprints(config, strategies, answerer)
    groups = group_by_video(items)
    import av  # noqa: F401  (imported before any timing: the first decode must not pay for it)

    total = len(items) * len(strategies) * len(config.ks)

    store = EvalStore(workdir)
    try:
        store.lock()
        store.set_items(items)
        store.set_meta(
            {
                META_KEY: {
                    "config": config.to_dict(),
                    "config_yaml": config.to_yaml(),
                    "fingerprints": fingerprints.as_dict(),
                    "videos_root": str(videos_root),
                    "prompts": {
                        "multiple_choice": MC_TEMPLATE,
                        "open_ended": OPEN_TEMPLATE,
                        "option": OPTION_TEMPLATE,
                        "hash": prompt_hash(),
                    },
                    "answerer": answerer.fingerprint(),
                }
            }
        )
        run_id = store.begin_run(config.to_yaml())
        with ProgressBars(progress, {_BAR: total}, units={_BAR: "answers"}) as bar:
            state = _Eval(
                config, store, strategies, answerer, fingerprints, videos_root, retry_failed, bar
            )
            for video, video_items in groups.items():
                state.evaluate_video(video, video_items)
        summary = EvalSummary(
            workdir=str(workdir),
            items=len(items),
            videos=len(groups),
            cells=total,
            computed=state.counts.computed,
            failed=state.counts.failed,
            cached=state.counts.cached,
            wall_seconds=time.perf_counter() - started,
        )
        store.finish_run(run_id, summary.to_dict())
    finally:
        store.close()
        for thing in owned:
            thing.unload()
    summary.report = build_report(workdir)
    return summary
