"""Training data: label rows (schema v1) → samples; their candidate frames, decoded by the one
sampler or read back from a per-video feature cache; batches for both stage objectives.

The frames a selector trains on must be exactly the frames that were labelled. A row stores the
candidates' frame indices; `decode_candidates` re-samples the video with `fsmodel.video` and
refuses to go on (naming the sample) when the sampler's indices differ, e.g. because the video
file changed since labelling or the row was made with another n.

The vision tower is frozen in both paper stages, so its pooled per-frame features depend only on
the video, n and the frame size: `FeatureCache` keeps them on disk, keyed by everything that
changes them (and by nothing else: not the batch size, not the question).

Example:
    >>> samples = load_samples("labels/", video_root="videos/")
    >>> frames = FrameSource(model, processor, cache=FeatureCache("~/.cache/framesel/features"))
    >>> frames.features(samples[0]).shape  # [n, pooled_grid**2, vision_hidden]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fsmodel import schema

if TYPE_CHECKING:
    import torch

    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.processing_frame_selector import FrameSelectorProcessor

__all__ = [
    "CACHE_FORMAT",
    "Batch",
    "CandidateMismatchError",
    "CaptionVideo",
    "FeatureCache",
    "FrameSource",
    "LabelSample",
    "TrainingDataError",
    "caption_prompt",
    "collate_bce",
    "collate_ce",
    "decode_candidates",
    "encode_prompt",
    "load_captions",
    "load_samples",
    "split_by_video",
    "vision_fingerprint",
    "weigh_hard_negatives",
]

# Bump when the cached tensors' meaning changes (pooling, layout), so old entries are not reused.
CACHE_FORMAT = 2
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

logger = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """Training data that cannot be used; the message names the sample (or video) and the cause."""


class CandidateMismatchError(TrainingDataError):
    """The sampler's candidate frames for a video differ from the frames a row was labelled on."""


class _HasCandidates(Protocol):
    name: str
    video: str
    frame_indices: np.ndarray


@dataclass(frozen=True, eq=False)
class LabelSample:
    """One label row, ready for training.

    Attributes:
        sample_id, video_id, question, options, answer: as in the row.
        video: the video file (resolved against the video root).
        frame_indices: ``[n]`` the labelled candidates' frame numbers.
        timestamps: ``[n]`` their presentation times (s).
        labels: ``[n]`` the label scores in [0, 1] (the BCE target): the fused ones, or one
            source's (`load_samples`'s ``target``).
        weights: ``[n]`` per-candidate BCE weights (`weigh_hard_negatives`), or None (all 1).
    """

    sample_id: str
    video_id: str
    video: str
    question: str
    options: tuple[str, ...]
    answer: str
    frame_indices: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None

    @property
    def name(self) -> str:
        """How errors and logs refer to this sample."""
        return f"sample {self.sample_id} (video {self.video_id!r})"

    @property
    def num_candidates(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True, eq=False)
class CaptionVideo:
    """Per-frame captions of one video (the ``captions`` config), for the stage-1 CE.

    Attributes:
        video_id: the video's id.
        video: the video file.
        frame_indices, timestamps: the candidates, as in the video's label rows.
        captions: one caption per candidate (empty strings are skipped).
    """

    video_id: str
    video: str
    frame_indices: np.ndarray
    timestamps: np.ndarray
    captions: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"captions of video {self.video_id!r}"

    @property
    def captioned(self) -> np.ndarray:
        """Positions whose caption is not empty."""
        return np.asarray([i for i, c in enumerate(self.captions) if c.strip()], np.int64)


