"""What to label: (video, question) items from a JSONL/CSV manifest or a Hub video-QA dataset.

A manifest row names a ``video`` (a path relative to the videos directory, or a URL) and a
``question``; ``video_id`` (default: the video path without its extension), ``options`` (a
list; in CSV a JSON list or ``"|"``-separated) and ``answer`` are optional::

    {"video": "cooking/v001.mp4", "question": "What does the man cut?", "options": ["bread", "cheese"], "answer": "bread"}

Problems are collected over the whole file and raised together, each naming the file, the line
and what is wrong; two rows with the same ``video_id`` and question (the same ``sample_id``) are
reported as duplicates. `group_by_video` groups items so each video is decoded once for all its
questions.

Example:
    >>> items = read_manifest("manifest.jsonl")  # doctest: +SKIP
    >>> for video, questions in group_by_video(items).items():  # doctest: +SKIP
    ...     candidates = sample_candidates(videos_dir / video, num_candidates=128)
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsmodel.schema import ANSWER, OPTIONS, QUESTION, SAMPLE_ID, VIDEO, VIDEO_ID, make_sample_id

__all__ = [
    "ITEM_FIELDS",
    "LabelItem",
    "ManifestError",
    "ManifestProblem",
    "default_video_id",
    "group_by_video",
    "items_from_hub",
    "items_from_records",
    "read_manifest",
]

# The fields a manifest row (or a Hub column mapping) can fill; video and question are required.
ITEM_FIELDS = ("video", "question", "video_id", "options", "answer")
REQUIRED_FIELDS = ("video", "question")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def default_video_id(video: str) -> str:
    """The video path without its extension (``"a/b/clip.mp4"`` → ``"a/b/clip"``); for URLs, the
    query string and fragment are dropped first.

    Example:
        >>> default_video_id("https://host/v/clip.mp4?sig=1")
        'https://host/v/clip'
    """
    path = video
    if _URL.match(video):
        path = re.split(r"[?#]", video, maxsplit=1)[0]
    head, _, name = path.rpartition("/")
    stem, dot, _ext = name.rpartition(".")
    if dot and stem:
        name = stem
    return f"{head}/{name}" if head else name


@dataclass(frozen=True)
class LabelItem:
    """One (video, question) pair to label.

    Args:
        video: path relative to the videos directory, or a URL.
        question: the question (non-empty).
        video_id: the video's id; default `default_video_id(video)`.
        options: answer options (may be empty).
        answer: the answer (may be empty).

    Attributes:
        sample_id: ``fsmodel.schema.make_sample_id(video_id, question)``.

    Raises:
        ValueError: an empty video or question, or options that are not strings.
    """

    video: str
    question: str
    video_id: str = ""
    options: tuple[str, ...] = ()
    answer: str = ""
    sample_id: str = field(init=False)

    def __post_init__(self) -> None:
        for name in ("video", "question", "video_id", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {type(value).__name__} {value!r}")
        if not self.video.strip():
            raise ValueError("video must be a non-empty path or URL")
        if not self.question.strip():
            raise ValueError("question must be a non-empty string")
        if isinstance(self.options, str) or not isinstance(self.options, Sequence):
            raise ValueError(
                f"options must be a list of strings, got {type(self.options).__name__}"
            )
        bad = [o for o in self.options if not isinstance(o, str)]
        if bad:
            raise ValueError(f"options must be strings, got {bad[0]!r}")
        object.__setattr__(self, "options", tuple(self.options))
        if not self.video_id:
            object.__setattr__(self, "video_id", default_video_id(self.video))
        object.__setattr__(self, "sample_id", make_sample_id(self.video_id, self.question))

    def row(self) -> dict[str, Any]:
        """The item's schema-v1 columns (``sample_id`` ... ``answer``), options as a list."""

        return {
            SAMPLE_ID: self.sample_id,
            VIDEO_ID: self.video_id,
            VIDEO: self.video,
            QUESTION: self.question,
            OPTIONS: list(self.options),
            ANSWER: self.answer,
        }


@dataclass(frozen=True)
class ManifestProblem:
    """One problem: where (``"line 7"``, ``"row 3"``) in which source, and what."""

    source: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}, {self.where}: {self.message}"


