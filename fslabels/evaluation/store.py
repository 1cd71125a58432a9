"""The eval run store: the store engine (`fslabels.store.engine.Store`) with a table of eval results.

An eval work directory holds a ``run.sqlite`` like a label run's (WAL, ``synchronous=FULL``, one
OS-locked writer, the engine's ``meta``, ``items`` and ``runs`` tables) and its own table,
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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from fslabels.store.engine import BaseRecord, Store

__all__ = ["EVAL_STAGES", "STORE_KIND", "EvalRecord", "EvalStore"]

EVAL_STAGES = ("candidates", "uniform_decode", "scores", "answer")
STORE_KIND = "qa-eval"

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


@dataclass
class EvalRecord(BaseRecord):
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

    stages: ClassVar[tuple[str, ...]] = EVAL_STAGES

    seconds: float = 0.0
    attempts: int = 1
    updated: float = 0.0


class EvalStore(Store):
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

    kind: ClassVar[str | None] = STORE_KIND
    run_kind: ClassVar[str] = "eval run"
    start_command: ClassVar[str] = "framesel eval qa"
    schema: ClassVar[str] = _SCHEMA

    def put_results(self, records: Iterable[EvalRecord]) -> None:
        """Write records in one transaction (all or nothing); an existing key is replaced and
        its ``attempts`` grows by one."""
        self._write("eval_results", records)

    def get_results(
        self, stage: str, items: Iterable[str], fingerprint: str
    ) -> dict[str, EvalRecord]:
        """``{item: record}`` for the items with a record under this fingerprint."""
        return self._records_by_item("eval_results", EvalRecord, stage, items, fingerprint)

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
