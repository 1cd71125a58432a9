"""Scorers: what gives every candidate frame a score for a question (``SCORERS``: the trained
selector, SigLIP/CLIP similarity, the spatial labeler online), the content id of the model a
scorer loads, and what a strategy returns (`ScoreCurve`, `Selection`, `Cost`). The strategies
that combine a scorer with a selection rule are in `fslabels.evaluation.strategies`."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fslabels._components import NOT_IN_FINGERPRINT, Component, fingerprint_fields, lookup, register
from fslabels._hashing import stable_hash

if TYPE_CHECKING:
    from fsmodel.video import Candidates

__all__ = [
    "SCORERS",
    "Cost",
    "MLLMScorer",
    "MLLMScorerConfig",
    "ScoreCurve",
    "Scorer",
    "ScoringError",
    "Selection",
    "SelectorScorer",
    "SelectorScorerConfig",
    "SimilarityScorer",
    "SimilarityScorerConfig",
    "build_scorer",
    "model_content_id",
    "register_scorer",
    "scorer_class",
]

logger = logging.getLogger(__name__)

UNIFORM = "uniform"  # the strategy without a scorer: no scorer may take its name
DEFAULT_READER = "pyav"
_DTYPES = ("float32", "bfloat16", "float16")


# --- what a model id or directory loads --------------------------------------------------------

_COMMIT = re.compile(r"[0-9a-f]{40}")
# Files of a model directory that do not change what it computes.
_NOT_CONTENT = re.compile(r"(^\.)|(\.md$)", re.IGNORECASE)
HASHED_BYTES = 64 << 20


def model_content_id(
    model: str | os.PathLike[str], revision: str | None = None, hash_bytes: int = HASHED_BYTES
) -> str:
    """What identifies the weights (and configs) ``model`` loads now: part of every cache key
    that depends on a model, so a model retrained in place, or a Hub branch that moved, never
    serves stale cached results.

    - A local directory: a hash over its top-level files (``README.md`` and hidden files
      excepted): the SHA-256 of each file up to ``hash_bytes`` (configs, tokenizer, chat
      template, tiny weights), size and modification time of larger ones (weight shards, which
      would take minutes to hash). Prefixed ``dir-``.
    - A Hub id: the commit ``revision`` resolves to (a full commit sha as given, else asked of
      the Hub; offline, or when the Hub cannot be reached, the commit of the cached snapshot).

    Raises:
        ValueError: a Hub id that resolves to no commit (not on the Hub or not reachable, and
            not cached), naming the model and why.

    Example:
        >>> model_content_id("org/model", revision="0123456789abcdef0123456789abcdef01234567")
        '0123456789abcdef0123456789abcdef01234567'
    """
    path = Path(model).expanduser()
    if path.is_dir():
        files: dict[str, Any] = {}
        for file in sorted(path.iterdir()):
            if not file.is_file() or _NOT_CONTENT.search(file.name):
                continue
            stat = file.stat()
            if stat.st_size <= hash_bytes:
                files[file.name] = hashlib.sha256(file.read_bytes()).hexdigest()
            else:
                files[file.name] = [stat.st_size, stat.st_mtime_ns]
        return f"dir-{stable_hash(files)}"
    if revision is not None and _COMMIT.fullmatch(revision):
        return revision
    from huggingface_hub import constants, model_info, try_to_load_from_cache

    why = "HF_HUB_OFFLINE is set"
    if not constants.HF_HUB_OFFLINE:
        try:
            sha = model_info(str(model), revision=revision).sha
        except Exception as err:  # unreachable or unknown: the cached snapshot may still say
            why = f"{type(err).__name__}: {err}"
        else:
            if sha:
                return sha
            why = "the Hub returned no commit"
    cached = try_to_load_from_cache(str(model), "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    raise ValueError(
        f"cannot tell which weights {str(model)!r} (revision {revision or 'main'}) loads: it is "
        f"not a local directory, the Hub did not resolve it ({why}) and no snapshot is cached"
    )


class ScoringError(RuntimeError):
    """A scorer could not score a question's candidates (names the question and the cause)."""


# --- what a strategy returns ------------------------------------------------------------------


