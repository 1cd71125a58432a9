"""The store engine: one SQLite file per work directory, whole transactions, one writer.

What every kind of run shares (label runs: `fslabels.store.labels`; evaluations:
`fslabels.evaluation.store`): ``WORKDIR/run.sqlite`` in WAL mode with ``synchronous=FULL`` (a
committed transaction survives ``kill -9`` at any moment and a power loss; an interrupted one
leaves no trace; readers never block the writer), an OS lock on ``WORKDIR/run.lock`` that makes
one process the writer and dies with it, and three tables:

- ``meta``: JSON values by key (``store_schema_version``; ``kind``, what the directory holds;
  whatever the run records: its config, fingerprints, prompts ...);
- ``items``: the run's manifest, in order (`fslabels.manifest.LabelItem`);
- ``runs``: one row per invocation with its summary.

A kind of run subclasses `Store`, names itself (``kind``, ``run_kind``, ``start_command``), adds
its results table (``schema``) and its record type (a `BaseRecord`), and reads them with
`Store._records_by_item`. Opening a directory that holds another kind of run is refused, naming
what it holds, before anything is written to it.
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
    "RUN_KINDS",
    "STATUSES",
    "STORE_FILE",
    "STORE_SCHEMA_VERSION",
    "BaseRecord",
    "Store",
    "StoreLockedError",
    "from_json",
    "to_json",
]

STORE_FILE = "run.sqlite"
LOCK_FILE = "run.lock"
STORE_SCHEMA_VERSION = 1
STATUSES = ("done", "failed")
# How many ids one SQL statement binds at most (SQLite's default limit is 32766).
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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

# Every kind of run a work directory can hold (its ``kind`` meta → what it is), to name it when
# another kind is pointed at it. Data, not imports: the stores build on this module (the tests
# check that each store names itself as this table does). Label runs write no kind (the first
# stores had none).
RUN_KINDS: dict[str | None, str] = {
    None: "a label run",
    "qa-eval": "an eval run (made by `framesel eval qa`)",
}


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
    """What every stored unit of work has (`fslabels.store.Record`;
    `fslabels.evaluation.store.EvalRecord`): a key ``(stage, item, fingerprint)``, a status, a
    JSON payload and an error. A subclass adds its usage fields and names its stages in
    ``stages``; a table holding it has one column per field, in field order (see `_columns`).
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


def _statements(schema: str) -> Iterator[str]:
    return (s for s in schema.split(";") if s.strip())


class Store:
    """An open work directory (see the module docstring); a kind of run subclasses it.

    Args:
        workdir: the run's work directory (created when ``create``).
        create: create the directory and the database if missing (the writer). ``False``: open
            an existing store without writing anything (readers such as ``status``); a missing
            store raises ``FileNotFoundError``.
        timeout: seconds to wait for a busy database before raising.

    Raises:
        FileNotFoundError: ``create=False`` and no store is there.
        ValueError: the file is not a store, has another schema version, or holds another kind
            of run.
    """

    # What a subclass stores: its ``kind`` meta (a key of `RUN_KINDS`), its name and the command
    # that starts one (for messages), and its own tables.
    kind: ClassVar[str | None] = None
    run_kind: ClassVar[str] = "run"
    start_command: ClassVar[str] = "framesel"
    schema: ClassVar[str] = ""

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
        self._lock_fd: int | None = None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch is on disk before put() returns (survives power loss, not
            # only kill -9). One fsync per batch is nothing next to a batch of model calls.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if create:
                self._create()
            else:
                self._check(self.get_meta("store_schema_version"), self.get_meta("kind"))
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise ValueError(f"{self.path} is not a framesel run store ({err})") from None
        except ValueError:
            self._db.close()
            raise

    def _create(self) -> None:
        """Create the tables of a new store, or check an existing one and add this kind's tables
        if an older framesel made it without them; nothing is written to a store of another
        version or kind."""
        with self.transaction() as db:
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            version = self.get_meta("store_schema_version")
            if version is None:
                self._set_meta("store_schema_version", STORE_SCHEMA_VERSION)
                if self.kind is not None:
                    self._set_meta("kind", self.kind)
            else:
                self._check(version, self.get_meta("kind"))
            for statement in _statements(self.schema):
                db.execute(statement)

    def _check(self, version: Any, kind: Any) -> None:
        if version != STORE_SCHEMA_VERSION:
            raise ValueError(
                f"{self.path} has store schema version {version}; this framesel reads "
                f"version {STORE_SCHEMA_VERSION}"
            )
        if kind != self.kind:
            what = RUN_KINDS.get(kind, f"a run of kind {kind!r}")
            article = "an" if self.run_kind[0] in "aeiou" else "a"
            raise ValueError(
                f"{self.workdir} holds {what}, not {article} {self.run_kind}; "
                "use another work directory"
            )

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self.unlock()
        self._db.close()

    def __enter__(self):
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

    # --- a results table ----------------------------------------------------------------------

    def _write(self, table: str, records: Iterable[BaseRecord], summed: Sequence[str] = ()) -> None:
        """Write records to ``table`` (whose columns are their fields) in one transaction (all or
        nothing). A record whose key exists replaces the other fields, adds the ``summed`` ones
        (usage) to the earlier attempts' (null + null stays null), and grows ``attempts`` by one.
        """
        records = list(records)
        if not records:
            return
        names = [f.name for f in fields(records[0]) if f.name not in ("attempts", "updated")]
        now = time.time()
        rows = [
            [to_json(r.payload) if n == "payload" else _plain(getattr(r, n)) for n in names] + [now]
            for r in records
        ]
        updates = [
            f"{n} = CASE WHEN {table}.{n} IS NULL AND excluded.{n} IS NULL THEN NULL "
            f"ELSE COALESCE({table}.{n}, 0) + COALESCE(excluded.{n}, 0) END"
            if n in summed
            else f"{n} = excluded.{n}"
            for n in names[3:]  # after the key (stage, item, fingerprint)
        ]
        with self.transaction() as db:
            db.executemany(
                f"INSERT INTO {table} ({', '.join(names)}, attempts, updated) "
                f"VALUES ({', '.join('?' * len(names))}, 1, ?) "
                "ON CONFLICT (stage, item, fingerprint) DO UPDATE SET "
                f"{', '.join(updates)}, attempts = {table}.attempts + 1, "
                "updated = excluded.updated",
                rows,
            )

    # --- reading a results table ------------------------------------------------------------

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