class ManifestError(ValueError):
    """A manifest (or dataset) with problems; `problems` lists every one."""

    _MAX_SHOWN = 20

    def __init__(self, problems: Sequence[ManifestProblem]) -> None:
        self.problems = tuple(problems)
        lines = [f"{len(self.problems)} problem(s) in the manifest:"]
        lines += [f"  {p}" for p in self.problems[: self._MAX_SHOWN]]
        if len(self.problems) > self._MAX_SHOWN:
            lines.append(f"  ... and {len(self.problems) - self._MAX_SHOWN} more")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


def items_from_records(
    records: Iterable[tuple[str, Mapping[str, Any]]], source: str
) -> list[LabelItem]:
    """Build and check items from ``(where, record)`` pairs; the readers all end here.

    Args:
        records: ``("line 3", {"video": ..., "question": ...})`` pairs. Unknown keys are ignored.
        source: the file or dataset, for messages.

    Raises:
        ManifestError: every invalid record and every duplicate sample, at once.
    """
    problems: list[ManifestProblem] = []
    items: list[LabelItem] = []
    first_seen: dict[str, str] = {}
    for where, record in records:
        missing = [f for f in REQUIRED_FIELDS if record.get(f) in (None, "")]
        if missing:
            problems.append(
                ManifestProblem(source, where, f"missing {' and '.join(map(repr, missing))}")
            )
            continue
        try:
            item = LabelItem(
                video=_text(record["video"], "video"),
                question=_text(record["question"], "question"),
                video_id=_text(record.get("video_id") or "", "video_id"),
                options=_options(record.get("options")),
                answer=_answer(record.get("answer")),
            )
        except ValueError as err:
            problems.append(ManifestProblem(source, where, str(err)))
            continue
        if item.sample_id in first_seen:
            problems.append(
                ManifestProblem(
                    source,
                    where,
                    f"duplicate of {first_seen[item.sample_id]} (same video_id {item.video_id!r} "
                    f"and question {item.question!r})",
                )
            )
            continue
        first_seen[item.sample_id] = where
        items.append(item)
    if problems:
        raise ManifestError(problems)
    return items


def read_manifest(path: str | os.PathLike[str]) -> list[LabelItem]:
    """Read a JSONL (``.jsonl``/``.ndjson``) or CSV (``.csv``) manifest.

    Returns:
        The items in file order.

    Raises:
        FileNotFoundError: no such file.
        ManifestError: invalid lines or duplicates (all of them, each with its line number), an
            unknown file type, or a CSV header without ``video`` and ``question``.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {source} does not exist")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _read_jsonl(path, source)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, source)
    raise ManifestError(
        [
            ManifestProblem(
                source,
                "file name",
                f"unknown manifest type {suffix or '(no suffix)'!r}; use "
                f"{', '.join(JSONL_SUFFIXES + CSV_SUFFIXES)}",
            )
        ]
    )


def _read_jsonl(path: Path, source: str) -> list[LabelItem]:
    records: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[ManifestProblem] = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(
                    ManifestProblem(
                        source, f"line {number}", f"invalid JSON ({err.msg} at column {err.colno})"
                    )
                )
                continue
            if not isinstance(record, dict):
                problems.append(
                    ManifestProblem(
                        source,
                        f"line {number}",
                        f"expected a JSON object, got {type(record).__name__}",
                    )
                )
                continue
            records.append((f"line {number}", record))
    return _with_problems(records, source, problems)


def _read_csv(path: Path, source: str) -> list[LabelItem]:
    records: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[ManifestProblem] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED_FIELDS if c not in header]
        if missing:
            raise ManifestError(
                [
                    ManifestProblem(
                        source,
                        "line 1",
                        f"the header lacks column(s) {', '.join(map(repr, missing))} "
                        f"(found: {', '.join(map(repr, header)) or 'nothing'})",
                    )
                ]
            )
        reader.fieldnames = header
        start = 2
        for row in reader:
            where = f"line {start}"
            start = reader.line_num + 1
            if None in row:
                problems.append(
                    ManifestProblem(source, where, f"more fields than the header's {len(header)}")
                )
                continue
            if all(v in (None, "") for v in row.values()):
                continue
            record: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
            if "options" in record:
                try:
                    record["options"] = _csv_options(record["options"])
                except ValueError as err:
                    problems.append(ManifestProblem(source, where, str(err)))
                    continue
            records.append((where, record))
    return _with_problems(records, source, problems)


def _with_problems(
    records: list[tuple[str, Mapping[str, Any]]], source: str, problems: list[ManifestProblem]
) -> list[LabelItem]:
    """Items from the records; syntax problems and record problems reported together."""
    try:
        items = items_from_records(records, source)
    except ManifestError as err:
        problems = sorted([*problems, *err.problems], key=lambda p: _line_number(p.where))
        raise ManifestError(problems) from None
    if problems:
        raise ManifestError(problems)
    return items


def _line_number(where: str) -> int:
    digits = re.findall(r"\d+", where)
    return int(digits[0]) if digits else 0


def _csv_options(cell: str) -> list[str]:
    cell = cell.strip()
    if not cell:
        return []
    if cell.startswith("["):
        try:
            value = json.loads(cell)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"options {cell!r} starts with '[' but is not a JSON list ({err.msg})"
            ) from None
        return value
    return [part.strip() for part in cell.split("|") if part.strip()]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def _options(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = _csv_options(value)
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"options must be a list of strings, got {type(value).__name__} {value!r}")
    value = list(value)
    bad = [(i, o) for i, o in enumerate(value) if not isinstance(o, str)]
    if bad:
        i, o = bad[0]
        raise ValueError(f"options[{i}] = {o!r} is not a string")
    return tuple(value)


def _answer(value: Any) -> str:
    """Answers are strings; an integer (an option index in some datasets) is kept as its text."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"answer must be a string, got {type(value).__name__} {value!r}")
    return str(value)


