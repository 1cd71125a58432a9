"""The configuration of a label run: which backend and model each stage uses, and how.

A `LabelRunConfig` is plain dataclasses, validated in ``__post_init__`` with messages that state
the value and the rule. It loads from YAML, takes dotted ``key=value`` overrides (the CLI's
``--set``), and `LabelRunConfig.to_yaml` writes the exact config of a run (a label dataset ships
it as ``labels_run.yaml``)::

    num_candidates: 128
    frame_size: 224
    spatial:
      backend: transformers
      model: Qwen/Qwen2-VL-7B-Instruct
      backend_options: {dtype: bfloat16, device: cuda, batch_size: 16}
      cot: true
      batch_size: 256
    temporal:
      backend: openai
      model: gpt-4o-mini
      backend_options: {concurrency: 32}

Two batch sizes, on purpose: a stage's ``batch_size`` is how many requests the run sends in one
backend call and commits to the run store in one transaction (work lost to a crash is at most one
batch); ``backend_options.batch_size`` (transformers) is the forward-pass batch inside that call,
and ``backend_options.concurrency`` (openai) the requests in flight. None of them changes labels,
so none is part of a fingerprint.

Example:
    >>> config = LabelRunConfig.load("labels.yaml", ["spatial.cot=false", "num_candidates=64"])  # doctest: +SKIP
    >>> LabelRunConfig().spatial.model
    'Qwen/Qwen2-VL-7B-Instruct'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fsmodel.overrides import apply_overrides as _apply_overrides

__all__ = [
    "DEFAULT_MLLM",
    "DEFAULT_PRICES",
    "DEFAULT_TEXT_LLM",
    "CaptionStageConfig",
    "FusionConfig",
    "LabelRunConfig",
    "OverridableConfig",
    "SpatialStageConfig",
    "StageConfig",
    "TemporalStageConfig",
    "apply_overrides",
]

DEFAULT_MLLM = "Qwen/Qwen2-VL-7B-Instruct"
DEFAULT_TEXT_LLM = "gpt-4o-mini"
# USD per 1M (prompt, completion) tokens. Prices change: set your own in the run config.
DEFAULT_PRICES: dict[str, list[float]] = {"gpt-4o-mini": [0.15, 0.60]}

_READERS = ("pyav", "decord")


def _check_int(section: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{section}{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(section: str, name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{section}{name} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _check_bool(section: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{section}{name} must be true or false, got {value!r}")


_S = TypeVar("_S")

# The marker of a stage config field that is not part of the stage's fingerprint: how the work is
# done (batching, where the backend runs) rather than what comes out, or a value that reaches the
# fingerprint another way (the backend's own fingerprint, the prompt hash).
NOT_FINGERPRINTED = {"fingerprint": False}


def fingerprinted_fields(config: Any) -> tuple[str, ...]:
    """The names of a stage config's fields that key its fingerprint (all but the marked ones)."""
    return tuple(f.name for f in dataclasses.fields(config) if f.metadata.get("fingerprint", True))


def stage_settings(stage: str, labeler: Any) -> dict[str, Any]:
    """What a labeler hashes into its stage's fingerprint (and cards show): the stage, its prompt
    hash, the value in use of each fingerprinted field of its config, and its backend's
    fingerprint. A new config field is part of the fingerprint unless it is marked."""
    return {
        "stage": stage,
        "prompt_hash": labeler.prompt_hash,
        **{name: getattr(labeler, name) for name in fingerprinted_fields(labeler.config)},
        "backend": labeler.backend.fingerprint(),
    }


def stage_config(cls: type[_S], config: _S | None, settings: Mapping[str, Any]) -> _S:
    """A labeler's stage config: ``config`` (default: ``cls()``) with ``settings`` replaced."""
    base = cls() if config is None else config
    if not isinstance(base, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(base).__name__}")
    return dataclasses.replace(base, **settings) if settings else base


