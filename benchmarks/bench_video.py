"""Candidate sampling speed and memory: framesel's readers against plain decord `get_batch`.

Generates (once, cached in benchmarks/.cache) 640×360 H.264 videos with a keyframe every 200
frames, then samples 128 candidates at short side 224 with:
  - decord get_batch (the baseline: what most video-LLM code does),
  - framesel exact mode with the pyav reader (the default) and the decord reader,
  - framesel keyframe mode.
Each measurement runs in a fresh subprocess, so peak RSS is that run's own; wall and CPU are
medians over --repeats runs. Ratios are against the baseline measured in the same run, because
these machines are noisy.

    python benchmarks/bench_video.py             # 60 s and 20 min videos
    python benchmarks/bench_video.py --quick     # 60 s only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).parent / ".cache"
VIDEOS = {"60s": 60, "20min": 20 * 60}
FPS = 30
N, SIZE = 128, 224

_CHILD = r"""
import json, resource, sys, time
path, method, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Imports happen before the clock starts: this measures sampling, not interpreter start-up.
import numpy as np
from fsmodel.video import candidate_indices, output_size, sample_candidates
if method.startswith("decord"):
    import decord
t0, c0 = time.perf_counter(), time.process_time()
if method == "decord get_batch":
    probe = decord.VideoReader(path, ctx=decord.cpu(0))
    h, w = probe[0].shape[:2]
    del probe
    w, h = output_size(w, h, size)
    vr = decord.VideoReader(path, ctx=decord.cpu(0), width=w, height=h)
    frames = vr.get_batch(candidate_indices(len(vr), n).tolist()).asnumpy()
    vr.seek(0)
    del vr
    shape = frames.shape
else:
    reader, mode = method.split("/")
    c = sample_candidates(path, n, size=size, reader=reader, mode=mode)
    shape = c.frames.shape
    moved = c.offsets
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"wall": wall, "cpu": cpu, "rss": rss, "shape": list(shape)}
if method.endswith("keyframe"):
    out["max_moved_s"] = float(np.abs(moved).max()) / 30
print(json.dumps(out))
"""

METHODS = ["decord get_batch", "pyav/exact", "decord/exact", "pyav/keyframe"]


def ensure_video(name: str, seconds: int) -> Path:
    from fsmodel.synthetic import write_video

    path = CACHE / f"bench_{name}_640x360_gop200.mp4"
    if path.exists():
        return path
    print(f"generating {path.name} ({seconds * FPS} frames; cached for later runs)", flush=True)
    tmp = path.with_suffix(".part.mp4")
    write_video(
        tmp,
        num_frames=seconds * FPS,
        size=(640, 360),
        fps=FPS,
        gop=200,
        options={"preset": "veryfast", "crf": "23", "bf": "2"},
        progress=True,
    )
    tmp.rename(path)
    return path


def measure(path: Path, method: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), method, str(N), str(SIZE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{method} on {path.name} failed:\n{proc.stderr[-2000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss")}
    if "max_moved_s" in runs[0]:
        out["max_moved_s"] = runs[0]["max_moved_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the 60 s video")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    videos = {k: v for k, v in VIDEOS.items() if not (args.quick and k != "60s")}
    rows = []
    for name, seconds in videos.items():
        path = ensure_video(name, seconds)
        results = {m: measure(path, m, args.repeats) for m in METHODS}
        base = results["decord get_batch"]
        for method, r in results.items():
            rows.append((name, method, r, base["wall"] / r["wall"]))
        exact, fast = results["pyav/exact"], results["pyav/keyframe"]
        rows.append((name, "keyframe vs exact", None, exact["wall"] / fast["wall"]))
    print()
    print(f"128 candidates at short side {SIZE}, 640×360 H.264, GOP 200; median of {args.repeats}")
    header = (
        f"{'video':6} {'method':18} {'wall s':>7} {'cpu s':>7} {'peak RSS MB':>11} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, method, r, ratio in rows:
        if r is None:
            print(f"{name:6} {method:18} {'':>7} {'':>7} {'':>11} {ratio:8.2f}×")
            continue
        extra = f"  (picks moved ≤ {r['max_moved_s']:.2f} s)" if "max_moved_s" in r else ""
        print(
            f"{name:6} {method:18} {r['wall']:7.2f} {r['cpu']:7.2f} {r['rss']:11.0f} "
            f"{ratio:8.2f}×{extra}"
        )
    print(
        "speed-up = decord get_batch wall / method wall (same run); 'keyframe vs exact' = exact / keyframe"
    )


if __name__ == "__main__":
    main()