def items_from_hub(
    repo: str,
    split: str = "test",
    revision: str | None = None,
    columns: Mapping[str, str] | None = None,
    name: str | None = None,
    **load_kwargs: Any,
) -> list[LabelItem]:
    """Items from a Hub video-QA dataset (or a local dataset directory) via `datasets`.

    Args:
        repo: dataset repo id (``org/name``) or a local path ``load_dataset`` understands.
        split: the split to read.
        revision: branch, tag or commit (pin one for reproducible labels).
        columns: item field → dataset column, e.g. ``{"video": "video_path", "question": "q",
            "options": "candidates"}``. Fields not mapped use a column of the same name when the
            dataset has one. A ``Video`` column is read without decoding (its path is used).
        name: the dataset config.
        **load_kwargs: passed to ``datasets.load_dataset``.

    Raises:
        ManifestError: a mapped or required column is missing (the dataset's columns are
            listed), invalid rows, or duplicates.
        ValueError: ``columns`` maps an unknown item field.
    """
    import datasets

    mapping = dict(columns or {})
    unknown = [k for k in mapping if k not in ITEM_FIELDS]
    if unknown:
        raise ValueError(
            f"columns maps unknown item field(s) {unknown}; known: {', '.join(ITEM_FIELDS)}"
        )
    ds = datasets.load_dataset(repo, name, split=split, revision=revision, **load_kwargs)
    source = f"{repo}@{revision or 'main'} ({split})"
    available = list(ds.column_names)
    for item_field in ITEM_FIELDS:
        if item_field not in mapping and (item_field in available or item_field in REQUIRED_FIELDS):
            mapping[item_field] = item_field
    absent = [c for c in dict.fromkeys(mapping.values()) if c not in available]
    if absent:
        raise ManifestError(
            [
                ManifestProblem(
                    source,
                    "columns",
                    f"no column(s) {', '.join(map(repr, absent))} (the dataset has: "
                    f"{', '.join(map(repr, available))}); map them with "
                    "columns={'video': ..., 'question': ...}",
                )
            ]
        )
    video_column = mapping["video"]
    feature = ds.features[video_column]
    if hasattr(feature, "decode") and not isinstance(feature, datasets.Value):
        # A Video (or Image-like) feature would decode every clip: only its path is needed.
        ds = ds.cast_column(video_column, type(feature)(decode=False))
    ds = ds.select_columns(sorted(set(mapping.values())))

    def records() -> Iterable[tuple[str, Mapping[str, Any]]]:
        for i, row in enumerate(ds):
            record = {f: row[c] for f, c in mapping.items()}
            video = record.get("video")
            if isinstance(video, Mapping):
                record["video"] = video.get("path") or ""
            yield f"row {i}", record

    return items_from_records(records(), source)


def group_by_video(items: Iterable[LabelItem]) -> dict[str, list[LabelItem]]:
    """Items grouped by ``video`` (decode each video once), in order of first appearance."""
    groups: dict[str, list[LabelItem]] = {}
    for item in items:
        groups.setdefault(item.video, []).append(item)
    return groups
