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

Then the model alone, at the full-size balance: at n = 128 SigLIP-so400m (~400 M parameters x
729 patches per frame) does ~96 % of a selection's FLOPs and Qwen2.5-1.5B (~1,200 tokens) ~4 %.
A selector with random weights whose tower is sized up to take that share of one selection's
time here (``--tower-width``, ``--tower-layers``; the measured share is printed) picks for
``--questions`` questions about one video's frames, decoded beforehand: one `select_frames` per
question vs one `select_frames_batch` (same scores checked to 1e-5).

    python benchmarks/bench_select_batch.py [--tower-width 512 --tower-layers 20]
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
    parser.add_argument("--tower-width", type=int, default=512)
    parser.add_argument("--tower-layers", type=int, default=20)
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

        balance = full_size_balance(paths["selector"], root, args)

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
    print(
        f"\nmodel only, at the full-size balance (tower {balance['share']:.1%} of one selection's "
        f"time; {args.questions} questions about one video's {args.n} decoded frames):"
    )
    print(f"  per question  {balance['single']:7.3f} s")
    print(f"  batch         {balance['batch']:7.3f} s")
    print(
        f"  speed-up      {balance['single'] / balance['batch']:5.2f}x, largest score difference "
        f"{balance['diff']:.1e}"
    )


def full_size_balance(tiny_selector: Path, root: Path, args) -> dict[str, float]:
    """Time one selection's tower and language-model shares with the tower sized up, then
    per-question vs batched selection on pre-decoded frames (see the module docstring)."""
    import numpy as np
    import torch

    from fsmodel.configuration_frame_selector import FrameSelectorConfig
    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.processing_frame_selector import FrameSelectorProcessor
    from fsmodel.video import sample_candidates

    config = FrameSelectorConfig.from_pretrained(tiny_selector)
    vision = config.vision_config
    vision.hidden_size, vision.intermediate_size = args.tower_width, 4 * args.tower_width
    vision.num_hidden_layers, vision.num_attention_heads = args.tower_layers, 4
    config.num_candidates = args.n
    torch.manual_seed(0)
    model = FrameSelectorModel(config).eval()
    processor = FrameSelectorProcessor.from_pretrained(tiny_selector)
    big = root / "big-tower"
    model.save_pretrained(big)
    processor.save_pretrained(big)
    model = FrameSelectorModel.from_pretrained(big).eval()  # loaded once, as a user loads it
    video = sorted(root.glob("v*.mp4"))[0]
    frames = sample_candidates(video, num_candidates=args.n, size=model.frame_size(processor))
    questions = [f"When does shape number {q} appear?" for q in range(args.questions)]
    pixels = processor(frames=frames.frames, question=questions[0], return_tensors="pt")
    with torch.inference_mode():
        model.select_frames(frames, questions[0], k=8)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            model.encode_frames(pixels["pixel_values"])
        tower = (time.perf_counter() - start) / 3
        start = time.perf_counter()
        for _ in range(3):
            model.select_frames(frames, questions[0], k=8)
        one = (time.perf_counter() - start) / 3
        start = time.perf_counter()
        single = [model.select_frames(frames, q, k=8) for q in questions]
        per_question = time.perf_counter() - start
        start = time.perf_counter()
        batched = model.select_frames_batch([(frames, q) for q in questions], k=8,
                                            batch_size=args.batch)  # fmt: skip
        batch = time.perf_counter() - start
    diff = max(
        float(np.max(np.abs(a.scores - b.scores))) for a, b in zip(single, batched, strict=True)
    )
    assert diff <= 1e-5, diff
    return {"share": tower / one, "single": per_question, "batch": batch, "diff": diff}


if __name__ == "__main__":
    main()
