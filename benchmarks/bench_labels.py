"""Spatial labelling throughput, batched vs one request at a time, and caption calls per run.

Both label runs go through `fslabels.run.run_labels` on the tiny offline models (transformers
backend, CPU, one thread), over the same generated videos and manifest, in one process:

  one at a time  spatial.batch_size = 1 and the backend's forward batch = 1: every frame's
                 request is its own generate() call (how a naive per-frame labeler runs)
  batched        the questions of a video concatenated into calls of spatial.batch_size
                 requests, run in forward batches of backend_options.batch_size (left-padded)

Throughput is spatial judgements (question x frame) per second of the spatial stage's wall time.
The fingerprints of the two runs are equal (batch sizes never change labels), and the largest
score difference between them is printed. The manifest holds several questions per video, so
the caption requests (candidates x videos) are far fewer than candidates x questions.

    python benchmarks/bench_labels.py [--videos 3 --questions 4 --n 16 --batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

CACHE = Path(__file__).parent / ".cache"


def write_inputs(root: Path, videos: int, questions: int) -> Path:
    from fsmodel.synthetic import COLORS, SHAPES, Event, write_video

    colours = sorted(COLORS)
    rows = []
    for v in range(videos):
        events = [
            Event(10 * q, 10 * q + 7, SHAPES[q % len(SHAPES)], colours[(v + q) % len(colours)])
            for q in range(questions)
        ]
        clip = write_video(root / "videos" / f"v{v}.mp4", num_frames=10 * questions + 20,
                           events=events, seed=v)  # fmt: skip
        rows += [{"video": clip.path.name, "question": q["question"]} for q in clip.questions()]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def spatial_scores(workdir: Path, summary) -> np.ndarray:
    """Every stored spatial score of a run (NaN where the frame failed), in item order."""
    from fslabels.store import RunStore

    with RunStore(workdir, create=False) as store:
        ids = [item.sample_id for item in store.items()]
        records = store.get_many("spatial", ids, summary.fingerprints["spatial"])
    return np.array(
        [[np.nan if v is None else v for v in records[i].payload["scores"]] for i in ids]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--questions", type=int, default=4, help="questions per video")
    parser.add_argument("--n", type=int, default=16, help="candidate frames per video")
    parser.add_argument("--batch", type=int, default=32, help="forward batch of the batched run")
    parser.add_argument("--size", type=int, default=48, help="frame short side in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the runs' work directories")
    parser.add_argument(
        "--top-logprobs",
        type=int,
        default=100,
        help="alternatives per token: the random tiny model needs ~100 for True/False to show up "
        "at the answer slot (OpenAI and vLLM cap it at 20; 20 here makes every frame a recorded "
        "failure but times the same work)",
    )
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from fslabels.config import LabelRunConfig
    from fslabels.run import run_labels
    from fsmodel.tiny import build_all

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    CACHE.mkdir(exist_ok=True)
    models = build_all(CACHE / "tiny-models")
    work = Path(tempfile.mkdtemp(prefix="bench-labels-"))
    manifest = write_inputs(work, args.videos, args.questions)
    videos = work / "videos"

    def config(run_batch: int, forward_batch: int) -> LabelRunConfig:
        vl = str(models["qwen2-vl"])
        return LabelRunConfig.from_dict(
            {
                "num_candidates": args.n,
                "frame_size": args.size,
                "spatial": {
                    "model": vl,
                    "batch_size": run_batch,
                    "backend_options": {"batch_size": forward_batch},
                    "max_new_tokens": args.max_new_tokens,
                    "top_logprobs": args.top_logprobs,
                    "force_top_logprobs": args.top_logprobs,
                },
                "captions": {"model": vl, "max_new_tokens": 6},
                "temporal": {
                    "backend": "transformers",
                    "model": str(models["qwen2"]),
                    "max_new_tokens": 8,
                    "max_attempts": 1,
                },
                "prices": {},
            }
        )

    runs = {
        "warm-up": config(args.batch * 2, args.batch),
        "one at a time": config(1, 1),
        "batched": config(args.batch * 2, args.batch),
    }
    summaries = {}
    for name, cfg in runs.items():
        summaries[name.replace(" ", "-")] = run_labels(cfg, manifest, videos, work / name.replace(" ", "-"),
                                     progress=False)  # fmt: skip
    judgements = args.videos * args.questions * args.n
    print(f"{args.videos} videos x {args.questions} questions x {args.n} candidates = "
          f"{judgements} spatial judgements per run (tiny Qwen2-VL, CPU, 1 thread)")  # fmt: skip
    rate = {}
    for name in ("one at a time", "batched"):
        stats = summaries[name.replace(" ", "-")].stages["spatial"]
        rate[name] = judgements / stats.seconds
        print(f"  {name:>13}: {stats.seconds:6.2f} s  {rate[name]:7.1f} judgements/s  "
              f"({stats.requests} requests incl. forced answers)")  # fmt: skip
    ratio = rate["batched"] / rate["one at a time"]
    print(
        f"  batched / one at a time: {ratio:.1f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})"
    )
    same = summaries["batched"].fingerprints == summaries["one-at-a-time"].fingerprints
    a, b = (spatial_scores(work / name, summaries[name]) for name in ("one-at-a-time", "batched"))
    both = np.isfinite(a) & np.isfinite(b)
    difference = f"{np.abs(a[both] - b[both]).max():.2e}" if both.any() else "n/a"
    scored = int(np.isfinite(a).sum()), int(np.isfinite(b).sum())
    why = (
        f" (the rest: True/False not among the random tiny model's top {args.top_logprobs}, "
        "recorded as failures)"
        if min(scored) < judgements
        else ""
    )
    print(
        f"  same fingerprints: {same}; frames scored: {scored[0]} and {scored[1]} of "
        f"{judgements}{why}; largest score difference: {difference}"
    )

    captions = summaries["batched"].stages["captions"]
    print(f"caption requests per run: {captions.requests} = {args.n} candidates x {args.videos} "
          f"videos (not x {args.videos * args.questions} questions = "
          f"{args.n * args.videos * args.questions})")  # fmt: skip
    if args.keep:
        print(f"(work directories in {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