@dataclass
class Cost:
    """What one selection cost.

    Attributes:
        decode_seconds: decoding the frames the strategy needs (n candidates, or only the k
            frames for ``uniform``); 0 when the caller passed decoded candidates.
        score_seconds: the scorer's model work (0 for ``uniform``).
        rule_seconds: the selection rule.
        model_calls: forward passes or requests the scorer made.
        frames_decoded: frames decoded for this selection.
        prompt_tokens, completion_tokens: tokens the scorer's model read / generated.
        usd: US dollars for priced backends (the ``mllm`` scorer on an API), else None.
    """

    decode_seconds: float = 0.0
    score_seconds: float = 0.0
    rule_seconds: float = 0.0
    model_calls: int = 0
    frames_decoded: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float | None = None

    @property
    def selection_seconds(self) -> float:
        """Scoring plus the rule: what selecting costs beyond decoding."""
        return self.score_seconds + self.rule_seconds

    @property
    def seconds(self) -> float:
        """Everything: decoding, scoring and the rule."""
        return self.decode_seconds + self.selection_seconds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ScoreCurve:
    """A scorer's output for one question: one score per candidate.

    Attributes:
        scores: ``[n]`` float64, finite (frames a scorer could not judge are filled, see
            ``failed_positions``).
        cost: what scoring cost (``score_seconds``, ``model_calls``, tokens).
        failed_positions: candidates without a score of their own (``mllm``: the labeler failed
            on them; they get the curve's minimum, so a rule takes them last).
    """

    scores: np.ndarray
    cost: Cost
    failed_positions: list[int] = field(default_factory=list)


@dataclass
class Selection:
    """The k frames a strategy chose for one question.

    Attributes:
        strategy: the strategy's name (``"selector:nms"``).
        k: frames chosen.
        positions: ``[k]`` candidate positions in ``0..n-1``, ascending.
        indices: ``[k]`` frame indices in the video: ``min(k, N)`` distinct ones on a video of N
            frames.
        repeated: ``[k]`` bool, a pick showing a frame an earlier pick shows (only on a video
            with fewer than k frames); ``None`` when not known.
        timestamps: ``[k]`` presentation times in seconds.
        scores: ``[n]`` the score curve (``None`` for ``uniform``).
        cost: `Cost`.
        frames: ``[k, H, W, 3]`` uint8 RGB, the chosen frames (``None`` when not kept).
        num_candidates: n.
    """

    strategy: str
    k: int
    positions: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    scores: np.ndarray | None
    cost: Cost
    frames: np.ndarray | None = None
    num_candidates: int = 0
    repeated: np.ndarray | None = None

    @property
    def distinct_frames(self) -> int:
        """How many distinct frames the picks show."""
        return len(np.unique(self.indices))


# --- scorers ----------------------------------------------------------------------------------


def _check_dtype(where: str, dtype: str) -> None:
    if dtype not in _DTYPES:
        raise ValueError(f"{where}.dtype must be one of {_DTYPES}, got {dtype!r}")


def _check_model(where: str, model: Any) -> str:
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise ValueError(f"{where}.model must be a Hub repo id or a local directory, got {model!r}")
    return str(model)


