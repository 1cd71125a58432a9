"""The paper's experiment in miniature: teacher labels → selector → picks, on the synthetic world.

Every stage goes through framesel's public CLI (a subprocess per command, as a user runs them)
or, where there is no command, its public API:

1. world: ``--train`` and ``--test`` world videos with manifest and truth
   (`fsmodel.training.synthetic_data.write_world`; the held-out videos have another seed;
   ``--every-presence``: each video asks when each kind it shows appears, so held out the
   swapped truth also pairs presence questions about different objects);
2. labels: ``framesel labels run`` with the world's trained teachers
   (`fslabels.evaluation.teachers.world_run_config`), ``labels build``, ``labels score`` against
   the training truth; the world's ground-truth label dataset of the same questions is the
   ablation's upper row (``write_world(labels=True)``);
3. training: for each label source (fused, spatial, temporal, truth) ``framesel model train`` stage
   1 (projector, LLM, query and head: the scratch LLM must learn too) then stage 2 (LoRA), from the
   same selector: a random LLM, projector and head (`build_scratch_selector`), or with ``--init
   teacher-llm`` ``framesel model init`` with the temporal teacher's world-pretrained LLM. Its
   SigLIP tower (frozen, as in the paper) is by default (``--vision world``)
   `train_world_siglip`'s, trained on the world's frames and captions, the miniature's stand-in for
   the paper's web-pretrained SigLIP (a cached stage, ~1 min); ``--vision random`` keeps random
   weights, as every run before the option had (README: the trained tower is what lets a
   quick-sized run read the question). BCE only (``data.captions: false``, so the rows differ in
   their labels alone). With ``--warm-up OBJECT`` a first stage trains on the rows that ask when
   that one object appears (``data.questions``) for ``--warm-up-steps``: with one question the
   frames alone tell where to look, which is what gets a random selector off its plateau (on the
   world's mixed rows it stays at the score prior for 5,000+ steps, measured); stage 1 then starts
   from it. With ``--presence-epochs N`` a stage on the presence rows alone comes next (with
   ``--every-presence`` only the question tells them apart), and stage 1 on all the kinds starts
   from it: this curriculum is what makes the selector read the question (README). With
   ``--question-first`` the scratch selector's processor writes the question before the frames
   (`FrameSelectorProcessor(question_first=True)`): the LLM is causal, so only then can each
   frame's tokens attend to it; on the curriculum it lifts held-out recall@8 from 0.76 to 0.92
   (README). ``--train-set data.hard_negatives=2`` weighs up, in every stage's BCE, the frames
   another question of the same video asks about (README: it keeps the leftover picks off them);
4. selection on the held-out videos: ``framesel select run`` (each trained selector with nms and
   top-k, uniform, and the online per-frame M-LLM scorer, i.e. the spatial teacher, as an upper
   bound), ``select build``, ``select score`` against the held-out truth, and against a
   "swapped" truth in which each question's spans are replaced by those of another question of
   the same video with disjoint spans: a selector that reads the question recalls those no
   better than uniform sampling. The report also splits each row's picks into those on the
   asked question's truth, on the video's other questions' truth only, and on neither
   (`pick_split`). With ``--every-presence`` both scores are also reported on the held-out
   videos that show at least 4 object kinds (`crowded_videos`), where the full run checks them
   too.
5. downstream QA on the held-out order and count questions (presence questions have no options):
   ``framesel eval qa --selections`` per selection run and question kind, k = 2, 4, 8, 16, 32,
   with the world's frozen answerer (`fslabels.evaluation.teachers.world_answerer`: trained on
   order and count questions from frame subsets, never on a selector's picks) asked open-ended
   and scored by each option's text likelihood (``answerer.scoring=options``); its accuracy
   from every truth candidate (oracle) and from 8 candidates outside the truth (no relevant
   frame) are the bounds (`world_answerer.world_accuracy`, through the API: no strategy picks by
   truth). ``--no-qa`` skips it.

Each stage's result is kept under ``--out`` and a finished stage is not redone (a killed run
continues: label runs, selection runs and trainings resume where they stopped; a run with other
settings refuses an ``--out`` that holds one; the QA stages run again when the answerer's files
changed, e.g. after ``make answerer``); a time table per stage ends the run.

``--quick``: the quick-sized curriculum (README): 300 training and 40 held-out videos, every
presence question and the order question, ground-truth labels (the teachers' spatial labels recall
another question's frames at 0.81 on the training videos, and the selectors trained on teacher
labels 0.52-0.68 held out), the world SigLIP, the question first, one token per frame
(``--pooled-grid 1``), the one-object warm-up, 20 presence epochs, then 4 + 1; no M-LLM row, no QA,
fixed seed. Its checks: the selector's top-k recall@8 with the asked question >= uniform's + 0.2,
and against another question's frames <= uniform's - 0.05 (measured: 0.838 vs 0.259 and 0.181 vs
0.272, in 303 s with one thread on an otherwise idle 2-core machine; with 40 presence epochs 0.848
/ 0.186 in 385 s; tests/test_miniature.py runs it). The full run checks recall@8 >= 0.85 and,
against another question's frames, <= uniform's (on every held-out question and on the videos with
>= 4 kinds). (Recall is checked on top-k: a truth span covers 1-3 adjacent candidates and nms at k
= 8 of n = 32 never picks two neighbours.)

    python benchmarks/bench_miniature.py [--out runs/miniature] [--train 200] [--test 40]
    python benchmarks/bench_miniature.py --quick [--out DIR]
    python benchmarks/bench_miniature.py --sources truth --init teacher-llm ...

Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

K = 8
MIN_KINDS = 4  # the held-out slice: videos that show at least this many object kinds
QA_KS = (2, 4, 8, 16, 32)
# --quick: the best quick-sized curriculum measured (README); every other option at its default.
QUICK = {"train": 300, "test": 40, "sources": "truth", "kinds": "presence,order",
         "every_presence": True, "question_first": True, "pooled_grid": 1,
         "warm_up": "blue circle", "presence_epochs": 20, "epochs": (4, 1), "no_mllm": True,
         "no_qa": True, "vision": "world"}  # fmt: skip
SOURCES = ("fused", "spatial", "temporal", "truth")
TARGET_COLUMN = {"fused": "scores", "spatial": "spatial", "temporal": "temporal", "truth": "scores"}


class Stages:
    """Runs named stages once: a finished stage is recorded in ``out/stages.json`` with its
    seconds (and its ``key``, if given) and skipped on a re-run; a stage whose key changed (an
    input it reads that the settings do not name, e.g. the answerer's weights) runs again."""

    def __init__(self, out: Path) -> None:
        self.file = out / "stages.json"
        self.done: dict[str, float] = {}
        self.keys: dict[str, str] = {}
        recorded = json.loads(self.file.read_text()) if self.file.is_file() else {}
        for name, value in recorded.items():
            seconds, key = value if isinstance(value, list) else (value, None)
            self.done[name] = seconds
            if key is not None:
                self.keys[name] = key

    def run(self, name: str, work, key: str | None = None) -> None:
        if name in self.done and self.keys.get(name) == key:
            print(f"[cached] {name} ({self.done[name]:.0f} s)", flush=True)
            return
        print(f"[stage] {name}", flush=True)
        start = time.perf_counter()
        work()
        self.done[name] = time.perf_counter() - start
        if key is not None:
            self.keys[name] = key
        recorded = {n: [s, self.keys[n]] if n in self.keys else s for n, s in self.done.items()}
        self.file.write_text(json.dumps(recorded, indent=2))

    def table(self) -> str:
        lines = [f"{'stage':<40} {'seconds':>8}"]
        lines += [f"{name:<40} {sec:>8.0f}" for name, sec in self.done.items()]
        lines.append(f"{'total':<40} {sum(self.done.values()):>8.0f}")
        return "\n".join(lines)


def framesel(*args: str, log: Path) -> str:
    """Run ``framesel ARGS`` (the console script of this interpreter's environment); its output
    goes to ``log``; a failure prints the log's end and raises."""
    exe = Path(sys.executable).with_name("framesel")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli.main"]
    command += list(args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ framesel " + " ".join(args) + "\n")
        out.flush()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True, cwd=ROOT)
        out.write(done.stdout)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8").splitlines()[-15:])
        raise SystemExit(f"framesel {' '.join(args[:2])} failed (log {log}):\n{tail}")
    return done.stdout


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def swapped_truth(truth: Path, out: Path) -> int:
    """Write ``out``: each question's spans replaced by those of the next question of the same
    video whose spans share no candidate time with its own (questions without one are left
    out). Returns the number of questions kept."""
    by_video: dict[str, list[dict[str, Any]]] = {}
    for record in read_jsonl(truth):
        by_video.setdefault(record["video"], []).append(record)

    def overlaps(a, b) -> bool:
        return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)

    rows = []
    for records in by_video.values():
        for i, record in enumerate(records):
            others = records[i + 1 :] + records[:i]
            partner = next((o for o in others if not overlaps(record["spans"], o["spans"])), None)
            if partner is not None:
                rows.append({**record, "spans": partner["spans"]})
    write_jsonl(out, rows)
    return len(rows)