@dataclass
class StageConfig:
    """What every model stage has: a backend from the registry, its model, and batching.

    Args:
        backend: a name in ``fslabels.backends.BACKENDS`` (``transformers``, ``vllm``,
            ``openai``).
        model: Hub repo id, local directory, or served model name.
        backend_options: further fields of the backend's config (``revision``, ``dtype``,
            ``device``, ``base_url``, ``concurrency``, its own ``batch_size`` ...).
        batch_size: requests per backend call, committed to the store in one transaction.
    """

    section: ClassVar[str] = ""

    backend: str = field(default="transformers", metadata=NOT_FINGERPRINTED)
    model: str = field(default=DEFAULT_MLLM, metadata=NOT_FINGERPRINTED)
    backend_options: dict[str, Any] = field(default_factory=dict, metadata=NOT_FINGERPRINTED)
    batch_size: int = field(default=64, metadata=NOT_FINGERPRINTED)

    def __post_init__(self) -> None:
        where = f"{self.section}."
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"{where}backend must be a backend name, got {self.backend!r}")
        if not isinstance(self.model, (str, os.PathLike)) or not str(self.model):
            raise ValueError(f"{where}model must be a model id or path, got {self.model!r}")
        self.model = str(self.model)
        if not isinstance(self.backend_options, Mapping):
            raise ValueError(
                f"{where}backend_options must be a mapping of backend config fields, "
                f"got {self.backend_options!r}"
            )
        self.backend_options = dict(self.backend_options)
        if "model" in self.backend_options:
            raise ValueError(f"{where}backend_options must not set 'model'; use {where}model")
        _check_int(where, "batch_size", self.batch_size, 1)
        self.backend_config()  # validates the backend name and its options now, not mid-run

    def backend_config(self) -> Any:
        """The backend's config dataclass built from ``model`` and ``backend_options``.

        Raises:
            ValueError: an unknown backend (the known ones are listed), an unknown option (the
                backend's fields are listed) or a value the backend rejects.
        """
        from fslabels.backends import backend_class

        where = f"{self.section}."
        try:
            cls = backend_class(self.backend).config_class
        except ValueError as err:
            raise ValueError(f"{where}backend: {err}") from None
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in self.backend_options if k not in known]
        if unknown:
            raise ValueError(
                f"{where}backend_options has unknown field(s) {unknown} for the {self.backend} "
                f"backend; its fields: {', '.join(k for k in known if k != 'model')}"
            )
        try:
            return cls(model=self.model, **self.backend_options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}backend_options: {err}") from None


@dataclass
class SpatialStageConfig(StageConfig):
    """Spatial labels (`fslabels.spatial.SpatialLabeler`): one request per candidate frame.

    Args:
        cot: explain, then answer True/False (the paper); false: answer directly (cheap).
        max_new_tokens: the explanation's budget.
        top_logprobs: alternatives per generated token (the score is read from them).
        force_top_logprobs: alternatives for a forced answer.
        temperature: 0 for greedy decoding.
    """

    section: ClassVar[str] = "spatial"

    batch_size: int = field(default=256, metadata=NOT_FINGERPRINTED)
    cot: bool = True
    max_new_tokens: int = 128
    top_logprobs: int = 20
    force_top_logprobs: int = 20
    temperature: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bool("spatial.", "cot", self.cot)
        _check_int("spatial.", "max_new_tokens", self.max_new_tokens, 1)
        _check_int("spatial.", "top_logprobs", self.top_logprobs, 1)
        _check_int("spatial.", "force_top_logprobs", self.force_top_logprobs, 1)
        self.temperature = _check_float("spatial.", "temperature", self.temperature)


