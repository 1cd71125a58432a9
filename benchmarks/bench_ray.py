"""The Ray engine's overhead: the same manifest on the local engine and on Ray Data, 2 workers.

Both runs label the same generated videos and questions with the tiny offline models (every
stage on the transformers backend, CPU, one thread per process) and must write the same rows:

  local  `run_labels(engine="local")`: this process, one video at a time
  ray    `run_labels(engine="ray")` on a local Ray instance (``ray.init(num_cpus=2)``): a decode
         actor, 2 actors of the Qwen2-VL pool (captions + spatial) and 1 of the Qwen2 pool
         (temporal); the driver fuses and commits

Where the time goes is read from the run summaries: the stages' compute seconds (summed over
workers for Ray), Ray's start, the wait for the first video (actor processes starting,
importing torch and loading their model), the streaming part after it, and the driver's store
writes; then Ray Data's own per-operator statistics.

    RAY_AUTH_MODE=disabled python benchmarks/bench_ray.py [--videos 8 --questions 4 --n 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CACHE = Path(__file__).parent / ".cache"

# The same generated videos and questions as the batching benchmark.
from benchmarks.bench_labels import write_inputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--questions", type=int, default=4, help="questions per video")
    parser.add_argument("--n", type=int, default=32, help="candidate frames per video")
    parser.add_argument("--actors", type=int, default=2, help="actors of the Qwen2-VL pool")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()

    import ray
    import torch
    from transformers.utils import logging as hf_logging

    from fslabels.config import LabelRunConfig
    from fslabels.run import export_rows, run_labels
    from fsmodel.tiny import build_all

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    CACHE.mkdir(exist_ok=True)
    models = build_all(CACHE / "tiny-models")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    manifest = write_inputs(work, args.videos, args.questions)
    videos = work / "videos"
    config = LabelRunConfig.offline(
        models, num_candidates=args.n, frame_size=48, spatial={"max_new_tokens": 8}
    )
    judgements = args.videos * args.questions * args.n
    print(f"{args.videos} videos x {args.questions} questions x {args.n} candidates: "
          f"{judgements} spatial judgements, {args.videos * args.n} captions, "
          f"{args.videos * args.questions} temporal requests; tiny models, CPU, 1 thread/process; "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip

    start = time.perf_counter()
    local = run_labels(config, manifest, videos, work / "local", progress=False)
    local_wall = time.perf_counter() - start

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2,
             logging_level="ERROR")  # fmt: skip
    init_seconds = time.perf_counter() - start
    options = {
        "actors": {"captions": args.actors, "spatial": args.actors, "temporal": 1},
        "cpus_per_actor": 0.5,
        "decode_cpus": 0.25,
    }
    start = time.perf_counter()
    remote = run_labels(config, manifest, videos, work / "ray", progress=False, engine="ray",
                        engine_options=options)  # fmt: skip
    ray_wall = time.perf_counter() - start + init_seconds
    ray.shutdown()

    same = export_rows(work / "local") == export_rows(work / "ray")
    engine = remote.engine
    first, pipeline = engine["first_result_seconds"], engine["pipeline_seconds"]
    per_video_local = local_wall / args.videos
    per_video_ray = (pipeline - first) / max(1, args.videos - 1)
    print(f"\nwall time   local {local_wall:6.1f} s   ray {ray_wall:6.1f} s   "
          f"ratio ray/local {ray_wall / local_wall:4.1f}x   rows equal: {same}")  # fmt: skip
    print("\nwhere the time goes (ray):")
    print(f"  ray.init (local instance, 2 CPUs)        {init_seconds:6.1f} s")
    print(f"  until the first video was committed      {first:6.1f} s  (actor processes start, "
          "import torch/transformers, load the model; decode + label video 1)")  # fmt: skip
    print(f"  the other {args.videos - 1} videos, streamed            {pipeline - first:6.1f} s  "
          f"({per_video_ray:.2f} s/video; local engine {per_video_local:.2f} s/video)")  # fmt: skip
    print(f"  driver: store commits                    {engine['commit_seconds']:6.2f} s")
    print("\ncompute seconds per stage (ray: summed over workers):")
    print(f"  {'stage':>10}  {'local':>7}  {'ray':>7}  requests (local = ray)")
    for stage, stats in local.stages.items():
        mine = remote.stages[stage]
        print(f"  {stage:>10}  {stats.seconds:7.2f}  {mine.seconds:7.2f}  {stats.requests} = "
              f"{mine.requests}")  # fmt: skip
    print(f"\npools: {[(p['stages'], p['actors']) for p in engine['pools']]}")
    print("\nRay Data per-operator statistics (wall = busy time of the operator's tasks):")
    for line in engine["ray_data_stats"].splitlines():
        if line.startswith("Operator") or "Remote wall time" in line:
            print("  " + line.strip())
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\nwork directories: {work}")


if __name__ == "__main__":
    main()
