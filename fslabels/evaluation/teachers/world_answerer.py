"""The world's frozen downstream answerer: a tiny Qwen2-VL that answers the world's
multiple-choice questions from the k frames it is shown.

``framesel eval qa`` needs a video LLM that answers from the frames a strategy picks; offline, a
random-weight model answers at chance whatever it is shown. This one is trained once on
`fsmodel.synthetic.WORLD` videos, never on a selector's picks, and then only read: the
accuracy-vs-k curves of `benchmarks/bench_miniature.py` come from it.

**Recipe** (`ANSWERER_RECIPE`, seeded): it starts from the M-LLM teacher (`teacher_paths`), which
already tells the world's frame contents apart, and learns with next-token loss on the reply to
answer the world's order and count questions from a subset of a video's 32 candidates, in time
order, in the chat the production `Answerer` builds (k images, then the question). The question
is asked open-ended (`build_prompt` without options) and the reply is the right option's words
("the green bar", "2"); it is read with ``scoring="options"`` (`SCORING`): each option's text
scored as the reply, the likeliest wins. Each subset holds every candidate inside the question's
truth spans and random others, 2-12 candidates in all for the first 1,500 steps, then 2-32
(``phases``); it never sees a selector's picks.

Why words and not letters: the earlier recipes replied with the option letter after the lettered
prompt (lmms-eval's). Measured then (30 fresh videos, letter likelihood): random subsets of 2-32
candidates kept the letter loss at chance for 2,000 steps; with the truth in every subset count
reached 0.40 from the truth frames and 0.40 without them and order 0.40 whatever it was shown;
count alone reached 0.63 / 0.17 (the answerer committed until the switch: count 0.70 / 0.27,
order at chance from its prior). Neither the truth frames alone nor a text-only drill ("Which
option is the blue bar?", 3,000 steps) taught the tiny model to copy the letter of the option
that names what it saw. With replies in words the same phases and steps learn both kinds (the
committed build, ``answerer.json``; 30 fresh videos, option-text likelihood): order 0.97 from
the truth frames and 0.30 from 8 frames without them (chance 0.25), from uniform frames 0.27 at
k = 2, 0.57 at k = 8 and 0.40 at k = 32 (the more frames besides the evidence, the less it finds
which event comes right after the anchor); count 0.57 and 0.23. A trial with the truth in only
75 % of the 2-32 subsets (one thread) gave order 1.00 / 0.23 and count 0.57 / 0.10, its uniform
curves within the noise of the chosen recipe's. A trial with 6,000 steps (4,500 of them on 2-32
candidates; one thread, 27 min) answered order better from all 32 candidates (0.53) and from the
truth among 6-14 others (0.70 at k = 8, 0.67 at k = 16), but also 0.40 from 8 frames without the
truth, and count worse (0.47 from the truth frames): not adopted.

The weights ship at ``weights/answerer`` with ``answerer.json``: the hash of the recipe (the
training code, `ANSWERER_RECIPE`, the world and the M-LLM teacher's files) and the accuracy
measured on freshly seeded videos (`measure_answerer`). Rebuild with ``make answerer``
(``python -m fslabels.evaluation.teachers.world_answerer``), which prints the new accuracy beside
the committed one; with the same recipe each must come within ±0.02. The build is bit-for-bit
repeatable at a fixed thread count (``make answerer`` pins ``OMP_NUM_THREADS=2``); with one thread
the weights differ and single cells of the 30-question table move: by up to 0.13 for this recipe
(order from uniform frames at k = 16 0.57 with one thread, 0.43 with two), by up to 0.23 for the
letter-replying one: read one cell as ±0.15, not ±0.02.

Example:
    >>> from fslabels.evaluation.answerer import Answerer
    >>> answerer = Answerer(model=str(answerer_path()), scoring=SCORING)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fslabels.evaluation.teachers import TEACHERS_DIR, teacher_paths
from fsmodel.synthetic import WORLD, world_videos

__all__ = [
    "ANSWERER_RECIPE",
    "RECORD_FILE",
    "SCORING",
    "answerer_path",
    "answerer_recipe_hash",
    "bounds_positions",
    "measure_answerer",
    "stored_answerer_record",
    "train_answerer",
    "world_accuracy",
]

RECORD_FILE = "answerer.json"
MEASURE_SEED = 20261207
KS = (2, 4, 8, 16, 32)
MULTIPLE_CHOICE = ("order", "count")  # the world's question kinds with options
SCORING = "options"  # how the answerer is asked (`fslabels.evaluation.answerer.AnswererConfig`)

# Everything the recipe runs with (hashed with the training code into the recipe hash).
ANSWERER_RECIPE: dict[str, Any] = {
    "seed": 0,
    "train_videos": 2000,
    "kinds": ["order", "count"],
    # from step s on: subsets of k in [low, high] candidates, this share of them with the truth
    "phases": [[0, [2, 12], 1.0], [1500, [2, 32], 1.0]],
    "steps": 3000,
    "batch": 8,
    "lr": 2e-3,
}

Log = Callable[[str], None]


def answerer_path(root: str | os.PathLike[str] | None = None) -> Path:
    """The committed answerer's directory (or the one under ``root``).

    Raises:
        FileNotFoundError: no weights there (rebuild them with ``make answerer``).
    """
    path = (Path(root) if root is not None else TEACHERS_DIR) / "answerer"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no answerer weights at {path}; build them with `make answerer`")
    return path


def answerer_recipe_hash(teacher: str | os.PathLike[str] | None = None) -> str:
    """A sha256 of the recipe — the training code's source (`train_answerer`, the answerer's
    `chat_messages`, the shared `_language_loop`), `ANSWERER_RECIPE` — the world, and the M-LLM
    teacher's files."""
    import inspect

    from fslabels.evaluation.answerer import chat_messages
    from fslabels.evaluation.teachers.recipe import _language_loop

    digest = hashlib.sha256()
    for code in (train_answerer, chat_messages, _language_loop):
        digest.update(inspect.getsource(code).encode())
    digest.update(json.dumps(ANSWERER_RECIPE, sort_keys=True).encode())
    digest.update(repr(WORLD).encode())
    vlm = Path(teacher) if teacher is not None else teacher_paths()["vlm"]
    for path in sorted(p for p in vlm.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def train_answerer(
    out: str | os.PathLike[str], teacher: str | os.PathLike[str] | None = None, log: Log = print
) -> Path:
    """Train the answerer into ``out`` from the M-LLM teacher (see the module docstring)."""
    import torch
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration

    from fslabels.evaluation.answerer import chat_messages
    from fslabels.evaluation.prompts import build_prompt
    from fslabels.evaluation.teachers.recipe import _decoded_candidates, _language_loop
    from fslabels.vlm import load_processor
    from fsmodel.metrics import candidates_in_spans

    spec = ANSWERER_RECIPE
    out = Path(out)
    vlm = Path(teacher) if teacher is not None else teacher_paths()["vlm"]
    torch.manual_seed(spec["seed"])
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(vlm, out)
    model = Qwen2VLForConditionalGeneration.from_pretrained(out).to(torch.float32)
    processor = load_processor(out)
    videos = world_videos(spec["train_videos"], seed=spec["seed"] + 5000, prefix="a")
    with tempfile.TemporaryDirectory(prefix="framesel-answerer-") as scratch:
        start = time.perf_counter()
        decoded = _decoded_candidates(videos, Path(scratch))
        log(f"answerer: {len(videos)} videos decoded ({time.perf_counter() - start:.0f} s)")
    asked = [
        (
            question,
            c.frames,
            np.flatnonzero(candidates_in_spans(question.spans, c.timestamps)[0] >= 0),
        )
        for video, c in zip(videos, decoded, strict=True)
        for question in video.questions
        if question.kind in spec["kinds"]
    ]
    rng = np.random.default_rng(spec["seed"] + 3)
    everything = np.arange(WORLD.num_candidates)
    phase = list(spec["phases"][0])

    def on_step(step: int) -> None:
        phase[:] = [p for p in spec["phases"] if step >= p[0]][-1]

    def example() -> tuple[list[Any], str]:
        question, candidates, truth = asked[int(rng.integers(len(asked)))]
        _, (low, high), with_truth = phase
        k = int(rng.integers(low, high + 1))
        if rng.random() < with_truth:
            rest = np.setdiff1d(everything, truth)
            fill = rng.choice(rest, size=max(0, k - len(truth)), replace=False)
            shown = np.sort(np.concatenate([truth, fill]))
        else:
            shown = np.sort(rng.choice(everything, size=k, replace=False))
        # Asked open-ended, replying with the option's words (scored by `Answerer`'s options
        # scoring): no letter to copy.
        prompt = build_prompt(question.question).text
        text = processor.apply_chat_template(
            chat_messages(len(shown), prompt, reply=question.answer), tokenize=False
        )
        return [Image.fromarray(candidates[p]) for p in shown], text

    def batch_inputs(batch: list[tuple[list[Any], str]]) -> dict[str, Any]:
        return processor(images=[image for images, _ in batch for image in images],
                         text=[text for _, text in batch], padding=True, return_tensors="pt")  # fmt: skip

    _language_loop(
        model, processor.tokenizer, example, batch_inputs, spec, "answerer", log, on_step
    )
    model.eval().save_pretrained(out)
    return out


def bounds_positions(
    truth: np.ndarray, k: int, rng: np.random.Generator, num_candidates: int = WORLD.num_candidates
) -> dict[str, np.ndarray]:
    """The two bounds' picks: ``oracle`` (every truth candidate, whatever k) and ``none`` (k
    random candidates outside the truth, fewer when there are not k)."""
    rest = np.setdiff1d(np.arange(num_candidates), truth)
    none = np.sort(rng.choice(rest, size=min(k, len(rest)), replace=False))
    return {"oracle": np.asarray(truth), "none": none}


def world_accuracy(
    world: dict[str, Path],
    model: str | os.PathLike[str] | None = None,
    ks: Sequence[int] = KS,
    seed: int = MEASURE_SEED,
) -> dict[str, Any]:
    """The answerer's accuracy (option-text likelihood, the production `Answerer`) on the
    multiple-choice questions of a written world (`write_world`'s ``videos``, ``manifest`` and
    ``truth``), per kind: from the ``uniform`` picks at each k, from every candidate inside the
    truth spans (``oracle``) and from 8 random candidates outside them (``none@8``).

    Returns:
        ``{"table": {kind: {"uniform@k": acc, ..., "oracle": acc, "none@8": acc}},
        "questions": {kind: n}, "seconds"}``.
    """
    from fslabels.evaluation.answerer import Answerer
    from fslabels.evaluation.prompts import build_prompt, gold_answer
    from fsmodel.metrics import candidates_in_spans
    from fsmodel.selection import uniform
    from fsmodel.video import sample_candidates

    def read(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    truth = {(t["video"], t["question"]): t for t in read(world["truth"])}
    items = [row for row in read(world["manifest"]) if row["options"]]
    answerer = Answerer(model=str(model or answerer_path()), scoring=SCORING)
    rng = np.random.default_rng(seed)
    right: dict[str, dict[str, list[bool]]] = {}
    start = time.perf_counter()
    decoded: dict[str, Any] = {}
    for row in items:
        if row["video"] not in decoded:
            decoded = {row["video"]: sample_candidates(
                world["videos"] / row["video"], num_candidates=WORLD.num_candidates, size=None)}  # fmt: skip
        candidates = decoded[row["video"]]
        n = len(candidates.frames)
        asked = truth[row["video"], row["question"]]
        groups, _ = candidates_in_spans(asked["spans"], candidates.timestamps)
        prompt = build_prompt(row["question"], row["options"])
        gold = gold_answer(row["answer"], row["options"], "text")
        picks = {f"uniform@{k}": uniform(np.zeros(n), k) for k in ks}
        bounds = bounds_positions(np.flatnonzero(groups >= 0), 8, rng, n)
        picks |= {"oracle": bounds["oracle"], "none@8": bounds["none"]}
        cells = right.setdefault(asked["kind"], {})
        for name, shown in picks.items():
            got = answerer.answer(candidates.frames[np.unique(shown)], prompt).likelihood_choice
            cells.setdefault(name, []).append(got == gold)
    return {
        "table": {kind: {n: float(np.mean(v)) for n, v in c.items()} for kind, c in right.items()},
        "questions": {kind: len(next(iter(c.values()))) for kind, c in right.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }


def measure_answerer(
    work: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    count: int = 12,
    seed: int = MEASURE_SEED,
) -> dict[str, Any]:
    """`world_accuracy` on ``count`` freshly written world videos, on their order and count
    questions (both, whichever the recipe trains on)."""
    from fsmodel.training.synthetic_data import write_world

    world = write_world(Path(work) / "world", count, seed=seed, prefix="m",
                        kinds=MULTIPLE_CHOICE)  # fmt: skip
    return world_accuracy(world, model, seed=seed)


def stored_answerer_record(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What ``answerer.json`` says: ``recipe_hash``, ``metrics``, ``measured_on``."""
    path = (Path(root) if root is not None else TEACHERS_DIR) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; build the answerer with `make answerer`")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """``make answerer``: train, measure, compare with the committed record, store."""
    import torch

    from fslabels.evaluation.teachers.build import compare_metrics

    parser = argparse.ArgumentParser(description="Train the world's answerer and store it.")
    parser.add_argument("--out", type=Path, default=TEACHERS_DIR)
    parser.add_argument("--count", type=int, default=30, help="World videos to measure on.")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        before = stored_answerer_record(args.out)
    except FileNotFoundError:
        before = None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="framesel-answerer-") as scratch:
        trained = train_answerer(Path(scratch) / "answerer")
        seconds = time.perf_counter() - start
        metrics = measure_answerer(Path(scratch) / "measure", trained, count=args.count)
        shutil.rmtree(args.out / "answerer", ignore_errors=True)
        shutil.copytree(trained, args.out / "answerer")
    record = {
        "recipe_hash": answerer_recipe_hash(),
        "train_seconds": round(seconds),
        "measured_on": {"videos": args.count, "seed": MEASURE_SEED},
        "metrics": metrics,
    }
    (args.out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"trained in {seconds:.0f} s; questions {metrics['questions']}")
    same = before is not None and before.get("recipe_hash") == record["recipe_hash"]
    return compare_metrics(_flat(metrics), _flat(before["metrics"]) if before else None, same)


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    return {f"{kind}/{name}": value for kind, cells in metrics["table"].items()
            for name, value in cells.items()}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