@dataclass
class CaptionStageConfig(StageConfig):
    """Captions of every candidate frame (`fslabels.temporal.Captioner`), once per video.

    Args:
        prompt: the instruction shown with each frame (``None``: ``CAPTION_PROMPT``).
        max_new_tokens: caption budget.
        temperature: 0 for greedy decoding.
    """

    section: ClassVar[str] = "captions"

    batch_size: int = field(default=128, metadata=NOT_FINGERPRINTED)
    prompt: str | None = field(default=None, metadata=NOT_FINGERPRINTED)  # in the prompt hash
    max_new_tokens: int = 48
    temperature: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt):
            raise ValueError(
                f"captions.prompt must be a non-empty string or null, got {self.prompt!r}"
            )
        _check_int("captions.", "max_new_tokens", self.max_new_tokens, 1)
        self.temperature = _check_float("captions.", "temperature", self.temperature)


@dataclass
class TemporalStageConfig(StageConfig):
    """Temporal labels (`fslabels.temporal.TemporalLabeler`): one request per question.

    Args:
        max_new_tokens: reply budget.
        temperature: 0 for greedy decoding.
        max_attempts: requests per question at most (unreadable replies are retried).
        structured_output: ask for a JSON schema; ``None``: where the backend supports it.
    """

    section: ClassVar[str] = "temporal"

    backend: str = field(default="openai", metadata=NOT_FINGERPRINTED)
    model: str = field(default=DEFAULT_TEXT_LLM, metadata=NOT_FINGERPRINTED)
    batch_size: int = field(default=32, metadata=NOT_FINGERPRINTED)
    max_new_tokens: int = 256
    temperature: float = 0.0
    max_attempts: int = 3
    structured_output: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("temporal.", "max_new_tokens", self.max_new_tokens, 1)
        _check_int("temporal.", "max_attempts", self.max_attempts, 1)
        self.temperature = _check_float("temporal.", "temperature", self.temperature)
        if self.structured_output is not None:
            _check_bool("temporal.", "structured_output", self.structured_output)


@dataclass
class FusionConfig:
    """Weights of the fused label: ``(w_s * spatial + w_t * temporal) / (w_s + w_t)``."""

    spatial_weight: float = 0.5
    temporal_weight: float = 0.5

    def __post_init__(self) -> None:
        self.spatial_weight = _check_float("fusion.", "spatial_weight", self.spatial_weight)
        self.temporal_weight = _check_float("fusion.", "temporal_weight", self.temporal_weight)
        if self.spatial_weight + self.temporal_weight == 0:
            raise ValueError("fusion weights must not both be 0, got spatial 0 and temporal 0")

    @property
    def weights(self) -> tuple[float, float]:
        return (self.spatial_weight, self.temporal_weight)


_SECTIONS: dict[str, type] = {
    "spatial": SpatialStageConfig,
    "captions": CaptionStageConfig,
    "temporal": TemporalStageConfig,
    "fusion": FusionConfig,
}
# Fields whose values are free-form mappings: overrides may create keys inside them.
_FREE_FORM = ("backend_options", "prices")


_C = TypeVar("_C", bound="OverridableConfig")


