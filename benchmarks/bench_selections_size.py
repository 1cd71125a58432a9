"""The size of a published selections dataset at the issue's shape: 1,000 questions about 100
videos (n = 128 candidates each), 3 strategies (selector:nms, selector:topk, uniform) at
k = 8, 16, 32, written by `fslabels.evaluation.selections.write_selections` (the writer
`framesel select build` uses). Scores are random (they compress worse than real curves) and the
picks are made from them with `fsmodel.selection.select_distinct`, as `select run` makes them.

    python benchmarks/bench_selections_size.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import numpy as np

    from fslabels.evaluation.selections import write_selections
    from fsmodel.selection import select_distinct
    from fsmodel.video import candidate_indices

    rng = np.random.default_rng(0)
    n, ks, rules = 128, (8, 16, 32), {"selector:nms": "nms", "selector:topk": "topk",
                                       "uniform": "uniform"}  # fmt: skip
    videos, scores, picks = [], [], []
    for v in range(100):
        frames = int(rng.integers(600, 20_000))
        fps = 30.0
        indices = candidate_indices(frames, n)
        stamps = indices / fps
        videos.append({"video": f"v{v:03d}.mp4", "num_frames": frames, "fps": fps,
                       "duration": frames / fps, "candidate_indices": indices.tolist(),
                       "timestamps": stamps.tolist()})  # fmt: skip
        for q in range(10):
            sample = f"v{v:03d}-q{q}"
            curve = rng.random(n).astype(np.float32)
            scores.append({"sample_id": sample, "video": f"v{v:03d}.mp4",
                           "question": f"Question {q} about video {v}?", "scorer": "selector",
                           "scores": curve.tolist()})  # fmt: skip
            for strategy, rule in rules.items():
                for k in ks:
                    chosen = select_distinct(curve, indices, k, rule)
                    p = chosen.positions
                    picks.append({"sample_id": sample, "video": f"v{v:03d}.mp4",
                                  "question": f"Question {q} about video {v}?",
                                  "strategy": strategy, "k": k, "positions": p.tolist(),
                                  "frame_indices": indices[p].tolist(),
                                  "timestamps": stamps[p].tolist(),
                                  "distinct_frames": chosen.distinct, "fps": fps,
                                  "num_frames": frames})  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        out = write_selections(Path(scratch) / "sel", picks, scores, videos,
                               {"kind": "framesel-selections", "config": {
                                   "num_candidates": n, "frame_size": 224, "video_reader": "pyav",
                                   "strategies": list(rules), "ks": list(ks), "rule_options": {}},
                                "scorers": {}})  # fmt: skip
        sizes = {d.name: sum(f.stat().st_size for f in d.glob("*.parquet"))
                 for d in (out / "data").iterdir()}  # fmt: skip
    total = sum(sizes.values())
    print(f"{len(scores)} questions, {len(videos)} videos, {len(picks)} picks at n = {n}")
    for name, size in sorted(sizes.items()):
        print(f"  {name:<7} {size / 1e6:6.3f} MB")
    print(f"  total   {total / 1e6:6.3f} MB of parquet (target <= 2 MB)")


if __name__ == "__main__":
    main()
