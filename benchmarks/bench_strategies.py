"""What each selection strategy costs on a 20-minute video, as ratios against uniform sampling
measured in the same run.

One question over benchmarks/bench_video.py's cached 20-minute 640×360 H.264 video (GOP 200),
n = 128 candidates at short side 224, k = 8 and 32, through `fslabels.evaluation.strategies`:

  uniform                      decodes only the k frames it picks (probe + k decodes)
  selector:nms / :topk / :inverse_transform
                               decodes all 128, one selector pass (tiny selector, 128-way head)
  similarity:nms               decodes all 128, a SigLIP dual encoder (tiny) on every frame
  mllm:topk                    decodes all 128, one M-LLM request per frame (spatial labeler,
                               direct True/False, tiny Qwen2-VL through the transformers backend)

The models are fsmodel.tiny's (random weights, fp32, CPU, one thread), so the model columns
measure framesel's overhead and the request pattern, not a 7B model's compute; the counts (model
calls, prompt tokens) carry over to the real models unchanged, and benchmarks/bench_selector.py
has the full-size selector against per-frame scoring. Decoding is real at full scale.

Protocol: the n-candidate decode (the same work for every scored strategy) is timed once; uniform's
k-frame decode per k; each scored strategy's scoring + rule on the decoded candidates, as a first
question on the video (per-video caches cleared). Every timing is the median of ``--repeats``
runs after a warm-up; the machine is shared, so ratios come from one run.

    python benchmarks/bench_strategies.py
    python benchmarks/bench_strategies.py --repeats 1 --no-mllm   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

N, SIZE, KS = 128, 224, (8, 32)
QUESTION = "When does the red circle appear?"
CACHE = Path(__file__).parent / ".cache"


def tiny_models() -> dict[str, Path]:
    """fsmodel.tiny's models, a 128-candidate tiny selector, and a tiny SigLIP with a tokenizer."""
    import torch

    from fsmodel import FrameSelectorModel, FrameSelectorProcessor
    from fsmodel.tiny import build_all, build_tiny_similarity

    paths = build_all(CACHE / "tiny-models")
    selector = CACHE / "tiny-selector-128"
    if not (selector / "config.json").is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = FrameSelectorModel.from_backbones(
                paths["siglip"], paths["qwen2"], num_candidates=N
            )
        processor = FrameSelectorProcessor.from_backbones(paths["siglip"], paths["qwen2"])
        model.save_pretrained(selector)
        processor.save_pretrained(selector)
    paths["selector-128"] = selector
    paths["similarity"] = build_tiny_similarity(CACHE / "tiny-similarity", paths["tokenizer"])
    return paths


def median_time(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: loads, allocations, page cache
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), out


def measure_selection(strategy, candidates, k: int, repeats: int) -> dict:
    """Scoring + rule on already-decoded candidates, as a first question on the video."""
    costs = []

    def once():
        strategy.scorer.reset()  # no per-video caches: the first question pays for everything
        selection = strategy.select(candidates, QUESTION, k)
        costs.append(selection.cost)
        return selection

    wall, _ = median_time(once, repeats)
    cost = costs[-1]
    return {
        "select": wall,
        "score": statistics.median(c.score_seconds for c in costs[1:]),
        "rule": statistics.median(c.rule_seconds for c in costs[1:]),
        "calls": cost.model_calls,
        "tokens": cost.prompt_tokens + cost.completion_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-mllm", action="store_true", help="skip the per-frame M-LLM scorer")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from bench_video import ensure_video
    from rich.console import Console
    from rich.table import Table

    from fslabels.evaluation.strategies import build_strategy

    CACHE.mkdir(exist_ok=True)
    video = ensure_video("20min", 20 * 60)
    paths = tiny_models()
    vocab = json.loads((paths["qwen2"] / "config.json").read_text())["vocab_size"]
    scorers = {
        "selector": {"model": str(paths["selector-128"])},
        "similarity": {"model": str(paths["similarity"])},
        "mllm": {
            "model": str(paths["qwen2-vl"]),
            "backend_options": {"batch_size": 16},
            "top_logprobs": vocab,
            "force_top_logprobs": vocab,
        },
    }
    from fslabels.evaluation.scorers import build_scorer

    shared = {name: build_scorer(name, config) for name, config in scorers.items()}
    names = [
        "uniform",
        "selector:nms",
        "selector:topk",
        "selector:inverse_transform",
        "similarity:nms",
    ]
    if not args.no_mllm:
        names.append("mllm:topk")
    from fslabels.evaluation.strategies import uniform_selection
    from fsmodel.video import sample_candidates

    # Decoding the n candidates is the same work for every scored strategy: timed once
    # (median), so the rows differ only by what differs between the strategies.
    decode_n, candidates = median_time(lambda: sample_candidates(video, N, size=SIZE), args.repeats)
    print(f"  decode {N} candidates: {decode_n:.2f} s", file=sys.stderr, flush=True)
    results = []
    for k in KS:
        decode_k, _ = median_time(lambda k=k: uniform_selection(video, k, N, SIZE), args.repeats)
        results.append({"strategy": "uniform", "k": k, "frames": k, "decode": decode_k,
                        "score": 0.0, "rule": 0.0, "select": 0.0, "calls": 0, "tokens": 0,
                        "total": decode_k, "ratio": 1.0})  # fmt: skip
        for name in names[1:]:
            result = measure_selection(build_strategy(name, shared), candidates, k, args.repeats)
            total = decode_n + result["select"]
            results.append({"strategy": name, "k": k, "frames": N, "decode": decode_n, **result,
                            "total": total, "ratio": total / decode_k})  # fmt: skip
            print(f"  {name} k={k}: {total:.2f} s", file=sys.stderr, flush=True)
    table = Table(
        title=f"Selection cost on a 20-minute video (n={N} candidates at {SIZE} px; medians of "
        f"{args.repeats}; tiny models, CPU, 1 thread)",
        caption="total = decode + score + rule; × uniform: total / uniform's at the same k (same "
        "run). decode: uniform decodes only its k frames (probe + k frames); the others decode "
        "all n (timed once, the same work for all of them). calls / tokens: the scorer's model "
        "calls and tokens, as a first question on the video (no per-video caches).",
    )
    for column in ("strategy", "k", "frames decoded", "decode s", "score s", "rule ms", "total s",
                   "× uniform", "calls", "tokens"):  # fmt: skip
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for r in results:
        table.add_row(
            r["strategy"], str(r["k"]), str(r["frames"]), f"{r['decode']:.2f}", f"{r['score']:.2f}",
            f"{1000 * r['rule']:.2f}", f"{r['total']:.2f}", f"{r['ratio']:.1f}", str(r["calls"]),
            str(r["tokens"]),
        )  # fmt: skip
    Console(width=140).print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