def is_local(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a local directory rather than a Hub repo id."""
    return Path(source).expanduser().is_dir()


def resolve_video(video: str, video_root: str | os.PathLike | None, name: str) -> str:
    """The file of a row's ``video`` (absolute, or relative to ``video_root``).

    Raises:
        TrainingDataError: a URL (download the videos first), or a relative path without a root.
    """
    if _URL.match(video):
        raise TrainingDataError(
            f"{name}: video {video!r} is a URL; download the videos and set data.video_root"
        )
    path = Path(video).expanduser()
    if path.is_absolute():
        return str(path)
    if video_root is None:
        raise TrainingDataError(
            f"{name}: video {video!r} is a relative path; set data.video_root to the directory "
            "it is relative to"
        )
    return str(Path(video_root).expanduser() / path)


def load_samples(
    source: str | os.PathLike,
    revision: str | None = None,
    video_root: str | os.PathLike | None = None,
    limit: int | None = None,
    check_videos: bool = True,
    target: str = schema.SCORES,
    questions: str | None = None,
) -> list[LabelSample]:
    """Read the ``labels`` config of a label dataset into training samples.

    Args:
        source: a label dataset directory or Hub dataset repo id (schema v1).
        revision: Hub revision (tag, branch, commit).
        video_root: what relative ``video`` paths are relative to (default: ``source`` when it
            is a local directory).
        limit: keep the first ``limit`` rows.
        check_videos: fail now, listing them, when video files are missing.
        target: the column whose scores become `LabelSample.labels`: ``scores`` (fused) or a
            source, ``spatial`` or ``temporal``; rows where that source failed (its values are
            placeholders, ``label_meta["filled"]``) are left out, with a warning.
        questions: a regular expression; keep only the rows whose question it matches
            (``re.search``).

    Returns:
        One `LabelSample` per row, in dataset order.

    Raises:
        ValueError: ``source`` is not a schema v1 label dataset (missing columns).
        fsmodel.schema.SchemaError: rows break schema v1 (each violation names its sample).
        TrainingDataError: rows of different n, URLs, missing video files.

    Example:
        >>> samples = load_samples("tester/labels", revision="v1", video_root="videos")
    """
    configs = _config_names(source, revision)
    if schema.LABELS_CONFIG not in configs:
        raise TrainingDataError(
            f"{source} is not a framesel label dataset of schema {schema.LABELS_SCHEMA_VERSION}: "
            f"it has no {schema.LABELS_CONFIG!r} config (found {configs})"
        )
    ds = schema.load_label_dataset(source, schema.LABELS_CONFIG, revision=revision)
    if limit is not None:
        ds = ds.select(range(min(limit, ds.num_rows)))
    rows = ds.to_list()
    known = set(schema.LABEL_COLUMNS)
    # Later schema versions may add columns; the training contract is the v1 columns.
    schema.check_label_rows([{k: v for k, v in row.items() if k in known} for row in rows])
    if not rows:
        raise TrainingDataError(f"{source}: the label dataset has no rows")
    if questions is not None:
        pattern = re.compile(questions)
        kept = [row for row in rows if pattern.search(row[schema.QUESTION])]
        if not kept:
            raise TrainingDataError(
                f"{source}: no row's question matches data.questions {questions!r} (e.g. "
                f"{rows[0][schema.QUESTION]!r})"
            )
        logger.info(
            "%s: %d of %d rows ask a question matching %r", source, len(kept), len(rows), questions
        )
        rows = kept
    if target != schema.SCORES:
        kept = [row for row in rows if target not in _filled_sources(row)]
        if not kept:
            raise TrainingDataError(f"{source}: no row has {target!r} labels to train on")
        if len(kept) < len(rows):
            logger.warning(
                "%s: %d of %d rows have no %r labels (the source failed for them); "
                "training on the other %d",
                source, len(rows) - len(kept), len(rows), target, len(kept),
            )  # fmt: skip
        rows = kept
    root = video_root if video_root is not None else (source if is_local(source) else None)
    samples = []
    for row in rows:
        sample_id = row[schema.SAMPLE_ID]
        name = f"sample {sample_id} (video {row[schema.VIDEO_ID]!r})"
        samples.append(
            LabelSample(
                sample_id=sample_id,
                video_id=row[schema.VIDEO_ID],
                video=resolve_video(row[schema.VIDEO], root, name),
                question=row[schema.QUESTION],
                options=tuple(row[schema.OPTIONS] or ()),
                answer=row[schema.ANSWER] or "",
                frame_indices=np.asarray(row[schema.FRAME_INDICES], np.int64),
                timestamps=np.asarray(row[schema.TIMESTAMPS], np.float64),
                labels=np.asarray(row[target], np.float32),
            )
        )
    counts = {s.num_candidates for s in samples}
    if len(counts) > 1:
        first = {n: next(s for s in samples if s.num_candidates == n) for n in sorted(counts)}
        shown = ", ".join(f"n={n} ({s.name})" for n, s in first.items())
        raise TrainingDataError(
            f"{source}: every row must have the same number of candidates, got {shown}"
        )
    if check_videos:
        _check_videos(samples)
    return samples


def _filled_sources(row: dict[str, Any]) -> set[str]:
    """The score columns of a row that hold placeholders for a failed source (on any frame),
    as its ``label_meta["filled"]`` records them."""
    try:
        filled = json.loads(row.get(schema.LABEL_META) or "{}").get("filled") or {}
    except (TypeError, ValueError, AttributeError):
        return set()
    return {name for name, spec in filled.items() if spec} if isinstance(filled, dict) else set()


def _check_videos(items: Sequence[LabelSample | CaptionVideo]) -> None:
    missing = [item for item in items if not Path(item.video).is_file()]
    if missing:
        shown = "; ".join(f"{item.name}: {item.video}" for item in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise TrainingDataError(f"{len(missing)} video file(s) missing: {shown}{more}")


def _config_names(source: str | os.PathLike, revision: str | None) -> list[str]:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return list(datasets.get_dataset_config_names(str(source), revision=revision))
    except (DatasetNotFoundError, FileNotFoundError) as err:
        at = f" at revision {revision!r}" if revision else ""
        raise FileNotFoundError(
            f"label dataset {str(source)!r}{at} not found (a local directory or a Hub dataset "
            f"repo id): {err}"
        ) from err


def has_captions(source: str | os.PathLike, revision: str | None = None) -> bool:
    """Whether a label dataset declares the ``captions`` config."""
    return schema.CAPTIONS_CONFIG in _config_names(source, revision)


def load_captions(
    source: str | os.PathLike, samples: Sequence[LabelSample], revision: str | None = None
) -> list[CaptionVideo]:
    """Read the ``captions`` config, restricted to the videos of ``samples``.

    The caption rows' candidates must be the label rows' candidates of the same video (the CE
    trains on those frames); videos without a label row are skipped.

    Raises:
        fsmodel.schema.SchemaError: caption rows that break the schema.
        CandidateMismatchError: a video whose caption and label candidates differ.
    """
    ds = schema.load_label_dataset(source, schema.CAPTIONS_CONFIG, revision=revision)
    rows = ds.to_list()
    schema.check_caption_rows(rows)
    by_video = {s.video_id: s for s in samples}
    videos = []
    for row in rows:
        sample = by_video.get(row[schema.VIDEO_ID])
        if sample is None:
            continue
        indices = np.asarray(row[schema.FRAME_INDICES], np.int64)
        video = CaptionVideo(
            video_id=row[schema.VIDEO_ID],
            video=sample.video,
            frame_indices=indices,
            timestamps=np.asarray(row[schema.TIMESTAMPS], np.float64),
            captions=tuple(row[schema.CAPTIONS]),
        )
        if not np.array_equal(indices, sample.frame_indices):
            raise CandidateMismatchError(
                f"{video.name}: caption candidates {_short(indices)} differ from the label "
                f"candidates of {sample.name} {_short(sample.frame_indices)}"
            )
        if len(video.captioned):
            videos.append(video)
    return videos


def weigh_hard_negatives(samples: Sequence[LabelSample], strength: float) -> list[LabelSample]:
    """Weigh up, in each sample's BCE, the candidates another question of the same video wants
    and this one does not: weight ``1 + strength * max(0, max_other - own)`` per candidate, where
    ``max_other`` is the highest label any other sample of the video (on the same candidates)
    gives it. Plain BCE treats a frame that answers another question like an empty one, so a
    selector may rank it just below the asked frames (any object above none) and spend the rest of
    a budget there; these weights make telling the questions apart part of the objective.

    Args:
        samples: the training samples; their videos' other questions are looked up among them.
        strength: 0 leaves the samples as they are.

    Returns:
        The samples, in order, with `LabelSample.weights` set (None for a video asked once).
    """
    if strength == 0:
        return list(samples)
    by_video: dict[tuple[str, bytes], list[int]] = {}
    for i, sample in enumerate(samples):
        by_video.setdefault((sample.video_id, sample.frame_indices.tobytes()), []).append(i)
    weighed = list(samples)
    for rows in by_video.values():
        if len(rows) < 2:
            continue
        labels = np.stack([samples[i].labels for i in rows])
        for j, i in enumerate(rows):
            other = np.delete(labels, j, axis=0).max(axis=0)
            extra = np.clip(other - labels[j], 0.0, None)
            weighed[i] = replace(samples[i], weights=(1.0 + strength * extra).astype(np.float32))
    return weighed


def split_by_video(
    samples: Sequence[LabelSample], fraction: float, seed: int
) -> tuple[list[LabelSample], list[LabelSample]]:
    """Hold out ``fraction`` of the videos (all their questions), chosen by ``seed``.

    Returns:
        ``(train, held_out)``; ``held_out`` is empty when ``fraction`` is 0.
    """
    if fraction <= 0:
        return list(samples), []
    videos = sorted({s.video_id for s in samples})
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * len(videos)))
    if count >= len(videos):
        raise TrainingDataError(
            f"data.eval_fraction = {fraction} would hold out all {len(videos)} videos"
        )
    held = set(rng.choice(videos, size=count, replace=False).tolist())
    return [s for s in samples if s.video_id not in held], [
        s for s in samples if s.video_id in held
    ]


# --- candidate frames ----------------------------------------------------------------------


def decode_candidates(item: _HasCandidates, size: int, reader: str = "pyav") -> np.ndarray:
    """Decode exactly the labelled candidates of ``item`` with the one sampler.

    Args:
        item: a `LabelSample` or `CaptionVideo`.
        size: short side of the decoded frames (the selector's ``frame_size()``).
        reader: ``fsmodel.video`` reader name.

    Returns:
        ``[n, H, W, 3]`` uint8 RGB frames.

    Raises:
        TrainingDataError: the video cannot be sampled (missing, corrupt), naming the sample.
        CandidateMismatchError: the sampler's frame indices differ from the labelled ones.
    """
    from fsmodel.video import VideoError, sample_candidates

    n = len(item.frame_indices)
    try:
        candidates = sample_candidates(item.video, num_candidates=n, size=size, reader=reader)
    except VideoError as err:
        raise TrainingDataError(f"{item.name}: {err}") from err
    _check_indices(item, candidates.indices)
    return candidates.frames


def _check_indices(item: _HasCandidates, sampled: np.ndarray) -> None:
    if not np.array_equal(sampled, item.frame_indices):
        wrong = np.flatnonzero(sampled != item.frame_indices)
        raise CandidateMismatchError(
            f"{item.name}: the labelled candidates are not the sampler's for {item.video} "
            f"(n={len(item.frame_indices)}): at positions {wrong[:5].tolist()} the label has "
            f"frames {item.frame_indices[wrong[:5]].tolist()}, the sampler "
            f"{np.asarray(sampled)[wrong[:5]].tolist()}; re-label this video or fix the file"
        )


def vision_fingerprint(model: FrameSelectorModel, processor: FrameSelectorProcessor) -> str:
    """A hash of everything except the video that changes the cached features: the vision
    tower's weights, its dtype, the pooling and the image processing."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.vision_model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    image_processing = processor.image_processor.to_dict()
    digest.update(
        json.dumps(
            {
                "format": CACHE_FORMAT,
                "pooled_grid": model.config.pooled_grid,
                "image_processor": image_processing,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    return digest.hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    # bf16 has no numpy dtype: reinterpret the storage as int16 to hash the exact bits.
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


class FeatureCache:
    """Pooled frame features of a frozen vision tower, one safetensors file per video and n.

    Keys are SHA-256 hashes of the vision fingerprint (`vision_fingerprint`), n, the frame
    size, the reader and the video file's absolute path, size and mtime: a re-encoded video or
    other weights get new entries, and nothing else (batch size, question, stage) changes them.
    Writes go to a temporary file renamed into place, so concurrent processes (accelerate /
    torchrun ranks) and interrupted runs never leave a torn entry.

    Args:
        root: the cache directory (created on first write).

    Example:
        >>> cache = FeatureCache("/tmp/features")
        >>> key = cache.key("clip.mp4", fingerprint, n=128, size=384, reader="pyav")
        >>> cache.get(key) is None
        True
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def key(self, video: str, fingerprint: str, n: int, size: int, reader: str) -> str:
        """The entry key of ``video``'s n candidates (see the class docstring)."""
        path = Path(video).resolve()
        stat = path.stat()
        parts = {
            "format": CACHE_FORMAT,
            "vision": fingerprint,
            "n": int(n),
            "size": int(size),
            "reader": reader,
            "video": str(path),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, np.ndarray] | None:
        """The cached ``(features, frame_indices)``, or None."""
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        entry = load_file(path)
        return entry["features"], entry["frame_indices"].numpy()

    def put(
        self,
        key: str,
        features: torch.Tensor,
        frame_indices: np.ndarray,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Store ``features`` of the candidates ``frame_indices`` under ``key`` (atomically)."""
        import torch
        from safetensors.torch import save_file

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tensors = {
            "features": features.detach().cpu().contiguous(),
            # Stored so a hit is checked against a row's labelled candidates like a decode is.
            "frame_indices": torch.as_tensor(np.asarray(frame_indices, np.int64)),
        }
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)


@dataclass
class FrameSource:
    """Candidate frames of samples for a selector: pixel values (decoded by the one sampler and
    preprocessed by the selector's processor), or the frozen vision tower's pooled features
    (from a `FeatureCache` when given, computed and stored on a miss).

    Args:
        model: the selector (its vision tower encodes features).
        processor: its processor (image preprocessing, frame size).
        cache: the feature cache, or None to compute features every time.
        reader: ``fsmodel.video`` reader name.
        memory: decoded videos' pixel values kept in memory (least recently used first out).
    """

    model: FrameSelectorModel
    processor: FrameSelectorProcessor
    cache: FeatureCache | None = None
    reader: str = "pyav"
    memory: int = 0
    _fingerprint: str | None = field(default=None, init=False, repr=False)
    _pixels: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)

    @property
    def frame_size(self) -> int:
        return self.model.frame_size(self.processor)

    def pixel_values(self, item: _HasCandidates) -> torch.Tensor:
        """``[n, 3, H, W]`` float pixel values of ``item``'s labelled candidates."""
        memo = (item.video, len(item.frame_indices))
        if memo in self._pixels:
            self._pixels.move_to_end(memo)
            return self._pixels[memo]
        frames = decode_candidates(item, self.frame_size, self.reader)
        # The processor's own image path, so training sees what select_frames feeds the model.
        pixels = self.processor(
            frames=frames, question="frames", timestamps=item.timestamps, return_tensors="pt"
        )
        values = pixels["pixel_values"][0]
        if self.memory:
            self._pixels[memo] = values
            while len(self._pixels) > self.memory:
                self._pixels.popitem(last=False)
        return values

    def features(self, item: _HasCandidates) -> torch.Tensor:
        """``[n, pooled_grid**2, vision_hidden]`` pooled features of ``item``'s candidates."""
        import torch

        key = None
        if self.cache is not None:
            if self._fingerprint is None:
                self._fingerprint = vision_fingerprint(self.model, self.processor)
            n = len(item.frame_indices)
            key = self.cache.key(item.video, self._fingerprint, n, self.frame_size, self.reader)
            cached = self.cache.get(key)
            if cached is not None:
                features, indices = cached
                _check_indices(item, indices)
                return features
        pixels = self.pixel_values(item)
        was_training = self.model.vision_model.training
        self.model.vision_model.eval()
        try:
            with torch.no_grad():
                device = self.model.vision_model.device
                features = self.model.encode_frames(pixels[None].to(device))[0].cpu()
        finally:
            self.model.vision_model.train(was_training)
        if self.cache is not None and key is not None:
            # decode_candidates checked that these are the row's frames.
            self.cache.put(key, features, item.frame_indices, meta={"video": str(item.video)})
        return features


# --- text and batches ----------------------------------------------------------------------


def encode_prompt(
    processor: FrameSelectorProcessor,
    question: str,
    options: Sequence[str] | None,
    timestamps: Sequence[float] | None,
    n: int,
) -> list[int]:
    """The token ids of one row of the selector's prompt (ending in the score query), exactly
    as the processor builds them, without touching any pixels (the cached-feature path has none).
    """
    # The processor's own row builder, so both paths share one layout; it is private because
    # the processor's public call also preprocesses images, which the cache path skips.
    stamps = timestamps if processor.timestamp_format is not None else None
    return processor._row_ids(question, list(options) if options else None, stamps, n)


def caption_prompt(position: int, n: int) -> str:
    """The visual-instruction prompt asking for candidate ``position``'s caption (1-based in
    the text, as people count frames)."""
    return f"Describe frame {position + 1} of the {n} frames."


@dataclass
class Batch:
    """One micro-batch of one task.

    Attributes:
        task: ``"bce"`` (importance scores) or ``"ce"`` (visual-instruction captions).
        input_ids, attention_mask: ``[B, L]``, left-padded.
        labels: ``[B, n]`` float targets (bce) or ``[B, L]`` token targets, -100 ignored (ce).
        label_weights: ``[B, n]`` per-candidate BCE weights, or None (bce without weights, ce).
        frame_features: ``[B, n, g*g, D]`` cached features, or
        pixel_values: ``[B, n, 3, H, W]``.
        items: the samples (bce) or caption videos (ce) of the rows.
    """

    task: str
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    frame_features: torch.Tensor | None
    pixel_values: torch.Tensor | None
    items: list[Any]
    label_weights: torch.Tensor | None = None

    def inputs(self) -> dict[str, Any]:
        """Keyword arguments of the training objective."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "labels": self.labels,
            "label_weights": self.label_weights,
            "frame_features": self.frame_features,
            "pixel_values": self.pixel_values,
        }


def _pad_id(processor: FrameSelectorProcessor) -> int:
    tokenizer = processor.tokenizer
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id) if tokenizer.eos_token_id is not None else 0


def _left_pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    import torch

    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, length - len(row) :] = torch.as_tensor(row, dtype=torch.long)
    return out


def _frames(source: FrameSource, items: Iterable[Any], use_features: bool) -> dict[str, Any]:
    import torch

    items = list(items)
    if use_features:
        return {
            "frame_features": torch.stack([source.features(i) for i in items]),
            "pixel_values": None,
        }
    return {
        "frame_features": None,
        "pixel_values": torch.stack([source.pixel_values(i) for i in items]),
    }


def collate_bce(samples: Sequence[LabelSample], source: FrameSource, use_features: bool) -> Batch:
    """A BCE batch: the selector's prompt per sample, its frames, its label scores."""
    import torch

    processor = source.processor
    rows = [
        encode_prompt(processor, s.question, s.options, s.timestamps, s.num_candidates)
        for s in samples
    ]
    input_ids = _left_pad(rows, _pad_id(processor))
    attention_mask = _left_pad([[1] * len(r) for r in rows], 0)
    labels = torch.as_tensor(np.stack([s.labels for s in samples]), dtype=torch.float32)
    weights = None
    if any(s.weights is not None for s in samples):
        weights = torch.as_tensor(
            np.stack([s.weights if s.weights is not None else np.ones_like(s.labels)
                      for s in samples]),
            dtype=torch.float32,
        )  # fmt: skip
    frames = _frames(source, samples, use_features)
    return Batch(
        "bce", input_ids, attention_mask, labels, items=list(samples), label_weights=weights,
        **frames,
    )  # fmt: skip


def collate_ce(
    examples: Sequence[tuple[CaptionVideo, int]], source: FrameSource, use_features: bool
) -> Batch:
    """A visual-instruction CE batch: the selector's prompt with the score query replaced by the
    answer, "Describe frame i" → candidate i's caption; only the answer tokens are targets."""
    processor = source.processor
    tokenizer = processor.tokenizer
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows, targets = [], []
    for video, position in examples:
        n = len(video.frame_indices)
        prompt = encode_prompt(processor, caption_prompt(position, n), None, video.timestamps, n)[
            :-1
        ]  # drop the score query: the LLM answers in text here
        answer = list(
            tokenizer(video.captions[position].strip(), add_special_tokens=False)["input_ids"]
        )
        answer.append(end)
        rows.append(prompt + answer)
        targets.append([-100] * len(prompt) + answer)
    input_ids = _left_pad(rows, _pad_id(processor))
    attention_mask = _left_pad([[1] * len(r) for r in rows], 0)
    labels = _left_pad(targets, -100)
    videos = [video for video, _ in examples]
    frames = _frames(source, videos, use_features)
    return Batch("ce", input_ids, attention_mask, labels, items=videos, **frames)


def _short(values: np.ndarray, count: int = 6) -> str:
    shown = ", ".join(str(int(v)) for v in values[:count])
    return f"[{shown}{', ...' if len(values) > count else ''}]"