def crowded_videos(truth: Path, min_kinds: int = MIN_KINDS) -> set[str]:
    """The videos whose truth asks when each of at least ``min_kinds`` object kinds appears:
    with ``--every-presence`` every shown kind has its presence question, so these are the videos
    that show ``min_kinds`` kinds or more (without it each video asks one: the set is empty)."""
    asked: dict[str, int] = {}
    for record in read_jsonl(truth):
        asked[record["video"]] = asked.get(record["video"], 0) + (record["kind"] == "presence")
    return {video for video, count in asked.items() if count >= min_kinds}


def pick_split(selections: Path, truth: Path) -> dict[str, dict[str, float]]:
    """Where each strategy's k = K picks land, per question on average: on the asked question's
    truth candidates, on those of the video's other questions only, or on neither (with
    ``--every-presence`` the other questions name every other object the video shows, so
    "neither" is empty background). The ``"candidates"`` entry: how many candidates each group
    holds per question."""
    from fslabels.evaluation.selections import read_config
    from fsmodel.metrics import candidates_in_spans

    stamps = {v["video"]: np.asarray(v["timestamps"]) for v in read_config(selections, "videos")}
    records = {r["sample_id"]: r for r in read_jsonl(truth) if r["video"] in stamps}
    asked = {i: candidates_in_spans(r["spans"], stamps[r["video"]])[0] >= 0
             for i, r in records.items()}  # fmt: skip
    union: dict[str, np.ndarray] = {}
    for i, r in records.items():
        union[r["video"]] = union.get(r["video"], False) | asked[i]
    split = {i: np.stack([m, union[records[i]["video"]] & ~m, ~union[records[i]["video"]]])
             for i, m in asked.items()}  # fmt: skip
    picked: dict[str, list[np.ndarray]] = {"candidates": [g.sum(1) for g in split.values()]}
    for row in read_config(selections, "picks"):
        if row["k"] == K and row["sample_id"] in split:
            chosen = split[row["sample_id"]][:, np.asarray(row["positions"], np.int64)]
            picked.setdefault(row["strategy"], []).append(chosen.sum(1))
    names = ("asked", "other", "neither")
    return {strategy: dict(zip(names, np.mean(values, axis=0).tolist(), strict=True))
            for strategy, values in picked.items()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "miniature")
    parser.add_argument("--quick", action="store_true",
                        help="The quick-sized curriculum, fixed seed (other options ignored).")  # fmt: skip
    parser.add_argument("--train", type=int, default=200, help="Training world videos.")
    parser.add_argument("--test", type=int, default=40, help="Held-out world videos.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, nargs=2, default=(40, 5), help="Stage 1, stage 2.")
    parser.add_argument("--sources", default=",".join(SOURCES), help="Label sources to train on.")
    parser.add_argument("--kinds", default="presence,order,count", help="Question kinds asked.")
    parser.add_argument("--no-mllm", action="store_true", help="Skip the M-LLM upper bound.")
    parser.add_argument("--no-qa", action="store_true",
                        help="Skip the downstream QA (the world's answerer, framesel eval qa).")  # fmt: skip
    parser.add_argument("--init", choices=("scratch", "teacher-llm"), default="scratch",
                        help="The selector to train: random weights, or framesel model init "
                             "with the temporal teacher's LLM (world-pretrained).")  # fmt: skip
    parser.add_argument("--stage1-lr", type=float, default=1e-3)
    parser.add_argument("--warm-up", default=None, metavar="OBJECT",
                        help="Train first on the rows asking when OBJECT appears (e.g. 'blue "
                             "circle'), then stage 1 from there.")  # fmt: skip
    parser.add_argument("--warm-up-steps", type=int, default=1500,
                        help="About this many warm-up steps (whole epochs over the matching rows "
                             "at batch size 8).")  # fmt: skip
    parser.add_argument("--presence-epochs", type=int, default=0, metavar="N",
                        help="Between the warm-up and stage 1, N epochs on the presence rows "
                             "only; stage 1 (all kinds) then starts from there (0: no such "
                             "stage).")  # fmt: skip
    parser.add_argument("--every-presence", action="store_true",
                        help="Every video asks the presence question about each kind it shows "
                             "(write_world(every_presence=True)), not one.")  # fmt: skip
    parser.add_argument("--question-first", action="store_true",
                        help="The selector's processor writes the question before the frames "
                             "(FrameSelectorProcessor(question_first=True); with --init "
                             "teacher-llm: framesel model init --question-first), so each "
                             "frame's tokens can attend to it.")  # fmt: skip
    parser.add_argument("--timestamps", default=None, metavar="FORMAT",
                        help="The scratch selector's processor writes each frame's time before "
                             "its tokens (FrameSelectorProcessor(timestamp_format=FORMAT), e.g. "
                             "'{t:.1f}s').")  # fmt: skip
    parser.add_argument("--pooled-grid", type=int, default=3, metavar="G",
                        help="The scratch selector's tokens per frame side (3: the paper's 3x3; "
                             "1: one token per frame, ~3.5x faster training steps).")  # fmt: skip
    parser.add_argument("--vision", choices=("world", "random"), default="world",
                        help="The selector's SigLIP tower: trained on the world's frames and "
                             "captions (train_world_siglip, the stand-in for a web-pretrained "
                             "SigLIP), or random weights.")  # fmt: skip
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="Passed to both stages' framesel model train --set (repeatable).")  # fmt: skip
    args, defaults = parser.parse_args(), parser.parse_args([])
    if args.quick:
        print("--quick: 300/40 videos, presence + order, ground-truth labels, the world SigLIP, "
              "question first, one token per frame, warm-up, 20 presence epochs, epochs 4 1, no "
              "M-LLM, no QA (other options are ignored)")  # fmt: skip
        vars(args).update({**vars(defaults), **QUICK, "out": args.out, "quick": True})
    if (args.timestamps or args.pooled_grid != defaults.pooled_grid) and args.init != "scratch":
        parser.error("--timestamps and --pooled-grid build the scratch selector: only with "
                     "--init scratch")  # fmt: skip
    sources = [s for s in args.sources.split(",") if s]
    kinds = tuple(k for k in args.kinds.split(",") if k)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(args)
    recorded = out / "settings.json"
    # An option added after a run was recorded reads as its default there (runs recorded before
    # --vision had random towers).
    before = {**_settings(defaults), "vision": "random"}
    if recorded.is_file() and {**before, **json.loads(recorded.read_text())} != settings:
        raise SystemExit(f"{out} holds a run with other settings ({recorded}); pick another --out")
    recorded.write_text(json.dumps(settings, indent=2))
    stages = Stages(out)
    logs = out / "logs"

    from fslabels.evaluation.teachers import teacher_paths, world_run_config
    from fsmodel.synthetic import WORLD
    from fsmodel.training.synthetic_data import write_world

    n = WORLD.num_candidates
    world = {"train": out / "world" / "train", "test": out / "world" / "test"}

    def make_world() -> None:
        write_world(world["train"], args.train, seed=args.seed + 1, prefix="t", kinds=kinds,
                    labels=True, every_presence=args.every_presence)  # fmt: skip
        write_world(world["test"], args.test, seed=args.seed + 2, prefix="h", kinds=kinds,
                    every_presence=args.every_presence)  # fmt: skip

    stages.run("world", make_world)
    train, test = _world_files(world["train"]), _world_files(world["test"])

    # --- labels with the teachers -------------------------------------------------------------
    labels = out / "labels"
    config = labels / "teachers.yaml"

    def label() -> None:
        labels.mkdir(parents=True, exist_ok=True)
        world_run_config().to_yaml(config)
        framesel("labels", "run", "--manifest", str(train["manifest"]), "--videos",
                 str(train["videos"]), "--work", str(labels / "work"), "--config", str(config),
                 "--no-progress", log=logs / "labels.log")  # fmt: skip
        framesel("labels", "build", str(labels / "work"), "--out", str(labels / "dataset"),
                 "--overwrite", log=logs / "labels.log")  # fmt: skip
        report = framesel("labels", "score", str(labels / "dataset"), "--truth",
                          str(train["truth"]), "--json", log=logs / "labels.log")  # fmt: skip
        (labels / "quality.json").write_text(report)

    teacher_labels = any(source != "truth" for source in sources)
    if teacher_labels:
        stages.run("labels (teachers) + build + score", label)

    # --- training -----------------------------------------------------------------------------
    models = out / "models"

    from fsmodel.tiny import build_all

    tiny = build_all(models / "tiny", seed=args.seed)
    vision = tiny["siglip"]
    if args.vision == "world":
        vision = models / "world-siglip"

        def world_siglip() -> None:
            from fsmodel.training.synthetic_data import train_world_siglip

            train_world_siglip(vision, tiny["siglip"], tiny["tokenizer"], seed=args.seed)

        stages.run("world SigLIP", world_siglip)

    def scratch() -> None:
        from fsmodel.training.synthetic_data import build_scratch_selector

        if args.init == "scratch":
            build_scratch_selector(models / "scratch", vision, tiny["qwen2"], num_candidates=n,
                                   layers=4, hidden=64, seed=args.seed,
                                   question_first=args.question_first,
                                   timestamp_format=args.timestamps, pooled_grid=args.pooled_grid,
                                   vision_weights=args.vision == "world")  # fmt: skip
        else:  # the paper's way: pretrained backbones, here the temporal teacher's LLM
            framesel("model", "init", "--out", str(models / "scratch"), "--vision",
                     str(vision), "--llm", str(teacher_paths()["llm"]), "--n", str(n),
                     *(["--question-first"] if args.question_first else []),
                     log=logs / "init.log")  # fmt: skip

    stages.run(f"selector init ({args.init})", scratch)
    warm_up_pattern, warm_up_epochs = None, 0
    if args.warm_up:
        asked = f"When does the {args.warm_up} appear?"
        rows = sum(row["question"] == asked for row in read_jsonl(train["truth"]))
        if not rows:
            raise SystemExit(f"--warm-up: no training question asks {asked!r}")
        warm_up_pattern = "^" + asked.replace("?", r"\?") + "$"
        warm_up_epochs = max(1, math.ceil(args.warm_up_steps * 8 / rows))  # batch size 8
        print(f"warm-up: {rows} rows ask {asked!r}; {warm_up_epochs} epochs")
    finals = {}
    for source in sources:
        data = world["train"] / "labels" if source == "truth" else labels / "dataset"
        stage1, stage2 = models / source / "stage1", models / source / "stage2"
        yaml, warm = models / source / "train.yaml", models / source / "warm-up"
        presence = models / source / "presence"
        start = models / "scratch"  # where the presence stage, else stage 1, starts
        if args.warm_up:
            start = warm / "final"

        def train_stage(stage: int | str, source=source, data=data, stage1=stage1, stage2=stage2,
                        yaml=yaml, warm=warm, presence=presence, start=start) -> None:  # fmt: skip
            yaml.parent.mkdir(parents=True, exist_ok=True)
            _train_config(
                yaml,
                presence / "final" if args.presence_epochs else start,
                stage1,
                data,
                train["videos"],
                TARGET_COLUMN[source],
                args.epochs[0],
                args.seed,
                models / "cache",
            )
            extra = (["--set", f"optim.lr={args.stage1_lr}"] if stage == 1 else
                     ["--set", f"model={models / 'scratch'}", "--set", f"output_dir={warm}",
                      "--set", f"data.questions={warm_up_pattern}",
                      "--set", f"optim.epochs={warm_up_epochs}",
                      "--set", f"optim.lr={args.stage1_lr}"] if stage == 0 else
                     ["--set", f"model={start}", "--set", f"output_dir={presence}",
                      "--set", r"data.questions=^When does the .+ appear\?$",
                      "--set", f"optim.epochs={args.presence_epochs}",
                      "--set", f"optim.lr={args.stage1_lr}"] if stage == "presence" else
                     ["--set", "stage=2", "--set", f"model={stage1 / 'final'}",
                      "--set", f"output_dir={stage2}", "--set", f"optim.epochs={args.epochs[1]}",
                      "--set", "optim.lr=0.001",
                      "--set", "optim.trainable=[projector,score_query,score_head]"])  # fmt: skip
            extra += [arg for pair in args.train_set for arg in ("--set", pair)]
            framesel("model", "train", "--config", str(yaml), *extra,
                     log=logs / f"train-{source}.log")  # fmt: skip

        if args.warm_up:
            stages.run(f"train {source}: warm-up", lambda s=train_stage: s(0))
        if args.presence_epochs:
            stages.run(f"train {source}: presence", lambda s=train_stage: s("presence"))
        stages.run(f"train {source}: stage 1", lambda s=train_stage: s(1))
        stages.run(f"train {source}: stage 2 (LoRA)", lambda s=train_stage: s(2))
        finals[source] = stage2 / "final"

    # --- selection on held-out videos ---------------------------------------------------------
    select = out / "select"
    swapped = select / "swapped-truth.jsonl"
    select.mkdir(parents=True, exist_ok=True)
    pairs = swapped_truth(test["truth"], swapped)
    crowded = crowded_videos(test["truth"])
    sliced = {"asked": select / f"truth-{MIN_KINDS}kinds.jsonl",
              "swapped": select / f"swapped-{MIN_KINDS}kinds.jsonl"}  # fmt: skip
    if crowded:
        for file, rows in ((sliced["asked"], read_jsonl(test["truth"])),
                           (sliced["swapped"], read_jsonl(swapped))):  # fmt: skip
            write_jsonl(file, [row for row in rows if row["video"] in crowded])
    runs: dict[str, list[str]] = {}
    for source, model in finals.items():
        runs[f"selector-{source}"] = ["--model", str(model), "--strategies",
                                      "selector:nms,selector:topk,uniform"]  # fmt: skip
    if not args.no_mllm:
        vlm = str(teacher_paths()["vlm"])
        # cot: the teacher judges as it labels (it was never trained on the direct prompt)
        runs["mllm"] = ["--strategies", "mllm:nms,mllm:topk", "--set", "scorers.mllm.cot=true",
                        "--set", "scorers.mllm.backend=transformers",
                        "--set", f"scorers.mllm.model={vlm}",
                        "--set", "scorers.mllm.backend_options={device: cpu, dtype: float32}"]  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for name, options in runs.items():
        where = select / name

        def pick(where=where, options=options) -> None:
            framesel("select", "run", "--manifest", str(test["manifest"]), "--videos",
                     str(test["videos"]), "--work", str(where / "work"), "-k", f"{K}",
                     "--n", str(n), "--set", "frame_size=null", "--no-progress", *options,
                     log=logs / f"select-{where.name}.log")  # fmt: skip
            framesel("select", "build", str(where / "work"), "--out", str(where / "selections"),
                     "--overwrite", log=logs / f"select-{where.name}.log")  # fmt: skip
            for truth, file in ((test["truth"], "score.json"), (swapped, "swapped.json")):
                got = framesel("select", "score", str(where / "selections"), "--truth",
                               str(truth), "--json", log=logs / f"select-{where.name}.log")  # fmt: skip
                (where / file).write_text(got)

        stages.run(f"select + score: {name}", pick)
        results[name] = {
            "asked": json.loads((where / "score.json").read_text())["table"],
            "swapped": json.loads((where / "swapped.json").read_text())["table"],
            "split": pick_split(where / "selections", test["truth"]),
        }
        if crowded:

            def score_crowded(where=where) -> None:
                for kind, truth in sliced.items():
                    got = framesel("select", "score", str(where / "selections"), "--truth",
                                   str(truth), "--json", log=logs / f"select-{where.name}.log")  # fmt: skip
                    (where / f"{kind}-{MIN_KINDS}kinds.json").write_text(got)

            stages.run(f"score >= {MIN_KINDS} kinds: {name}", score_crowded)
            results[name]["crowded"] = {
                kind: json.loads((where / f"{kind}-{MIN_KINDS}kinds.json").read_text())["table"]
                for kind in sliced
            }

    # --- downstream QA on the held-out videos --------------------------------------------------
    qa: dict[str, Any] = {}
    asked_mc = [kind for kind in kinds if kind != "presence"]  # presence has no options
    if not args.no_qa and asked_mc:
        from fslabels.evaluation.scorers import model_content_id
        from fslabels.evaluation.teachers.world_answerer import (
            SCORING,
            answerer_path,
            world_accuracy,
        )

        answerer = answerer_path()
        # A rebuilt answerer, or another way of asking it, re-runs the QA stages.
        answerer_key = f"{model_content_id(answerer)} {SCORING}"
        by_kind = {(t["video"], t["question"]): t["kind"] for t in read_jsonl(test["truth"])}
        for kind in asked_mc:
            write_jsonl(select / f"qa-{kind}.jsonl",
                        [row for row in read_jsonl(test["manifest"])
                         if by_kind[row["video"], row["question"]] == kind])  # fmt: skip
        for name in runs:
            where = select / name
            strategies = ("uniform," if name == _first(results) else "") + (
                "mllm:nms,mllm:topk" if name == "mllm" else "selector:nms,selector:topk"
            )
            for kind in asked_mc:

                def answer(where=where, strategies=strategies, kind=kind) -> None:
                    got = framesel("eval", "qa", "--work", str(where / f"qa-{kind}"),
                                   "--videos", str(test["videos"]),
                                   "--manifest", str(select / f"qa-{kind}.jsonl"),
                                   "--selections", str(where / "selections"),
                                   "--strategies", strategies, "--k", ",".join(map(str, QA_KS)),
                                   "--model", str(answerer), "--answer-format", "text",
                                   "--set", f"answerer.scoring={SCORING}",
                                   "--set", "frame_size=null", "--no-plots", "--no-progress",
                                   "--json", log=logs / f"qa-{where.name}.log")  # fmt: skip
                    (where / f"qa-{kind}.json").write_text(got)

                stages.run(f"qa: {name} ({kind})", answer, key=answerer_key)
                for row in json.loads((where / f"qa-{kind}.json").read_text())["report"]["rows"]:
                    qa.setdefault(_row_name(name, row["strategy"]), {}).setdefault(kind, {})[
                        row["k"]] = {"accuracy": row["accuracy"],
                                     "answer_seconds": row["answer_seconds"]}  # fmt: skip

        def bounds() -> None:
            got = world_accuracy(test, answerer, ks=QA_KS)
            (select / "qa-bounds.json").write_text(json.dumps(got, indent=2))

        stages.run("qa: oracle + no-evidence bounds", bounds, key=answerer_key)
        qa["bounds"] = json.loads((select / "qa-bounds.json").read_text())["table"]

    quality = json.loads((labels / "quality.json").read_text()) if teacher_labels else None
    report = _report(results, quality, kinds, pairs, qa, len(crowded))
    print(report["text"])
    print()
    print(stages.table())
    checks = _checks(report, args.quick)
    print()
    for text, ok, value in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}: {value}")
    (out / "report.json").write_text(json.dumps({**report["data"], "stages": stages.done,
                                                 "checks": checks}, indent=2))  # fmt: skip
    return 0 if all(ok for _, ok, _ in checks) else 1


