"""The eval run store: the label run store (`fslabels.store.RunStore`) plus a table of eval results.

An eval work directory holds the same ``run.sqlite`` (WAL, ``synchronous=FULL``, one OS-locked
writer) with the label store's ``meta``, ``items`` and ``runs`` tables, and one more table,
``eval_results``, keyed by ``(stage, item, fingerprint)`` like the label results:

- ``candidates`` (item = the video): the candidates' frame indices and timestamps and the
  seconds decoding them took; a failed record names the video's error.
- ``uniform_decode`` (item = ``"<video>#k=<k>"``): seconds to decode only the k frames
  ``uniform`` picks (what uniform sampling costs without the other n - k candidates).
- ``scores`` (item = the sample id): a scorer's curve over the candidates, with its cost.
- ``answer`` (item = the sample id): one (strategy, k, downstream model, prompts) cell for one
  question: the chosen frames, the exact prompt, the reply, the predictions, correctness and
  seconds.

Each record is committed in its own transaction as soon as it is computed, so a crash or Ctrl-C
loses at most the answer in flight, and a re-run computes only what is missing. A new strategy,
k or model keys new records and leaves the others in place.

Example:
    >>> with EvalStore("work") as store:  # doctest: +SKIP
    ...     store.put_results([EvalRecord("answer", sample_id, fp, "done", {...})])
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fslabels.store import STORE_FILE, RunStore, StoreLockedError, from_json, to_json

__all__ = ["EVAL_STAGES", "STORE_KIND", "EvalRecord", "EvalStore"]

EVAL_STAGES = ("candidates", "uniform_decode", "scores", "answer")
STORE_KIND = "qa-eval"
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_results (
    stage TEXT NOT NULL,
    item TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    payload TEXT NOT NULL,
    error TEXT,
    seconds REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    updated REAL NOT NULL,
    PRIMARY KEY (stage, item, fingerprint)
) WITHOUT ROWID
"""
_COLUMNS = "stage, item, fingerprint, status, payload, error, seconds, attempts, updated"


@dataclass
class EvalRecord:
    """One unit of eval work (see the module docstring).

    Attributes:
        stage: one of ``EVAL_STAGES``.
        item: the video, ``"<video>#k=<k>"`` or the sample id.
        fingerprint: what produced it.
        status: ``"done"`` or ``"failed"``.
        payload: JSON-able result.
        error: why it failed.
        seconds: wall time of this attempt when written; of the last attempt when read.
        attempts: times this key was computed (read only).
        updated: unix time of the last write (read only).
    """

    stage: str
    item: str
    fingerprint: str
    status: str
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 1
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.stage not in EVAL_STAGES:
            raise ValueError(f"stage must be one of {EVAL_STAGES}, got {self.stage!r}")
        if self.status not in ("done", "failed"):
            raise ValueError(f"status must be 'done' or 'failed', got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "done"


class EvalStore(RunStore):
    """The SQLite store of one eval work directory (see the module docstring).

    Args:
        workdir: the eval's work directory.
        create: create it if missing (the writer); ``False`` opens an existing one read-only
            in spirit (``framesel eval report``).
        timeout: seconds to wait for a busy database.

    Raises:
        FileNotFoundError: ``create=False`` and no eval run is there.
        ValueError: the directory holds a label run, not an eval.
    """

    def __init__(
        self, workdir: str | os.PathLike[str], create: bool = True, timeout: float = 60.0
    ) -> None:
        if not create and not (Path(workdir) / STORE_FILE).is_file():
            raise FileNotFoundError(
                f"{workdir} holds no eval run ({STORE_FILE} is missing); start one with "
                "`framesel eval qa`"
            )
        super().__init__(workdir, create=create, timeout=timeout)
        kind = self.get_meta("kind")
        if create and kind is None:
            if self._db.execute("SELECT 1 FROM results LIMIT 1").fetchone() is not None:
                self.close()
                raise ValueError(f"{workdir} holds a label run, not an eval; use another --work")
            with self.transaction() as db:
                db.execute(_SCHEMA)
                self._set_meta("kind", STORE_KIND)
            kind = STORE_KIND
        if kind != STORE_KIND:
            self.close()
            raise ValueError(
                f"{workdir} holds a {'label run' if kind is None else repr(kind)}, not an eval; "
                "use another work directory"
            )

    def lock(self) -> None:
        """Become the only writer (see `RunStore.lock`).

        Raises:
            StoreLockedError: another eval run is writing here.
        """
        try:
            super().lock()
        except StoreLockedError as err:
            raise StoreLockedError(str(err).replace("label run", "eval run")) from None

    def put_results(self, records: Iterable[EvalRecord]) -> None:
        """Write records in one transaction (all or nothing); an existing key is replaced and
        its ``attempts`` grows by one."""
        now = time.time()
        rows = [
            (
                r.stage,
                r.item,
                r.fingerprint,
                r.status,
                to_json(r.payload),
                r.error,
                float(r.seconds),
                now,
            )
            for r in records
        ]
        if not rows:
            return
        with self.transaction() as db:
            db.executemany(
                """
                INSERT INTO eval_results (stage, item, fingerprint, status, payload, error,
                    seconds, attempts, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
                ON CONFLICT (stage, item, fingerprint) DO UPDATE SET
                    status = excluded.status,
                    payload = excluded.payload,
                    error = excluded.error,
                    seconds = excluded.seconds,
                    attempts = eval_results.attempts + 1,
                    updated = excluded.updated
                """,
                rows,
            )

    def get_results(
        self, stage: str, items: Iterable[str], fingerprint: str
    ) -> dict[str, EvalRecord]:
        """``{item: record}`` for the items with a record under this fingerprint."""
        items = list(dict.fromkeys(items))
        found: dict[str, EvalRecord] = {}
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM eval_results WHERE stage = ? AND fingerprint = ? "
                f"AND item IN ({marks})",
                [stage, fingerprint, *chunk],
            ):
                found[row[1]] = _record(row)
        return found

    def get_result(self, stage: str, item: str, fingerprint: str) -> EvalRecord | None:
        return self.get_results(stage, [item], fingerprint).get(item)

    def count_results(self, stage: str | None = None) -> int:
        """Records stored (of one stage, or all)."""
        if stage is None:
            return int(self._db.execute("SELECT COUNT(*) FROM eval_results").fetchone()[0])
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM eval_results WHERE stage = ?", (stage,)
            ).fetchone()[0]
        )


def _record(row: Any) -> EvalRecord:
    return EvalRecord(
        stage=row[0],
        item=row[1],
        fingerprint=row[2],
        status=row[3],
        payload=from_json(row[4]),
        error=row[5],
        seconds=row[6],
        attempts=row[7],
        updated=row[8],
    )
