"""The label dataset contract, schema v1: column names, `datasets` features and validators.

One row of the labels config is one (video, question) pair with ``n`` candidate frames::

    sample_id      str          make_sample_id(video_id, question)
    video_id       str
    video          str          path relative to the video root, or a URL
    question       str          non-empty
    options        list[str]    may be empty (open-ended questions)
    answer         str          may be empty
    frame_indices  n × int64    decoded frame numbers, >= 0, non-decreasing
    timestamps     n × float64  presentation times in seconds, >= 0, non-decreasing
    spatial        n × float32  per-frame M-LLM relevance, in [0, 1]
    temporal       n × float32  caption-based LLM selection, in [0, 1]
    scores         n × float32  the fused label, in [0, 1]
    label_meta     str          optional: a JSON object saying how the row was labelled (which
                                sources were used, which failed and why); "{}" when absent
    human          n × float32  optional: a reviewer's per-candidate labels in [0, 1] (1 = the
                                reviewer marked the frame relevant); [] when not reviewed
    review         str          optional: a JSON object of review metadata (reviewer, time,
                                verdict, comment, project); "{}" when not reviewed

The ``captions`` config holds one row per video: ``video_id``, ``frame_indices``, ``timestamps``
and ``captions`` (n strings).

Everything that writes or reads label datasets (fslabels, training, review) takes the column names
from here, so a rename is one edit. ``datasets`` is imported inside the functions that need it:
importing this module must stay cheap for projects that only load a selector.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

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
    "SchemaError",
    "SchemaViolation",
    "caption_features",
    "card_metadata",
    "check_caption_rows",
    "check_label_rows",
    "label_features",
    "load_label_dataset",
    "make_sample_id",
    "save_label_dataset",
    "validate_caption_row",
    "validate_caption_rows",
    "validate_label_row",
    "validate_label_rows",
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

_UNIT_INTERVAL_COLUMNS = (SPATIAL, TEMPORAL, SCORES)
# How many offending elements one message lists before it only gives the count.
_MAX_SHOWN = 3
# How many violations SchemaError prints before "... and N more".
_MAX_LINES = 20
_MISSING_SAMPLE_ID = "<missing sample_id>"
_INVALID_SAMPLE_ID = "<invalid sample_id>"
_MISSING_VIDEO_ID = "<missing video_id>"
_INVALID_VIDEO_ID = "<invalid video_id>"


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


@dataclass(frozen=True)
class SchemaViolation:
    """One broken rule in one row.

    Attributes:
        sample_id: the row's key — its ``sample_id`` for label rows, its ``video_id`` for caption
            rows — or ``"<missing sample_id>"`` / ``"<missing video_id>"`` when absent.
        column: the column that breaks the rule.
        message: the offending value and the rule, e.g. ``"spatial[17] = 1.3 is outside [0, 1]"``.
        row: the row's position when validated as part of many rows, else None.
    """

    sample_id: str
    column: str
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = (
            f"row {self.row} [{self.sample_id}]" if self.row is not None else f"[{self.sample_id}]"
        )
        return f"{where} {self.column}: {self.message}"


class SchemaError(ValueError):
    """Rows break the label dataset schema; `violations` lists every broken rule.

    ``str(err)`` shows the first 20 violations, then ``... and N more``.

    Args:
        violations: the violations found (at least one).
        what: what was validated, for the headline (e.g. ``"label rows"``).

    Example:
        >>> try:
        ...     check_label_rows([{"question": ""}])
        ... except SchemaError as err:
        ...     print(len(err.violations) > 0)
        True
    """

    def __init__(self, violations: Iterable[SchemaViolation], what: str = "rows") -> None:
        self.violations: tuple[SchemaViolation, ...] = tuple(violations)
        self.what = what
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.violations)
        noun = "violation" if n == 1 else "violations"
        lines = [f"{n} schema {LABELS_SCHEMA_VERSION} {noun} in {self.what}:"]
        lines += [f"  {v}" for v in self.violations[:_MAX_LINES]]
        if n > _MAX_LINES:
            lines.append(f"  ... and {n - _MAX_LINES} more")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce re-calls __init__ with the rendered string; keep the violations so
        # the error survives multiprocessing (datasets.map with num_proc).
        return (type(self), (self.violations, self.what))


def validate_label_row(
    row: Mapping[str, Any], num_candidates: int | None = None
) -> list[SchemaViolation]:
    """Every schema v1 violation of one label row (an empty list if the row is valid).

    Per-candidate columns may be lists, tuples or 1-D numpy arrays. Checks: all columns present
    and none unknown; string columns are strings, ``question``, ``video_id`` and ``video``
    non-empty; ``options`` a list of strings; per-candidate columns 1-D numeric (integers for
    ``frame_indices``), non-empty, of one common length (``num_candidates`` when given), finite;
    ``frame_indices`` and ``timestamps`` >= 0 and non-decreasing (short videos repeat frames);
    ``spatial``, ``temporal``, ``scores`` in [0, 1]; ``sample_id == make_sample_id(video_id,
    question)``.

    Args:
        row: one row, a mapping from column name to value.
        num_candidates: the expected n, or None to only require equal lengths.

    Returns:
        The violations in schema column order, each naming the row's sample_id.

    Raises:
        TypeError: if `row` is not a mapping.
        ValueError: if `num_candidates` is not a positive integer.

    Example:
        >>> row = {**good_row, "spatial": [0.1, 1.3]}  # doctest: +SKIP
        >>> [str(v) for v in validate_label_row(row)]  # doctest: +SKIP
        ['[22f2c280e43fdc34] spatial: spatial[1] = 1.3 is outside [0, 1]']
    """
    return _validate_label_row(row, _check_num_candidates(num_candidates), None)


def validate_label_rows(
    rows: Iterable[Mapping[str, Any]], num_candidates: int | None = None
) -> list[SchemaViolation]:
    """Every schema v1 violation of many label rows, including sample_ids used more than once.

    Args:
        rows: label rows, e.g. a list of dicts or a `datasets.Dataset` (iterated once).
        num_candidates: the expected n for every row, or None to allow rows to differ.

    Returns:
        The violations, row by row, each with its `row` position; duplicate sample_ids come last.

    Raises:
        TypeError: if a row is not a mapping.
        ValueError: if `num_candidates` is not a positive integer.

    Example:
        >>> for violation in validate_label_rows([good_row, good_row]):  # doctest: +SKIP
        ...     print(violation)
        row 1 [22f2c280e43fdc34] sample_id: sample_id = '22f2c280e43fdc34' appears in 2 rows (0, 1); labels hold one row per (video_id, question) pair
    """
    n = _check_num_candidates(num_candidates)
    violations: list[SchemaViolation] = []
    positions: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        violations += _validate_label_row(row, n, i)
        sample_id = row.get(SAMPLE_ID)
        if isinstance(sample_id, str):
            positions.setdefault(str(sample_id), []).append(i)
    violations += _duplicates(
        positions, SAMPLE_ID, "labels hold one row per (video_id, question) pair"
    )
    return violations


def check_label_rows(rows: Iterable[Mapping[str, Any]], num_candidates: int | None = None) -> None:
    """Raise if any label row breaks schema v1.

    Args:
        rows: label rows (see `validate_label_rows`).
        num_candidates: the expected n, or None.

    Raises:
        SchemaError: listing every violation.

    Example:
        >>> check_label_rows(dataset, num_candidates=128)  # doctest: +SKIP
    """
    violations = validate_label_rows(rows, num_candidates)
    if violations:
        raise SchemaError(violations, what="label rows")


def validate_caption_row(
    row: Mapping[str, Any], num_candidates: int | None = None
) -> list[SchemaViolation]:
    """Every violation of one ``captions`` config row (an empty list if the row is valid).

    Checks: the four columns present and none unknown; ``video_id`` a non-empty string;
    ``frame_indices`` and ``timestamps`` as in label rows; ``captions`` a list of strings (empty
    strings allowed: a captioner may return nothing); all three lists of one common length
    (``num_candidates`` when given).

    Args:
        row: one caption row.
        num_candidates: the expected n, or None to only require equal lengths.

    Returns:
        The violations, keyed by the row's video_id (in the `sample_id` field).

    Raises:
        TypeError: if `row` is not a mapping.
        ValueError: if `num_candidates` is not a positive integer.

    Example:
        >>> validate_caption_row(
        ...     {"video_id": "v", "frame_indices": [0, 5], "timestamps": [0.0, 0.2], "captions": ["a", "b"]}
        ... )
        []
    """
    return _validate_caption_row(row, _check_num_candidates(num_candidates), None)


def validate_caption_rows(
    rows: Iterable[Mapping[str, Any]], num_candidates: int | None = None
) -> list[SchemaViolation]:
    """Every violation of many caption rows, including video_ids used more than once.

    Args:
        rows: caption rows (iterated once).
        num_candidates: the expected n, or None.

    Returns:
        The violations, row by row; duplicate video_ids come last.

    Raises:
        TypeError: if a row is not a mapping.
        ValueError: if `num_candidates` is not a positive integer.

    Example:
        >>> validate_caption_rows(caption_dataset, num_candidates=128)  # doctest: +SKIP
        []
    """
    n = _check_num_candidates(num_candidates)
    violations: list[SchemaViolation] = []
    positions: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        violations += _validate_caption_row(row, n, i)
        video_id = row.get(VIDEO_ID)
        if isinstance(video_id, str):
            positions.setdefault(str(video_id), []).append(i)
    violations += _duplicates(positions, VIDEO_ID, "captions are keyed by video_id")
    return violations


def check_caption_rows(
    rows: Iterable[Mapping[str, Any]], num_candidates: int | None = None
) -> None:
    """Raise if any caption row breaks the ``captions`` config schema.

    Args:
        rows: caption rows.
        num_candidates: the expected n, or None.

    Raises:
        SchemaError: listing every violation.

    Example:
        >>> check_caption_rows(caption_dataset)  # doctest: +SKIP
    """
    violations = validate_caption_rows(rows, num_candidates)
    if violations:
        raise SchemaError(violations, what="caption rows")


# --------------------------------------------------------------------------------------------
# Implementation. Each checker appends to a shared `_Report`; numpy does the per-element work so
# a 128-candidate row costs a few array operations, not 128 Python-level comparisons.


class _Report:
    def __init__(self, key: str, row: int | None, columns: tuple[str, ...]) -> None:
        self.key = key
        self.row = row
        self.columns = columns
        self.violations: list[SchemaViolation] = []

    def add(self, column: str, message: str) -> None:
        self.violations.append(SchemaViolation(self.key, column, message, self.row))

    def sorted(self) -> list[SchemaViolation]:
        """The violations in schema column order (unknown columns last), checks in run order."""
        if len(self.violations) < 2:  # the common case, kept cheap
            return self.violations
        rank = {column: i for i, column in enumerate(self.columns)}
        return sorted(self.violations, key=lambda v: rank.get(v.column, len(rank)))


def _check_num_candidates(num_candidates: int | None) -> int | None:
    if num_candidates is None:
        return None
    if (
        isinstance(num_candidates, bool)
        or not isinstance(num_candidates, (int, np.integer))
        or num_candidates < 1
    ):
        raise ValueError(
            f"num_candidates must be a positive integer or None, got {num_candidates!r}"
        )
    return int(num_candidates)


def _row_key(row: Mapping[str, Any], column: str, missing: str, invalid: str) -> str:
    if column not in row:
        return missing
    value = row[column]
    # str() turns numpy's np.str_ into a plain str so reprs read cleanly.
    return str(value) if isinstance(value, str) and value else invalid


def _validate_label_row(
    row: Mapping[str, Any], num_candidates: int | None, index: int | None
) -> list[SchemaViolation]:
    if not isinstance(row, Mapping):
        raise TypeError(f"a label row must be a mapping, got {type(row).__name__}")
    report = _Report(
        _row_key(row, SAMPLE_ID, _MISSING_SAMPLE_ID, _INVALID_SAMPLE_ID), index, LABEL_COLUMNS
    )
    _check_columns(report, row, LABEL_COLUMNS, optional=tuple(OPTIONAL_LABEL_COLUMNS))
    _check_json_object(report, row, LABEL_META)
    _check_json_object(report, row, REVIEW)

    strings = {
        column: _check_string(report, row, column, non_empty=column != ANSWER)
        for column in (SAMPLE_ID, VIDEO_ID, VIDEO, QUESTION, ANSWER)
    }
    _check_string_list(report, row, OPTIONS)

    arrays = {
        FRAME_INDICES: _check_numbers(report, row, FRAME_INDICES, integers=True),
        TIMESTAMPS: _check_numbers(report, row, TIMESTAMPS, integers=False),
    }
    for column in _UNIT_INTERVAL_COLUMNS:
        arrays[column] = _check_numbers(report, row, column, integers=False)
    _check_lengths(
        report, {c: None if a is None else len(a) for c, a in arrays.items()}, num_candidates
    )

    _check_time_axis(report, arrays[FRAME_INDICES], arrays[TIMESTAMPS])
    human = _check_numbers(report, row, HUMAN, integers=False) if HUMAN in row else None
    if human is not None and human.size:  # [] = not reviewed; otherwise one value per candidate
        n = next((len(a) for a in arrays.values() if a is not None), None)
        if n is not None and len(human) != n:
            report.add(
                HUMAN, f"{HUMAN} has {len(human)} values, expected {n} (or [] if unreviewed)"
            )
        arrays[HUMAN] = human
    for column in (*_UNIT_INTERVAL_COLUMNS, HUMAN):
        values = arrays.get(column)
        if values is not None:
            finite = _check_finite(report, column, values)
            # Non-finite values were reported just above; don't call inf "outside [0, 1]" too.
            _flag(report, column, values, finite & ((values < 0) | (values > 1)), "outside [0, 1]")

    sample_id, video_id, question = strings[SAMPLE_ID], strings[VIDEO_ID], strings[QUESTION]
    if sample_id is not None and video_id is not None and question is not None:
        expected = make_sample_id(video_id, question)
        if sample_id != expected:
            report.add(
                SAMPLE_ID,
                f"sample_id = {sample_id!r} is not make_sample_id(video_id, question) = {expected!r}",
            )
    return report.sorted()


def _validate_caption_row(
    row: Mapping[str, Any], num_candidates: int | None, index: int | None
) -> list[SchemaViolation]:
    if not isinstance(row, Mapping):
        raise TypeError(f"a caption row must be a mapping, got {type(row).__name__}")
    report = _Report(
        _row_key(row, VIDEO_ID, _MISSING_VIDEO_ID, _INVALID_VIDEO_ID), index, CAPTION_COLUMNS
    )
    _check_columns(report, row, CAPTION_COLUMNS)
    _check_string(report, row, VIDEO_ID, non_empty=True)
    frame_indices = _check_numbers(report, row, FRAME_INDICES, integers=True)
    timestamps = _check_numbers(report, row, TIMESTAMPS, integers=False)
    captions = _check_string_list(report, row, CAPTIONS)
    lengths = {
        FRAME_INDICES: None if frame_indices is None else len(frame_indices),
        TIMESTAMPS: None if timestamps is None else len(timestamps),
        CAPTIONS: captions,
    }
    _check_lengths(report, lengths, num_candidates)
    _check_time_axis(report, frame_indices, timestamps)
    return report.sorted()


def _check_columns(
    report: _Report,
    row: Mapping[str, Any],
    expected: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> None:
    for column in expected:
        if column not in row:
            report.add(column, f"column {column!r} is missing")
    # Unknown columns would be dropped or fail the cast to the declared features: name them now.
    for column in row:
        if column not in expected and column not in optional:
            report.add(
                str(column),
                f"column {column!r} is not in the schema (expected {', '.join(expected)})",
            )


def _check_json_object(report: _Report, row: Mapping[str, Any], column: str) -> None:
    if column not in row:
        return
    value = row[column]
    try:
        ok = isinstance(value, str) and isinstance(json.loads(value), dict)
    except ValueError:
        ok = False
    if not ok:
        report.add(column, f"{column} = {_short(value)} must be a JSON object in a string")


def _check_string(
    report: _Report, row: Mapping[str, Any], column: str, *, non_empty: bool
) -> str | None:
    """The column's value if it is a valid string, else None (after reporting why)."""
    if column not in row:
        return None
    value = row[column]
    if not isinstance(value, str):  # np.str_ is a str subclass, so numpy-formatted rows pass
        report.add(
            column, f"{column} = {_short(value)} must be a string, not {type(value).__name__}"
        )
        return None
    if non_empty and not value.strip():
        report.add(column, f"{column} = {value!r} must be a non-empty string")
        return None
    return value


