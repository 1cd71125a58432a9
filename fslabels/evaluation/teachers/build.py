"""``make teachers``: train the teachers from the recipe, measure them, and store them.

    python -m fslabels.evaluation.teachers.build [--out DIR] [--count 12]

Trains into a scratch directory, measures the new weights on freshly seeded world videos
(`measure_teachers`), prints the metrics beside the committed ones (when the recipe is the same,
each must come within ±0.02), and writes ``vlm/``, ``llm/`` and ``teachers.json`` into ``--out``
(default: the package's ``weights/``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fslabels.evaluation.teachers import (
    RECORD_FILE,
    TEACHERS_DIR,
    measure_teachers,
    recipe_hash,
    stored_record,
)

TOLERANCE = 0.02


def flatten(metrics: dict[str, Any]) -> dict[str, float]:
    """``{"caption_accuracy": x, "spatial/presence/auc": y, ...}`` of a metrics record."""
    out = {"caption_accuracy": metrics["caption_accuracy"]}
    for source, by_kind in metrics["table"].items():
        for kind, values in by_kind.items():
            for name, value in values.items():
                if name != "questions":
                    out[f"{source}/{kind}/{name}"] = value
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TEACHERS_DIR)
    parser.add_argument("--count", type=int, default=12, help="World videos to measure on.")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from fslabels.evaluation.teachers.recipe import train_teachers

    try:
        before = stored_record(args.out)
    except FileNotFoundError:
        before = None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="framesel-teachers-") as scratch:
        paths = train_teachers(Path(scratch) / "weights")
        trained = time.perf_counter() - start
        metrics = measure_teachers(Path(scratch) / "measure", paths, count=args.count)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, path in paths.items():
            shutil.rmtree(args.out / name, ignore_errors=True)
            shutil.copytree(path, args.out / name)
    record = {
        "recipe_hash": recipe_hash(),
        "train_seconds": round(trained),
        "measured_on": {"videos": args.count, "seed": 20261206},
        "metrics": metrics,
    }
    (args.out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"trained in {trained:.0f} s; {metrics['questions']} questions measured")
    same = before is not None and before.get("recipe_hash") == record["recipe_hash"]
    return compare_metrics(flatten(metrics), flatten(before["metrics"]) if before else None, same)


def compare_metrics(new: dict[str, float], old: dict[str, float] | None, same_recipe: bool) -> int:
    """Print each new metric beside the committed one; 1 when the recipe is the same and a
    metric moved by more than `TOLERANCE`, else 0."""
    old = old or {}
    worst = 0.0
    for key, value in new.items():
        was = old.get(key)
        delta = "" if was is None else f"  (committed {was:.3f}, Δ {value - was:+.3f})"
        if was is not None and not (math.isnan(value) or math.isnan(was)):
            worst = max(worst, abs(value - was))
        print(f"  {key:32s} {value:.3f}{delta}")
    if same_recipe and worst > TOLERANCE:
        print(f"FAIL: a metric moved by {worst:.3f} (> {TOLERANCE}) with the same recipe")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
