"""The paper's experiment in miniature, at its quick size: ``benchmarks/bench_miniature.py
--quick`` run as a user runs it (its own process, the public CLI underneath), and the issue's
two checks that the trained selector reads the question."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.first  # ~5 minutes: started at once on its worker (tests/conftest.py)
def test_quick_miniature_selector_reads_the_question(tmp_path):
    out = tmp_path / "quick"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_miniature.py"), "--quick",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    selector, uniform = report["selector-truth:topk"], report["uniform"]
    asked = selector["asked"]["all"]["recall"]
    assert asked >= uniform["asked"]["all"]["recall"] + 0.2
    assert selector["swapped"]["recall"] <= uniform["swapped"]["recall"] - 0.05
    assert selector["asked"]["all"]["questions"] == 184  # 40 held-out videos, every question
    # a rerun finds every stage done and changes nothing
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "[stage]" not in again.stdout
    assert json.loads((out / "report.json").read_text())["selector-truth:topk"] == selector