def _check_string_list(report: _Report, row: Mapping[str, Any], column: str) -> int | None:
    """The list's length if it is a 1-D sequence of strings, else None (after reporting why)."""
    if column not in row:
        return None
    value = row[column]
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            report.add(column, f"{column} must be 1-D, got an array of shape {value.shape}")
            return None
        # Arrays of str dtype need no per-element check; object arrays (and empty float arrays
        # from numpy-formatted datasets) fall through to it.
        if value.dtype.kind == "U":
            return len(value)
    elif not isinstance(value, (list, tuple)):
        report.add(
            column,
            f"{column} = {_short(value)} must be a list of strings, not {type(value).__name__}",
        )
        return None
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    if bad:
        shown = ", ".join(f"{column}[{i}] = {_short(value[i])}" for i in bad[:_MAX_SHOWN])
        if len(bad) == 1:
            report.add(column, f"{shown} is not a string; {column} must be a list of strings")
        else:
            more = ", ..." if len(bad) > _MAX_SHOWN else ""
            report.add(column, f"{len(bad)} elements of {column} are not strings: {shown}{more}")
        return None
    return len(value)


def _check_numbers(
    report: _Report, row: Mapping[str, Any], column: str, *, integers: bool
) -> np.ndarray | None:
    """The column as a 1-D int64/float64 array, or None (after reporting why)."""
    if column not in row:
        return None
    value = row[column]
    kind = "integers" if integers else "numbers"
    if isinstance(value, (str, bytes, Mapping)) or not (
        isinstance(value, (list, tuple)) or hasattr(value, "__array__")
    ):
        report.add(
            column,
            f"{column} = {_short(value)} must be a list or 1-D array of {kind}, not {type(value).__name__}",
        )
        return None
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        report.add(column, f"{column} must be a flat list of {kind}, got nested or ragged lists")
        return None
    if array.ndim != 1:
        report.add(column, f"{column} must be 1-D, got shape {array.shape}")
        return None
    if array.size == 0:
        # numpy calls an empty list float64; the length check reports emptiness.
        return np.zeros(0, dtype=np.int64 if integers else np.float64)
    allowed = "iu" if integers else "iuf"  # bool ('b') is deliberately not a number here
    if array.dtype.kind not in allowed:
        report.add(
            column,
            f"{column} must hold {kind}, {_first_wrong_element(column, value, array, integers)}",
        )
        return None
    return array.astype(np.int64 if integers else np.float64, copy=False)


