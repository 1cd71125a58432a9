"""The configuration of a QA eval run: candidates, strategies, k values, scorers, downstream model.

Plain dataclasses validated in ``__post_init__``; loads from YAML with dotted ``--set``
overrides (`fslabels.config.OverridableConfig`), and `EvalConfig.to_yaml` writes the exact config
of a run (stored in the run and in its results)::

    num_candidates: 128
    frame_size: 448
    ks: [4, 8, 16, 32]
    strategies: [uniform, selector:nms, selector:topk]
    scorers:
      selector: {model: org/framesel-selector, dtype: bfloat16, device: cuda}
    answerer:
      model: Qwen/Qwen2-VL-7B-Instruct
      dtype: bfloat16
      device: cuda
      processor_kwargs: {max_pixels: 200704}

Every strategy sees the same n candidates of a video (decoded once); ``uniform`` picks k of
them without scoring.

Example:
    >>> config = EvalConfig.load(None, ["ks=[8]", "strategies=[uniform]"])
    >>> config.ks, config.strategies
    ([8], ['uniform'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fslabels.config import OverridableConfig
from fslabels.evaluation.answerer import AnswererConfig

__all__ = ["DEFAULT_KS", "DEFAULT_STRATEGIES", "EvalConfig"]

DEFAULT_KS = (4, 8, 16, 32)
DEFAULT_STRATEGIES = ("uniform", "selector:nms")
_READERS = ("pyav", "decord")
# Keys whose values are free-form mappings: overrides may create keys inside them.
_FREE_FORM = ("scorers", "rule_options", "processor_kwargs")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass
class EvalConfig(OverridableConfig):
    """Everything that defines a QA eval run.

    Args:
        num_candidates: n, candidate frames per video (the same for every strategy).
        frame_size: short side of the decoded candidates in pixels (the downstream model's and
            the scorers' processors resize from these); ``None``: as stored.
        video_reader: ``pyav`` (default) or ``decord``.
        ks: frame budgets to evaluate (each at most ``num_candidates``).
        strategies: strategy names (`fslabels.evaluation.strategies.parse_strategy`), e.g. ``uniform``,
            ``selector:nms``, ``similarity:inverse_transform``, ``mllm:topk``.
        scorers: ``{scorer: config fields}`` for the scorers the strategies use (``selector``
            needs ``model``).
        rule_options: ``{rule: {option: value}}``, e.g. ``{inverse_transform: {alpha: 2.0}}``.
        answerer: the downstream model (`fslabels.evaluation.answerer.AnswererConfig` fields).
        limit: evaluate only the first ``limit`` items (``None``: all).
        answer_format: how the manifest's multiple-choice ``answer`` names the option: ``auto``
            (default: letter, 0-based index or text; a number that reads differently as an
            index and as an option's text fails its item rather than being guessed),
            ``letter``, ``index`` (NExT-QA, LongVideoBench) or ``text``
            (`fslabels.evaluation.prompts.gold_answer`). Changing it re-scores stored answers without
            asking the model again.

    Raises:
        ValueError: any invalid value, naming the key and the rule.
    """

    config_name: ClassVar[str] = "eval config"
    config_sections: ClassVar[Mapping[str, type]] = {"answerer": AnswererConfig}
    config_free_form: ClassVar[tuple[str, ...]] = _FREE_FORM

    num_candidates: int = 128
    frame_size: int | None = 448
    video_reader: str = "pyav"
    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    scorers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rule_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    answerer: AnswererConfig = field(default_factory=AnswererConfig)
    limit: int | None = None
    answer_format: str = "auto"

    def __post_init__(self) -> None:
        from fslabels.evaluation.prompts import ANSWER_FORMATS
        from fslabels.evaluation.scorers import SCORERS, build_scorer
        from fslabels.evaluation.strategies import parse_strategy

        _positive_int("num_candidates", self.num_candidates)
        if self.frame_size is not None:
            _positive_int("frame_size", self.frame_size)
        if self.video_reader not in _READERS:
            raise ValueError(f"video_reader must be one of {_READERS}, got {self.video_reader!r}")
        if isinstance(self.ks, int) and not isinstance(self.ks, bool):
            self.ks = [self.ks]
        if not isinstance(self.ks, (list, tuple)) or not self.ks:
            raise ValueError(f"ks must be a non-empty list of frame budgets, got {self.ks!r}")
        for k in self.ks:
            _positive_int("every k in ks", k)
            if k > self.num_candidates:
                raise ValueError(
                    f"every k must be at most num_candidates ({self.num_candidates}), got {k}"
                )
        self.ks = sorted(dict.fromkeys(self.ks))
        if isinstance(self.strategies, str):
            self.strategies = [s for s in self.strategies.split(",") if s.strip()]
        if not isinstance(self.strategies, (list, tuple)) or not self.strategies:
            raise ValueError(f"strategies must be a non-empty list, got {self.strategies!r}")
        names = []
        for spec in self.strategies:
            scorer, rule = parse_strategy(spec)
            names.append("uniform" if scorer is None else f"{scorer}:{rule}")
        if len(set(names)) != len(names):
            raise ValueError(f"strategies lists a strategy twice: {list(self.strategies)}")
        self.strategies = names
        if not isinstance(self.scorers, Mapping):
            raise ValueError(f"scorers must be a mapping of scorer -> fields, got {self.scorers!r}")
        self.scorers = {str(k): dict(v or {}) for k, v in self.scorers.items()}
        unknown = [s for s in self.scorers if s not in SCORERS]
        if unknown:
            raise ValueError(f"scorers has unknown scorer(s) {unknown}; known: {sorted(SCORERS)}")
        for name in sorted({n.partition(":")[0] for n in names if n != "uniform"}):
            try:
                build_scorer(name, self.scorers.get(name))  # validates now, loads nothing
            except (TypeError, ValueError) as err:
                raise ValueError(f"strategies use the {name!r} scorer: {err}") from None
        if not isinstance(self.rule_options, Mapping):
            raise ValueError(f"rule_options must be a mapping, got {self.rule_options!r}")
        self.rule_options = {str(k): dict(v or {}) for k, v in self.rule_options.items()}
        self.build_sections()
        if self.limit is not None:
            _positive_int("limit", self.limit)
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(
                f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}"
            )
