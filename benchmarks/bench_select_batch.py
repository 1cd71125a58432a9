"""Selecting for many questions about the same videos: the cost should grow with videos, not
questions.

``--videos`` generated videos (``--frames`` frames each, 640×360 H.264), ``--questions`` questions
about each, k = 8 of n = ``--n`` candidates with the tiny selector (fsmodel.tiny, loaded once):

  per question   `select_frames(video, question)` once per question: a decode and a vision pass
                 each time (what a loop over a QA manifest did before)
  batch          `select_frames_batch(items)`: each video decoded once, its frozen-tower features
                 computed once, then one language-model pass per ``--batch`` questions
  select run     `framesel select run` (`run_selection`) over the same questions as a manifest:
                 the resumable run (store commits per curve), the same sharing per video

Both give the same picks (checked). The tiny selector's towers are small, so the saving here is
mostly the decode; at full size the SigLIP-so400m pass per video is the larger share
(benchmarks/bench_selector.py). Ratios come from one run: the machine is shared.

    python benchmarks/bench_select_batch.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModel

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes)
    from fsmodel.synthetic import write_video
    from fsmodel.tiny import build_all

    with tempfile.TemporaryDirectory(prefix="bench-select-batch-") as scratch:
        root = Path(scratch)
        paths = build_all(root / "tiny")
        model = AutoModel.from_pretrained(paths["selector"]).eval()
        videos = [
            write_video(root / f"v{i}.mp4", num_frames=args.frames, size=(640, 360), seed=i).path
            for i in range(args.videos)
        ]
        questions = [f"When does shape number {q} appear?" for q in range(args.questions)]
        items = [(v, q) for v in videos for q in questions]
        model.select_frames(videos[0], questions[0], k=8, num_candidates=args.n)  # warm-up

        start = time.perf_counter()
        single = [model.select_frames(v, q, k=8, num_candidates=args.n) for v, q in items]
        per_question = time.perf_counter() - start

        start = time.perf_counter()
        batched = model.select_frames_batch(
            items, k=8, num_candidates=args.n, batch_size=args.batch
        )
        batch = time.perf_counter() - start

        import json

        from fslabels.evaluation.scorers import SelectorScorer
        from fslabels.evaluation.selections import run_selection

        manifest = root / "qa.jsonl"
        manifest.write_text(
            "".join(json.dumps({"video": v.name, "question": q}) + "\n" for v, q in items)
        )
        scorer = SelectorScorer(model=str(paths["selector"]))
        scorer.load()  # loaded once, as the in-process loop had its model
        # The decode size select_frames uses (the selector processor's).
        config = {"num_candidates": args.n, "frame_size": model.frame_size(), "ks": [8],
                  "strategies": ["selector:nms"],
                  "scorers": {"selector": {"model": str(paths["selector"])}}}  # fmt: skip
        start = time.perf_counter()
        run_selection(config, manifest, root, root / "work", progress=False,
                      scorers={"selector": scorer})  # fmt: skip
        run = time.perf_counter() - start
        picks = [json.loads(x) for x in (root / "work" / "picks.jsonl").open()]

    same = all(
        np.array_equal(a.positions, b.positions) for a, b in zip(single, batched, strict=True)
    )
    same_run = [p["positions"] for p in picks] == [a.positions.tolist() for a in single]
    print(f"{args.videos} videos x {args.questions} questions, k = 8 of n = {args.n}")
    print(
        f"  per question  {per_question:7.2f} s  ({per_question / len(items) * 1000:.0f} ms each)"
    )
    print(f"  batch         {batch:7.2f} s  ({batch / len(items) * 1000:.0f} ms each)")
    print(f"  select run    {run:7.2f} s  ({run / len(items) * 1000:.0f} ms each)")
    print(
        f"  speed-up      batch {per_question / batch:5.2f}x, select run {per_question / run:5.2f}x"
    )
    print(f"  same picks    batch {same}, select run {same_run}")


if __name__ == "__main__":
    main()