def _first_wrong_element(column: str, value: Any, array: np.ndarray, integers: bool) -> str:
    if array.dtype.kind == "f" and integers:
        # A float array has no "wrong type" element; point at the first value that is not whole.
        fractional = np.flatnonzero(array != np.round(array))
        i = int(fractional[0]) if fractional.size else 0
        return f"but {column}[{i}] = {_fmt(array[i])} is a {array.dtype} value"
    wanted: tuple[type, ...] = (
        (int, np.integer) if integers else (int, float, np.integer, np.floating)
    )
    # Scan the caller's list, not the array: numpy has already coerced its elements.
    items = value if isinstance(value, (list, tuple)) else array.tolist()
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, wanted):
            return f"but {column}[{i}] = {_short(item)} is a {type(item).__name__}"
    return f"got dtype {array.dtype}"


def _check_lengths(
    report: _Report, lengths: Mapping[str, int | None], num_candidates: int | None
) -> None:
    known = {column: n for column, n in lengths.items() if n is not None}
    if not known:
        return
    if num_candidates is not None:
        for column, n in known.items():
            if n != num_candidates:
                report.add(
                    column, f"{column} has {n} values, expected num_candidates = {num_candidates}"
                )
        return
    # Blame the odd one out: compare against the most common length (ties go to schema order).
    reference = Counter(known.values()).most_common(1)[0][0]
    reference_column = next(column for column, n in known.items() if n == reference)
    if reference == 0:
        report.add(
            reference_column,
            f"{reference_column} is empty; a sample needs at least one candidate frame",
        )
    for column, n in known.items():
        if n != reference:
            report.add(
                column,
                f"{column} has {n} values but {reference_column} has {reference}; every per-candidate column needs one value per candidate frame",
            )


