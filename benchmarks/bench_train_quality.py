"""Does training work? Ground truth instead of pretrained weights.

Generated videos whose events are known (`fsmodel.synthetic`) give exact labels: 1.0 on the
candidates showing the asked event, 0 elsewhere. A tiny selector with random weights is trained
from scratch on a few hundred of them with the training recipe (`fsmodel.training`), then its
picks are measured on held-out generated videos:

- "occurrences": the asked event shows up 1-4 times for one frame each, among events of other
  kinds; recall@8 of the selector's picks should be >= 0.9 where uniform sampling gets <= 0.35;
- "spread": the event shows up twice, once long (8-12 frames) and once briefly (1-2 frames),
  far apart. Greedy NMS should cover both occurrences more often than top-k, which spends its
  picks on the long one.

From scratch, a frozen random LLM cannot learn to find frames, so unlike the paper's stage 1
(which starts from a pretrained Qwen2.5) the LLM is trained too; the vision tower stays frozen
(random SigLIP features still tell colours and shapes apart) and its features are cached.
Training is two runs of the recipe, a curriculum: first on events of mixed lengths (long ones
give the dense signal that gets a random model off its initial plateau), then, starting from
that result, on one-frame occurrences (which sharpen where the scores peak; without it NMS, which
takes the peak and suppresses its neighbours, lags top-k by ~0.1 recall).

    python benchmarks/bench_train_quality.py [--train 400] [--steps 1500 1500] [--out DIR]

About 7 minutes on a 2-core CPU (3000 steps). Exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 32  # candidates; the videos have 32 frames, so candidate i is frame i
K = 8
SPREAD_KS = (2, 4, 8)
FRAMES = 32


def make_specs(rng, kinds, others, prefix: str, count: int, kind: str, distractors: int):
    """Video specs of one set: ``train``, ``occurrences`` or ``spread`` (see the docstring)."""
    from fsmodel.training.synthetic_data import random_event_spec

    specs = []
    for i in range(count):
        if kind == "train":
            # Half one-frame occurrences, half longer ones: long events give the dense signal
            # that gets the model off its initial plateau; short ones teach it precision.
            lengths = [1 if rng.random() < 0.5 else int(rng.integers(2, 11))
                       for _ in range(int(rng.integers(1, 4)))]  # fmt: skip
            gap = 1
        elif kind == "occurrences":
            lengths, gap = [1] * int(rng.integers(1, 5)), 1
        else:
            lengths, gap = [int(rng.integers(8, 13)), int(rng.integers(1, 3))], 5
        specs.append(
            random_event_spec(
                rng, f"{prefix}{i:04d}", FRAMES, kinds, lengths, gap, distractors, others
            )
        )
    return specs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=400, help="training videos (1 question each)")
    parser.add_argument("--held-out", type=int, default=60, help="videos per held-out set")
    parser.add_argument("--steps", type=int, nargs=2, default=(1500, 1500), metavar=("MIXED", "ONE"),
                        help="optimiser steps (about) on mixed-length, then one-frame events")  # fmt: skip
    parser.add_argument("--kinds", type=int, default=1, help="event kinds asked about (1-18)")
    parser.add_argument("--distractors", type=int, default=2, help="other events per video, max")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep everything here")
    args = parser.parse_args()

    import datasets
    import numpy as np
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import fsmodel  # noqa: F401
    from fsmodel.synthetic import COLORS, SHAPES
    from fsmodel.tiny import build_all
    from fsmodel.training import FeatureCache, FrameSource, TrainConfig, train_selector
    from fsmodel.training.data import load_samples
    from fsmodel.training.evaluate import EVAL_STRATEGIES, evaluate_selector
    from fsmodel.training.synthetic_data import build_scratch_selector, write_event_dataset

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    # The asked kinds first (red circle, ...); distractors come from all 18 kinds.
    all_kinds = [(c, s) for c in COLORS for s in SHAPES]
    asked = all_kinds[: args.kinds]
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="framesel-quality-")
    root = args.out or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        rng = np.random.default_rng(args.seed)

        def dataset(name: str, count: int, kind: str) -> Path:
            specs = make_specs(rng, asked, all_kinds, name[0], count, kind, args.distractors)
            return write_event_dataset(root / name, specs, N, captions=False)

        train = dataset("train", args.train, "train")
        train_short = dataset("train-occurrences", args.train, "occurrences")
        occurrences = dataset("occurrences", args.held_out, "occurrences")
        spread = dataset("spread", args.held_out, "spread")
        tiny = build_all(root / "tiny-models")
        scratch = build_scratch_selector(
            root / "scratch", tiny["siglip"], tiny["qwen2"], num_candidates=N, layers=4, hidden=64
        )
        data_s = time.perf_counter() - t0

        batch = 8
        trainable = ["projector", "language_model", "score_query", "score_head"]

        def run(name: str, model: Path, data: Path, steps: int, lr: float):
            epochs = max(1, math.ceil(steps / math.ceil(args.train / batch)))
            config = TrainConfig.from_dict(
                {
                    "model": str(model),
                    "output_dir": str(root / name),
                    "seed": args.seed,
                    "data": {"source": str(data), "eval_source": str(occurrences)},
                    "optim": {"epochs": epochs, "batch_size": batch, "lr": lr,
                              "trainable": trainable},
                    "eval": {"k": K, "every_steps": 300},
                    "cache": {"dir": str(root / "cache")},
                    "checkpoint": {"every_steps": 1000, "resume": False},
                }
            )  # fmt: skip
            return train_selector(config)

        t1 = time.perf_counter()
        first = run("run-mixed", scratch, train, args.steps[0], 1e-3)
        result = run("run-occurrences", first.final_dir, train_short, args.steps[1], 5e-4)
        train_s = time.perf_counter() - t1
        steps = first.steps + result.steps

        model = AutoModel.from_pretrained(result.final_dir).eval()
        frames = FrameSource(model, model.get_processor(), cache=FeatureCache(root / "cache"))
        reports = {
            name: evaluate_selector(model, load_samples(path), frames, k=K)
            for name, path in (("occurrences", occurrences), ("spread", spread))
        }
        # Smaller budgets make the difference between the rules plainer: with k picks, NMS
        # suppresses ±floor(n / 4k) around each pick, top-k nothing.
        spread_by_k = {
            k: evaluate_selector(model, load_samples(spread), frames, k=k) for k in SPREAD_KS
        }
    finally:
        if tmp is not None:
            tmp.cleanup()

    config_text = model.config.text_config
    print(
        f"Trained from scratch ({steps} steps in {train_s:.0f} s: {first.steps} on mixed-length "
        f"events at lr 1e-3, then {result.steps} on one-frame occurrences at lr 5e-4; data and "
        f"models {data_s:.0f} s). Vision tower frozen (random SigLIP, features cached); trained "
        f"{', '.join(trainable)} — a Qwen2 of {config_text.num_hidden_layers} layers x "
        f"{config_text.hidden_size} from random weights (std 0.125, RoPE base 1e4). Stage-1 "
        f"recipe otherwise: AdamW, cosine, 3 % warm-up, batch {batch}, BCE on ground-truth "
        f"labels of 2 x {args.train} generated videos ({len(asked)} asked event kind(s), up to "
        f"{args.distractors} distractor events of other kinds each). n = {N}, k = {K}."
    )
    for name, report in reports.items():
        print(f"\nheld-out set {name!r} ({len(report.results)} videos)")
        print(f"  {'strategy':<9} {'recall@8':>9} {'coverage@8':>11}")
        for strategy in EVAL_STRATEGIES:
            print(f"  {strategy:<9} {report.mean('recall', strategy):>9.3f} "
                  f"{report.mean('coverage', strategy):>11.3f}")  # fmt: skip
    print(f"\nheld-out set 'spread' by budget: coverage@k (recall@k), n = {N}")
    print(f"  {'k':>3} {'delta':>5} " + " ".join(f"{s:>15}" for s in EVAL_STRATEGIES))
    for k, report in spread_by_k.items():
        cells = " ".join(
            f"{report.mean('coverage', s):>7.3f} ({report.mean('recall', s):.3f})"
            for s in EVAL_STRATEGIES
        )
        print(f"  {k:>3} {N // (4 * k):>5} {cells}")
    occ = reports["occurrences"]
    checks = [
        ("nms recall@8 >= 0.9 on held-out videos", occ.mean("recall", "nms") >= 0.9,
         f"{occ.mean('recall', 'nms'):.3f}"),
        ("uniform recall@8 <= 0.35 there", occ.mean("recall", "uniform") <= 0.35,
         f"{occ.mean('recall', 'uniform'):.3f}"),
        *[(f"nms covers spread-out occurrences more often than topk at k = {k}",
           r.mean("coverage", "nms") > r.mean("coverage", "topk"),
           f"{r.mean('coverage', 'nms'):.3f} vs {r.mean('coverage', 'topk'):.3f}")
          for k, r in spread_by_k.items()],
    ]  # fmt: skip
    print()
    for text, ok, value in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}: {value}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
