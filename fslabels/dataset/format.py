"""The local format of a label dataset: references, reading a version (a directory or a Hub
revision), writing one (parquet, card, run config, info), and the hashes that identify it."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fsmodel.schema import (
    CAPTIONS_CONFIG,
    DATA_DIR,
    FRAME_INDICES,
    HUMAN,
    LABELS_CONFIG,
    LABELS_SCHEMA_VERSION,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO_ID,
    card_metadata,
    check_caption_rows,
    check_label_rows,
    load_label_dataset,
    save_label_dataset,
)

DATASET_INFO = "framesel_dataset.json"
RUN_CONFIG = "labels_run.yaml"
STATISTICS_PLOT = "assets/label_statistics.png"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No per-file progress bars from `datasets` for these small, quick conversions."""
    import datasets

    was_disabled = datasets.utils.logging.is_progress_bar_enabled() is False
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


# --- references ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset version lives: a local directory, or a Hub repo at a revision.

    Attributes:
        source: the directory (absolute) or ``org/name``.
        revision: tag, branch or commit for Hub repos (None: the default branch).
        local: True for a directory.
    """

    source: str
    revision: str | None = None
    local: bool = False

    def __str__(self) -> str:
        if self.local or self.revision is None:
            return self.source
        return f"{self.source}@{self.revision}"


def parse_ref(spec: str | os.PathLike[str], revision: str | None = None) -> DatasetRef:
    """Read ``DIR``, ``org/name`` or ``org/name@revision`` (``revision=`` overrides the suffix).

    An existing path is always a directory; anything else must look like a Hub repo id.

    Raises:
        FileNotFoundError: neither an existing directory nor a repo id.
        NotADirectoryError: the path is a file.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{text} is a file, not a label dataset directory")
        return DatasetRef(str(path.resolve()), None, local=True)
    repo, _, suffix = text.partition("@")
    if not REPO_ID.match(repo):
        raise FileNotFoundError(
            f"{text!r} is neither an existing directory nor a Hub dataset id (org/name[@revision])"
        )
    return DatasetRef(repo, revision or suffix or None, local=False)


@dataclass
class LoadedDataset:
    """One version of a label dataset, in memory.

    Attributes:
        ref: where it came from.
        directory: the local directory it was read from (a download for Hub repos).
        rows: the labels config, one dict per row (per-candidate columns as lists).
        captions: the captions config (empty when the dataset has none).
        run_config: the text of ``labels_run.yaml`` (None when absent).
        info: the info record (``framesel_dataset.json``; ``{}`` for datasets made elsewhere).
    """

    ref: DatasetRef
    directory: Path
    rows: list[dict[str, Any]]
    captions: list[dict[str, Any]]
    run_config: str | None
    info: dict[str, Any]


def _hub_errors() -> tuple[type[Exception], type[Exception]]:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    return RepositoryNotFoundError, RevisionNotFoundError


def download(ref: DatasetRef, local_dir: Path | None = None) -> Path:
    """Download a Hub version (all files) and return its directory; clear errors for a missing
    repo or revision."""
    from huggingface_hub import HfApi, snapshot_download

    repo_missing, revision_missing = _hub_errors()
    try:
        path = snapshot_download(
            ref.source,
            repo_type="dataset",
            revision=ref.revision,
            local_dir=str(local_dir) if local_dir is not None else None,
        )
    except revision_missing as err:
        try:
            refs = HfApi().list_repo_refs(ref.source, repo_type="dataset")
            known = [t.name for t in refs.tags] + [b.name for b in refs.branches]
        except Exception:  # the listing is only for the message
            known = []
        raise ValueError(
            f"dataset {ref.source} has no revision {ref.revision!r}"
            + (f" (it has: {', '.join(sorted(known))})" if known else "")
        ) from err
    except repo_missing as err:
        raise ValueError(
            f"dataset repo {ref.source!r} does not exist on the Hub, or your token cannot read it"
        ) from err
    return Path(path)


def read_local(ref: DatasetRef, directory: Path) -> LoadedDataset:
    if not any((directory / DATA_DIR / LABELS_CONFIG).glob("*.parquet")):
        raise ValueError(
            f"{ref} is not a framesel label dataset: no {DATA_DIR}/{LABELS_CONFIG}/*.parquet"
        )
    with _quiet_datasets():
        rows = load_label_dataset(directory).to_list()
        captions = []
        if any((directory / DATA_DIR / CAPTIONS_CONFIG).glob("*.parquet")):
            captions = load_label_dataset(directory, CAPTIONS_CONFIG).to_list()
    run_config = None
    if (directory / RUN_CONFIG).is_file():
        run_config = (directory / RUN_CONFIG).read_text(encoding="utf-8")
    info: dict[str, Any] = {}
    if (directory / DATASET_INFO).is_file():
        info = json.loads((directory / DATASET_INFO).read_text(encoding="utf-8"))
    return LoadedDataset(ref, directory, rows, captions, run_config, info)


