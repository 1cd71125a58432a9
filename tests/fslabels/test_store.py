"""The run store: keyed records, one transaction per batch, usage summed over attempts, kill -9
safety, readers beside a writer, one writer at a time. No models: SQLite only."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import pytest

from fslabels.manifest import LabelItem
from fslabels.store import STORE_FILE, Record, RunStore, StoreLockedError, to_json


def _spatial(item: str, status: str = "done", **usage) -> Record:
    return Record("spatial", item, "fp1", status, {"scores": [0.25, math.nan]}, **usage)


def test_records_round_trip_and_nan_is_stored_as_null(tmp_path):
    with RunStore(tmp_path / "work") as store:
        store.put([_spatial("a", requests=8, prompt_tokens=100, completion_tokens=9, cost=0.5)])
        got = store.get("spatial", "a", "fp1")
        assert got is not None and got.ok and got.payload == {"scores": [0.25, None]}
        usage = (got.requests, got.prompt_tokens, got.completion_tokens, got.cost)
        assert usage == (8, 100, 9, 0.5)
        assert got.attempts == 1
        # keyed by (stage, item, fingerprint): another fingerprint or stage is another record
        assert store.get("spatial", "a", "fp2") is None
        assert store.get("temporal", "a", "fp1") is None
    assert (tmp_path / "work" / STORE_FILE).is_file()


def test_rewriting_a_key_replaces_the_result_and_sums_usage(tmp_path):
    with RunStore(tmp_path) as store:
        store.put([Record("temporal", "s", "fp", "failed", {"raw": "??"}, "unreadable", requests=3,
                          prompt_tokens=30)])  # fmt: skip
        store.put([Record("temporal", "s", "fp", "done", {"frames": [1]}, requests=1,
                          prompt_tokens=10, cost=0.25)])  # fmt: skip
        got = store.get("temporal", "s", "fp")
        assert got.ok and got.error is None and got.payload == {"frames": [1]}
        assert (got.attempts, got.requests, got.prompt_tokens, got.cost) == (2, 4, 40, 0.25)
        assert store.usage()["temporal"]["requests"] == 4


def test_counts_failures_and_items(tmp_path):
    items = [LabelItem("v/a.mp4", "Q1?"), LabelItem("v/a.mp4", "Q2?", options=("x", "y"))]
    with RunStore(tmp_path) as store:
        store.set_items(items)
        store.put([_spatial("a"), _spatial("b", "failed"), _spatial("c", "failed")])
        store.put([Record("spatial", "old", "fp0", "done")])
        assert store.counts({"spatial": "fp1"}) == {"spatial": {"done": 1, "failed": 2}}
        assert [r.item for r in store.records("spatial", "fp1", status="failed")] == ["b", "c"]
        assert store.statuses("spatial", ["a", "b", "zz"], "fp1") == {"a": "done", "b": "failed"}
        assert store.items() == items
        store.set_items(items[:1])  # a run's manifest replaces the previous one
        assert store.items() == items[:1]
        store.set_meta({"fingerprints": {"spatial": "fp1"}, "videos_root": "/v"})
        assert store.get_meta("fingerprints") == {"spatial": "fp1"}
        run = store.begin_run("num_candidates: 8\n")
        assert store.runs()[-1]["finished"] is None
        store.finish_run(run, {"done": 1})
        assert store.runs()[-1]["summary"] == {"done": 1}


def test_a_batch_is_all_or_nothing(tmp_path):
    with RunStore(tmp_path) as store:
        with pytest.raises(ValueError, match="status must be one of"):
            store.put([_spatial("a"), Record("spatial", "b", "fp1", "maybe")])
        with pytest.raises(TypeError, match="cannot store"):
            store.put([_spatial("a"), Record("spatial", "b", "fp1", "done", {"x": object()})])
        with pytest.raises(RuntimeError), store.transaction() as db:  # a failure mid-transaction
            db.execute("INSERT INTO meta VALUES ('x', '1')")
            raise RuntimeError("boom")
        assert store.records("spatial") == [] and store.get_meta("x") is None


def test_kill_9_keeps_committed_batches_and_drops_the_open_one(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal
        from fslabels.store import Record, RunStore
        store = RunStore({str(tmp_path)!r})
        store.put([Record("spatial", f"s{{i}}", "fp", "done", {{"i": i}}) for i in range(3)])
        with store.transaction() as db:
            db.execute(
                "INSERT INTO results (stage, item, fingerprint, status, payload, updated) "
                "VALUES ('spatial', 'open', 'fp', 'done', '{{}}', 0)"
            )
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    with RunStore(tmp_path) as store:  # the lock died with the process
        store.lock()
        assert [r.item for r in store.records("spatial")] == ["s0", "s1", "s2"]


def test_readers_see_committed_batches_while_a_writer_is_mid_transaction(tmp_path):
    writer = RunStore(tmp_path)
    writer.lock()
    writer.put([_spatial("a")])
    with writer.transaction() as db:
        db.execute(
            "INSERT INTO results (stage, item, fingerprint, status, payload, updated) "
            "VALUES ('spatial', 'b', 'fp1', 'done', '{}', 0)"
        )
        start = time.perf_counter()
        with RunStore(tmp_path, create=False) as reader:
            assert reader.counts({"spatial": "fp1"})["spatial"] == {"done": 1, "failed": 0}
        assert time.perf_counter() - start < 5  # WAL: the reader did not wait for the writer
    with RunStore(tmp_path, create=False) as reader:
        assert reader.counts({"spatial": "fp1"})["spatial"]["done"] == 2
    writer.close()


def test_one_writer_at_a_time(tmp_path):
    first = RunStore(tmp_path)
    first.lock()
    second = RunStore(tmp_path)
    with pytest.raises(StoreLockedError, match="another label run"):
        second.lock()
    first.close()
    second.lock()  # released when the first closed
    second.close()


def test_missing_or_foreign_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="framesel labels run"):
        RunStore(tmp_path / "nothing", create=False)
    (tmp_path / STORE_FILE).write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a framesel run store"):
        RunStore(tmp_path, create=False)


def test_to_json_is_strict():
    import numpy as np

    text = to_json({"a": np.array([1.0, np.nan]), "b": np.float32(0.5)})
    assert text == '{"a":[1.0,null],"b":0.5}'


def test_a_label_store_refuses_an_eval_work_directory(tmp_path):
    from fslabels.evaluation.store import EvalRecord, EvalStore

    with EvalStore(tmp_path / "eval") as store:
        store.put_results([EvalRecord("answer", "s", "fp", "done", {"correct": True})])
    for create in (True, False):  # a label run (writer) or status / build (readers)
        with pytest.raises(ValueError) as err:
            RunStore(tmp_path / "eval", create=create)
        assert str(err.value) == (
            f"{tmp_path / 'eval'} holds an eval run (made by `framesel eval qa`), not a label "
            "run; use another work directory"
        )
    with EvalStore(tmp_path / "eval", create=False) as store:  # untouched, still an eval
        assert store.items() == [] and store.count_results() == 1
        assert store.get_meta("fingerprints") is None and store.runs() == []
    with RunStore(tmp_path / "labels") as store:  # a label run's own directory opens
        store.set_meta({"fingerprints": {}})
    with RunStore(tmp_path / "labels", create=False) as store:
        assert store.get_meta("fingerprints") == {}


def test_the_run_kinds_table_names_the_eval_store_as_it_names_itself():
    from fslabels.evaluation.store import STORE_KIND, EvalStore
    from fslabels.store import RUN_KINDS

    assert RUN_KINDS[STORE_KIND] == f"an {EvalStore.run_kind} (made by `{EvalStore.start_command}`)"
    assert RUN_KINDS[RunStore.kind] == f"a {RunStore.run_kind}"
    assert EvalStore.kind == STORE_KIND and not issubclass(EvalStore, RunStore)
