"""`run_labels`: the entry point. Runs the local engine in this process, or hands the run to
another engine by name (`ENGINES`, imported when asked for)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from fslabels.backends import Backend
from fslabels.config import LabelRunConfig
from fslabels.manifest import LabelItem
from fslabels.run.session import ProgressBars, Run, RunSummary, Session

# Engines other than the in-process one: name -> "module:function", imported when asked for.
ENGINES: dict[str, str] = {"ray": "fslabels.run.ray_engine:run_labels_ray"}


def run_labels(
    config: LabelRunConfig,
    manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
    videos_root: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    progress: bool = True,
    retry_failed: bool = False,
    backends: Mapping[str, Backend] | None = None,
    engine: str = "local",
    engine_options: Any = None,
) -> RunSummary:
    """Label every (video, question) of a manifest, resumably (see the module docstring).

    Args:
        config: the run config (`LabelRunConfig`, or a mapping of its fields).
        manifest_or_items: a JSONL/CSV manifest path, or `LabelItem`\\ s (e.g. from
            `fslabels.manifest.items_from_hub`).
        videos_root: the directory the items' ``video`` paths are relative to.
        workdir: the work directory; its run store (``run.sqlite``) is created or resumed.
        progress: show a progress bar per stage.
        retry_failed: recompute stored failures (failed videos, captions, the failed frames of
            spatial labels, temporal labels); otherwise they are reported and kept.
        backends: ``{stage: backend}`` overriding the config's (see `LabelContext`; local
            engine only).
        engine: ``"local"`` (this process, one video at a time) or ``"ray"`` (Ray Data stages
            across a cluster, `fslabels.run.ray_engine`); both write the same records.
        engine_options: the engine's options (``"ray"``: a `fslabels.run.ray_engine.RayEngineConfig`
            or a mapping of its fields, e.g. ``{"address": "auto", "actors": 4}``).

    Returns:
        A `RunSummary`. The run completes even when items fail: they are in
        ``summary.failures`` and in the store.

    Raises:
        ValueError: an invalid config or manifest (``ManifestError``), an unknown engine.
        FileNotFoundError: a missing manifest.
        StoreLockedError: another run is writing to ``workdir``.
        BackendLoadError: a backend cannot load (before any work is done).
        ImportError: the engine's extra is not installed (``pip install 'framesel[ray]'``).

    Example:
        >>> summary = run_labels(LabelRunConfig(), "manifest.jsonl", "videos", "work")  # doctest: +SKIP
        >>> summary.done, summary.failed, summary.cost  # doctest: +SKIP
    """
    if engine != "local":
        if engine not in ENGINES:
            raise ValueError(
                f"unknown engine {engine!r}; engines: {', '.join(['local', *ENGINES])}"
            )
        if backends is not None:
            raise ValueError(
                f"backends= (loaded backend objects) work with the local engine only; the "
                f"{engine} engine builds its backends on its workers from the run config"
            )
        import importlib

        module, _, function = ENGINES[engine].partition(":")
        run = getattr(importlib.import_module(module), function)
        return run(config, manifest_or_items, videos_root, workdir, progress=progress,
                   retry_failed=retry_failed, options=engine_options)  # fmt: skip
    if engine_options is not None:
        raise ValueError("engine_options are for another engine than 'local'")
    with Session(config, manifest_or_items, videos_root, workdir, backends) as session:
        if session.prepare(retry_failed):
            session.ctx.load()  # fail before any work, not midway
        session.begin_run()
        with ProgressBars(progress, session.totals()) as bars:
            run = Run(session.store, bars)
            for work in session.plans(retry_failed):
                run.apply(work.steps(session.ctx, isolate=True))
        return session.finish(run.stats)
