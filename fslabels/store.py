"""The run store: every finished unit of labelling work, committed at once, in SQLite.

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

Tables: ``results`` (above), ``items`` (the run's manifest, in order), ``meta`` (the config,
videos root and current fingerprints of the latest run), ``runs`` (one row per invocation with
its summary).

Example:
    >>> store = RunStore("work")  # doctest: +SKIP
    >>> store.put([Record("spatial", sample_id, fp, "done", {"scores": [...]}, requests=128)])  # doctest: +SKIP
    >>> store.get_many("spatial", [sample_id], fp)[sample_id].payload["scores"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = [
    "STAGES",
    "STORE_FILE",
    "STORE_SCHEMA_VERSION",
    "BaseRecord",
    "Record",
    "RunStore",
    "StoreLockedError",
    "from_json",
    "to_json",
]

STORE_FILE = "run.sqlite"
LOCK_FILE = "run.lock"
STORE_SCHEMA_VERSION = 1
STAGES = ("candidates", "captions", "spatial", "temporal", "fused")
STATUSES = ("done", "failed")
# How many ids one SQL statement binds at most (SQLite's default limit is 32766).
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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
CREATE TABLE IF NOT EXISTS items (
    position INTEGER NOT NULL,
    sample_id TEXT PRIMARY KEY,
    video TEXT NOT NULL,
    video_id TEXT NOT NULL,
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER NOT NULL,
    config TEXT NOT NULL,
    summary TEXT
);
"""


class StoreLockedError(ValueError):
    """Another process is writing to this work directory (a ValueError: the user can act on
    it, and the CLI reports it as one line)."""


def to_json(value: Any) -> str:
    """Strict JSON (NaN and infinities become null); numpy scalars and arrays are converted."""
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> Any:
    return json.loads(text)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is not None:
        return _plain(tolist())
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


