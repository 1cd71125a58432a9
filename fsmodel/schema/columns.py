"""Schema v1's names: columns, configs, the on-disk layout, `datasets` features, sample ids and
the card metadata every label dataset carries (see `fsmodel.schema`)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

__all__ = [
    "ANSWER",
    "CAPTIONS",
    "CAPTIONS_CONFIG",
    "CAPTION_COLUMNS",
    "DATA_DIR",
    "FRAME_INDICES",
    "HUMAN",
    "LABELS_CONFIG",
    "LABELS_SCHEMA_VERSION",
    "LABEL_COLUMNS",
    "LABEL_META",
    "OPTIONAL_LABEL_COLUMNS",
    "OPTIONS",
    "PER_CANDIDATE_COLUMNS",
    "QUESTION",
    "REVIEW",
    "SAMPLE_ID",
    "SCHEMA_VERSION_KEY",
    "SCORES",
    "SPATIAL",
    "TEMPORAL",
    "TIMESTAMPS",
    "VIDEO",
    "VIDEO_ID",
    "caption_features",
    "card_metadata",
    "label_features",
    "make_sample_id",
]

# Written into each dataset's metadata, like lerobot's CODEBASE_VERSION. It versions the *layout*
# (columns, types, rules); the dataset's own releases are git tags (v1, v2, …) that move
# independently: many label releases share one schema.
LABELS_SCHEMA_VERSION = "v1"

SAMPLE_ID = "sample_id"
VIDEO_ID = "video_id"
VIDEO = "video"
QUESTION = "question"
OPTIONS = "options"
ANSWER = "answer"
FRAME_INDICES = "frame_indices"
TIMESTAMPS = "timestamps"
SPATIAL = "spatial"
TEMPORAL = "temporal"
SCORES = "scores"
LABEL_META = "label_meta"
HUMAN = "human"
REVIEW = "review"
CAPTIONS = "captions"

# The name of the second dataset config, one row per video.
CAPTIONS_CONFIG = "captions"
# The default config: one row per (video, question).
LABELS_CONFIG = "labels"
# On-disk layout of a label dataset (a local dir or a Hub dataset repo): one parquet folder per
# config, declared in the card's YAML so `datasets.load_dataset(dir_or_repo, config)` finds it.
DATA_DIR = "data"
SCHEMA_VERSION_KEY = "framesel_labels_schema"

LABEL_COLUMNS: tuple[str, ...] = (
    SAMPLE_ID,
    VIDEO_ID,
    VIDEO,
    QUESTION,
    OPTIONS,
    ANSWER,
    FRAME_INDICES,
    TIMESTAMPS,
    SPATIAL,
    TEMPORAL,
    SCORES,
)
# Columns a row may leave out; written with a default when missing.
# `human` and `review` are filled by Label Studio review (fslabels.review) on reviewed rows only.
OPTIONAL_LABEL_COLUMNS: dict[str, Any] = {LABEL_META: "{}", HUMAN: [], REVIEW: "{}"}
# Columns holding one value per candidate frame; they must all have the same length n.
PER_CANDIDATE_COLUMNS: tuple[str, ...] = (FRAME_INDICES, TIMESTAMPS, SPATIAL, TEMPORAL, SCORES)
CAPTION_COLUMNS: tuple[str, ...] = (VIDEO_ID, FRAME_INDICES, TIMESTAMPS, CAPTIONS)


def label_features() -> datasets.Features:
    """The `datasets.Features` of the labels config, schema v1, in `LABEL_COLUMNS` order.

    Timestamps are float64 although the scores are float32: presentation times of long videos
    need the precision (float32 spacing is ~1 ms at 3 h and ~8 ms at 24 h, enough to make a
    labelled timestamp differ from the same frame decoded again), and it costs 4 bytes per frame.
    Scores are probabilities whose last float32 digit carries no information.

    Returns:
        Features with explicit types, so every writer produces the same Arrow schema.

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_list(rows, features=label_features())  # doctest: +SKIP
    """
    import datasets

    def per_candidate(dtype: str) -> datasets.List:
        return datasets.List(datasets.Value(dtype))

    return datasets.Features(
        {
            SAMPLE_ID: datasets.Value("string"),
            VIDEO_ID: datasets.Value("string"),
            VIDEO: datasets.Value("string"),
            QUESTION: datasets.Value("string"),
            OPTIONS: datasets.List(datasets.Value("string")),
            ANSWER: datasets.Value("string"),
            FRAME_INDICES: per_candidate("int64"),
            TIMESTAMPS: per_candidate("float64"),
            SPATIAL: per_candidate("float32"),
            TEMPORAL: per_candidate("float32"),
            SCORES: per_candidate("float32"),
            LABEL_META: datasets.Value("string"),
            HUMAN: per_candidate("float32"),
            REVIEW: datasets.Value("string"),
        }
    )


def caption_features() -> datasets.Features:
    """The `datasets.Features` of the ``captions`` config (one row per video), in `CAPTION_COLUMNS` order.

    Returns:
        Features: ``video_id`` string, ``frame_indices`` int64 list, ``timestamps`` float64 list,
        ``captions`` string list.

    Example:
        >>> list(caption_features())
        ['video_id', 'frame_indices', 'timestamps', 'captions']
    """
    import datasets

    return datasets.Features(
        {
            VIDEO_ID: datasets.Value("string"),
            FRAME_INDICES: datasets.List(datasets.Value("int64")),
            TIMESTAMPS: datasets.List(datasets.Value("float64")),
            CAPTIONS: datasets.List(datasets.Value("string")),
        }
    )


def make_sample_id(video_id: str, question: str) -> str:
    """The stable id of a (video, question) pair: 16 hex chars of a SHA-256.

    The hashed text is the JSON array ``[video_id, question]``; JSON quoting means no choice of
    strings can make two different pairs encode alike (a plain separator could appear inside a
    question). Strings are hashed exactly as given: no Unicode normalisation or stripping.
    64 bits make a collision among 400K samples about a 1-in-10^8 event.

    Args:
        video_id: the video's id.
        question: the question text.

    Returns:
        Lower-case hex string of length 16, identical across processes, machines and Python
        versions (unlike `hash`).

    Raises:
        TypeError: if either argument is not a string.

    Example:
        >>> make_sample_id("vid-001", "What is the man holding?")
        '22f2c280e43fdc34'
    """
    if not isinstance(video_id, str) or not isinstance(question, str):
        raise TypeError(
            "make_sample_id needs two strings, got "
            f"video_id={type(video_id).__name__}, question={type(question).__name__}"
        )
    # Pinned separators and ASCII escaping: the encoding must never change with json defaults.
    canonical = json.dumps([video_id, question], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def card_metadata(captions: bool = True) -> dict[str, Any]:
    """The YAML metadata every label dataset's card carries: its configs (so `load_dataset`
    finds the parquet files of each) and the schema version. ``captions=False`` leaves out the
    captions config (a run without temporal labels has none)."""
    configs: list[dict[str, Any]] = [
        {
            "config_name": LABELS_CONFIG,
            "default": True,
            "data_files": [{"split": "train", "path": f"{DATA_DIR}/{LABELS_CONFIG}/*.parquet"}],
        }
    ]
    if captions:
        configs.append(
            {
                "config_name": CAPTIONS_CONFIG,
                "data_files": [
                    {"split": "train", "path": f"{DATA_DIR}/{CAPTIONS_CONFIG}/*.parquet"}
                ],
            }
        )
    return {SCHEMA_VERSION_KEY: LABELS_SCHEMA_VERSION, "configs": configs}