class Scorer(Component):
    """Gives every candidate frame of a video a score for a question.

    Subclasses declare ``name`` (the registry key) and ``config_class`` (a dataclass validated
    in ``__post_init__``), and implement ``_load``, ``_unload`` and ``score``. Heavy imports
    (torch, transformers) happen in ``_load``. Config fields whose metadata is
    `fslabels.backends.NOT_IN_FINGERPRINT` (device, batch sizes) stay out of `fingerprint`.
    Config handling and the load/unload lifecycle are `fslabels._components.Component`'s
    (shared with the backends).

    Args:
        config: a ``config_class`` instance or a mapping of its fields; or pass its fields as
            keyword arguments.
    """

    name_hint: ClassVar[str] = "<scorer name>"
    #: The scorer loads ``config.model`` (at ``config.revision``) itself: its content id
    #: (`model_content_id`) is part of the fingerprint.
    loads_model: ClassVar[bool] = False

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        if isinstance(config, Mapping):
            config, kwargs = None, {**config, **kwargs}
        super().__init__(config, **kwargs)
        self._loaded_model_id: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """What changes this scorer's scores: its name, its config (minus device, batching)
        and, for scorers that load ``config.model``, that model's content (`model_content_id`:
        of the model loaded, or of what would load now)."""
        out = {"scorer": self.name, **fingerprint_fields(self.config)}
        if self.loads_model:
            out["model_id"] = self._model_id()
        return out

    def _model_id(self) -> str:
        if self.is_loaded and self._loaded_model_id is not None:
            return self._loaded_model_id
        return model_content_id(self.config.model, self.config.revision)

    def _note_model_id(self) -> None:
        """Record the content id of the model about to load (`_load` calls it first)."""
        self._loaded_model_id = model_content_id(self.config.model, self.config.revision)

    def reset(self) -> None:
        """Forget per-video caches (the similarity scorer's image embeddings), so the next
        question pays for everything again (benchmarks)."""

    @abstractmethod
    def score(
        self, candidates: Candidates, question: str, options: Sequence[str] = ()
    ) -> ScoreCurve:
        """Score every candidate of ``candidates`` for ``question``.

        Raises:
            ScoringError: the question's candidates could not be scored (the message says why).
            ValueError: inputs this scorer cannot take (e.g. more candidates than it scores).
        """


