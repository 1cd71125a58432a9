"""Versioned label datasets: build one from a finished run, publish versions, load any of them.

A label dataset is a directory (or a Hub dataset repo) holding::

    data/labels/train-00000-of-00001.parquet     schema v1 rows (fsmodel.schema)
    data/captions/train-00000-of-00001.parquet   one row per video (when the run captioned)
    README.md                                    the card (hub_cards), YAML declares both configs
    labels_run.yaml                              the exact run configuration
    framesel_dataset.json                        the info record the card is rendered from
    assets/label_statistics.png                  histograms of the label scores

Loading: ``datasets.load_dataset(DIR_OR_REPO, "labels", split="train", revision="v1")`` — the
same call for a local directory and a Hub repo (the card's YAML names the parquet files) — or
`fsmodel.schema.load_label_dataset`, or `load_dataset_version` here for rows + run config + info.

Publishing: `push_dataset` makes ONE commit per version (data, card, run config and info
together; files the new version no longer has are deleted in that same commit) and then tags it
``vN``. The next N comes from the repo's tags. Pushing content identical to the repo's head is a
no-op; a head that a failed push left untagged is tagged by the next identical push. Invalid rows
are refused before anything is uploaded.

Published text never holds tokens or local absolute paths: local model directories are named by
their directory name (``<local>/tiny-qwen2-vl``), file paths in error messages are cut to their
names, and `hub_cards.check_public` checks every text file before upload.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash

__all__ = [
    "DATASET_INFO",
    "RUN_CONFIG",
    "STATISTICS_PLOT",
    "BuildResult",
    "DatasetDiff",
    "DatasetRef",
    "LoadedDataset",
    "PushError",
    "PushResult",
    "build_dataset",
    "diff_datasets",
    "load_dataset_version",
    "parse_ref",
    "pull_dataset",
    "push_dataset",
    "write_dataset",
]

DATASET_INFO = "framesel_dataset.json"
RUN_CONFIG = "labels_run.yaml"
STATISTICS_PLOT = "assets/label_statistics.png"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SECRET_KEY = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization)$", re.I)
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(/[^\s:'\"]+/)+([^\s/:'\"]+)")
_LOCAL = "<local>"


class PushError(OSError):
    """A push failed on the way to the Hub; the message says what the remote holds now."""


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
    if not _REPO_ID.match(repo):
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


def _download(ref: DatasetRef, local_dir: Path | None = None) -> Path:
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


def _read_local(ref: DatasetRef, directory: Path) -> LoadedDataset:
    from fsmodel.schema import CAPTIONS_CONFIG, DATA_DIR, LABELS_CONFIG, load_label_dataset

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
    directory = Path(ref.source) if ref.local else _download(ref)
    return _read_local(ref, directory)


# --- writing ---------------------------------------------------------------------------------


def _now() -> str:
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
    from fsmodel.schema import FRAME_INDICES, HUMAN, SCORES, SPATIAL, TEMPORAL, TIMESTAMPS

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


def _render_card(info: Mapping[str, Any], directory: Path, repo_id: str | None,
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
    from fsmodel.schema import (
        LABELS_SCHEMA_VERSION,
        SCORES,
        VIDEO_ID,
        card_metadata,
        check_caption_rows,
        check_label_rows,
        save_label_dataset,
    )
    from hub_cards import check_public

    rows = [dict(r) for r in rows]
    caption_rows = [dict(c) for c in captions or []]
    if not rows:
        raise ValueError("a label dataset needs at least one row")
    check_label_rows(rows)
    check_caption_rows(caption_rows)
    out = Path(out_dir).expanduser()
    _check_replaceable(out, overwrite)
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
            "created": _now(),
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
            _render_card(record, stage, record.get("repo_id"), version=None), encoding="utf-8"
        )
        _swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _check_replaceable(out: Path, overwrite: bool) -> None:
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


def _swap_into_place(new: Path, out: Path) -> None:
    """Move the finished directory ``new`` to ``out``, replacing an old one only at the end."""
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(trash)
        new.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(out)


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


def _public_value(value: Any, local: set[str]) -> Any:
    """Local absolute paths → ``<local>/name``; secret-looking keys → ``<redacted>``."""
    if isinstance(value, Mapping):
        return {
            k: ("<redacted>" if _SECRET_KEY.search(str(k)) and v else _public_value(v, local))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_public_value(v, local) for v in value]
    if isinstance(value, str) and (
        value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:\\", value)
    ):
        name = f"{_LOCAL}/{Path(value).name}"
        local.add(name)
        return name
    return value


def _public_text(text: str, roots: Sequence[str] = ()) -> str:
    """Error messages for a card: the videos root stripped, other absolute paths cut to names."""
    for root in roots:
        if root:
            text = text.replace(root.rstrip("/") + "/", "")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(2), text)


def _prompts(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each stage's prompt templates, from the labelers the config builds (nothing is loaded;
    {} when a backend's package is not installed here)."""
    from fslabels.config import LabelRunConfig
    from fslabels.run import LabelContext

    try:
        ctx = LabelContext(LabelRunConfig.from_dict(config))
    except (ImportError, ValueError):
        return {}
    return {
        "spatial": ctx.spatial.prompts,
        "captions": ctx.captioner.prompts,
        "temporal": ctx.temporal.prompts,
    }


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

    from fslabels.run import export_rows, run_status
    from fslabels.store import RunStore

    state = run_status(workdir)
    rows, captions = export_rows(workdir)
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
    store = RunStore(workdir, create=False)
    try:
        config = store.get_meta("config") or {}
        settings = store.get_meta("settings") or {}
        roots = [store.get_meta("videos_root") or "", str(Path(workdir).resolve())]
    finally:
        store.close()
    local: set[str] = set()
    public_config = _public_value(config, local)
    stages = {}
    for name in ("spatial", "captions", "temporal"):
        spec = public_config.get(name) or {}
        stages[name] = {
            "backend": spec.get("backend"),
            "model": spec.get("model"),
            "settings": _public_value(settings.get(name) or {}, local),
        }
    prompts = _prompts(config)
    for name, templates in prompts.items():
        stages[name]["prompts"] = templates
    failures = [
        {
            **f,
            "item": _public_text(str(f.get("item", "")), roots),
            "error": _public_text(str(f.get("error", "")), roots),
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
        {**row, "label_meta": _public_text(row.get("label_meta") or "{}", roots)} for row in rows
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


# --- publishing ------------------------------------------------------------------------------


@dataclass
class PushResult:
    """What `push_dataset` did.

    Attributes:
        repo_id: the dataset repo.
        tag: the version tag the content is under (the existing one when ``unchanged``).
        commit: the commit of that version.
        unchanged: True when the repo already held identical content (nothing was uploaded).
        url: the repo's URL.
        files: the files of the version's commit (empty when unchanged).
    """

    repo_id: str
    tag: str
    commit: str
    unchanged: bool
    url: str
    files: list[str] = field(default_factory=list)


def _remote_info(api: Any, repo_id: str, revision: str) -> dict[str, Any] | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(
            repo_id, DATASET_INFO, repo_type="dataset", revision=revision, token=api.token
        )
    except EntryNotFoundError:
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def push_dataset(
    directory: str | os.PathLike[str],
    repo_id: str,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> PushResult:
    """Publish a dataset directory as the next version of ``repo_id``: one commit, one tag.

    Args:
        directory: a label dataset directory (``framesel labels build``).
        repo_id: ``org/name`` (created when missing).
        tag: the version tag (default: ``v<N+1>`` after the repo's highest ``vN``).
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token (default: ``HF_TOKEN`` or the logged-in one).

    Returns:
        A `PushResult` (``unchanged=True`` when the repo's head already holds this content).

    Raises:
        SchemaError: invalid rows, listing every violation (nothing is uploaded).
        PermissionError: no token, or the token cannot write to ``repo_id``.
        TagExistsError: ``tag`` already exists (checked before uploading).
        PushError: the upload failed (the message says the remote is unchanged) or the tag could
            not be created after the commit landed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    from fsmodel.schema import check_caption_rows, check_label_rows
    from hub_cards import check_public
    from hub_cards.release import (
        create_release_tag,
        next_version_tag,
        refuse_existing_tag,
        version_tags,
    )

    source = Path(directory).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"dataset directory {source} does not exist")
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"--repo must be a Hub repo id like org/name, got {repo_id!r}")
    local = _read_local(DatasetRef(str(source.resolve()), local=True), source)
    check_label_rows(local.rows)  # before any network call
    check_caption_rows(local.captions)
    _check_public_rows(local.rows)
    digest = content_hash(local.rows, local.captions, local.run_config)
    published = release_hash(source, local)

    token = token or get_token()
    if not token:
        raise PermissionError(
            "no Hugging Face token: log in with `hf auth login` or set HF_TOKEN (a write token)"
        )
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status in (401, 403):
            raise PermissionError(f"cannot write to dataset repo {repo_id}: {err}") from err
        raise PushError(
            f"cannot create dataset repo {repo_id} (nothing was pushed): {err}"
        ) from err
    repo_id = repo_url.repo_id
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    head = next(b.target_commit for b in refs.branches if b.name == "main")
    versions = version_tags(api, repo_id, "dataset")
    remote = _remote_info(api, repo_id, head)

    if remote is not None and remote.get("release_hash") == published:
        tagged = [name for name, commit in versions.items() if commit == head]
        if tagged:
            return PushResult(repo_id, tagged[-1], head, True, str(repo_url))
    if (
        remote is not None
        and remote.get("release_hash") == published
        and _is_release(api, repo_id, head)
    ):
        # A previous push landed its commit but not its tag: finish it.
        tag = tag or next_version_tag(api, repo_id, "dataset")
        refuse_existing_tag(api, repo_id, tag, "dataset")
        create_release_tag(api, repo_id, tag, head, "dataset")
        return PushResult(repo_id, tag, head, False, str(repo_url))

    tag = tag or next_version_tag(api, repo_id, "dataset")
    refuse_existing_tag(api, repo_id, tag, "dataset")
    date = _now()
    info = dict(local.info)
    history = [e for e in (remote or {}).get("history") or [] if e.get("version") in versions]
    info["history"] = [
        *history,
        {
            "version": tag,
            "date": date,
            "samples": len(local.rows),
            "content_hash": digest,
            "note": info.get("note") or "",
        },
    ]
    info["repo_id"] = repo_id
    info["content_hash"] = digest
    info["release_hash"] = published
    with tempfile.TemporaryDirectory(prefix="framesel-push-") as staging:
        stage = Path(staging)
        for path in source.rglob("*"):
            relative = path.relative_to(source)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                (stage / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, stage / relative)
        info_text = json.dumps(info, indent=2, sort_keys=True) + "\n"
        (stage / DATASET_INFO).write_text(info_text, encoding="utf-8")
        card = _render_card(info, stage, repo_id, version=tag)
        (stage / "README.md").write_text(card, encoding="utf-8")
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        for name in files:
            if name.endswith((".md", ".json", ".yaml")):
                check_public((stage / name).read_text(encoding="utf-8"), (str(source.resolve()),))
        existing = api.list_repo_files(repo_id, repo_type="dataset", revision=head)
        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(stage / name))
            for name in files
        ]
        operations += [
            CommitOperationDelete(path_in_repo=name)
            for name in existing
            if name not in files and name != ".gitattributes"
        ]
        try:
            commit = api.create_commit(
                repo_id,
                operations,
                commit_message=f"Release {tag}",
                commit_description=info.get("note") or None,
                repo_type="dataset",
                parent_commit=head,
            )
        except HfHubHTTPError as err:
            if getattr(err.response, "status_code", None) in (401, 403):
                raise PermissionError(
                    f"cannot write to dataset repo {repo_id} (nothing was pushed): {err}"
                ) from err
            raise PushError(_failed_commit_message(api, repo_id, tag, head, err)) from err
        except Exception as err:  # the transport's own errors (dropped connections)
            raise PushError(_failed_commit_message(api, repo_id, tag, head, err)) from err
    try:
        create_release_tag(api, repo_id, tag, commit.oid, "dataset")
    except HfHubHTTPError as err:
        raise PushError(
            f"{repo_id}: commit {commit.oid[:12]} landed but tagging it {tag} failed ({err}); "
            "push the same directory again to tag it"
        ) from err
    return PushResult(repo_id, tag, commit.oid, False, str(repo_url), files)


def _is_release(api: Any, repo_id: str, commit: str) -> bool:
    """True when ``commit`` was made by a framesel push ("Release vN"), not by hand."""
    commits = api.list_repo_commits(repo_id, repo_type="dataset", revision=commit)
    return bool(commits) and commits[0].title.startswith("Release ")


_SIGNED_URL = re.compile(
    r"[?&](x-amz-signature|x-goog-signature|x-amz-security-token|sig|signature|token|"
    r"access_token|api_key|key)=",
    re.IGNORECASE,
)


def _check_public_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse rows whose text columns would publish a local absolute path, a token or a signed
    URL (the card checks cover only the card and the JSON/YAML files)."""
    from fsmodel.schema import LABEL_META, REVIEW, SAMPLE_ID, VIDEO, VIDEO_ID
    from hub_cards import CardError, check_public

    for row in rows:
        for column in (VIDEO, VIDEO_ID, LABEL_META, REVIEW):
            value = str(row.get(column) or "")
            if column == VIDEO and _SIGNED_URL.search(value):
                raise CardError(
                    f"row {row.get(SAMPLE_ID)}: {column} is a signed URL (its query carries a "
                    "credential); publish the path or an unsigned URL instead"
                )
            try:
                check_public(value)
            except CardError as err:
                raise CardError(f"row {row.get(SAMPLE_ID)}: {column}: {err}") from None


def _failed_commit_message(api: Any, repo_id: str, tag: str, parent: str, err: Exception) -> str:
    """Say what the remote holds after a failed commit: the answer may be lost after the server
    made the commit, so look at the head instead of assuming."""
    try:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        head = next(b.target_commit for b in refs.branches if b.name == "main")
    except Exception:
        return (
            f"pushing {tag} to {repo_id} failed ({type(err).__name__}: {err}) and the repo "
            "cannot be read now; push the same directory again when the Hub is reachable"
        )
    if head == parent:
        return (
            f"pushing {tag} to {repo_id} failed; no commit was made, the remote is unchanged "
            f"({type(err).__name__}: {err})"
        )
    return (
        f"pushing {tag} to {repo_id}: the answer was lost ({type(err).__name__}: {err}) but the "
        f"head moved to {head[:12]}; push the same directory again to tag it"
    )


def pull_dataset(
    spec: str | DatasetRef,
    out_dir: str | os.PathLike[str],
    revision: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Download a Hub version (``org/name[@rev]``) into ``out_dir`` as a local dataset directory.

    Raises:
        ValueError: a missing repo or revision, or a repo that is not a label dataset.
        FileExistsError: ``out_dir`` is not empty and not a label dataset, or it is one and
            ``overwrite`` is off.
    """
    ref = spec if isinstance(spec, DatasetRef) else parse_ref(spec, revision)
    if ref.local:
        raise ValueError(f"{ref} is a local directory already; pull takes a Hub repo id")
    out = Path(out_dir).expanduser().resolve()
    _check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target (same filesystem, never inside it), swapped in at the end.
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.pull-", dir=out.parent))
    try:
        downloaded = _download(ref, stage / "dataset")
        shutil.rmtree(downloaded / ".cache", ignore_errors=True)
        _read_local(ref, downloaded)  # refuse what is not a label dataset
        _swap_into_place(downloaded, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


# --- comparing -------------------------------------------------------------------------------


@dataclass
class DatasetDiff:
    """What changed from version ``a`` to version ``b``.

    Attributes:
        a, b: the two versions (as given).
        added, removed: ``(sample_id, question)`` of rows only in b / only in a.
        changed: rows whose labels changed: ``{"sample_id", "question", "max_change",
            "columns": {column: max |b - a|}}``, biggest change first.
        metadata_changed: sample ids whose video, question, options, answer or candidates
            changed.
        unchanged: rows equal in both (labels within ``tolerance``).
        shared: rows (sample ids) in both versions.
        drift: per label column over the rows in both: ``{"mean_abs", "max_abs", "mean_shift"}``.
        captions: ``{"added", "removed", "changed"}`` video counts.
        reviewed: rows with human labels in a and in b.
    """

    a: str
    b: str
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    changed: list[dict[str, Any]]
    metadata_changed: list[str]
    unchanged: int
    shared: int
    drift: dict[str, dict[str, float]]
    captions: dict[str, int]
    reviewed: tuple[int, int]

    @property
    def identical(self) -> bool:
        """True when b has the same rows and labels as a."""
        return not (
            self.added
            or self.removed
            or self.changed
            or self.metadata_changed
            or any(self.captions.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": [list(x) for x in self.added],
            "removed": [list(x) for x in self.removed],
            "changed": self.changed,
            "metadata_changed": self.metadata_changed,
            "unchanged": self.unchanged,
            "shared": self.shared,
            "drift": self.drift,
            "captions": self.captions,
            "reviewed": list(self.reviewed),
            "identical": self.identical,
        }


def diff_datasets(
    a: str | os.PathLike[str] | LoadedDataset,
    b: str | os.PathLike[str] | LoadedDataset,
    tolerance: float = 1e-6,
) -> DatasetDiff:
    """Compare two versions (directories or ``org/name@rev``): rows added and removed, label
    changes per row, and score drift per column over the rows both have.

    Raises:
        FileNotFoundError, ValueError: as `load_dataset_version`.
    """
    from fsmodel.schema import (
        ANSWER,
        CAPTIONS,
        FRAME_INDICES,
        HUMAN,
        OPTIONS,
        QUESTION,
        SAMPLE_ID,
        SCORES,
        SPATIAL,
        TEMPORAL,
        VIDEO,
        VIDEO_ID,
    )

    left = a if isinstance(a, LoadedDataset) else load_dataset_version(a)
    right = b if isinstance(b, LoadedDataset) else load_dataset_version(b)
    rows_a = {r[SAMPLE_ID]: r for r in left.rows}
    rows_b = {r[SAMPLE_ID]: r for r in right.rows}
    added = [(s, rows_b[s][QUESTION]) for s in rows_b if s not in rows_a]
    removed = [(s, rows_a[s][QUESTION]) for s in rows_a if s not in rows_b]
    columns = (SPATIAL, TEMPORAL, SCORES)
    deltas: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    changed, metadata_changed, unchanged = [], [], 0
    for sample_id, row_a in rows_a.items():
        row_b = rows_b.get(sample_id)
        if row_b is None:
            continue
        if any(row_a[k] != row_b[k] for k in (VIDEO, QUESTION, OPTIONS, ANSWER)) or list(
            row_a[FRAME_INDICES]
        ) != list(row_b[FRAME_INDICES]):
            metadata_changed.append(sample_id)
        per_column = {}
        for column in columns:
            va = np.asarray(row_a[column], dtype=np.float64)
            vb = np.asarray(row_b[column], dtype=np.float64)
            if va.shape != vb.shape:  # a different n: reported as changed candidates
                if sample_id not in metadata_changed:
                    metadata_changed.append(sample_id)
                continue
            d = vb - va
            deltas[column].append(d)
            per_column[column] = float(np.max(np.abs(d))) if d.size else 0.0
        human_changed = list(row_a.get(HUMAN) or []) != list(row_b.get(HUMAN) or [])
        big = {c: v for c, v in per_column.items() if v > tolerance}
        if big or human_changed:
            if human_changed:
                big[HUMAN] = 1.0
            changed.append(
                {
                    "sample_id": sample_id,
                    "question": row_b[QUESTION],
                    "max_change": max(big.values()),
                    "columns": big,
                }
            )
        elif sample_id not in metadata_changed:
            unchanged += 1
    changed.sort(key=lambda c: -c["max_change"])
    drift = {}
    for column, parts in deltas.items():
        if parts:
            d = np.concatenate(parts)
            drift[column] = {
                "mean_abs": float(np.mean(np.abs(d))) if d.size else 0.0,
                "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
                "mean_shift": float(np.mean(d)) if d.size else 0.0,
            }
    caps_a = {c[VIDEO_ID]: c for c in left.captions}
    caps_b = {c[VIDEO_ID]: c for c in right.captions}
    captions = {
        "added": sum(v not in caps_a for v in caps_b),
        "removed": sum(v not in caps_b for v in caps_a),
        "changed": sum(
            v in caps_b and list(caps_a[v][CAPTIONS]) != list(caps_b[v][CAPTIONS]) for v in caps_a
        ),
    }

    def reviewed(rows: Iterable[Mapping[str, Any]]) -> int:
        return sum(1 for r in rows if len(r.get(HUMAN) or []) > 0)

    return DatasetDiff(
        str(left.ref),
        str(right.ref),
        added,
        removed,
        changed,
        metadata_changed,
        unchanged,
        sum(1 for sample_id in rows_a if sample_id in rows_b),
        drift,
        captions,
        (reviewed(left.rows), reviewed(right.rows)),
    )
