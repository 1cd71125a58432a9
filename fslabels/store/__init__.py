"""Where runs keep their work: the SQLite store engine and the label run store.

- `fslabels.store.engine`: `Store`, what every kind of run shares (one SQLite file per work
  directory in WAL mode, whole transactions, one OS-locked writer, the ``meta``, ``items`` and
  ``runs`` tables, JSON payloads, `BaseRecord`);
- `fslabels.store.labels`: `RunStore`, the label run's results table (`Record`, one row per
  ``(stage, item, fingerprint)``).

Evaluations keep their own results table on the same engine (`fslabels.evaluation.store`).
"""

from fslabels.store.engine import (
    RUN_KINDS,
    STATUSES,
    STORE_FILE,
    STORE_SCHEMA_VERSION,
    BaseRecord,
    Store,
    StoreLockedError,
    from_json,
    to_json,
)
from fslabels.store.labels import STAGES, Record, RunStore

__all__ = [
    "RUN_KINDS",
    "STAGES",
    "STATUSES",
    "STORE_FILE",
    "STORE_SCHEMA_VERSION",
    "BaseRecord",
    "Record",
    "RunStore",
    "Store",
    "StoreLockedError",
    "from_json",
    "to_json",
]
