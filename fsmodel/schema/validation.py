"""Validators of schema v1 rows: every broken rule of every row, named by its sample (see
`fsmodel.schema`). numpy does the per-element work."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fsmodel.schema.columns import (
    ANSWER,
    CAPTION_COLUMNS,
    CAPTIONS,
    FRAME_INDICES,
    HUMAN,
    LABEL_COLUMNS,
    LABEL_META,
    LABELS_SCHEMA_VERSION,
    OPTIONAL_LABEL_COLUMNS,
    OPTIONS,
    QUESTION,
    REVIEW,
    SAMPLE_ID,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO,
    VIDEO_ID,
    make_sample_id,
)

__all__ = [
    "SchemaError",
    "SchemaViolation",
    "check_caption_rows",
    "check_label_rows",
    "validate_caption_row",
    "validate_caption_rows",
    "validate_label_row",
    "validate_label_rows",
]

_UNIT_INTERVAL_COLUMNS = (SPATIAL, TEMPORAL, SCORES)
# How many offending elements one message lists before it only gives the count.
_MAX_SHOWN = 3
# How many violations SchemaError prints before "... and N more".
_MAX_LINES = 20
_MISSING_SAMPLE_ID = "<missing sample_id>"
_INVALID_SAMPLE_ID = "<invalid sample_id>"
_MISSING_VIDEO_ID = "<missing video_id>"
_INVALID_VIDEO_ID = "<invalid video_id>"


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