class OverridableConfig:
    """What a top-level config dataclass shares: build from a mapping, load from YAML with
    dotted ``--set`` overrides, write back as YAML. `LabelRunConfig` and
    `fslabels.evaluation.config.EvalConfig` use it.

    A subclass (a ``@dataclass``) declares, as class variables:

    - ``config_name``: what is being loaded, for messages (``"label run config"``);
    - ``config_sections``: ``{field: config class}`` of its nested sections, whose keys
      overrides check too (``{"spatial": SpatialStageConfig}``);
    - ``config_free_form``: field names (at any depth) holding free-form mappings, inside which
      overrides may create keys (``("backend_options",)``).

    Example:
        >>> @dataclass
        ... class Tiny(OverridableConfig):
        ...     config_name: ClassVar[str] = "tiny config"
        ...     n: int = 1
        >>> Tiny.load(None, ["n=3"]).to_yaml()
        'n: 3\\n'
    """

    config_name: ClassVar[str] = "config"
    config_sections: ClassVar[Mapping[str, type]] = {}
    config_free_form: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """Build from a nested mapping (YAML); unknown keys are errors listing the known ones."""
        if not isinstance(data, Mapping):
            raise ValueError(f"the {cls.config_name} must be a mapping, got {data!r}")
        return _build(cls, data, "")

    @classmethod
    def load(
        cls: type[_C], path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()
    ) -> _C:
        """The defaults, updated from a YAML file, then from dotted ``key=value`` overrides.

        Args:
            path: a YAML file, or None for the defaults.
            overrides: ``"spatial.cot=false"``, ``"spatial.backend_options.batch_size=4"``;
                values are parsed as YAML (``8`` is an int, ``[1, 2]`` a list, ``null`` None).

        Raises:
            FileNotFoundError: no such file.
            ValueError: invalid YAML, unknown keys, malformed overrides or invalid values.
        """
        import yaml

        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{cls.config_name} {path} does not exist")
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                raise ValueError(f"{path} is not valid YAML: {err}") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{path} must hold a mapping, got {type(loaded).__name__}")
            data = loaded or {}
        return cls.from_dict(apply_overrides(data, overrides, config=cls))

    def build_sections(self) -> None:
        """Turn each section given as a mapping into its config (call from ``__post_init__``).

        Raises:
            ValueError: a section that is neither a mapping nor its config, or unknown keys.
        """
        for name, cls in self.config_sections.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, _build(cls, value, name))
            elif not isinstance(value, cls):
                raise ValueError(
                    f"{name} must be a mapping or a {cls.__name__}, got {type(value).__name__}"
                )

    def with_overrides(self: _C, overrides: Iterable[str]) -> _C:
        """A copy with dotted ``key=value`` overrides applied."""
        config = type(self)
        return config.from_dict(apply_overrides(self.to_dict(), overrides, config=config))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (what `to_yaml` writes)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The exact config as YAML (written to ``path`` when given); `load` reads it back."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


