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

Does it read the question? ``--kinds K`` (2-6) asks about K event kinds (red square, green
circle, blue bar, yellow square, ...): after a first stage on the first kind alone (as above),
every training video shows 2-4 of them, with one row (question) per kind, so the frames alone
cannot tell the rows apart; held-out videos show 2-3 of them, a question each. The question
check scores each row's picks against the frames of *another* asked kind in the same video: a
selector that ignores the question picks every asked kind's frames and recalls the other kind's
about as well, one that reads it recalls them no better than uniform sampling. With 2 kinds
(3800 steps, ~8.5 minutes) it reads the question (recall@8 against the other kind's frames 0.14
for nms, below uniform's 0.29) but finds the asked kind's less reliably than with one kind (nms
0.76, topk 0.86: the >= 0.9 check fails); with 4 kinds it barely reads it (nms 0.41 with the
asked question, 0.37 against another kind's frames).

    python benchmarks/bench_train_quality.py [--train 400] [--steps 1500 1500] [--out DIR]
    python benchmarks/bench_train_quality.py --kinds 2 [--steps 1000 2000 800]

About 7 minutes on a 2-core CPU (3000 steps; --kinds 2: 3800 steps). Exit code 1 if a check
fails.
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


def make_specs(rng, kinds, others, prefix: str, count: int, kind: str, distractors: int,
               per_video: tuple[int, int] = (1, 1)):  # fmt: skip
    """Video specs of one set: ``train``, ``occurrences`` or ``spread`` (see the docstring).
    ``per_video`` other than (1, 1): each video shows that many (at least, at most) of
    ``kinds`` at once, with one question (label row) per kind (spread sets: one kind)."""
    from fsmodel.training.synthetic_data import random_event_spec

    if per_video != (1, 1) and kind != "spread":
        return [multi_spec(rng, kinds, others, f"{prefix}{i:04d}", kind, distractors, per_video)
                for i in range(count)]  # fmt: skip
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


def multi_spec(rng, kinds, others, name: str, kind: str, distractors: int, per_video):
    """A video showing ``per_video`` (at least, at most) of ``kinds``, each 1-3 times with
    mixed lengths (``train``) or for one frame (``occurrences``); one row per kind."""
    import numpy as np

    from fsmodel.training.synthetic_data import random_multi_event_spec

    count = int(rng.integers(per_video[0], min(per_video[1], len(kinds)) + 1))
    chosen = [kinds[j] for j in rng.choice(len(kinds), count, replace=False)]
    if kind == "train":
        lengths = {c: [1 if rng.random() < 0.5 else int(rng.integers(2, 11))
                       for _ in range(int(rng.integers(1, 4)))] for c in chosen}  # fmt: skip
    else:
        lengths = {c: [1] * int(rng.integers(1, 4)) for c in chosen}
    # Shorten the longest occurrences (then drop one-frame ones) until all fit, 1 frame apart.
    while sum(sum(v) + 2 * len(v) for v in lengths.values()) - 2 > FRAMES:
        c = max(lengths, key=lambda c: (max(lengths[c]), len(lengths[c])))
        if max(lengths[c]) > 1:
            lengths[c][int(np.argmax(lengths[c]))] -= 1
        else:
            lengths[c].pop()
    return random_multi_event_spec(rng, name, FRAMES, lengths, 1, distractors, others)


def swapped_results(samples, report, k: int):
    """Each row's picks measured against the labels of every other row (question) of the same
    video: a selector that reads the question picks the other kind's frames no more often
    than chance."""
    import numpy as np

    from fsmodel.training.evaluate import score_samples

    by_video: dict[str, list] = {}
    for sample, result in zip(samples, report.results, strict=True):
        by_video.setdefault(sample.video_id, []).append(result)
    pairs = [(a, b) for rows in by_video.values() for a in rows for b in rows if a is not b]
    if not pairs:
        return []
    return score_samples(
        [a.sample_id for a, _ in pairs],
        np.stack([a.scores for a, _ in pairs]),
        np.stack([b.labels for _, b in pairs]),
        k,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=400, help="training videos (1 question each)")
    parser.add_argument("--held-out", type=int, default=60, help="videos per held-out set")
    parser.add_argument("--steps", type=int, nargs="+", default=None, metavar="STEPS",
                        help="optimiser steps (about) per stage: MIXED ONE (default 1500 1500) "
                             "with --kinds 1; FIRST MIXED ONE (default 1000 2000 800) with more "
                             "kinds")  # fmt: skip
    parser.add_argument("--kinds", type=int, default=1,
                        help="event kinds asked about (1-6); more than 1: each video shows 2 or "
                             "more of them, with one question per kind")  # fmt: skip
    parser.add_argument("--distractors", type=int, default=2, help="other events per video, max")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--question-first", action="store_true",
                        help="the processor's layout with the question before the frames")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="keep everything here")
    args = parser.parse_args()
    multi = args.kinds > 1
    if args.steps is None:
        args.steps = [1000, 2000, 800] if multi else [1500, 1500]
    if len(args.steps) != (3 if multi else 2):
        parser.error(f"--steps takes {3 if multi else 2} values with --kinds {args.kinds}")
    if not 1 <= args.kinds <= 6:
        parser.error("--kinds must be between 1 and 6")

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
    from fsmodel.training.evaluate import EVAL_RULES, evaluate_selector
    from fsmodel.training.synthetic_data import build_scratch_selector, write_event_dataset

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    # The asked kinds differ in colour and, where they can, shape (red square, green circle,
    # blue bar, ...); distractors come from all 18 kinds.
    all_kinds = [(c, s) for c in COLORS for s in SHAPES]
    asked = [(c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(list(COLORS)[: args.kinds])]
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="framesel-quality-")
    root = args.out or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        rng = np.random.default_rng(args.seed)

        def dataset(name: str, count: int, kind: str, kinds=asked, per_video=(1, 1)) -> Path:
            specs = make_specs(
                rng, kinds, all_kinds, name[0], count, kind, args.distractors, per_video
            )
            return write_event_dataset(root / name, specs, N, captions=False)

        # Several kinds: 2-4 per training video (2-3 per held-out video), a row per kind.
        many = (2, 4) if multi else (1, 1)
        stages = []
        if multi:  # first the first kind alone: what gets a random model off its plateau
            stages.append(("run-first", dataset("first", args.train, "train", asked[:1]), 1e-3))
        stages.append(("run-mixed", dataset("train", args.train, "train", per_video=many), 1e-3))
        stages.append(
            ("run-occurrences",
             dataset("train-occurrences", args.train, "occurrences", per_video=many), 5e-4)
        )  # fmt: skip
        occurrences = dataset(
            "occurrences", args.held_out, "occurrences", per_video=(2, 3) if multi else (1, 1)
        )
        spread = dataset("spread", args.held_out, "spread")
        tiny = build_all(root / "tiny-models")
        scratch = build_scratch_selector(
            root / "scratch",
            tiny["siglip"],
            tiny["qwen2"],
            num_candidates=N,
            layers=4,
            hidden=64,
            question_first=args.question_first,
        )
        data_s = time.perf_counter() - t0

        batch = 8
        trainable = ["projector", "language_model", "score_query", "score_head"]

        def run(name: str, model: Path, data: Path, steps: int, lr: float):
            rows = len(load_samples(data))
            epochs = max(1, math.ceil(steps / math.ceil(rows / batch)))
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
        model_dir, done = scratch, []
        for (name, data, lr), steps in zip(stages, args.steps, strict=True):
            result = run(name, model_dir, data, steps, lr)
            model_dir = result.final_dir
            done.append((name, result.steps, lr))
        train_s = time.perf_counter() - t1
        steps = sum(count for _, count, _ in done)

        model = AutoModel.from_pretrained(model_dir).eval()
        frames = FrameSource(model, model.get_processor(), cache=FeatureCache(root / "cache"))
        held_out = {name: load_samples(path) for name, path in
                    (("occurrences", occurrences), ("spread", spread))}  # fmt: skip
        reports = {
            name: evaluate_selector(model, samples, frames, k=K)
            for name, samples in held_out.items()
        }
        swapped = swapped_results(held_out["occurrences"], reports["occurrences"], K)
        # Smaller budgets make the difference between the rules plainer: with k picks, NMS
        # suppresses ±floor(n / 4k) around each pick, top-k nothing.
        spread_by_k = {
            k: evaluate_selector(model, load_samples(spread), frames, k=k) for k in SPREAD_KS
        }
    finally:
        if tmp is not None:
            tmp.cleanup()

    config_text = model.config.text_config
    several = " (2-4 asked kinds per video, a question each)" if multi else ""
    what = {
        "run-first": "mixed-length events of the first kind alone",
        "run-mixed": f"mixed-length events{several}",
        "run-occurrences": f"one-frame occurrences{several}",
    }
    plan = ", then ".join(f"{count} on {what[name]} at lr {lr:.0e}" for name, count, lr in done)
    print(
        f"Trained from scratch ({steps} steps in {train_s:.0f} s: {plan.replace('e-0', 'e-')}; "
        f"data and models {data_s:.0f} s). Vision tower frozen (random SigLIP, features cached); "
        f"trained "
        f"{', '.join(trainable)} — a Qwen2 of {config_text.num_hidden_layers} layers x "
        f"{config_text.hidden_size} from random weights (std 0.125, RoPE base 1e4). Stage-1 "
        f"recipe otherwise: AdamW, cosine, 3 % warm-up, batch {batch}, BCE on ground-truth "
        f"labels of {len(done)} x {args.train} generated videos ({len(asked)} asked event kind(s): "
        f"{', '.join(f'{c} {s}' for c, s in asked)}; up to "
        f"{args.distractors} distractor events of other kinds each). n = {N}, k = {K}."
    )
    for name, report in reports.items():
        videos = len({s.video_id for s in held_out[name]})
        rows = f"{len(report.results)} questions on " if len(report.results) != videos else ""
        print(f"\nheld-out set {name!r} ({rows}{videos} videos)")
        print(f"  {'strategy':<9} {'recall@8':>9} {'coverage@8':>11}")
        for strategy in EVAL_RULES:
            print(f"  {strategy:<9} {report.mean('recall', strategy):>9.3f} "
                  f"{report.mean('coverage', strategy):>11.3f}")  # fmt: skip
    print(f"\nheld-out set 'spread' by budget: coverage@k (recall@k), n = {N}")
    print(f"  {'k':>3} {'delta':>5} " + " ".join(f"{s:>15}" for s in EVAL_RULES))
    for k, report in spread_by_k.items():
        cells = " ".join(
            f"{report.mean('coverage', s):>7.3f} ({report.mean('recall', s):.3f})"
            for s in EVAL_RULES
        )
        print(f"  {k:>3} {N // (4 * k):>5} {cells}")
    occ = reports["occurrences"]
    if swapped:
        # The question swapped for another kind the same video shows: a selector that reads the
        # question still picks the asked kind's frames, which now count as misses.
        print(f"\nquestion check on 'occurrences': picks for one question, recall@{K} against "
              f"another asked kind in the same video ({len(swapped)} pairs)")  # fmt: skip
        print(f"  {'strategy':<9} {'matched':>8} {'swapped':>8}")
        for strategy in EVAL_RULES:
            print(f"  {strategy:<9} {occ.mean('recall', strategy):>8.3f} "
                  f"{np.mean([r.recall[strategy] for r in swapped]):>8.3f}")  # fmt: skip
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
    if swapped:
        matched = occ.mean("recall", "nms")
        other = float(np.mean([r.recall["nms"] for r in swapped]))
        chance = occ.mean("recall", "uniform")
        # Both: a selector that ignores the question scores every asked kind's frames, and
        # then recalls the other kind's about as well as the asked one's.
        checks.append(
            ("the question decides: nms recall@8 against another asked kind's frames is <= "
             "uniform's and >= 0.5 below the asked kind's",
             other <= chance and matched - other >= 0.5,
             f"{other:.3f} (uniform {chance:.3f}, asked kind {matched:.3f})")
        )  # fmt: skip
    print()
    for text, ok, value in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}: {value}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
