"""The label run store: every finished unit of labelling work, committed at once, in SQLite.

``WORKDIR/run.sqlite`` (WAL mode) holds one row per ``(stage, item, fingerprint)``:

- ``stage``: ``candidates`` and ``captions`` (item = the video's path in the manifest),
  ``spatial``, ``temporal`` and ``fused`` (item = the sample id).
- ``fingerprint``: a hash of everything that changes the stage's output: the backend's
  fingerprint (model id, revision, dtype ...), the labeler's prompt hash and sampling parameters,
  n, the frame size, and the fingerprints of the stages it reads (see ``fslabels.run``). Never
  batch sizes or worker counts, so a re-run with other batching reuses the work; a change of
  model or prompt keys new rows and leaves the old ones in place.
- ``status``: ``done`` or ``failed``; ``payload`` (JSON: scores, rationales, raw replies, the
  error's context); ``error``; usage (requests, tokens, US dollars, seconds) summed over every
  attempt; ``attempts``.

`RunStore.put` writes a whole batch in ONE transaction, so a batch is either entirely in the
store or not at all. WAL with ``synchronous=FULL`` makes a committed transaction survive
``kill -9`` at any moment (and a power loss); an interrupted one leaves no trace. Readers
(``framesel labels status``) never block the writer and always see whole batches. One writer
at a time: `RunStore.lock` takes an OS lock on ``WORKDIR/run.lock`` that dies with its process.
Those guarantees, and the ``items``, ``meta`` and ``runs`` tables, are the store engine's
(`fslabels.store.engine`); this module adds the ``results`` table (above) and its record.

Example:
    >>> store = RunStore("work")  # doctest: +SKIP
    >>> store.put([Record("spatial", sample_id, fp, "done", {"scores": [...]}, requests=128)])  # doctest: +SKIP
    >>> store.get_many("spatial", [sample_id], fp)[sample_id].payload["scores"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fslabels.store.engine import BaseRecord, Store, _columns, _record

__all__ = ["STAGES", "Record", "RunStore"]

STAGES = ("candidates", "captions", "spatial", "temporal", "fused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    stage TEXT NOT NULL,
    item TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    payload TEXT NOT NULL,
    error TEXT,
    requests INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    seconds REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    updated REAL NOT NULL,
    PRIMARY KEY (stage, item, fingerprint)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_by_status ON results (stage, fingerprint, status);
"""


@dataclass
class Record(BaseRecord):
    """One unit of finished (or failed) work, as written to and read from the store.

    Attributes:
        stage: one of ``STAGES``.
        item: the video (per-video stages) or the sample id.
        fingerprint: what produced it (see the module docstring).
        status: ``"done"`` or ``"failed"``.
        payload: JSON-able result (NaN is stored as null).
        error: why it failed (``None`` when done).
        requests, prompt_tokens, completion_tokens, cost, seconds: usage of this attempt when
            written; summed over all attempts when read.
        attempts: times this key was computed (read only).
        updated: unix time of the last write (read only).
    """

    stages: ClassVar[tuple[str, ...]] = STAGES

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    seconds: float = 0.0
    attempts: int = 1
    updated: float = 0.0


_COLUMNS = _columns(Record)
# What `RunStore.put` adds up over a key's attempts.
_USAGE = ("requests", "prompt_tokens", "completion_tokens", "cost", "seconds")


class RunStore(Store):
    """The SQLite run store of one label work directory (see the module docstring); the
    connection, lock, transactions, manifest, meta and invocations are the engine's
    (`fslabels.store.engine.Store`).

    Opened as the engine opens any store (``workdir``, ``create``, ``timeout``).

    Raises:
        ValueError: the directory holds another kind of run (an eval), named in the message.

    Example:
        >>> with RunStore(workdir) as store:  # doctest: +SKIP
        ...     print(store.stage_counts(fingerprints))
    """

    kind: ClassVar[str | None] = None  # label runs write no kind
    run_kind: ClassVar[str] = "label run"
    start_command: ClassVar[str] = "framesel labels run"
    schema: ClassVar[str] = _SCHEMA

    # --- results ----------------------------------------------------------------------------

    def put(self, records: Iterable[Record]) -> None:
        """Write a batch of records in one transaction (all or nothing).

        A record whose key exists replaces its status, payload and error; its usage is added
        to the earlier attempts' and ``attempts`` grows by one.
        """
        self._write("results", records, summed=_USAGE)

    def get(self, stage: str, item: str, fingerprint: str) -> Record | None:
        return self.get_many(stage, [item], fingerprint).get(item)

    def get_many(self, stage: str, items: Iterable[str], fingerprint: str) -> dict[str, Record]:
        """``{item: record}`` for the items that have a record under this fingerprint."""
        return self._records_by_item("results", Record, stage, items, fingerprint)

    def statuses(self, stage: str, items: Iterable[str], fingerprint: str) -> dict[str, str]:
        """``{item: "done" | "failed"}`` without reading payloads (cheap for whole runs)."""
        return dict(self._select_items("results", "item, status", stage, items, fingerprint))

    def records(
        self, stage: str, fingerprint: str | None = None, status: str | None = None
    ) -> list[Record]:
        """Every record of a stage (optionally of one fingerprint and status), by item."""
        sql = f"SELECT {_COLUMNS} FROM results WHERE stage = ?"
        args: list[Any] = [stage]
        if fingerprint is not None:
            sql += " AND fingerprint = ?"
            args.append(fingerprint)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return [_record(row, Record) for row in self._db.execute(sql + " ORDER BY item", args)]

    def counts(self, fingerprints: Mapping[str, str]) -> dict[str, dict[str, int]]:
        """``{stage: {"done": k, "failed": k}}`` under the given fingerprint of each stage.

        Every record is counted, also those of items no longer in the run's manifest; to count
        the current items, use `statuses` with them (as `fslabels.run.run_status` does).
        """
        out = {stage: {"done": 0, "failed": 0} for stage in fingerprints}
        for stage, fingerprint in fingerprints.items():
            for status, count in self._db.execute(
                "SELECT status, COUNT(*) FROM results WHERE stage = ? AND fingerprint = ? "
                "GROUP BY status",
                (stage, fingerprint),
            ):
                out[stage][status] = count
        return out

    def usage(self) -> dict[str, dict[str, Any]]:
        """Everything spent in this work directory, per stage, over all fingerprints and
        attempts: ``{stage: {"requests", "prompt_tokens", "completion_tokens", "cost",
        "seconds"}}`` (``cost`` is None when nothing was priced)."""
        out: dict[str, dict[str, Any]] = {}
        for stage, requests, prompt, completion, cost, seconds in self._db.execute(
            "SELECT stage, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), "
            "SUM(cost), SUM(seconds) FROM results GROUP BY stage"
        ):
            out[stage] = {
                "requests": requests or 0,
                "prompt_tokens": prompt or 0,
                "completion_tokens": completion or 0,
                "cost": cost,
                "seconds": seconds or 0.0,
            }
        return out
