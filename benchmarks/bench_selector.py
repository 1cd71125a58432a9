"""What one selection costs: the selector (one LLM pass over all 128 candidates) against the
per-frame scoring it replaces (one LLM pass per candidate frame), split into decode / vision /
LLM / selection, as FLOPs and CPU wall time in the same run.

Architectures (random weights, fp32, CPU, one thread):
  full  SigLIP so400m/14 @ 384 px tower + Qwen2.5-1.5B (the production defaults)
  tiny  fsmodel.tiny's selector (what the tests and the demo run)

To finish in minutes, the full-size towers are built with 1 and 2 layers, timed, and the time is
extrapolated linearly to the full depth (t(L) = a + b·L); the vision tower runs a few frames and is
scaled to 128. The per-frame baseline is prefill only (160 tokens per frame: a frame at 64 visual
tokens plus the spatial prompt), without the chain-of-thought decoding a real per-frame labeler
adds, so the ratio is a lower bound. FLOPs are counted analytically (multiply-add = 2 FLOPs).

    python benchmarks/bench_selector.py
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

N = 128
K = 8
BASELINE_TOKENS = 160
CACHE = Path(__file__).parent / ".cache"


def layer_flops(tokens: int, context: float, cfg, gated: bool) -> float:
    """One transformer layer over ``tokens`` tokens, each attending to ``context`` tokens."""
    d = cfg.hidden_size
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", heads) or heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    proj = d * heads * head_dim * 2 + d * kv * head_dim * 2  # q, o + k, v
    mlp = (3 if gated else 2) * d * cfg.intermediate_size
    attn = 2 * context * heads * head_dim  # scores + weighted sum, per token
    return 2.0 * tokens * (proj + mlp + attn)


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up: allocations, kernels
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def extrapolate(times: dict[int, float], depth: int) -> float:
    (l1, t1), (l2, t2) = sorted(times.items())
    per_layer = max(0.0, (t2 - t1) / (l2 - l1))
    return max(0.0, t1 - per_layer * l1) + per_layer * depth


def with_layers(config, vision_layers: int, text_layers: int):
    cfg = copy.deepcopy(config)
    cfg.vision_config.num_hidden_layers = vision_layers
    cfg.text_config.num_hidden_layers = text_layers
    if hasattr(cfg.text_config, "layer_types") and cfg.text_config.layer_types is not None:
        cfg.text_config.layer_types = cfg.text_config.layer_types[:text_layers]
    if hasattr(cfg.text_config, "max_window_layers"):
        cfg.text_config.max_window_layers = text_layers
    return cfg


def selector_ids(processor, config, question: str) -> torch.Tensor:
    """The selector's real prompt layout, with the config's special-token ids."""
    row = processor(
        frames=np.zeros((N, 8, 8, 3), np.uint8), question=question, return_tensors="np"
    )["input_ids"][0]
    tok = processor.tokenizer
    remap = {
        tok.convert_tokens_to_ids("<|vision_start|>"): config.frame_start_token_id,
        tok.convert_tokens_to_ids("<|vision_end|>"): config.frame_end_token_id,
        tok.convert_tokens_to_ids("<|image_pad|>"): config.frame_token_id,
        tok.convert_tokens_to_ids("<|video_pad|>"): config.score_token_id,
    }
    return torch.tensor([[remap.get(int(t), int(t)) for t in row]])


def measure(name: str, config, processor, video: Path, vision_frames: int, baseline_frames: int):
    from transformers import Qwen2Model

    from fsmodel import FrameSelectorModel
    from fsmodel.selection import greedy_nms
    from fsmodel.video import sample_candidates

    vc, tc = config.vision_config, config.text_config
    size = int(vc.image_size)
    g2 = config.pooled_grid**2
    ids = selector_ids(processor, config, "When does the red circle appear?")
    t_sel = ids.shape[1]
    patches = (size // vc.patch_size) ** 2
    depth_v, depth_t = vc.num_hidden_layers, tc.num_hidden_layers

    res: dict[str, dict[str, float]] = {}
    # decode: same sampler, same video, at the tower's resolution
    t_dec = timed(lambda: sample_candidates(video, N, size=size), repeats=3)
    res["decode"] = {"flops": 0.0, "sel": t_dec, "base": t_dec}

    # vision tower (frozen in both pipelines: each candidate frame is encoded once)
    vis_t = {}
    for layers in (1, 2):
        torch.manual_seed(0)
        model = FrameSelectorModel(with_layers(config, layers, 1)).eval()
        pix = torch.randn(1, vision_frames, 3, size, size)
        with torch.no_grad():
            vis_t[layers] = timed(lambda m=model, p=pix: m.encode_frames(p), repeats=2)
        del model
    t_vis = extrapolate(vis_t, depth_v) * N / vision_frames
    f_vis = N * depth_v * layer_flops(patches, patches, vc, gated=False)
    res["vision"] = {"flops": f_vis, "sel": t_vis, "base": t_vis}

    # selector LLM: one pass over [instruction, 128 x 9 frame tokens, question, query]
    llm_t = {}
    feats = torch.randn(1, N, g2, vc.hidden_size)
    for layers in (1, 2):
        torch.manual_seed(0)
        model = FrameSelectorModel(with_layers(config, 1, layers)).eval()
        with torch.no_grad():
            llm_t[layers] = timed(lambda m=model: m(input_ids=ids, frame_features=feats), repeats=2)
        del model
    t_llm = extrapolate(llm_t, depth_t)
    f_llm = depth_t * layer_flops(t_sel, t_sel / 2, tc, gated=True)
    f_llm += (
        2
        * N
        * g2
        * (
            vc.hidden_size * config.projector_hidden_size
            + config.projector_hidden_size * tc.hidden_size
        )
    )

    # baseline: one pass per frame of BASELINE_TOKENS tokens through the same LLM (prefill)
    base_t = {}
    for layers in (1, 2):
        torch.manual_seed(0)
        tcfg = copy.deepcopy(tc)
        tcfg.num_hidden_layers = layers
        if getattr(tcfg, "layer_types", None) is not None:
            tcfg.layer_types = tcfg.layer_types[:layers]
        lm = Qwen2Model(tcfg).eval()
        x = torch.randint(0, 500, (baseline_frames, BASELINE_TOKENS))
        with torch.no_grad():
            base_t[layers] = timed(lambda m=lm, x=x: m(input_ids=x), repeats=2)
        del lm
    t_base = extrapolate(base_t, depth_t) * N / baseline_frames
    f_base = N * depth_t * layer_flops(BASELINE_TOKENS, BASELINE_TOKENS / 2, tc, gated=True)
    res["LLM"] = {"flops_sel": f_llm, "flops_base": f_base, "sel": t_llm, "base": t_base}

    scores = np.random.default_rng(0).random(N)
    t_nms = timed(lambda: [greedy_nms(scores, K) for _ in range(100)], repeats=3) / 100
    res["selection"] = {"flops": 0.0, "sel": t_nms, "base": t_nms}
    return res, t_sel


def report(name: str, res, t_sel: int) -> None:
    print(
        f"\n== {name}: selector LLM pass = {t_sel} tokens; baseline = {N} passes x {BASELINE_TOKENS} tokens"
    )
    print(
        f"{'part':10} {'selector GFLOP':>15} {'baseline GFLOP':>15} {'selector s':>11} {'baseline s':>11} {'ratio':>8}"
    )
    tot_s = tot_b = 0.0
    for part in ("decode", "vision", "LLM", "selection"):
        r = res[part]
        fs = r.get("flops_sel", r.get("flops", 0.0)) / 1e9
        fb = r.get("flops_base", r.get("flops", 0.0)) / 1e9
        tot_s += r["sel"]
        tot_b += r["base"]
        ratio = r["base"] / r["sel"] if r["sel"] > 0 else float("nan")
        fl = f"{fb / fs:6.1f}× FLOP, " if fs > 0 and part == "LLM" else ""
        print(
            f"{part:10} {fs:15.1f} {fb:15.1f} {r['sel']:11.4g} {r['base']:11.4g} {fl}{ratio:6.1f}× wall"
        )
    print(f"{'total':10} {'':15} {'':15} {tot_s:11.3f} {tot_b:11.3f} {tot_b / tot_s:6.1f}× wall")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--skip-full", action="store_true", help="only the tiny architecture")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import fsmodel  # noqa: F401
    from fsmodel import FrameSelectorConfig, FrameSelectorProcessor
    from fsmodel.synthetic import write_video
    from fsmodel.tiny import build_all

    CACHE.mkdir(exist_ok=True)
    video = CACHE / "bench_60s_640x360_gop200.mp4"
    if not video.exists():
        write_video(video, num_frames=1800, size=(640, 360), fps=30, gop=200,
                    options={"preset": "veryfast", "crf": "23", "bf": "2"})  # fmt: skip
    paths = build_all(CACHE / "tiny-models")
    processor = FrameSelectorProcessor.from_pretrained(paths["selector"])
    tiny = FrameSelectorConfig.from_pretrained(paths["selector"])
    tiny.num_candidates = N
    print("Timing method: 1- and 2-layer towers, extrapolated linearly to full depth; vision on a")
    print("few frames scaled to 128; baseline on a few frames scaled to 128; prefill only.")
    res, t_sel = measure("tiny", tiny, processor, video, vision_frames=N, baseline_frames=N)
    report("tiny (fsmodel.tiny selector, 128 candidates)", res, t_sel)
    if not args.skip_full:
        full = FrameSelectorConfig()
        res, t_sel = measure("full", full, processor, video, vision_frames=2, baseline_frames=8)
        report("full (SigLIP so400m/14@384 + Qwen2.5-1.5B, random weights, fp32 CPU)", res, t_sel)


if __name__ == "__main__":
    main()
