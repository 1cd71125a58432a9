"""Frame-selection strategies behind one interface: a scorer (or none) and a selection rule.

A strategy turns a video's n candidate frames and a question into k chosen frames. It has two
parts, chosen by name:

- a **scorer** that gives every candidate a score for the question (``SCORERS``):

  - ``selector``: the trained frame selector (`fsmodel`'s ``FrameSelectorModel``, loaded through
    ``AutoModel``), one LLM pass over all n candidates (Hu et al., CVPR 2025);
  - ``similarity``: text–image cosine similarity of a SigLIP or CLIP model (the paper's "CLIP
    similarity" ablation; the curve BOLT samples from);
  - ``mllm``: the spatial labeler (`fslabels.spatial.SpatialLabeler`) used online, one M-LLM
    judgement per frame, p(True) as the score (SeViLA / FRAG-style);

- a **rule** from `fsmodel.selection` that picks k of the n scored candidates: ``nms`` (the
  paper's greedy NMS), ``topk``, ``inverse_transform`` (BOLT-style) — and ``uniform``, which
  needs no scorer.

Strategy names are ``"<scorer>:<rule>"`` (``"selector:nms"``, ``"similarity:inverse_transform"``,
``"mllm:topk"``), ``"<scorer>"`` for its default rule (``nms``), or ``"uniform"``. Every strategy
returns a `Selection`: candidate positions, frame indices, timestamps, the score curve, the chosen
frames themselves (so a downstream model gets exactly them, never a re-sampled copy), and its own
`Cost` (seconds for decoding, scoring and the rule; model calls; tokens).

The score curve does not depend on k, so `Strategy.score` runs once per question and
`Strategy.pick` applies the rule for every k (what ``framesel eval qa`` does).

Example:
    >>> from fslabels.evaluation.strategies import build_strategy
    >>> strategy = build_strategy("selector:nms", scorers={"selector": {"model": "path/to/selector"}})  # doctest: +SKIP
    >>> selection = strategy.select_video("clip.mp4", "When does the red circle appear?", k=8)  # doctest: +SKIP
    >>> selection.indices, selection.cost.seconds  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from fslabels.evaluation.scorers import (
    DEFAULT_READER,
    SCORERS,
    UNIFORM,
    Cost,
    ScoreCurve,
    Scorer,
    ScoringError,
    Selection,
    build_scorer,
)
from fsmodel.video import (
    PyAVReader,
    ReaderUnsupported,
    candidate_indices,
    get_reader,
    probe,
    sample_candidates,
)

if TYPE_CHECKING:
    from fsmodel.selection import Picks
    from fsmodel.video import Candidates

__all__ = [
    "DEFAULT_RULE",
    "Strategy",
    "build_strategy",
    "known_strategies",
    "parse_strategy",
    "uniform_selection",
]

logger = logging.getLogger(__name__)

DEFAULT_RULE = "nms"


def _rules() -> ModuleType:
    from fsmodel import selection

    return selection


def parse_strategy(spec: str) -> tuple[str | None, str]:
    """``"selector:topk"`` → ``("selector", "topk")``; ``"selector"`` → ``("selector", "nms")``;
    ``"uniform"`` → ``(None, "uniform")``.

    Raises:
        ValueError: an empty spec, an unknown scorer or rule (the known ones are listed), or a
            scorer combined with ``uniform`` (which ignores scores).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a strategy must be a non-empty name, got {spec!r}")
    spec = spec.strip()
    if spec == UNIFORM:
        return None, UNIFORM
    scorer, _, rule = spec.partition(":")
    rule = rule or DEFAULT_RULE
    if scorer not in SCORERS:
        raise ValueError(
            f"unknown strategy {spec!r}: no scorer {scorer!r}; strategies are 'uniform' or "
            f"'<scorer>:<rule>' with scorers {sorted(SCORERS)} and rules "
            f"{sorted(r for r in _rules().RULES if r != UNIFORM)}"
        )
    if rule not in _rules().RULES:
        raise ValueError(
            f"unknown strategy {spec!r}: no selection rule {rule!r}; known rules: "
            f"{sorted(_rules().RULES)}"
        )
    if rule == UNIFORM:
        raise ValueError(f"strategy {spec!r}: the uniform rule ignores scores; use 'uniform'")
    return scorer, rule


def known_strategies() -> list[str]:
    """Every ``scorer:rule`` combination (and ``uniform``)."""
    names = [UNIFORM]
    for scorer in sorted(SCORERS):
        names += [f"{scorer}:{rule}" for rule in sorted(_rules().RULES) if rule != UNIFORM]
    return names


