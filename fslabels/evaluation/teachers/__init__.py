"""Teachers that see: tiny M-LLM and text-LLM weights trained on the synthetic world.

With random weights, offline labels mean nothing. These two small models of the production
classes (Qwen2-VL for spatial labels and captions, Qwen2 for temporal labels), trained by the
recipe in `fslabels.evaluation.teachers.recipe`, label `fsmodel.synthetic.WORLD` videos through
the production labelers, prompts, parsing and transformers backend — only the weights differ —,
so a label run here can be scored against truth (`fslabels.quality`).

The weights ship with the package (``weights/vlm``, ``weights/llm``) with ``teachers.json``: the
hash of the recipe that built them (`recipe_hash`) and the metrics measured when they were built.
``make teachers`` rebuilds them; CI checks the hash and re-measures the committed weights on
freshly seeded videos (`measure_teachers`). Beside them, ``weights/answerer``: the world's frozen
downstream answerer for ``framesel eval qa``, trained from the M-LLM teacher by its own recipe
(`fslabels.evaluation.teachers.world_answerer`, ``make answerer``).

Example:
    >>> paths = teacher_paths()  # doctest: +SKIP
    >>> config = world_run_config(paths)  # a LabelRunConfig for `run_labels`  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fsmodel.synthetic import WORLD

__all__ = [
    "RECORD_FILE",
    "TEACHERS_DIR",
    "measure_teachers",
    "recipe_hash",
    "stored_record",
    "teacher_paths",
    "world_run_config",
]

TEACHERS_DIR = Path(__file__).parent / "weights"
RECORD_FILE = "teachers.json"


def teacher_paths(root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """``{"vlm": dir, "llm": dir}`` of the committed teachers (or of those under ``root``).

    Raises:
        FileNotFoundError: the weights are missing (rebuild them with ``make teachers``).
    """
    base = Path(root) if root is not None else TEACHERS_DIR
    paths = {name: base / name for name in ("vlm", "llm")}
    missing = [str(p) for p in paths.values() if not (p / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(
            f"no teacher weights at {', '.join(missing)}; build them with `make teachers`"
        )
    return paths


def recipe_hash() -> str:
    """A sha256 of the recipe (its source, its settings) and of the world it trains on."""
    from fslabels.evaluation.teachers import recipe

    digest = hashlib.sha256(Path(recipe.__file__).read_bytes())
    digest.update(json.dumps(recipe.RECIPE, sort_keys=True).encode())
    digest.update(repr(WORLD).encode())
    return digest.hexdigest()


def stored_record(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What ``teachers.json`` says: ``recipe_hash``, ``metrics``, ``measured_on``."""
    path = (Path(root) if root is not None else TEACHERS_DIR) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; build the teachers with `make teachers`")
    return json.loads(path.read_text(encoding="utf-8"))


def world_run_config(paths: dict[str, Path] | None = None, **overrides: Any) -> Any:
    """The label run config that labels world videos with the teachers (a `LabelRunConfig`):
    n = 32, frames as stored, the M-LLM for spatial labels and captions, the text LLM for
    temporal labels, all on the transformers backend."""
    from fslabels.config import LabelRunConfig

    paths = paths or teacher_paths()
    vlm, llm = str(paths["vlm"]), str(paths["llm"])
    local = {"device": "cpu", "dtype": "float32", "batch_size": 32}
    config = {
        "num_candidates": WORLD.num_candidates,
        "frame_size": None,
        "spatial": {"backend": "transformers", "model": vlm, "backend_options": local,
                    "max_new_tokens": 24, "top_logprobs": 20, "batch_size": 128},
        "captions": {"backend": "transformers", "model": vlm, "backend_options": local,
                     "max_new_tokens": 12},
        "temporal": {"backend": "transformers", "model": llm,
                     "backend_options": {**local, "batch_size": 8}, "max_new_tokens": 64,
                     "structured_output": False, "max_attempts": 2},
    }  # fmt: skip
    for key, value in overrides.items():
        config[key] = value
    return LabelRunConfig.from_dict(config)


def measure_teachers(
    work: str | os.PathLike[str],
    paths: dict[str, Path] | None = None,
    count: int = 12,
    seed: int = 20261206,
    k: int = 8,
    progress: bool = False,
    keep_rows: bool = False,
) -> dict[str, Any]:
    """Label ``count`` fresh world videos with the teachers (`run_labels`, the production path)
    and score the labels against truth.

    Returns:
        ``{"caption_accuracy", "table": {source: {kind: {auc, recall, precision, coverage}}},
        "questions", "failed_samples", "failures" (the stages with failed units), "seconds"}``;
        a caption counts as right when it names exactly the shapes on the frame. With
        ``keep_rows`` also ``"rows"``, the label rows.
    """
    import time

    from fslabels.evaluation.teachers.recipe import caption_text
    from fslabels.quality import read_truth, score_rows
    from fslabels.run import export_rows, run_labels
    from fsmodel.synthetic import world_videos
    from fsmodel.training.synthetic_data import write_world

    work = Path(work)
    world = write_world(work / "world", count, seed=seed)
    start = time.perf_counter()
    summary = run_labels(
        world_run_config(paths), world["manifest"], world["videos"], work / "run",
        progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    rows, caption_rows = export_rows(work / "run")
    report = score_rows(rows, read_truth(world["truth"]), k=k)
    events = {v.video_id: v.events for v in world_videos(count, seed=seed)}
    right = total = 0
    for row in caption_rows:
        for index, caption in zip(row["frame_indices"], row["captions"], strict=True):
            right += caption == caption_text(events[row["video_id"]], int(index))
            total += 1
    out = {
        "caption_accuracy": right / total if total else float("nan"),
        "table": report.table,
        "questions": report.questions,
        "failed_samples": summary.failed,
        "failures": sorted({f["stage"] for f in summary.failures}),
        "seconds": round(seconds, 1),
    }
    if keep_rows:
        out["rows"] = rows
    return out