@dataclass
class SelectorScorerConfig:
    """The trained frame selector as a scorer.

    Args:
        model: the selector (Hub repo id or local directory saved by ``framesel model``).
        revision: Hub revision (pin one for reproducible numbers).
        dtype: ``float32`` (CPU), ``bfloat16`` or ``float16`` (GPU).
        trust_remote_code: load the selector's shipped code (needed only where framesel's
            ``fsmodel`` is not installed, which never happens here: it is passed explicitly).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (not in the fingerprint).
    """

    model: str = ""
    revision: str | None = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    device: str = field(default="cpu", metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError(
                "scorers.selector.model is required: the trained selector's directory or Hub "
                "repo id (CLI: --selector)"
            )
        self.model = _check_model("scorers.selector", self.model)
        _check_dtype("scorers.selector", self.dtype)


class SelectorScorer(Scorer):
    """`fsmodel`'s FrameSelectorModel: one LLM pass scores all n candidates (sigmoid scores).

    Loaded through ``AutoModel`` (any import of fsmodel registers the selector's Auto classes
    once transformers loads them), so fslabels depends on the model's public interface only: its processor builds
    the inputs from frames, question and options, and ``forward`` returns ``scores``.
    """

    name = "selector"
    config_class = SelectorScorerConfig
    config: SelectorScorerConfig
    loads_model = True

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.model: Any = None
        self.processor: Any = None
        # (frames array, its frozen-tower features): the questions about one video (one decoded
        # candidates object) share one vision pass. The array is held, so its identity is safe.
        self._features: tuple[Any, Any] | None = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoProcessor

        cfg = self.config
        self._note_model_id()
        hub = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
        self.model = (
            AutoModel.from_pretrained(cfg.model, dtype=getattr(torch, cfg.dtype), **hub)
            .to(cfg.device)
            .eval()
        )
        if not hasattr(self.model.config, "num_candidates"):
            raise ValueError(
                f"{cfg.model} is a {type(self.model).__name__}, not a framesel frame selector "
                "(its config has no num_candidates)"
            )
        self.processor = AutoProcessor.from_pretrained(cfg.model, **hub)

    def _unload(self) -> None:
        self.model = self.processor = None
        self._features = None

    @property
    def max_candidates(self) -> int:
        """The most candidates the loaded selector's score head scores."""
        self.load()
        return int(self.model.config.num_candidates)

    def score(
        self, candidates: Candidates, question: str, options: Sequence[str] = ()
    ) -> ScoreCurve:
        import torch

        self.load()
        n = len(candidates)
        if n > self.max_candidates:
            raise ValueError(
                f"the selector {self.config.model} scores at most {self.max_candidates} "
                f"candidates, got {n}; use num_candidates <= {self.max_candidates}"
            )
        start = time.perf_counter()
        stamps = None
        if getattr(self.processor, "timestamp_format", None):
            stamps = np.asarray(candidates.timestamps, np.float64)
        device = self.model.device
        option_list = list(options) or None
        with torch.inference_mode():
            if self._features is None or self._features[0] is not candidates.frames:
                pixels = self.processor(
                    frames=candidates.frames,
                    question=question,
                    options=option_list,
                    timestamps=stamps,
                    return_tensors="pt",
                )["pixel_values"]
                self._features = (candidates.frames, self.model.encode_frames(pixels.to(device)))
            text = self.processor.text_inputs(
                [question], n, [option_list], [stamps], return_tensors="pt"
            )
            out = self.model(
                input_ids=text["input_ids"].to(device),
                attention_mask=text["attention_mask"].to(device),
                frame_features=self._features[1],
            )
        scores = out.scores[0].float().cpu().numpy().astype(np.float64)
        cost = Cost(
            score_seconds=time.perf_counter() - start,
            model_calls=1,
            prompt_tokens=int(text["attention_mask"].sum()),
        )
        return ScoreCurve(scores, cost)


@dataclass
class SimilarityScorerConfig:
    """Text–image similarity (SigLIP or CLIP) as a scorer.

    Args:
        model: a checkpoint with ``get_image_features`` and ``get_text_features`` (``SiglipModel``,
            ``CLIPModel`` ...) and a tokenizer.
        revision: Hub revision.
        dtype: ``float32`` (CPU), ``bfloat16`` or ``float16`` (GPU).
        with_options: append the answer options to the question's text.
        device: not in the fingerprint.
        batch_size: frames per image-encoder call (not in the fingerprint).
    """

    model: str = "google/siglip-so400m-patch14-384"
    revision: str | None = None
    dtype: str = "float32"
    with_options: bool = False
    device: str = field(default="cpu", metadata=NOT_IN_FINGERPRINT)
    batch_size: int = field(default=32, metadata=NOT_IN_FINGERPRINT)

    def __post_init__(self) -> None:
        self.model = _check_model("scorers.similarity", self.model)
        _check_dtype("scorers.similarity", self.dtype)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(
                f"scorers.similarity.batch_size must be an integer, got {self.batch_size!r}"
            )
        if self.batch_size < 1:
            raise ValueError(f"scorers.similarity.batch_size must be >= 1, got {self.batch_size}")


# SigLIP was trained on text padded to its full length; padding shorter changes its embeddings.
_PAD_TO_MAX_LENGTH = ("siglip", "siglip2")


class SimilarityScorer(Scorer):
    """Cosine similarity between each frame's image embedding and the question's text
    embedding. The image embeddings of a video's candidates are computed once and reused for
    all its questions (the first question's cost includes them)."""

    name = "similarity"
    config_class = SimilarityScorerConfig
    config: SimilarityScorerConfig
    loads_model = True

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.model: Any = None
        self.image_processor: Any = None
        self.tokenizer: Any = None
        self._cached: tuple[Any, np.ndarray] | None = None

    def _load(self) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        cfg = self.config
        self._note_model_id()
        revision = cfg.revision
        self.model = (
            AutoModel.from_pretrained(cfg.model, revision=revision, dtype=getattr(torch, cfg.dtype))
            .to(cfg.device)
            .eval()
        )
        missing = [
            m for m in ("get_image_features", "get_text_features") if not hasattr(self.model, m)
        ]
        if missing:
            raise ValueError(
                f"{cfg.model} is a {type(self.model).__name__}, which has no {' / '.join(missing)}; "
                "the similarity scorer needs a dual encoder such as SigLIP or CLIP"
            )
        # The PIL backend needs no torchvision (absent on CPU machines here).
        self.image_processor = AutoImageProcessor.from_pretrained(
            cfg.model, revision=revision, backend="pil"
        )
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=revision)
        self._cached = None

    def _unload(self) -> None:
        self.model = self.image_processor = self.tokenizer = None
        self._cached = None

    def reset(self) -> None:
        self._cached = None

    def _text(self, question: str, options: Sequence[str]) -> str:
        if self.config.with_options and options:
            return question.strip() + " " + " ".join(o.strip() for o in options)
        return question.strip()

    def _image_embeddings(self, candidates: Candidates) -> tuple[np.ndarray, int]:
        import torch

        key = (
            candidates.video,
            stable_hash([int(i) for i in candidates.indices]),
            tuple(candidates.frames.shape),
        )
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1], 0
        size = self.config.batch_size
        parts, calls = [], 0
        for first in range(0, len(candidates.frames), size):
            chunk = list(candidates.frames[first : first + size])
            pixels = self.image_processor(images=chunk, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = self.model.get_image_features(
                    pixel_values=pixels.to(self.model.device, self.model.dtype)
                )
            parts.append(_embedding(out))
            calls += 1
        embeddings = _normalise(torch.cat(parts))
        self._cached = (key, embeddings)
        return embeddings, calls

    def score(
        self, candidates: Candidates, question: str, options: Sequence[str] = ()
    ) -> ScoreCurve:
        import torch

        self.load()
        start = time.perf_counter()
        images, calls = self._image_embeddings(candidates)
        config = getattr(self.model.config, "text_config", self.model.config)
        max_length = int(getattr(config, "max_position_embeddings", 64))
        padding: Any = True
        if getattr(self.model.config, "model_type", "") in _PAD_TO_MAX_LENGTH:
            padding = "max_length"
        tokens = self.tokenizer(
            [self._text(question, options)],
            padding=padding,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(self.model.device)
        with torch.inference_mode():
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask")
            )
        text = _normalise(_embedding(out))
        scores = (images @ text[0]).astype(np.float64)
        cost = Cost(
            score_seconds=time.perf_counter() - start,
            model_calls=calls + 1,
            prompt_tokens=int(tokens["input_ids"].numel()),
        )
        return ScoreCurve(scores, cost)


def _embedding(out: Any) -> Any:
    # transformers 5 returns a ModelOutput whose pooler_output is the (projected) embedding;
    # older versions returned the tensor itself.
    return getattr(out, "pooler_output", out).float()


def _normalise(tensor: Any) -> np.ndarray:
    array = tensor.cpu().numpy().astype(np.float64)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


@dataclass
class MLLMScorerConfig:
    """The spatial labeler (`fslabels.spatial.SpatialLabeler`) as an online scorer.

    Args:
        backend: a labelling backend (``transformers``, ``vllm``, ``openai``).
        model: the M-LLM (Hub id, local directory or served name).
        backend_options: the backend's config fields (``dtype``, ``device``, ``batch_size`` ...).
        cot: explain, then answer True/False (the paper's labels); False (default): answer
            directly with one token, the affordable mode at inference time.
        max_new_tokens: the explanation's budget (``cot`` only).
        top_logprobs, force_top_logprobs: alternatives read at the answer slot.
    """

    backend: str = "transformers"
    model: str = "Qwen/Qwen2-VL-7B-Instruct"
    backend_options: dict[str, Any] = field(default_factory=dict)
    cot: bool = False
    max_new_tokens: int = 64
    top_logprobs: int = 20
    force_top_logprobs: int = 20

    def __post_init__(self) -> None:
        self.model = _check_model("scorers.mllm", self.model)
        if not isinstance(self.backend_options, Mapping):
            raise ValueError(
                f"scorers.mllm.backend_options must be a mapping, got {self.backend_options!r}"
            )
        self.backend_options = dict(self.backend_options)
        for name in ("max_new_tokens", "top_logprobs", "force_top_logprobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"scorers.mllm.{name} must be an integer >= 1, got {value!r}")


# Backends that load the model's weights in-process (an API backend names a served model).
_LOCAL_BACKENDS = ("transformers", "vllm")


class MLLMScorer(Scorer):
    """Per-frame M-LLM relevance, p(True) / (p(True) + p(False)), from the spatial labeler's
    prompt and parsing (one request per candidate frame). Frames the labeler fails on get the
    lowest score of the curve and are listed in ``failed_positions``; a question whose every
    frame fails raises `ScoringError`."""

    name = "mllm"
    config_class = MLLMScorerConfig
    config: MLLMScorerConfig

    def __init__(self, config: Any = None, backend: Any = None, **kwargs: Any) -> None:
        """``backend``: an already-built backend to use (e.g. one loaded for labelling); it
        must match ``config.backend`` and ``config.model``."""
        from fslabels.backends import get_backend
        from fslabels.spatial import SpatialLabeler

        super().__init__(config, **kwargs)
        cfg = self.config
        if backend is None:
            backend = get_backend(cfg.backend, model=cfg.model, **cfg.backend_options)
        elif backend.name != cfg.backend or str(backend.config.model) != cfg.model:
            raise ValueError(
                f"the given backend is {backend.name} with model {backend.config.model!r}, but "
                f"scorers.mllm names {cfg.backend} with model {cfg.model!r}"
            )
        self.backend = backend
        self.labeler = SpatialLabeler(
            self.backend,
            cot=cfg.cot,
            max_new_tokens=cfg.max_new_tokens,
            top_logprobs=cfg.top_logprobs,
            force_top_logprobs=cfg.force_top_logprobs,
        )

    def fingerprint(self) -> dict[str, Any]:
        # The labeler's settings hold the prompt hash, sampling and the backend's fingerprint;
        # backends that load the model themselves add what the model directory or Hub id holds.
        out = {"scorer": self.name, **self.labeler.settings()}
        if self.config.backend in _LOCAL_BACKENDS:
            revision = self.config.backend_options.get("revision")
            out["model_id"] = model_content_id(self.config.model, revision)
        return out

    def _load(self) -> None:
        self.backend.load()

    def _unload(self) -> None:
        self.backend.unload()

    def score(
        self, candidates: Candidates, question: str, options: Sequence[str] = ()
    ) -> ScoreCurve:
        self.load()
        start = time.perf_counter()
        result = self.labeler.label(candidates.frames, question, list(options) or None)
        seconds = time.perf_counter() - start
        scores = np.asarray(result.scores, np.float64)
        failed = np.flatnonzero(~np.isfinite(scores)).tolist()
        if len(failed) == len(scores):
            first = result.failures[0] if result.failures else None
            why = f"frame {first.position}: {first.error}" if first else "no reason given"
            raise ScoringError(
                f"the M-LLM scored none of the {len(scores)} frames for {question!r}; first "
                f"failure: {why}"
            )
        if failed:
            scores[failed] = np.nanmin(scores)
        cost = Cost(
            score_seconds=seconds,
            model_calls=len(scores) + int(np.sum(result.forced)),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            usd=result.cost,
        )
        return ScoreCurve(scores, cost, failed_positions=failed)


# --- registries -------------------------------------------------------------------------------

SCORERS: dict[str, str] = {
    "selector": "fslabels.evaluation.scorers:SelectorScorer",
    "similarity": "fslabels.evaluation.scorers:SimilarityScorer",
    "mllm": "fslabels.evaluation.scorers:MLLMScorer",
}


def register_scorer(name: str, target: str) -> None:
    """Make ``"module:Class"`` (a `Scorer` subclass) available as scorer ``name``.

    The class is built as ``Class(config)`` with its config (a mapping of its
    ``config_class`` fields, or a ``config_class`` instance) as the first argument, which
    `Scorer.__init__` accepts; keep that signature when overriding ``__init__``.

    Raises:
        ValueError: a malformed target, a name with ``:`` or ``uniform``, or a name taken by
            another target.
    """
    if ":" in name or name == UNIFORM or not name:
        raise ValueError(f"scorer name must be non-empty, without ':', not 'uniform'; got {name!r}")
    register(SCORERS, "scorer", name, target)


def scorer_class(name: str) -> type[Scorer]:
    """The scorer class registered as ``name`` (imports its module).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    return lookup(SCORERS, "scorer", name, Scorer)


def build_scorer(name: str, config: Mapping[str, Any] | Any = None) -> Scorer:
    """An (unloaded) scorer from its name and config fields.

    Raises:
        ValueError: an unknown scorer, or an invalid or unknown config field (the scorer's
            fields are listed).
    """
    cls = scorer_class(name)
    if config is None or isinstance(config, Mapping):
        values = dict(config or {})
        known = [f.name for f in dataclasses.fields(cls.config_class)]
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ValueError(
                f"scorers.{name} has unknown field(s) {unknown}; its fields: {', '.join(known)}"
            )
        # As one mapping, not keywords: a field may share its name with a constructor argument
        # (mllm's ``backend`` field names a backend, its ``backend=`` argument takes one).
        return cls(values)
    return cls(config)
