"""Label quality of the world's teachers against truth, on held-out world videos.

Labels ``--videos`` freshly seeded world videos (never seen in training) with the committed
teachers through the production path (`run_labels`, transformers backend), scores the labels
against the world's truth spans (`fslabels.quality`) and prints the table of issue targets, with
the uniform-random baseline of each metric in the same run (a source that scores every candidate
the same: AUC 0.5, the expected top-k of a random pick).

    python benchmarks/bench_teachers.py [--videos 30] [--seed 777] [--k 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (source, metric, kind) → target; None: report only. Count's temporal target is coverage.
TARGETS = {
    ("spatial", "auc"): {"presence": 0.95, "order": None, "count": 0.9},
    ("temporal", "recall"): {"presence": 0.8, "order": 0.8, "count": None},
    ("temporal", "coverage"): {"presence": None, "order": None, "count": 0.8},
    ("fused", "auc"): {"presence": "spatial-0.01", "order": 0.85, "count": "spatial-0.01"},
}


def main() -> int:
    import torch

    from fslabels.evaluation.teachers import measure_teachers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="bench-teachers-") as work:
        got = measure_teachers(work, count=args.videos, seed=args.seed, k=args.k, keep_rows=True)
        rows = got.pop("rows")
    flat = {
        "spatial": np.mean([np.mean(np.asarray(r["spatial"]) > 0.5) for r in rows]),
    }
    if args.json:
        print(json.dumps(got))
        return 0
    table = got["table"]
    print(
        f"{got['questions']} questions on {args.videos} held-out world videos (seed {args.seed}), "
        f"k = {args.k}; labelled in {got['seconds']} s; failed stages: {got['failures'] or 'none'}"
    )
    print(f"caption accuracy {got['caption_accuracy']:.3f} (target ≥ 0.95)")
    print(f"share of frames with a spatial score > 0.5: {flat['spatial']:.2f}")
    misses = 0
    print(f"{'labels vs truth':30s} {'presence':>16s} {'order':>16s} {'count':>16s}")
    for (source, metric), targets in TARGETS.items():
        cells = []
        for kind in ("presence", "order", "count"):
            value = table.get(source, {}).get(kind, {}).get(metric, float("nan"))
            target = targets[kind]
            if isinstance(target, str):  # relative to the spatial AUC
                target = table["spatial"][kind]["auc"] - 0.01
            mark = "" if target is None else ("ok" if value >= target else "MISS")
            misses += mark == "MISS"
            shown = "" if target is None else f"≥{target:.2f}"
            cells.append(f"{value:.3f} {shown:>6s} {mark:>4s}")
        label = f"{source} {metric}" + (f"@{args.k}" if metric != "auc" else "")
        print(f"{label:30s} " + " ".join(f"{c:>16s}" for c in cells))
    print("baseline (a source that scores every frame alike): AUC 0.500; every other row of the")
    print("table for it is the share of relevant candidates (see labels score --json).")
    print(f"{misses} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