def _check_time_axis(
    report: _Report, frame_indices: np.ndarray | None, timestamps: np.ndarray | None
) -> None:
    if frame_indices is not None:
        _flag(report, FRAME_INDICES, frame_indices, frame_indices < 0, "negative")
        _check_non_decreasing(report, FRAME_INDICES, frame_indices)
    if timestamps is not None:
        finite = _check_finite(report, TIMESTAMPS, timestamps)
        _flag(report, TIMESTAMPS, timestamps, finite & (timestamps < 0), "negative")
        _check_non_decreasing(report, TIMESTAMPS, timestamps)


def _check_finite(report: _Report, column: str, values: np.ndarray) -> np.ndarray:
    """Report NaN and ±inf; return the finite mask so later range checks skip them."""
    finite = np.isfinite(values)
    _flag(report, column, values, ~finite, "not finite")
    return finite


def _check_non_decreasing(report: _Report, column: str, values: np.ndarray) -> None:
    decreasing = values[1:] < values[:-1]
    if not decreasing.any():
        return
    bad = np.flatnonzero(decreasing) + 1
    shown = ", ".join(
        f"{column}[{i}] = {_fmt(values[i])} < {column}[{i - 1}] = {_fmt(values[i - 1])}"
        for i in bad[:_MAX_SHOWN]
    )
    if bad.size == 1:
        report.add(column, f"{shown}; {column} must be non-decreasing")
    else:
        more = ", ..." if bad.size > _MAX_SHOWN else ""
        report.add(
            column,
            f"{column} must be non-decreasing but decreases at {bad.size} positions: {shown}{more}",
        )