def load_dataset_version(
    spec: str | os.PathLike[str] | DatasetRef, revision: str | None = None
) -> LoadedDataset:
    """Load a dataset version from a directory or ``org/name[@revision]``.

    Raises:
        FileNotFoundError: the spec is neither a directory nor a repo id.
        ValueError: a missing repo or revision (naming the revisions that exist), or a
            directory that is not a label dataset.
    """
    ref = spec if isinstance(spec, DatasetRef) else parse_ref(spec, revision)
    directory = Path(ref.source) if ref.local else download(ref)
    return read_local(ref, directory)


# --- writing ---------------------------------------------------------------------------------


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _framesel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("framesel")
    except PackageNotFoundError:
        return "unknown"


def content_hash(rows: Sequence[Mapping[str, Any]], captions: Sequence[Mapping[str, Any]],
                 run_config: str | None) -> str:  # fmt: skip
    """A hash of what a version *contains* (rows, captions, run config), not of how it is
    written: equal for a directory and its download, and for rows read back from parquet.

    Float columns are hashed at float32 precision (their stored type), timestamps at float64.
    """

    def canonical(row: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in sorted(row.items()):
            if key in (SPATIAL, TEMPORAL, SCORES, HUMAN):
                value = np.asarray(value, dtype=np.float32).tobytes().hex()
            elif key == TIMESTAMPS:
                value = np.asarray(value, dtype=np.float64).tobytes().hex()
            elif key == FRAME_INDICES:
                value = np.asarray(value, dtype=np.int64).tolist()
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            out[key] = value
        return out

    return stable_hash(
        {
            "rows": [canonical(r) for r in rows],
            "captions": [canonical(c) for c in captions],
            "run_config": run_config or "",
        },
        length=64,
    )


# Info keys that change with every build or push without changing what a version publishes.
_VOLATILE_INFO = (
    "created",
    "history",
    "framesel_version",
    "repo_id",
    "content_hash",
    "release_hash",
)


def release_hash(directory: Path, loaded: LoadedDataset) -> str:
    """A hash of everything a release publishes: the content (`content_hash`), the card's inputs
    (licence, run record, statistics, extra sections, note) and the extra assets. Pushing a
    directory whose release hash equals the repo head's is a no-op."""
    import hashlib

    assets = {}
    for path in (
        sorted((directory / "assets").rglob("*")) if (directory / "assets").is_dir() else []
    ):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != STATISTICS_PLOT:  # the plot is derived from the rows
            assets[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    card_inputs = {k: v for k, v in loaded.info.items() if k not in _VOLATILE_INFO}
    return stable_hash(
        {
            "content": content_hash(loaded.rows, loaded.captions, loaded.run_config),
            "card": card_inputs,
            "assets": assets,
        },
        length=64,
    )


def _plot_statistics(stats: Mapping[str, Any]) -> bytes | None:
    """Histograms of the score columns as a PNG (None without matplotlib or rows)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    histograms = stats.get("histograms") or {}
    if not stats.get("samples") or not histograms:
        return None
    import io

    fig, axes = plt.subplots(1, len(histograms), figsize=(3.2 * len(histograms), 2.4), dpi=100)
    axes = np.atleast_1d(axes)
    for ax, (column, hist) in zip(axes, histograms.items(), strict=True):
        edges = np.asarray(hist["edges"])
        counts = np.asarray(hist["counts"])
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4a7bb7")
        ax.set_title(column, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("score", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("candidate frames", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_card(info: Mapping[str, Any], directory: Path, repo_id: str | None,
                 version: str | None) -> str:  # fmt: skip
    from hub_cards.dataset_card import DEFAULT_DATASET_LICENSE, render_dataset_card

    plot = STATISTICS_PLOT if (directory / STATISTICS_PLOT).is_file() else None
    card = render_dataset_card(
        dict(info),
        repo_id=repo_id,
        version=version,
        license=info.get("license", DEFAULT_DATASET_LICENSE),
        plot=plot,
    )
    return str(card)


def write_dataset(
    out_dir: str | os.PathLike[str],
    rows: Iterable[Mapping[str, Any]],
    captions: Iterable[Mapping[str, Any]] | None = None,
    *,
    run_config: str | None = None,
    info: Mapping[str, Any] | None = None,
    extra_sections: Mapping[str, str] | None = None,
    assets: Mapping[str, bytes] | None = None,
    note: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate rows and write a complete label dataset directory (see the module docstring).

    The directory is written beside its final place and moved there at the end, so a failure
    never leaves half a dataset; an existing label dataset at ``out_dir`` is replaced.

    Args:
        out_dir: the dataset directory.
        rows: schema v1 label rows (optional columns may be left out).
        captions: caption rows, one per video.
        run_config: the run configuration's YAML text (``labels_run.yaml``).
        info: an existing info record to carry over (its ``run``, ``history``, ``license``,
            ``sections``, ``parent``); counts, statistics and hashes are recomputed.
        extra_sections: ``{title: markdown}`` added to the card (replacing a section of the same
            title), e.g. a review's agreement report.
        assets: ``{name: bytes}`` written under ``assets/`` (link them as ``assets/<name>``).
        note: what this version changes (the card's version table; default: kept from
            ``info`` or "built from a label run").
        overwrite: replace a label dataset already at ``out_dir`` (only a directory holding
            ``framesel_dataset.json`` counts as one; anything else is never replaced).

    Returns:
        The directory.

    Raises:
        SchemaError: a row violates schema v1 (nothing is written).
        FileExistsError: ``out_dir`` exists and is not a label dataset (or ``overwrite`` is off).
    """
    from fslabels.fusion import run_statistics
    from hub_cards import check_public

    rows = [dict(r) for r in rows]
    caption_rows = [dict(c) for c in captions or []]
    if not rows:
        raise ValueError("a label dataset needs at least one row")
    check_label_rows(rows)
    check_caption_rows(caption_rows)
    out = Path(out_dir).expanduser()
    check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        previous = dict(info or {})
        sections = dict(previous.get("sections") or {})
        sections.update(extra_sections or {})
        stats = run_statistics(rows)
        record = {
            "schema": LABELS_SCHEMA_VERSION,
            "framesel_version": _framesel_version(),
            "created": utc_now(),
            "license": previous.get("license"),
            "num_candidates": len(rows[0][SCORES]),
            "counts": {
                "samples": len(rows),
                "videos": len({r[VIDEO_ID] for r in rows}),
                "caption_videos": len(caption_rows),
                "reviewed": sum(1 for r in rows if len(r.get("human") or []) > 0),
            },
            "configs": card_metadata(captions=bool(caption_rows))["configs"],
            "content_hash": content_hash(rows, caption_rows, run_config),
            "run": previous.get("run"),
            "parent": previous.get("parent"),
            "statistics": stats,
            "history": list(previous.get("history") or []),
            "sections": sections,
            "note": note or previous.get("note") or "built from a label run",
            "repo_id": previous.get("repo_id"),
        }
        if record["license"] is None:
            record.pop("license")
        with _quiet_datasets():
            save_label_dataset(rows, stage, captions=caption_rows or None, card="")
        for name, data in {**(assets or {})}.items():
            target = stage / "assets" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        plot = _plot_statistics(stats)
        if plot is not None:
            (stage / STATISTICS_PLOT).parent.mkdir(parents=True, exist_ok=True)
            (stage / STATISTICS_PLOT).write_bytes(plot)
        if run_config is not None:
            check_public(run_config)
            (stage / RUN_CONFIG).write_text(run_config, encoding="utf-8")
        text = json.dumps(record, indent=2, sort_keys=True)
        check_public(text)
        (stage / DATASET_INFO).write_text(text + "\n", encoding="utf-8")
        (stage / "README.md").write_text(
            render_card(record, stage, record.get("repo_id"), version=None), encoding="utf-8"
        )
        swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse to replace anything but a label dataset, and that only with ``overwrite``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file; choose another --out")
    if not any(out.iterdir()):
        return
    if not (out / DATASET_INFO).is_file():
        raise FileExistsError(
            f"{out} exists and is not a label dataset (no {DATASET_INFO}); choose another --out"
        )
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise FileExistsError(f"{out} holds the current directory; choose another --out")
    if not overwrite:
        raise FileExistsError(
            f"{out} already holds a label dataset; replace it with --overwrite (overwrite=True)"
        )


def swap_into_place(new: Path, out: Path) -> None:
    """Move the finished directory ``new`` to ``out``, replacing an old one only at the end."""
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(trash)
        new.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(out)