@dataclass
class LabelRunConfig(OverridableConfig):
    """Everything that defines a label run (see the module docstring).

    Args:
        num_candidates: n, candidate frames per video.
        frame_size: short side of the decoded frames in pixels (``None``: as stored).
        video_reader: ``pyav`` (default) or ``decord``.
        spatial, captions, temporal: the stages (a dict or the stage's config).
        fusion: the fusion weights (a dict or a `FusionConfig`).
        prices: ``{model: [usd per 1M prompt tokens, usd per 1M completion tokens]}`` for cost
            accounting; given to backends that price their responses (openai).
        keep_logprobs: keep every reply's full log-probabilities in the store (large: n x
            tokens x alternatives floats per sample); by default replies keep their text, tokens
            counts and finish reason.

    Raises:
        ValueError: on any invalid value, naming the key, the value and the rule.
    """

    config_name: ClassVar[str] = "label run config"
    config_sections: ClassVar[Mapping[str, type]] = _SECTIONS
    config_free_form: ClassVar[tuple[str, ...]] = _FREE_FORM

    num_candidates: int = 128
    frame_size: int | None = 224
    video_reader: str = "pyav"
    spatial: SpatialStageConfig = field(default_factory=SpatialStageConfig)
    captions: CaptionStageConfig = field(default_factory=CaptionStageConfig)
    temporal: TemporalStageConfig = field(default_factory=TemporalStageConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    prices: dict[str, list[float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    keep_logprobs: bool = False

    def __post_init__(self) -> None:
        _check_int("", "num_candidates", self.num_candidates, 1)
        if self.frame_size is not None:
            _check_int("", "frame_size", self.frame_size, 1)
        if self.video_reader not in _READERS:
            raise ValueError(f"video_reader must be one of {_READERS}, got {self.video_reader!r}")
        _check_bool("", "keep_logprobs", self.keep_logprobs)
        self.build_sections()
        if not isinstance(self.prices, Mapping):
            raise ValueError(f"prices must be a mapping of model -> [in, out], got {self.prices!r}")
        prices = {}
        for model, price in self.prices.items():
            if (
                not isinstance(price, (list, tuple))
                or len(price) != 2
                or any(
                    isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 for p in price
                )
            ):
                raise ValueError(
                    f"prices.{model} must be [usd per 1M prompt tokens, usd per 1M completion "
                    f"tokens], two numbers >= 0, got {price!r}"
                )
            prices[str(model)] = [float(p) for p in price]
        self.prices = prices

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def offline(
        cls,
        models: Mapping[str, str | os.PathLike[str]],
        num_candidates: int = 8,
        frame_size: int = 48,
        **stage_overrides: Mapping[str, Any],
    ) -> LabelRunConfig:
        """Every stage on local models through the transformers backend, greedy, with tiny
        token budgets: the config of the offline demo and tests (``models`` as returned by
        ``fsmodel.tiny.build_all``: ``"qwen2-vl"`` for spatial and captions, ``"qwen2"`` for
        temporal). ``stage_overrides`` update a stage's fields, e.g. ``spatial={"batch_size": 8}``.

        The spatial stage asks for the whole next-token distribution at the answer slot: a
        random tiny model rarely ranks True/False in its top 20, which would fail every frame.
        """
        import json

        vocab = json.loads((Path(models["qwen2"]) / "config.json").read_text())["vocab_size"]
        data: dict[str, Any] = {
            "num_candidates": num_candidates,
            "frame_size": frame_size,
            "spatial": {
                "backend": "transformers",
                "model": str(models["qwen2-vl"]),
                "backend_options": {"batch_size": 8},
                "max_new_tokens": 8,
                "top_logprobs": vocab,
                "force_top_logprobs": vocab,
                "batch_size": 16,
            },
            "captions": {
                "backend": "transformers",
                "model": str(models["qwen2-vl"]),
                "backend_options": {"batch_size": 8},
                "max_new_tokens": 6,
            },
            "temporal": {
                "backend": "transformers",
                "model": str(models["qwen2"]),
                "max_new_tokens": 8,
                "max_attempts": 2,
            },
            "prices": {},
        }
        for stage, values in stage_overrides.items():
            data[stage] = {**data[stage], **values}
        return cls.from_dict(data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> LabelRunConfig:
        """Read a YAML file (see `load` for overrides)."""
        return cls.load(path)


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{prefix or 'the config'} must be a mapping, got {data!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in known]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ValueError(
            f"unknown config key(s) {', '.join(where + str(k) for k in unknown)}; "
            f"known keys{' of ' + prefix if prefix else ''}: {', '.join(known)}"
        )
    return cls(**dict(data))


def apply_overrides(
    data: Mapping[str, Any],
    overrides: Iterable[str],
    *,
    config: type[OverridableConfig] | None = None,
) -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted override set (`fsmodel.overrides`), each key
    checked against the fields of ``config`` (`LabelRunConfig` by default) as it is applied,
    except inside free-form mappings such as ``backend_options``."""
    config = LabelRunConfig if config is None else config
    return _apply_overrides(
        data,
        overrides,
        check=lambda parts, text: _check_path(config, parts, text),
        example="spatial.cot=false",
    )


def _check_path(config: type[OverridableConfig], parts: list[str], text: str) -> None:
    cls: type | None = config
    for depth, part in enumerate(parts):
        if cls is None:
            return  # inside a free-form mapping
        known = [f.name for f in dataclasses.fields(cls)]
        if part not in known:
            where = ".".join(parts[:depth]) or "the config"
            raise ValueError(
                f"--set {text!r}: unknown key {part!r} in {where}; known: {', '.join(known)}"
            )
        if part in config.config_free_form:
            cls = None
        elif depth == 0 and part in config.config_sections:
            cls = config.config_sections[part]
        elif depth < len(parts) - 1:
            where = ".".join(parts[: depth + 1])
            raise ValueError(f"--set {text!r}: {where} is a value, not a section")