@dataclass
class BaseRecord:
    """What every stored unit of work has (`Record`; `fslabels.evaluation.store.EvalRecord`): a key
    ``(stage, item, fingerprint)``, a status, a JSON payload and an error. A subclass adds its
    usage fields and names its stages in ``stages``; a table holding it has one column per
    field, in field order (see `_columns`).
    """

    stages: ClassVar[tuple[str, ...]] = ()

    stage: str
    item: str
    fingerprint: str
    status: str
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in self.stages:
            raise ValueError(f"stage must be one of {self.stages}, got {self.stage!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "done"


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


_R = TypeVar("_R")


def _columns(record_class: type) -> str:
    """The SQL columns of a record dataclass: its fields, in order (a results table's columns
    carry the same names)."""
    return ", ".join(f.name for f in fields(record_class))


def _record(row: Sequence[Any], record_class: type[_R]) -> _R:
    """A record dataclass from a row selected with `_columns` (the payload is JSON)."""
    values = dict(zip((f.name for f in fields(record_class)), row, strict=True))
    values["payload"] = from_json(values["payload"])
    return record_class(**values)


_COLUMNS = _columns(Record)


# The other kinds of run a work directory can hold (the store's ``kind`` meta → what it is), to
# name them when a label run is pointed at one. Data, not an import: the stores that write these
# kinds (`fslabels.evaluation.store`) build on this module; tests/fslabels/test_store.py checks the table.
RUN_KINDS = {"qa-eval": "an eval run (made by `framesel eval qa`)"}


class RunStore:
    """The SQLite run store of one work directory (see the module docstring).

    Args:
        workdir: the run's work directory (created when ``create``).
        create: create the directory and the database if missing (the writer). ``False``: open
            an existing store without writing anything (readers such as ``status``); a missing
            store raises ``FileNotFoundError``.
        timeout: seconds to wait for a busy database before raising.

    Example:
        >>> with RunStore(workdir) as store:  # doctest: +SKIP
        ...     print(store.stage_counts(fingerprints))
    """

    # What a subclass stores, for messages (`fslabels.evaluation.store.EvalStore`: an eval run).
    run_kind: ClassVar[str] = "label run"
    start_command: ClassVar[str] = "framesel labels run"

    def __init__(
        self, workdir: str | os.PathLike[str], create: bool = True, timeout: float = 60.0
    ) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / STORE_FILE
        if not create and not self.path.is_file():
            raise FileNotFoundError(
                f"{self.workdir} holds no {self.run_kind} ({STORE_FILE} is missing); "
                f"start one with `{self.start_command}`"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise ValueError(f"{self.path} is not a framesel run store ({err})") from None
        # FULL: a committed batch is on disk before put() returns (survives power loss, not
        # only kill -9). One fsync per batch is nothing next to a batch of model calls.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._lock_fd: int | None = None
        if create:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if self.get_meta("store_schema_version") is None:
                    self._set_meta("store_schema_version", STORE_SCHEMA_VERSION)
        try:
            version = self.get_meta("store_schema_version")
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise ValueError(f"{self.path} is not a framesel run store ({err})") from None
        if version != STORE_SCHEMA_VERSION:
            raise ValueError(
                f"{self.path} has store schema version {version}; this framesel reads "
                f"version {STORE_SCHEMA_VERSION}"
            )
        self._refuse_other_kinds()

    def _refuse_other_kinds(self) -> None:
        """A label run store opens label runs only: a work directory whose meta names a kind
        (an eval's: `fslabels.evaluation.store.EvalStore`) is refused, naming what it holds, before
        anything is written to it. A subclass that stores another kind of run (its own
        ``run_kind``) checks its kind itself.

        Raises:
            ValueError: the directory holds another kind of run.
        """
        if self.run_kind != RunStore.run_kind:
            return
        kind = self.get_meta("kind")
        if kind is None:  # label runs write no kind
            return
        self.close()
        what = RUN_KINDS.get(kind, f"a run of kind {kind!r}")
        raise ValueError(
            f"{self.workdir} holds {what}, not a {self.run_kind}; use another work directory"
        )

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self.unlock()
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self) -> None:
        """Become this work directory's only writer (an OS lock, released if the process dies).

        Raises:
            StoreLockedError: another process holds it (its pid is named).
        """
        import fcntl

        if self._lock_fd is not None:
            return
        path = self.workdir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLockedError(
                f"another {self.run_kind} (pid {holder}) is writing to {self.workdir}; wait for it "
                "or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the body raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- results ----------------------------------------------------------------------------

    def put(self, records: Iterable[Record]) -> None:
        """Write a batch of records in one transaction (all or nothing).

        A record whose key exists replaces its status, payload and error; its usage is added
        to the earlier attempts' and ``attempts`` grows by one.
        """
        now = time.time()
        rows = [
            (
                r.stage,
                r.item,
                r.fingerprint,
                r.status,
                to_json(r.payload),
                r.error,
                int(r.requests),
                int(r.prompt_tokens),
                int(r.completion_tokens),
                r.cost,
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
                INSERT INTO results (stage, item, fingerprint, status, payload, error, requests,
                    prompt_tokens, completion_tokens, cost, seconds, attempts, updated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                ON CONFLICT (stage, item, fingerprint) DO UPDATE SET
                    status = excluded.status,
                    payload = excluded.payload,
                    error = excluded.error,
                    requests = results.requests + excluded.requests,
                    prompt_tokens = results.prompt_tokens + excluded.prompt_tokens,
                    completion_tokens = results.completion_tokens + excluded.completion_tokens,
                    cost = CASE WHEN results.cost IS NULL AND excluded.cost IS NULL THEN NULL
                        ELSE COALESCE(results.cost, 0) + COALESCE(excluded.cost, 0) END,
                    seconds = results.seconds + excluded.seconds,
                    attempts = results.attempts + 1,
                    updated = excluded.updated
                """,
                rows,
            )

    def get(self, stage: str, item: str, fingerprint: str) -> Record | None:
        return self.get_many(stage, [item], fingerprint).get(item)

    def get_many(self, stage: str, items: Iterable[str], fingerprint: str) -> dict[str, Record]:
        """``{item: record}`` for the items that have a record under this fingerprint."""
        return self._records_by_item("results", Record, stage, items, fingerprint)

    def statuses(self, stage: str, items: Iterable[str], fingerprint: str) -> dict[str, str]:
        """``{item: "done" | "failed"}`` without reading payloads (cheap for whole runs)."""
        return dict(self._select_items("results", "item, status", stage, items, fingerprint))

    def _select_items(
        self, table: str, columns: str, stage: str, items: Iterable[str], fingerprint: str
    ) -> Iterator[Any]:
        """The rows of ``table`` (``columns``, item second) for these items of one stage and
        fingerprint, selected in chunks of bound ids."""
        items = list(dict.fromkeys(items))
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT {columns} FROM {table} WHERE stage = ? AND fingerprint = ? "
                f"AND item IN ({marks})",
                [stage, fingerprint, *chunk],
            )

    def _records_by_item(
        self,
        table: str,
        record_class: type[_R],
        stage: str,
        items: Iterable[str],
        fingerprint: str,
    ) -> dict[str, _R]:
        """``{item: record}`` from ``table``, whose columns are ``record_class``'s fields."""
        rows = self._select_items(table, _columns(record_class), stage, items, fingerprint)
        return {row[1]: _record(row, record_class) for row in rows}

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

    # --- the run's manifest and metadata ---------------------------------------------------

    def set_items(self, items: Sequence[Any]) -> None:
        """Replace the run's items (`fslabels.manifest.LabelItem`) in one transaction."""
        rows = [
            (
                i,
                item.sample_id,
                item.video,
                item.video_id,
                item.question,
                to_json(list(item.options)),
                item.answer,
            )
            for i, item in enumerate(items)
        ]
        with self.transaction() as db:
            db.execute("DELETE FROM items")
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def items(self) -> list[Any]:
        """The run's items (`LabelItem`), in manifest order."""
        from fslabels.manifest import LabelItem

        return [
            LabelItem(
                video=video,
                question=question,
                video_id=video_id,
                options=tuple(from_json(options)),
                answer=answer,
            )
            for video, video_id, question, options, answer in self._db.execute(
                "SELECT video, video_id, question, options, answer FROM items ORDER BY position"
            )
        ]

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else from_json(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, to_json(value)),
        )

    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Set several metadata keys in one transaction."""
        with self.transaction():
            for key, value in values.items():
                self._set_meta(key, value)

    # --- runs -------------------------------------------------------------------------------

    def begin_run(self, config_yaml: str) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (started, pid, config) VALUES (?, ?, ?)",
                (time.time(), os.getpid(), config_yaml),
            )
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, summary: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
                (time.time(), to_json(summary), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        """Every invocation: ``id``, ``started``, ``finished`` (None if it was killed),
        ``pid``, ``summary``."""
        return [
            {
                "id": run_id,
                "started": started,
                "finished": finished,
                "pid": pid,
                "summary": from_json(summary) if summary else None,
            }
            for run_id, started, finished, pid, summary in self._db.execute(
                "SELECT id, started, finished, pid, summary FROM runs ORDER BY id"
            )
        ]
