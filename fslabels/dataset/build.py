"""Building a label dataset from a finished label run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fslabels.dataset.format import write_dataset
from fslabels.dataset.guard import public_text, public_value

# --- building from a run ---------------------------------------------------------------------


@dataclass
class BuildResult:
    """What `build_dataset` wrote.

    Attributes:
        directory: the dataset directory.
        samples: rows written; ``videos``: distinct videos; ``caption_videos``: caption rows.
        failed: samples of the run without a row (a stage failed for them).
        pending: samples the run has not finished (only with ``partial=True``).
    """

    directory: Path
    samples: int
    videos: int
    caption_videos: int
    failed: int
    pending: int


def _prompts(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each stage's prompt templates rebuilt from the config, for runs made before the run store
    kept them (nothing is loaded; {} when a backend's package is not installed here)."""
    from fslabels.config import LabelRunConfig
    from fslabels.run import LabelContext

    try:
        return LabelContext(LabelRunConfig.from_dict(config)).prompts()
    except (ImportError, ValueError):
        return {}


def build_dataset(
    workdir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    license: str | None = None,
    partial: bool = False,
    overwrite: bool = False,
) -> BuildResult:
    """Assemble a label run's finished rows, captions and exact config into a dataset directory.

    Args:
        workdir: the run's work directory (``framesel labels run ... WORKDIR``).
        out_dir: where the dataset goes.
        license: the dataset licence for the card (default ``cc-by-4.0``).
        partial: build while samples are still pending (otherwise that is an error).
        overwrite: replace an existing dataset at ``out_dir``.

    Raises:
        FileNotFoundError: ``workdir`` has no run store.
        ValueError: the run has no finished rows, or unfinished samples without ``partial``.
    """
    import yaml

    from fslabels.run.readers import open_run, rows_of, status_of

    # One open store for every view of the run: status, rows and what it recorded.
    with open_run(workdir) as (store, fingerprints):
        state = status_of(store, fingerprints, workdir)
        rows, captions = rows_of(store, fingerprints)
        config = store.get_meta("config") or {}
        settings = store.get_meta("settings") or {}
        stored_prompts = store.get_meta("prompts")
        roots = [store.get_meta("videos_root") or "", str(Path(workdir).resolve())]
    pending = state["stages"]["fused"]["pending"]
    if pending and not partial:
        raise ValueError(
            f"the run in {workdir} has {pending} of {state['items']} samples unfinished; finish "
            "it (framesel labels run ...) or build anyway with --partial"
        )
    if not rows:
        raise ValueError(
            f"the run in {workdir} has no labelled samples yet (see framesel labels status {workdir})"
        )
    local: set[str] = set()
    public_config = public_value(config, local)
    stages = {}
    for name in ("spatial", "captions", "temporal"):
        spec = public_config.get(name) or {}
        stages[name] = {
            "backend": spec.get("backend"),
            "model": spec.get("model"),
            "settings": public_value(settings.get(name) or {}, local),
        }
    # The templates the run used, as it stored them: what a card says does not depend on which
    # extras are installed where it is built.
    prompts = stored_prompts if stored_prompts is not None else _prompts(config)
    for name, templates in prompts.items():
        stages[name]["prompts"] = templates
    failures = [
        {
            **f,
            "item": public_text(str(f.get("item", "")), roots),
            "error": public_text(str(f.get("error", "")), roots),
        }
        for f in state["failures"]
    ]
    run = {
        "video_reader": config.get("video_reader"),
        "frame_size": config.get("frame_size"),
        "stages": stages,
        "fusion": settings.get("fusion") or {},
        "fingerprints": state["fingerprints"],
        "status": {
            "stages": state["stages"],
            "usage": state["usage"],
            "failures": failures,
        },
        "local_models": sorted(local),
    }
    # Errors recorded in label_meta may name local files: cut them as in the card.
    rows = [
        {**row, "label_meta": public_text(row.get("label_meta") or "{}", roots)} for row in rows
    ]
    info = {"run": run, "license": license, "history": []}
    failed = state["items"] - len(rows) - pending
    out = write_dataset(
        out_dir,
        rows,
        captions,
        run_config=yaml.safe_dump(public_config, sort_keys=False),
        info=info,
        note=f"built from a label run ({len(rows)} of {state['items']} questions labelled)",
        overwrite=overwrite,
    )
    return BuildResult(
        out, len(rows), len({r["video_id"] for r in rows}), len(captions), failed, pending
    )
