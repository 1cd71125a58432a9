"""What importing framesel's light parts costs, in fresh interpreters.

Every labelling process and Ray actor imports the sampler and the schema; a project that loads a
selector imports `fsmodel`. Each row is the median of ``--repeat`` fresh processes; the baseline in
the same run is `import torch` (what these imports paid before `fsmodel` became light).

    python benchmarks/bench_imports.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "baseline: import torch": "import torch",
    "from fsmodel.video import sample_candidates; import fsmodel.schema": (
        "from fsmodel.video import sample_candidates\nimport fsmodel.schema"
    ),
    "import fslabels.run": "import fslabels.run",
    "import fsmodel, then the selector class": "import fsmodel\nfsmodel.FrameSelectorModel",
}
PROBE = """
import json, sys, time
start = time.perf_counter()
exec({code!r})
seconds = time.perf_counter() - start
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
heavy = [m for m in ("torch", "transformers") if m in sys.modules]
print(json.dumps({{"seconds": seconds, "rss_mb": hwm, "heavy": heavy}}))
"""


def measure(code: str, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(code=code)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "heavy": runs[0]["heavy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {name: measure(code, args.repeat) for name, code in CASES.items()}
    base = results["baseline: import torch"]["seconds"]
    print(f"{'import':<68} {'seconds':>8} {'× torch':>8} {'peak MB':>8}  loads")
    for name, r in results.items():
        heavy = ", ".join(r["heavy"]) or "-"
        ratio = r["seconds"] / base
        print(f"{name:<68} {r['seconds']:>8.2f} {ratio:>8.2f} {r['rss_mb']:>8.0f}  {heavy}")


if __name__ == "__main__":
    main()