def _settings(options: argparse.Namespace) -> dict[str, Any]:
    """The options as ``settings.json`` records them (JSON values; ``--out`` left out)."""
    return json.loads(json.dumps({k: (str(v) if isinstance(v, Path) else v)
                                  for k, v in vars(options).items() if k != "out"}))  # fmt: skip


def _world_files(directory: Path) -> dict[str, Path]:
    return {"videos": directory / "videos", "manifest": directory / "manifest.jsonl",
            "truth": directory / "truth.jsonl"}  # fmt: skip


def _train_config(path: Path, model: Path, out: Path, data: Path, videos: Path, target: str,
                  epochs: int, seed: int, cache: Path) -> None:  # fmt: skip
    import yaml

    config = {
        "stage": 1,
        "model": str(model),
        "output_dir": str(out),
        "seed": seed,
        # No caption task: the ground-truth dataset's captions are the world's own, the label
        # datasets' the teacher's, so with it the rows would differ in more than the labels.
        "data": {"source": str(data), "video_root": str(videos), "target": target,
                 "captions": False},
        "optim": {"epochs": epochs, "batch_size": 8, "lr": 1e-3,
                  "trainable": ["projector", "language_model", "score_query", "score_head"]},
        "eval": {"k": K, "every_steps": 100_000},
        "cache": {"dir": str(cache)},
        "checkpoint": {"every_steps": 200, "resume": True},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _row_name(name: str, strategy: str) -> str:
    """The report's row name of a selection run's strategy (selection and QA tables)."""
    return "uniform" if strategy == "uniform" else f"{name}:{strategy.split(':')[1]}"


def _report(results, quality, kinds, pairs, qa, crowded_count: int) -> dict[str, Any]:
    lines = []
    if quality:  # no teacher labels: ground-truth labels only
        lines.append("label quality on the training videos (framesel labels score, k = 8)")
        lines.append(f"  {'source':<9} {'kind':<9} {'auc':>6} {'recall':>7} {'coverage':>9}")
        for source in ("spatial", "temporal", "fused"):
            for kind in (*kinds, "all"):
                got = quality["table"].get(source, {}).get(kind)
                if got:
                    lines.append(f"  {source:<9} {kind:<9} {got['auc']:>6.3f} "
                                 f"{got['recall']:>7.3f} {got['coverage']:>9.3f}")  # fmt: skip
        lines.append("")
    lines.append(f"held-out picks, k = {K}: recall@{K} / coverage@{K} per question kind; "
                 f"'swapped': recall@{K} against another question's frames ({pairs} questions)")  # fmt: skip
    head = "".join(f" {kind:>13}" for kind in (*kinds, "all"))
    lines.append(f"  {'row':<28}{head} {'swapped':>8}")

    def cells_of(tables, strategy) -> tuple[dict[str, Any], dict[str, Any]]:
        swapped = tables["swapped"].get(strategy, {}).get(str(K), {}).get("all", {})
        return tables["asked"][strategy][str(K)], swapped

    def table_row(row, cells, swapped) -> str:
        text = "".join(
            f" {cells[k]['recall']:>7.3f}/{cells[k]['coverage']:.3f}" if k in cells
            else f" {'':>13}" for k in (*kinds, "all")
        )  # fmt: skip
        return f"  {row:<28}{text} {swapped.get('recall', float('nan')):>8.3f}"

    data, crowded_lines = {}, []
    for name, got in results.items():
        for strategy in got["asked"]:
            if name.startswith("selector-") and strategy == "uniform" and name != _first(results):
                continue
            row = _row_name(name, strategy)
            cells, swapped = cells_of(got, strategy)
            data[row] = {"asked": cells, "swapped": swapped, "split": got["split"][strategy]}
            lines.append(table_row(row, cells, swapped))
            if "crowded" in got:
                cells, swapped = cells_of(got["crowded"], strategy)
                data[row]["crowded"] = {"asked": cells, "swapped": swapped}
                crowded_lines.append(table_row(row, cells, swapped))
    if crowded_lines:
        lines.append(f"  the held-out videos that show >= {MIN_KINDS} object kinds "
                     f"({crowded_count} videos):")  # fmt: skip
        lines.extend(crowded_lines)
    lines.append("")
    lines.append(f"where the {K} picks land, per question: on the asked question's truth / on the "
                 "video's other questions' truth only / on neither")  # fmt: skip
    candidates = next(iter(results.values()))["split"]["candidates"]
    for row, split in [("(candidates)", candidates)] + [(r, d["split"]) for r, d in data.items()]:
        lines.append(f"  {row:<28} {split['asked']:>6.2f} {split['other']:>6.2f} "
                     f"{split['neither']:>6.2f}")  # fmt: skip
    if qa:
        bounds = qa.pop("bounds")
        lines.append("")
        lines.append("downstream accuracy of the world's answerer (framesel eval qa, option-text "
                     "likelihood) from k frames; in brackets: answer seconds per question")  # fmt: skip
        for kind in bounds:
            lines.append(f"  {kind:<28}" + "".join(f" {f'k={k}':>14}" for k in QA_KS))
            for row, by_kind in qa.items():
                cells = by_kind.get(kind, {})
                lines.append(f"  {row:<28}" + "".join(
                    f" {cells[k]['accuracy']:>6.3f} ({cells[k]['answer_seconds']:.3f})"
                    if k in cells else f" {'':>14}" for k in QA_KS))  # fmt: skip
            lines.append(f"  {'oracle (truth frames)':<28} {bounds[kind]['oracle']:>6.3f}   "
                         f"no relevant frame (k=8) {bounds[kind]['none@8']:.3f}   "
                         f"uniform via the API, k=8: {bounds[kind]['uniform@8']:.3f}")  # fmt: skip
        data["qa"] = {"rows": qa, "bounds": bounds}
    return {"text": "\n".join(lines), "data": data}


def _first(results) -> str:
    return next(name for name in results if name.startswith("selector-"))


def _checks(report, quick: bool) -> list[tuple[str, bool, str]]:
    data = report["data"]
    uniform = data["uniform"]
    checks = []
    # Recall is checked on the top-k picks: in this world a truth span covers 1-3 adjacent
    # candidates, and nms at k = 8 of n = 32 never picks two neighbours.
    for row in (r for r in data if r.endswith(":topk") and r.startswith("selector-")):
        asked = data[row]["asked"]["all"]["recall"]
        other = data[row]["swapped"].get("recall", float("nan"))
        base = uniform["asked"]["all"]["recall"]
        base_other = uniform["swapped"].get("recall", float("nan"))  # nan: no disjoint pair
        if quick:
            checks.append((f"{row} reads the question: asked recall@{K} >= uniform's + 0.2",
                           asked >= base + 0.2, f"{asked:.3f} (uniform {base:.3f})"))  # fmt: skip
            checks.append((f"{row}: recall@{K} against another question's frames <= uniform's "
                           f"- 0.05", other <= base_other - 0.05,
                           f"{other:.3f} (uniform {base_other:.3f})"))  # fmt: skip
        else:
            checks.append((f"{row}: asked recall@{K} >= 0.85", asked >= 0.85, f"{asked:.3f}"))
            checks.append((f"{row}: recall@{K} against another question's frames <= uniform's",
                           other <= base_other, f"{other:.3f} (uniform {base_other:.3f})"))  # fmt: skip
            if "crowded" in data[row]:  # the check: videos showing >= MIN_KINDS kinds
                got, base = data[row]["crowded"], uniform["crowded"]
                asked, other = got["asked"]["all"]["recall"], got["swapped"].get("recall", math.nan)
                base_other = base["swapped"].get("recall", math.nan)
                checks.append((f"{row}, videos with >= {MIN_KINDS} kinds: asked recall@{K} >= 0.85",
                               asked >= 0.85, f"{asked:.3f}"))  # fmt: skip
                checks.append((f"{row}, videos with >= {MIN_KINDS} kinds: recall@{K} against "
                               "another question's frames <= uniform's", other <= base_other,
                               f"{other:.3f} (uniform {base_other:.3f})"))  # fmt: skip
    return checks


if __name__ == "__main__":
    sys.exit(main())
