"""Training configuration: plain dataclasses, loadable from YAML, overridable with ``key=value``.

One `TrainConfig` describes one stage of the paper's recipe (Hu et al., CVPR 2025):

- stage 1: vision encoder and LLM frozen; projector, score query and score head trained on the
  importance BCE alternated with a visual-instruction CE (captions); lr 1e-3, 3 % warm-up,
  2 epochs.
- stage 2: LoRA on the LLM (plus the score query and head), BCE only; lr 1e-5, cosine, 3 %
  warm-up, 5 epochs.

Fields left at ``None`` take the stage's paper default when the config is built, so a YAML file
only needs what differs. Every field is checked in ``__post_init__``; a message names the key,
the value and the rule.

Example:
    >>> config = TrainConfig.from_yaml("train.yaml", overrides=["optim.lr=3e-4", "stage=2"])
    >>> config.optim.lr, config.optim.epochs
    (0.0003, 5)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fsmodel.overrides import apply_overrides

__all__ = [
    "SCHEDULERS",
    "STAGE_DEFAULTS",
    "TARGETS",
    "TRAINABLE_PARTS",
    "CacheConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "HeldOutConfig",
    "LoraSettings",
    "OptimConfig",
    "TrainConfig",
]

# The selector's parts that a stage may train, by attribute name of FrameSelectorModel.
TRAINABLE_PARTS = ("vision_model", "projector", "language_model", "score_query", "score_head")
# Learning-rate schedules, by the name transformers.get_scheduler knows them under.
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
MIXED_PRECISION = ("no", "bf16", "fp16")
# The label columns a selector can be trained on: the fused scores or one source of them.
TARGETS = ("scores", "spatial", "temporal")

# The paper's hyper-parameters per stage; a config field left at None takes these.
STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {
        "lr": 1e-3,
        "epochs": 2,
        "scheduler": "cosine",
        "warmup_ratio": 0.03,
        "trainable": ["projector", "score_query", "score_head"],
    },
    2: {
        "lr": 1e-5,
        "epochs": 5,
        "scheduler": "cosine",
        "warmup_ratio": 0.03,
        "trainable": ["score_query", "score_head"],
    },
}


class ConfigError(ValueError):
    """A training config key or value breaks a rule; the message names the key and the value."""


def _fail(key: str, value: Any, rule: str) -> None:
    raise ConfigError(f"{key} must be {rule}, got {value!r}")


def _positive_int(key: str, value: Any, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(key, value, f"an integer >= {minimum}" + (" or null" if allow_none else ""))


def _number(key: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        _fail(key, value, f"a number in {bracket}{low:g}, {high:g}]")


@dataclass
class DataConfig:
    """Where the labels (and videos) come from.

    Attributes:
        source: a label dataset (schema v1): a local directory or a Hub dataset repo id.
        revision: the Hub revision (tag such as ``v1``, branch or commit) of ``source``.
        video_root: directory that the rows' relative ``video`` paths are relative to
            (default: ``source`` itself when it is a local directory).
        eval_source, eval_revision: a held-out label dataset for the metrics (optional).
        eval_fraction: without ``eval_source``, hold out this share of the videos (by
            ``video_id``, so no video is in both splits); 0 evaluates on the training rows.
        captions: train the stage-1 visual-instruction CE on the dataset's ``captions`` config
            (``null``: whenever stage 1 and the config exists).
        target: the label column trained on: ``scores`` (the fused labels), or one source,
            ``spatial`` or ``temporal`` (the paper's ablation); rows without that source
            (it failed for them) are left out.
        questions: a regular expression: train (and evaluate) only on rows whose question it
            matches (``re.search``), e.g. one question kind as a curriculum's first stage.
        hard_negatives: weigh up, in each row's BCE, the candidates that another question of the
            same video wants and this one does not, by ``1 + hard_negatives * (theirs - own)``
            (`fsmodel.training.data.weigh_hard_negatives`); 0: plain BCE (the paper's).
        limit: use only the first ``limit`` label rows (smoke runs).
        reader: the frame reader of ``fsmodel.video`` (``pyav`` or ``decord``).
        memory_cache: decoded videos kept in memory when training without the feature cache
            (0: none; one video at n = 128 and 384 px is ~230 MB of float pixels).
    """

    SECTION: ClassVar[str] = "data"

    source: str = ""
    revision: str | None = None
    video_root: str | None = None
    eval_source: str | None = None
    eval_revision: str | None = None
    eval_fraction: float = 0.0
    captions: bool | None = None
    target: str = "scores"
    questions: str | None = None
    hard_negatives: float = 0.0
    limit: int | None = None
    reader: str = "pyav"
    memory_cache: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            _fail("data.source", self.source, "a label dataset: a local directory or a Hub repo id")
        _number("data.eval_fraction", self.eval_fraction, 0.0, 0.9)
        if self.target not in TARGETS:
            _fail("data.target", self.target, f"one of {list(TARGETS)}")
        if self.questions is not None:
            try:
                re.compile(self.questions)
            except (re.error, TypeError) as error:
                _fail("data.questions", self.questions, f"a regular expression ({error})")
        _number("data.hard_negatives", self.hard_negatives, 0.0, 100.0)
        _positive_int("data.limit", self.limit, allow_none=True)
        _positive_int("data.memory_cache", self.memory_cache, minimum=0)
        if self.eval_source is not None and self.eval_fraction > 0:
            raise ConfigError(
                f"data.eval_fraction must be 0 when data.eval_source is set (got "
                f"{self.eval_fraction!r} and {self.eval_source!r}): pick one held-out set"
            )


@dataclass
class OptimConfig:
    """Optimisation. ``None`` fields take the stage's paper default (`STAGE_DEFAULTS`).

    Attributes:
        lr: peak learning rate (AdamW).
        epochs: passes over the label rows.
        scheduler: ``cosine``, ``linear`` or ``constant`` (all after linear warm-up).
        warmup_ratio: share of the optimiser steps spent warming up.
        weight_decay: AdamW weight decay.
        batch_size: rows per optimiser step and process (before gradient accumulation).
        grad_accum_steps: micro-batches accumulated per optimiser step.
        max_grad_norm: gradient clipping (0: off).
        trainable: parts of the selector to train (`TRAINABLE_PARTS`); stage 2 adds LoRA on the
            LLM to these.
        ce_weight: weight of the stage-1 CE loss relative to the BCE.
    """

    SECTION: ClassVar[str] = "optim"

    lr: float | None = None
    epochs: int | None = None
    scheduler: str | None = None
    warmup_ratio: float | None = None
    weight_decay: float = 0.0
    batch_size: int = 4
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0
    trainable: list[str] | None = None
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.lr is not None:
            _number("optim.lr", self.lr, 0.0, 10.0, low_open=True)
        _positive_int("optim.epochs", self.epochs, allow_none=True)
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            _fail("optim.scheduler", self.scheduler, f"one of {sorted(SCHEDULERS)}")
        if self.warmup_ratio is not None:
            _number("optim.warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        _number("optim.weight_decay", self.weight_decay, 0.0, 1.0)
        _positive_int("optim.batch_size", self.batch_size)
        _positive_int("optim.grad_accum_steps", self.grad_accum_steps)
        _number("optim.max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        _number("optim.ce_weight", self.ce_weight, 0.0, 1e3)
        if self.trainable is not None:
            unknown = [p for p in self.trainable if p not in TRAINABLE_PARTS]
            if unknown or not self.trainable or len(set(self.trainable)) != len(self.trainable):
                _fail(
                    "optim.trainable",
                    self.trainable,
                    f"a non-empty list of distinct parts from {list(TRAINABLE_PARTS)}",
                )


@dataclass
class LoraSettings:
    """Stage-2 LoRA on the LLM (peft ``LoraConfig``).

    Attributes:
        r: rank.
        alpha: scaling numerator (``lora_alpha``).
        dropout: dropout on the LoRA input.
        target_modules: names of the LLM's linear layers that get adapters.
    """

    SECTION: ClassVar[str] = "lora"

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )

    def __post_init__(self) -> None:
        _positive_int("lora.r", self.r)
        _number("lora.alpha", self.alpha, 0.0, 1e6, low_open=True)
        _number("lora.dropout", self.dropout, 0.0, 0.99)
        if (
            not isinstance(self.target_modules, list)
            or not self.target_modules
            or not all(isinstance(m, str) and m.isidentifier() for m in self.target_modules)
        ):
            _fail(
                "lora.target_modules",
                self.target_modules,
                "a non-empty list of module names (e.g. [q_proj, v_proj])",
            )


@dataclass
class CacheConfig:
    """The on-disk cache of the frozen vision tower's pooled frame features.

    Attributes:
        enabled: read/write features from/to the cache (needs a frozen vision tower).
        dir: cache directory (default: ``$FRAMESEL_CACHE/features`` or
            ``~/.cache/framesel/features``). Entries are keyed by what changes the features
            (vision weights, image processing, n, frame size, reader, the video file's path,
            size and mtime), so runs and stages may share one directory.
    """

    SECTION: ClassVar[str] = "cache"

    enabled: bool = True
    dir: str | None = None

    def resolved_dir(self) -> Path:
        """The cache directory this config points to."""
        if self.dir:
            return Path(self.dir).expanduser()
        base = os.environ.get("FRAMESEL_CACHE") or Path.home() / ".cache" / "framesel"
        return Path(base).expanduser() / "features"


@dataclass
class HeldOutConfig:
    """Held-out metrics during training (the ``eval`` section): recall@k of the selector's picks
    against the labels' relevant frames. (Downstream QA evaluation is another thing:
    `fslabels.evaluation.config.EvalConfig`.)

    Attributes:
        k: frames chosen per question.
        threshold: a candidate whose label score is >= threshold counts as relevant.
        every_steps: evaluate every this many optimiser steps (0: at the end of each epoch).
        max_samples: evaluate at most this many rows (null: all).
        batch_size: rows per forward pass.
    """

    SECTION: ClassVar[str] = "eval"

    k: int = 8
    threshold: float = 0.5
    every_steps: int = 0
    max_samples: int | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        _positive_int("eval.k", self.k)
        _number("eval.threshold", self.threshold, 0.0, 1.0, low_open=True)
        _positive_int("eval.every_steps", self.every_steps, minimum=0)
        _positive_int("eval.max_samples", self.max_samples, allow_none=True)
        _positive_int("eval.batch_size", self.batch_size)


@dataclass
class CheckpointConfig:
    """Resumable checkpoints under ``<output_dir>/checkpoints``.

    Attributes:
        every_steps: save every this many optimiser steps (0: only at the end of each epoch).
        keep: how many of the latest checkpoints to keep.
        resume: continue from the latest checkpoint in ``output_dir`` when there is one.
    """

    SECTION: ClassVar[str] = "checkpoint"

    every_steps: int = 100
    keep: int = 2
    resume: bool = True

    def __post_init__(self) -> None:
        _positive_int("checkpoint.every_steps", self.every_steps, minimum=0)
        _positive_int("checkpoint.keep", self.keep)


@dataclass
class TrainConfig:
    """One training stage of the frame selector.

    Attributes:
        model: the selector to start from (a directory or Hub repo id): for stage 1 the output of
            ``framesel model init``, for stage 2 the stage-1 result (``<output_dir>/final``).
        output_dir: where checkpoints, metrics (``metrics.jsonl``), the resolved config and the
            trained selector (``final/``; stage 2 also ``adapter/``) are written.
        stage: 1 or 2 (see the module docstring).
        model_revision: Hub revision of ``model``.
        seed: seeds data order, LoRA initialisation and dropout.
        mixed_precision: ``no`` (fp32; use it on CPUs), ``bf16`` or ``fp16`` (accelerate).
        gradient_checkpointing: recompute the LLM's activations in the backward pass.
        log_every: write a training line to ``metrics.jsonl`` every this many steps.
        data, optim, lora, cache, eval, checkpoint: the sections above.

    Raises:
        ConfigError: a value outside its rule, or sections that contradict each other.

    Example:
        >>> TrainConfig(model="tiny-selector", output_dir="runs/s1", data={"source": "labels"})
    """

    SECTION: ClassVar[str] = ""

    model: str = ""
    output_dir: str = ""
    stage: int = 1
    model_revision: str | None = None
    seed: int = 0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    log_every: int = 1
    data: DataConfig | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    cache: CacheConfig = field(default_factory=CacheConfig)
    eval: HeldOutConfig = field(default_factory=HeldOutConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        # Sections given as dicts (the Python API) are built and checked like YAML ones.
        for f in dataclasses.fields(self):
            section = _SECTIONS.get(f.name)
            value = getattr(self, f.name)
            if section is not None and isinstance(value, dict):
                setattr(self, f.name, _build(section, value, f"{f.name}."))
        if self.data is None:
            raise ConfigError("data.source is required: a label dataset directory or Hub repo id")
        for name, rule in (("model", "a selector directory or Hub repo id"),
                           ("output_dir", "a directory path")):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                _fail(name, value, rule)
        if isinstance(self.stage, bool) or self.stage not in STAGE_DEFAULTS:
            _fail("stage", self.stage, f"one of {sorted(STAGE_DEFAULTS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            _fail("mixed_precision", self.mixed_precision, f"one of {list(MIXED_PRECISION)}")
        _positive_int("seed", self.seed, minimum=0)
        _positive_int("log_every", self.log_every)
        for key, default in STAGE_DEFAULTS[self.stage].items():
            if getattr(self.optim, key) is None:
                setattr(self.optim, key, list(default) if isinstance(default, list) else default)
        trainable = self.optim.trainable
        if self.stage == 2 and "language_model" in trainable:
            raise ConfigError(
                "optim.trainable must not contain 'language_model' in stage 2, got "
                f"{trainable!r}: stage 2 trains the LLM through LoRA (see the lora section)"
            )
        if self.cache.enabled and "vision_model" in trainable:
            raise ConfigError(
                f"cache.enabled must be false when the vision tower is trained (optim.trainable = "
                f"{trainable!r}): cached features would go stale with every step"
            )

    @property
    def uses_feature_cache(self) -> bool:
        """Whether training reads the frozen vision tower's features from the cache."""
        return self.cache.enabled and "vision_model" not in self.optim.trainable

    # --- (de)serialisation -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], overrides: list[str] | None = None) -> TrainConfig:
        """Build a config from a (YAML-shaped) dict and ``key=value`` overrides.

        Raises:
            ConfigError: unknown keys (the message lists the known ones), bad override syntax,
                values of the wrong type or outside their rule.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a training config must be a mapping, got {type(data).__name__}")
        data = apply_overrides(data, overrides or [], example="optim.lr=3e-4", error=ConfigError)
        return _build(cls, data, "")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
        """Read a YAML file (see `from_dict`).

        Raises:
            FileNotFoundError: no such file.
            ConfigError: unparsable YAML, or what `from_dict` raises.
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        return cls.from_dict(data, overrides)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (paper defaults filled in) as plain data."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML (what ``config.yaml`` in the output directory holds)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "optim": OptimConfig,
    "lora": LoraSettings,
    "cache": CacheConfig,
    "eval": HeldOutConfig,
    "checkpoint": CheckpointConfig,
}


def _build(cls: type, data: Any, prefix: str) -> Any:
    section = prefix.rstrip(".") or "the training config"
    if not isinstance(data, dict):
        raise ConfigError(f"{section} must be a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config key {prefix}{key!s}; known keys in {section}: {', '.join(fields)}"
            )
        nested = _SECTIONS.get(key) if cls is TrainConfig else None
        if nested is not None:
            kwargs[key] = _build(nested, value if value is not None else {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", value, hints[key])
    if cls is DataConfig and "source" not in kwargs:
        raise ConfigError("data.source is required: a label dataset directory or Hub repo id")
    return cls(**kwargs)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check a YAML value against a field's type; numbers may come as strings (YAML 1.1 reads
    ``1e-3`` as text)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must not be null")
    kind = next(a for a in args if a is not type(None))
    if isinstance(value, dict):
        raise ConfigError(f"{key} is a value, not a section; got {value!r}")
    origin = typing.get_origin(kind)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    return value