def _rule_options(rule: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    if not options:
        return {}
    params = list(inspect.signature(_rules().get_rule(rule)).parameters)[2:]
    unknown = [k for k in options if k not in params]
    if unknown:
        raise ValueError(
            f"rule {rule!r} has no option(s) {unknown}; its options: {params or 'none'}"
        )
    return options


# --- strategies -------------------------------------------------------------------------------


class Strategy:
    """A scorer (or none, for ``uniform``) and a selection rule, behind one interface.

    Args:
        name: the strategy's name (see `parse_strategy`).
        scorer: the scorer for the name's scorer part (``None`` for ``uniform``).
        rule_options: extra arguments of the rule (``{"alpha": 2.0}`` for
            ``inverse_transform``); they are part of the fingerprint.

    Raises:
        ValueError: a scorer that does not match the name, or unknown rule options.

    Example:
        >>> strategy = Strategy("uniform")
        >>> strategy.pick(None, np.arange(16), k=4)[0].positions.tolist()
        [2, 6, 10, 14]
    """

    def __init__(
        self,
        name: str,
        scorer: Scorer | None = None,
        rule_options: Mapping[str, Any] | None = None,
    ) -> None:
        scorer_name, rule = parse_strategy(name)
        if scorer_name is None and scorer is not None:
            raise ValueError(f"strategy {name!r} takes no scorer, got {scorer!r}")
        if scorer_name is not None:
            if scorer is None:
                raise ValueError(f"strategy {name!r} needs a {scorer_name!r} scorer")
            if scorer.name != scorer_name:
                raise ValueError(
                    f"strategy {name!r} needs a {scorer_name!r} scorer, got a {scorer.name!r} one"
                )
        self.name = name.strip() if ":" in name or scorer_name is None else f"{name}:{rule}"
        self.scorer = scorer
        self.rule = rule
        self.rule_options = _rule_options(rule, rule_options)

    def __repr__(self) -> str:
        return f"Strategy({self.name!r})"

    @property
    def needs_candidates(self) -> bool:
        """False for ``uniform``: it needs only the k frames it picks, not all n decoded."""
        return self.scorer is not None

    def fingerprint(self) -> dict[str, Any]:
        """What changes this strategy's picks: the rule, its options and the scorer's
        fingerprint."""
        return {
            "rule": self.rule,
            "rule_options": self.rule_options,
            # Picks are made over distinct frames (a short video's candidates repeat frames).
            "picks": "distinct-frames",
            "scorer": None if self.scorer is None else self.scorer.fingerprint(),
        }

    def score(
        self, candidates: Candidates, question: str, options: Sequence[str] = ()
    ) -> ScoreCurve | None:
        """The score curve of ``question`` over the candidates (``None`` for ``uniform``)."""
        if self.scorer is None:
            return None
        curve = self.scorer.score(candidates, question, options)
        if curve.scores.shape != (len(candidates),) or not np.all(np.isfinite(curve.scores)):
            raise ScoringError(
                f"the {self.scorer.name} scorer returned scores of shape {curve.scores.shape} "
                f"(finite: {bool(np.all(np.isfinite(curve.scores)))}) for {len(candidates)} "
                "candidates"
            )
        return curve

    def pick(
        self, curve: ScoreCurve | None, frame_indices: np.ndarray, k: int
    ) -> tuple[Picks, float]:
        """``(picks, seconds)``: the rule applied to the curve (``uniform``: to flat scores) over
        the candidates' distinct frames (`fsmodel.selection.select_distinct`): exactly k picks,
        ``min(k, N)`` of them distinct frames on a video of N frames.

        Args:
            curve: the score curve (``None`` for ``uniform``).
            frame_indices: ``[n]`` the frame each candidate shows.
            k: picks.

        Raises:
            ValueError: k out of range, or a curve of the wrong length.
        """
        n = len(frame_indices)
        if curve is None:
            if self.scorer is not None:
                raise ValueError(f"strategy {self.name!r} needs a score curve")
            scores = np.zeros(n)
        else:
            scores = curve.scores
            if scores.shape != (n,):
                raise ValueError(f"the score curve has shape {scores.shape}, expected ({n},)")
        start = time.perf_counter()
        picks = _rules().select_distinct(
            scores, np.asarray(frame_indices), k, self.rule, **self.rule_options
        )
        return picks, time.perf_counter() - start

    def select(
        self,
        candidates: Candidates,
        question: str,
        k: int,
        options: Sequence[str] = (),
        curve: ScoreCurve | None = None,
        keep_frames: bool = True,
    ) -> Selection:
        """Choose ``k`` of the decoded candidates.

        Args:
            candidates: from `fsmodel.video.sample_candidates`.
            question: the question.
            k: frames to choose.
            options: answer options (the selector and ``mllm`` scorers read them).
            curve: a score curve computed before (`score`), e.g. for another k.
            keep_frames: put the chosen frames in ``Selection.frames``.

        Returns:
            `Selection`; its cost counts the scoring only when it ran here (``curve=None``).

        Raises:
            ScoringError, ValueError: see `Scorer.score` and `pick`.
        """
        fresh = curve is None
        if fresh:
            curve = self.score(candidates, question, options)
        picks, rule_seconds = self.pick(curve, candidates.indices, k)
        positions = picks.positions
        cost = dataclasses.replace(curve.cost) if (curve is not None and fresh) else Cost()
        cost.rule_seconds = rule_seconds
        return Selection(
            strategy=self.name,
            k=k,
            positions=positions,
            repeated=picks.repeated,
            indices=np.asarray(candidates.indices)[positions],
            timestamps=np.asarray(candidates.timestamps)[positions],
            scores=None if curve is None else curve.scores,
            cost=cost,
            frames=candidates.frames[positions] if keep_frames else None,
            num_candidates=len(candidates),
        )

    def select_video(
        self,
        video: str | os.PathLike[str],
        question: str,
        k: int,
        num_candidates: int = 128,
        frame_size: int | None = 224,
        options: Sequence[str] = (),
        reader: str = DEFAULT_READER,
    ) -> Selection:
        """Choose ``k`` frames of a video file, decoding only what the strategy needs: all n
        candidates for a scored strategy, only the k chosen candidates for ``uniform`` (the
        same frames, decoded by the same reader). ``Selection.cost.decode_seconds`` says what
        decoding took.

        Raises:
            fsmodel.video.VideoError: a video that cannot be decoded.
            ScoringError, ValueError: see `select`.
        """

        if self.scorer is None:
            return uniform_selection(video, k, num_candidates, frame_size, reader)
        start = time.perf_counter()
        candidates = sample_candidates(video, num_candidates, size=frame_size, reader=reader)
        decode_seconds = time.perf_counter() - start
        selection = self.select(candidates, question, k, options)
        selection.cost.decode_seconds = decode_seconds
        selection.cost.frames_decoded = len(np.unique(candidates.indices))
        return selection


def uniform_selection(
    video: str | os.PathLike[str],
    k: int,
    num_candidates: int = 128,
    frame_size: int | None = 224,
    reader: str = DEFAULT_READER,
) -> Selection:
    """``uniform`` on a video file: the k candidates the uniform rule picks among the n, and
    only those frames decoded (with the reader `fsmodel.video.sample_candidates` uses, so the
    frames equal ``sample_candidates(...).frames[positions]``).

    Raises:
        fsmodel.video.VideoError: a video that cannot be decoded.
        ValueError: k out of range.
    """

    path = os.fspath(video)
    start = time.perf_counter()
    index = probe(path)
    targets = candidate_indices(index.num_frames, num_candidates)
    picks = _rules().select_distinct(np.zeros(num_candidates), targets, k, UNIFORM)
    positions = picks.positions
    wanted = targets[positions]
    unique, inverse = np.unique(wanted, return_inverse=True)
    frame_reader = get_reader(reader)
    try:
        decoded = frame_reader.read(index, unique, frame_size)
    except ReaderUnsupported as why:
        logger.warning("%s: reader %r %s; decoding with PyAV instead", path, reader, why)
        decoded = PyAVReader(threads=frame_reader.threads).read(index, unique, frame_size)
    seconds = time.perf_counter() - start
    return Selection(
        strategy=UNIFORM,
        k=k,
        positions=positions,
        repeated=picks.repeated,
        indices=wanted.astype(np.int64),
        timestamps=index.timestamps(wanted),
        scores=None,
        cost=Cost(decode_seconds=seconds, frames_decoded=len(unique)),
        frames=decoded[inverse],
        num_candidates=num_candidates,
    )


def build_strategy(
    name: str,
    scorers: Mapping[str, Scorer | Mapping[str, Any]] | None = None,
    rule_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Strategy:
    """A `Strategy` by name, with its scorer taken from (or built from the config in)
    ``scorers``.

    Args:
        name: ``"uniform"``, ``"<scorer>"`` or ``"<scorer>:<rule>"``.
        scorers: ``{scorer name: Scorer or its config fields}``; strategies that share a scorer
            object share its loaded model and caches.
        rule_options: ``{rule: {option: value}}``, e.g. ``{"inverse_transform": {"alpha": 2}}``.

    Raises:
        ValueError: an unknown strategy, scorer or rule, or a missing or invalid scorer config.
    """
    scorer_name, rule = parse_strategy(name)
    scorer = None
    if scorer_name is not None:
        given = (scorers or {}).get(scorer_name)
        scorer = given if isinstance(given, Scorer) else build_scorer(scorer_name, given)
    return Strategy(name, scorer, (rule_options or {}).get(rule))
