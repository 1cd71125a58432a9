"""Comparing two versions of a label dataset (`diff_datasets`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fslabels.dataset.format import LoadedDataset, load_dataset_version
from fsmodel.schema import (
    ANSWER,
    CAPTIONS,
    FRAME_INDICES,
    HUMAN,
    OPTIONS,
    QUESTION,
    SAMPLE_ID,
    SCORES,
    SPATIAL,
    TEMPORAL,
    VIDEO,
    VIDEO_ID,
)

# --- comparing -------------------------------------------------------------------------------


@dataclass
class DatasetDiff:
    """What changed from version ``a`` to version ``b``.

    Attributes:
        a, b: the two versions (as given).
        added, removed: ``(sample_id, question)`` of rows only in b / only in a.
        changed: rows whose labels changed: ``{"sample_id", "question", "max_change",
            "columns": {column: max |b - a|}}``, biggest change first.
        metadata_changed: sample ids whose video, question, options, answer or candidates
            changed.
        unchanged: rows equal in both (labels within ``tolerance``).
        shared: rows (sample ids) in both versions.
        drift: per label column over the rows in both: ``{"mean_abs", "max_abs", "mean_shift"}``.
        captions: ``{"added", "removed", "changed"}`` video counts.
        reviewed: rows with human labels in a and in b.
    """

    a: str
    b: str
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    changed: list[dict[str, Any]]
    metadata_changed: list[str]
    unchanged: int
    shared: int
    drift: dict[str, dict[str, float]]
    captions: dict[str, int]
    reviewed: tuple[int, int]

    @property
    def identical(self) -> bool:
        """True when b has the same rows and labels as a."""
        return not (
            self.added
            or self.removed
            or self.changed
            or self.metadata_changed
            or any(self.captions.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": [list(x) for x in self.added],
            "removed": [list(x) for x in self.removed],
            "changed": self.changed,
            "metadata_changed": self.metadata_changed,
            "unchanged": self.unchanged,
            "shared": self.shared,
            "drift": self.drift,
            "captions": self.captions,
            "reviewed": list(self.reviewed),
            "identical": self.identical,
        }


def diff_datasets(
    a: str | os.PathLike[str] | LoadedDataset,
    b: str | os.PathLike[str] | LoadedDataset,
    tolerance: float = 1e-6,
) -> DatasetDiff:
    """Compare two versions (directories or ``org/name@rev``): rows added and removed, label
    changes per row, and score drift per column over the rows both have.

    Raises:
        FileNotFoundError, ValueError: as `load_dataset_version`.
    """

    left = a if isinstance(a, LoadedDataset) else load_dataset_version(a)
    right = b if isinstance(b, LoadedDataset) else load_dataset_version(b)
    rows_a = {r[SAMPLE_ID]: r for r in left.rows}
    rows_b = {r[SAMPLE_ID]: r for r in right.rows}
    added = [(s, rows_b[s][QUESTION]) for s in rows_b if s not in rows_a]
    removed = [(s, rows_a[s][QUESTION]) for s in rows_a if s not in rows_b]
    columns = (SPATIAL, TEMPORAL, SCORES)
    deltas: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    changed, metadata_changed, unchanged = [], [], 0
    for sample_id, row_a in rows_a.items():
        row_b = rows_b.get(sample_id)
        if row_b is None:
            continue
        if any(row_a[k] != row_b[k] for k in (VIDEO, QUESTION, OPTIONS, ANSWER)) or list(
            row_a[FRAME_INDICES]
        ) != list(row_b[FRAME_INDICES]):
            metadata_changed.append(sample_id)
        per_column = {}
        for column in columns:
            va = np.asarray(row_a[column], dtype=np.float64)
            vb = np.asarray(row_b[column], dtype=np.float64)
            if va.shape != vb.shape:  # a different n: reported as changed candidates
                if sample_id not in metadata_changed:
                    metadata_changed.append(sample_id)
                continue
            d = vb - va
            deltas[column].append(d)
            per_column[column] = float(np.max(np.abs(d))) if d.size else 0.0
        human_changed = list(row_a.get(HUMAN) or []) != list(row_b.get(HUMAN) or [])
        big = {c: v for c, v in per_column.items() if v > tolerance}
        if big or human_changed:
            if human_changed:
                big[HUMAN] = 1.0
            changed.append(
                {
                    "sample_id": sample_id,
                    "question": row_b[QUESTION],
                    "max_change": max(big.values()),
                    "columns": big,
                }
            )
        elif sample_id not in metadata_changed:
            unchanged += 1
    changed.sort(key=lambda c: -c["max_change"])
    drift = {}
    for column, parts in deltas.items():
        if parts:
            d = np.concatenate(parts)
            drift[column] = {
                "mean_abs": float(np.mean(np.abs(d))) if d.size else 0.0,
                "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
                "mean_shift": float(np.mean(d)) if d.size else 0.0,
            }
    caps_a = {c[VIDEO_ID]: c for c in left.captions}
    caps_b = {c[VIDEO_ID]: c for c in right.captions}
    captions = {
        "added": sum(v not in caps_a for v in caps_b),
        "removed": sum(v not in caps_b for v in caps_a),
        "changed": sum(
            v in caps_b and list(caps_a[v][CAPTIONS]) != list(caps_b[v][CAPTIONS]) for v in caps_a
        ),
    }

    def reviewed(rows: Iterable[Mapping[str, Any]]) -> int:
        return sum(1 for r in rows if len(r.get(HUMAN) or []) > 0)

    return DatasetDiff(
        str(left.ref),
        str(right.ref),
        added,
        removed,
        changed,
        metadata_changed,
        unchanged,
        sum(1 for sample_id in rows_a if sample_id in rows_b),
        drift,
        captions,
        (reviewed(left.rows), reviewed(right.rows)),
    )
