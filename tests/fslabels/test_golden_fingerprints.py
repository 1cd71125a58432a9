"""Today's cache keys and release hashes, pinned.

A label run resumes, an eval serves answers from its store and a push is a no-op exactly when
these values are unchanged. A refactor keeps them byte-identical. A change of what is computed
moves only the keys of what it changes (a store keeps its old entries, unused) and says so beside
the value; a change of how a store is laid out bumps the store format version instead (an old
store is refused with a one-line error). The values were recorded on 2026-12-06 from the code as it
was before the house was reshaped (commit c9ca47a); moved since: the eval cells (picks over
distinct frames).
"""

from __future__ import annotations

from pathlib import Path

from fslabels.config import LabelRunConfig
from fslabels.dataset import LoadedDataset, content_hash, parse_ref, release_hash
from fslabels.run import LabelContext

# Model names only: building a context loads nothing, so no model has to exist.
OFFLINE_OVERRIDES = [
    "num_candidates=8",
    "frame_size=48",
    "captions.backend=transformers",
    "captions.model=tiny/qwen2-vl",
    "spatial.backend=transformers",
    "spatial.model=tiny/qwen2-vl",
    "spatial.cot=false",
    "temporal.backend=transformers",
    "temporal.model=tiny/qwen2",
    "temporal.max_attempts=3",
    "fusion.spatial_weight=0.25",
    "fusion.temporal_weight=0.75",
]

GOLDEN_LABEL_RUN_DEFAULT = {
    "candidates": "5af61fcae778b0b1",
    "captions": "5e653c5858bbde93",
    "spatial": "7f2b0af14114616e",
    "temporal": "f81014cc0c7b1f9c",
    "fused": "00e1931479d47816",
}
GOLDEN_LABEL_RUN_OFFLINE = {
    "candidates": "f0ac814696fd954c",
    "captions": "57f757b77461dc70",
    "spatial": "32d3d97cd4de3096",
    "temporal": "82667606a897184a",
    "fused": "65e24bfe78895e23",
}
GOLDEN_CONTENT_HASH = "47a030172941bfe68a13eb369d802eaf0dae197803e43fad1393e9b56bc5d57a"
GOLDEN_RELEASE_HASH = "5c8dd5e9c043d97d4cc078f8b322ed173bdb4a6ab06097b6c50ee013e85698e6"
GOLDEN_EVAL_CELLS = {
    "candidates": "f0ac814696fd954c",
    "scorers": {},
    # Changed on purpose when picks moved to distinct frames (exact budgets, issue 17).
    "cells": {"uniform": {"2": "53e63f43485eefd4", "4": "a8edca032d2f99fc"}},
}


def _fingerprints(config: LabelRunConfig) -> dict[str, str]:
    context = LabelContext(config)
    try:
        return context.fingerprints.as_dict()
    finally:
        context.close()


def test_label_run_fingerprints_of_the_default_config():
    assert _fingerprints(LabelRunConfig()) == GOLDEN_LABEL_RUN_DEFAULT


def test_label_run_fingerprints_of_an_offline_config_with_overrides():
    config = LabelRunConfig().with_overrides(OFFLINE_OVERRIDES)
    assert _fingerprints(config) == GOLDEN_LABEL_RUN_OFFLINE


def _rows() -> tuple[list[dict], list[dict]]:
    rows = [
        {
            "sample_id": f"s{i}",
            "video_id": "v",
            "video": "v.mp4",
            "question": f"When does shape {i} appear?",
            "options": ["early", "late"],
            "answer": "early",
            "frame_indices": [0, 5, 10, 15],
            "timestamps": [0.0, 0.2, 0.4, 0.6],
            "spatial": [0.1, 0.9, 0.3, 0.25],
            "temporal": [0.0, 1.0, 0.0, 0.0],
            "scores": [0.05, 0.95, 0.15, 0.125],
        }
        for i in range(2)
    ]
    captions = [
        {"video_id": "v", "frame_indices": [0, 5, 10, 15], "captions": ["a", "b", "c", "d"]}
    ]
    return rows, captions


def test_dataset_content_and_release_hashes():
    rows, captions = _rows()
    assert content_hash(rows, captions, "num_candidates: 4\n") == GOLDEN_CONTENT_HASH
    loaded = LoadedDataset(
        ref=parse_ref("org/name@v1"),
        directory=Path("/nonexistent"),
        rows=rows,
        captions=captions,
        run_config="num_candidates: 4\n",
        info={"license": "cc-by-4.0", "created": "volatile", "schema_version": 1},
    )
    assert release_hash(Path("/nonexistent"), loaded) == GOLDEN_RELEASE_HASH


class _FixedAnswerer:
    """The part of an answerer that keys its cells. A real one's fingerprint holds its model's
    content id, which changes with where and when the model files were written (sizes and mtimes
    of weight files), so it cannot be pinned; the way cells combine it with the rest can."""

    def fingerprint(self) -> dict:
        return {"model": "org/answerer", "max_new_tokens": 3, "frames_as": "images",
                "model_id": "0123456789abcdef0123456789abcdef01234567"}  # fmt: skip


def test_eval_cell_fingerprints():
    from fslabels.evaluation.config import EvalConfig
    from fslabels.evaluation.run import eval_fingerprints
    from fslabels.evaluation.strategies import build_strategy

    config = EvalConfig(
        num_candidates=8, frame_size=48, ks=[2, 4], strategies=["uniform"],
        answerer={"model": "org/answerer", "max_new_tokens": 3},
    )  # fmt: skip
    strategies = [build_strategy(name) for name in config.strategies]
    got = eval_fingerprints(config, strategies, _FixedAnswerer()).as_dict()
    assert got == GOLDEN_EVAL_CELLS