def _flag(report: _Report, column: str, values: np.ndarray, mask: np.ndarray, rule: str) -> None:
    # mask.any() first: valid rows are the common case and skip building index arrays.
    if mask.any():
        report.add(column, _elements(column, values, np.flatnonzero(mask), rule))


def _elements(column: str, values: np.ndarray, positions: np.ndarray, rule: str) -> str:
    """``"spatial[17] = 1.3 is outside [0, 1]"``, or a count and the first few for many."""
    shown = ", ".join(f"{column}[{i}] = {_fmt(values[i])}" for i in positions[:_MAX_SHOWN])
    if positions.size == 1:
        return f"{shown} is {rule}"
    more = ", ..." if positions.size > _MAX_SHOWN else ""
    return f"{positions.size} values of {column} are {rule}: {shown}{more}"


def _fmt(value: Any) -> str:
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    # %g keeps float32 values short (1.3, not 1.2999999523162842).
    return f"{float(value):.6g}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _duplicates(
    positions: Mapping[str, list[int]], column: str, hint: str
) -> list[SchemaViolation]:
    violations = []
    for key, rows in positions.items():
        if len(rows) > 1:
            shown = ", ".join(map(str, rows[:_MAX_SHOWN])) + (
                ", ..." if len(rows) > _MAX_SHOWN else ""
            )
            violations.append(
                SchemaViolation(
                    key,
                    column,
                    f"{column} = {key!r} appears in {len(rows)} rows ({shown}); {hint}",
                    rows[1],
                )
            )
    return violations


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


def save_label_dataset(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | Any,
    captions: Iterable[Mapping[str, Any]] | None = None,
    card: str | None = None,
    num_candidates: int | None = None,
) -> Any:
    """Write validated rows (and per-video captions) as a label dataset directory.

    Layout: ``data/labels/train-00000-of-00001.parquet``,
    ``data/captions/train-00000-of-00001.parquet`` and ``README.md`` whose YAML declares both
    configs (see `card_metadata`). ``card`` replaces the minimal README (it must carry the same
    metadata; fslabels renders the full card).

    Returns:
        The output directory as a `pathlib.Path`.

    Raises:
        SchemaError: before anything is written, if a row violates schema v1.
    """
    from pathlib import Path

    import datasets
    import yaml

    rows = list(rows)
    check_label_rows(rows, num_candidates=num_candidates)
    caption_rows = list(captions or [])
    check_caption_rows(caption_rows)
    out = Path(out_dir)
    parts = [(LABELS_CONFIG, rows, label_features())]
    if caption_rows:
        parts.append((CAPTIONS_CONFIG, caption_rows, caption_features()))
    for config in (LABELS_CONFIG, CAPTIONS_CONFIG):
        for stale in (out / DATA_DIR / config).glob("*.parquet"):
            stale.unlink()
    for config, data, features in parts:
        folder = out / DATA_DIR / config
        folder.mkdir(parents=True, exist_ok=True)
        table = datasets.Dataset.from_list(
            [{c: r[c] if c in r else OPTIONAL_LABEL_COLUMNS[c] for c in features} for r in data],
            features=features,
        )
        table.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    if card is None:
        meta = yaml.safe_dump(card_metadata(captions=bool(caption_rows)), sort_keys=False)
        card = f"---\n{meta}---\n\n# framesel label dataset\n\nSchema {LABELS_SCHEMA_VERSION}.\n"
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def load_label_dataset(
    source: str | Any,
    config: str = LABELS_CONFIG,
    revision: str | None = None,
    split: str = "train",
) -> datasets.Dataset:
    """Load one config of a label dataset from a local directory or a Hub dataset repo.

    Args:
        source: a directory written by `save_label_dataset` / ``framesel labels build``, or a
            Hub repo id (``org/name``).
        config: ``"labels"`` or ``"captions"``.
        revision: a tag (``v1``), branch or commit, for Hub repos.
        split: the split (label datasets have ``train``).

    Returns:
        A `datasets.Dataset` cast to the schema's features.

    Raises:
        ValueError: an unknown config, or columns that are not schema v1.
    """
    import datasets

    if config not in (LABELS_CONFIG, CAPTIONS_CONFIG):
        raise ValueError(f"config must be {LABELS_CONFIG!r} or {CAPTIONS_CONFIG!r}, got {config!r}")
    features = label_features() if config == LABELS_CONFIG else caption_features()
    from pathlib import Path

    local = Path(str(source)).expanduser()
    if local.is_dir():
        # datasets caches a local dir's YAML-declared config under the dir's *name* only, so
        # another dir of the same name (or this one rewritten) would load stale rows; the
        # parquet builder keys its cache by the files themselves.
        files = sorted(str(f) for f in (local / DATA_DIR / config).glob("*.parquet"))
        if not files:
            raise ValueError(f"{source} has no {config!r} config ({DATA_DIR}/{config}/*.parquet)")
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split)
    else:
        ds = datasets.load_dataset(str(source), config, split=split, revision=revision)
    for column, default in OPTIONAL_LABEL_COLUMNS.items():
        if config == LABELS_CONFIG and column not in ds.column_names:
            ds = ds.add_column(column, [default] * ds.num_rows)
    missing = [c for c in features if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{source} ({config}) is not a framesel label dataset of schema "
            f"{LABELS_SCHEMA_VERSION}: missing columns {missing}"
        )
    extra = [c for c in ds.column_names if c not in features]
    # Later versions may add columns (e.g. human review labels); keep them, type the known ones.
    if extra:
        return ds.cast(datasets.Features({**features, **{c: ds.features[c] for c in extra}}))
    return ds.cast(features)
