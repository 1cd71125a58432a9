"""Batch selection as a resumable run: select once for a whole manifest (`framesel select run`).

`run_selection` walks a video-QA manifest one video at a time, like `run_eval` without the
answerer, on the same store and the same records: each video's n candidates are decoded once and
stored (frame indices, timestamps, fps, frame count), and every scorer the strategies use scores
each question once (its curve, with its cost). Each record is committed as soon as it is made, so
a killed run resumes where it stopped and a re-run decodes nothing that is stored; a video that
cannot be decoded or a scorer error fails its items on record and the run goes on. Because the
records are the eval's, ``framesel eval qa`` on the same work directory reuses the curves.

The picks are derived from the stored curves (`selection_rows`): for every question, strategy and
k, exactly k candidate positions with their frame indices and timestamps, ``min(k, N)`` of them
distinct frames (`fsmodel.selection.select_distinct`). ``WORK/picks.jsonl`` holds them, one line
per (question, strategy, k).

Example:
    >>> config = EvalConfig.from_dict({"strategies": ["uniform", "selector:nms"], "ks": [8, 16],
    ...     "scorers": {"selector": {"model": "org/selector"}}})  # doctest: +SKIP
    >>> summary = run_selection(config, "qa.jsonl", "videos/", "work/")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fslabels.evaluation.config import EvalConfig
from fslabels.evaluation.run import _Eval, _items, build_strategies, eval_fingerprints
from fslabels.evaluation.scorers import Cost, ScoreCurve, Scorer
from fslabels.evaluation.store import EvalStore
from fslabels.evaluation.strategies import Strategy
from fslabels.manifest import LabelItem, group_by_video
from fslabels.run import ProgressBars

if TYPE_CHECKING:
    from fslabels.quality import SelectionReport

__all__ = [
    "PICKS_FILE",
    "SELECTIONS_INFO",
    "SelectionSummary",
    "StoredScores",
    "build_selections",
    "run_selection",
    "score_selections",
    "selection_rows",
    "write_selections",
]

META_KEY = "selection"
PICKS_FILE = "picks.jsonl"
_BAR_KEY = "select"


@dataclass
class SelectionSummary:
    """What `run_selection` did.

    Attributes:
        workdir: the work directory.
        items, videos: questions and videos.
        units: (question, strategy) pairs.
        computed, failed, cached: units made now, failed now, found stored.
        picks: lines written to ``picks.jsonl`` (questions x strategies x ks, failures left out).
        wall_seconds: this invocation's wall time.
    """

    workdir: str
    items: int
    videos: int
    units: int
    computed: int
    failed: int
    cached: int
    picks: int
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_selection(
    config: EvalConfig | Mapping[str, Any],
    manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
    videos_root: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    progress: bool = True,
    retry_failed: bool = False,
    scorers: Mapping[str, Scorer] | None = None,
) -> SelectionSummary:
    """Select frames for every question of a manifest, resumably (see the module docstring),
    and write ``WORK/picks.jsonl``.

    Args:
        config: an `EvalConfig` (its ``answerer`` is not used) or its dict.
        manifest_or_items: a JSONL manifest or `LabelItem` objects.
        videos_root: where the items' video paths start.
        workdir: the work directory (created or resumed; an eval's is fine).
        progress: show a progress bar.
        retry_failed: recompute stored failures.
        scorers: already-loaded scorers by name (not unloaded here).

    Raises:
        ValueError: an invalid config or manifest, or a directory holding a label run.
        fslabels.store.StoreLockedError: another run is writing to ``workdir``.
    """
    started = time.perf_counter()
    if isinstance(config, Mapping):
        config = EvalConfig.from_dict(config)
    items = _items(manifest_or_items, config.limit)
    strategies, owned = build_strategies(config, scorers)
    fingerprints = eval_fingerprints(config, strategies, None)
    groups = group_by_video(items)
    import av  # noqa: F401  (loaded before any timing, as in run_eval)

    store = EvalStore(workdir)
    try:
        store.lock()
        store.set_items(items)
        store.set_meta(
            {
                META_KEY: {
                    "config": config.to_dict(),
                    "fingerprints": fingerprints.as_dict(),
                    "scorers": {
                        s.scorer.name: s.scorer.fingerprint()
                        for s in strategies
                        if s.scorer is not None
                    },
                    "videos_root": str(videos_root),
                }
            }
        )
        run_id = store.begin_run(config.to_yaml())
        units = len(items) * len(strategies)
        with ProgressBars(progress, {_BAR_KEY: units}, units={_BAR_KEY: "questions"}) as bar:
            state = _Eval(
                config,
                store,
                strategies,
                None,
                fingerprints,
                Path(videos_root),
                retry_failed,
                bar,
                bar_key=_BAR_KEY,
            )
            for video, video_items in groups.items():
                state.select_video(video, video_items)
        rows = selection_rows(store, items, strategies, config.ks, fingerprints)
        _write_jsonl(Path(workdir) / PICKS_FILE, rows)
        summary = SelectionSummary(
            workdir=str(workdir),
            items=len(items),
            videos=len(groups),
            units=units,
            computed=state.counts.computed,
            failed=state.counts.failed,
            cached=state.counts.cached,
            picks=len(rows),
            wall_seconds=time.perf_counter() - started,
        )
        store.finish_run(run_id, summary.to_dict())
    finally:
        store.close()
        for scorer in owned:
            scorer.unload()
    return summary


def selection_rows(
    store: EvalStore,
    items: Iterable[LabelItem],
    strategies: Iterable[Strategy],
    ks: Iterable[int],
    fingerprints: Any,
) -> list[dict[str, Any]]:
    """One row per (question, strategy, k) whose candidates and curve are stored: the picks'
    candidate positions, frame indices and timestamps, the number of distinct frames, and the
    video's fps and frame count. Questions whose video or curve failed are left out."""
    rows: list[dict[str, Any]] = []
    strategies = list(strategies)
    ks = sorted(ks)
    for video, video_items in group_by_video(list(items)).items():
        record = store.get_result("candidates", video, fingerprints.candidates)
        if record is None or not record.ok:
            continue
        cands = record.payload
        indices = np.asarray(cands["frame_indices"], np.int64)
        stamps = np.asarray(cands["timestamps"], np.float64)
        for strategy in strategies:
            curves = {}
            if strategy.scorer is not None:
                fp = fingerprints.scorers[strategy.scorer.name]
                curves = store.get_results("scores", [i.sample_id for i in video_items], fp)
            for item in video_items:
                curve = None
                if strategy.scorer is not None:
                    stored = curves.get(item.sample_id)
                    if stored is None or not stored.ok:
                        continue
                    curve = ScoreCurve(np.asarray(stored.payload["scores"], np.float64), Cost())
                for k in ks:
                    if k > len(indices):
                        continue
                    picks, _ = strategy.pick(curve, indices, k)
                    rows.append(
                        {
                            "sample_id": item.sample_id,
                            "video": video,
                            "question": item.question,
                            "strategy": strategy.name,
                            "k": k,
                            "positions": picks.positions.tolist(),
                            "frame_indices": indices[picks.positions].tolist(),
                            "timestamps": stamps[picks.positions].tolist(),
                            "distinct_frames": picks.distinct,
                            "fps": cands.get("fps"),
                            "num_frames": cands.get("num_frames"),
                        }
                    )
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


# --- the selections dataset --------------------------------------------------------------------

SELECTIONS_INFO = "framesel_selections.json"
SELECTIONS_CONFIGS = ("picks", "scores", "videos")


def build_selections(
    workdir: str | os.PathLike[str], out_dir: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write a selection run as a Hugging Face dataset directory with three configs (parquet):
    ``picks`` (per question, strategy and k: positions, frame indices, timestamps, distinct
    frames), ``scores`` (per question and scorer: the n scores) and ``videos`` (per video:
    candidate frame indices, timestamps, fps, frame count), a card naming the selector (model and
    content id), the sampler settings and the strategies, and ``framesel_selections.json``.
    ``datasets.load_dataset(out_dir, "picks")`` loads it.

    Raises:
        FileNotFoundError: ``workdir`` holds no selection run.
        FileExistsError: ``out_dir`` exists and is not a selections dataset, or ``overwrite``
            is off.
    """
    from fslabels.dataset.guard import public_value
    from fslabels.evaluation.run import EvalFingerprints
    from fslabels.store import STORE_FILE

    if not (Path(workdir) / STORE_FILE).is_file():
        raise FileNotFoundError(
            f"{workdir} holds no selection run ({STORE_FILE} is missing); make one with "
            f"`framesel select run --work {workdir}`"
        )
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not (out / SELECTIONS_INFO).is_file():
            raise FileExistsError(
                f"{out} exists and is not a selections dataset; choose another --out"
            )
        if not overwrite:
            raise FileExistsError(
                f"{out} holds a selections dataset; pass --overwrite to replace it"
            )
    with EvalStore(workdir, create=False) as store:
        meta = store.get_meta(META_KEY)
        if meta is None:
            raise FileNotFoundError(
                f"{workdir} holds no selection run; make one with `framesel select run --work {workdir}`"
            )
        config = EvalConfig.from_dict(meta["config"])
        fingerprints = EvalFingerprints(**meta["fingerprints"])
        items = store.items()
        # Built, never loaded: the picks come from the stored curves.
        strategies, _ = build_strategies(config)
        picks = selection_rows(store, items, strategies, config.ks, fingerprints)
        videos, scores = [], []
        for video, video_items in group_by_video(items).items():
            record = store.get_result("candidates", video, fingerprints.candidates)
            if record is None or not record.ok:
                continue
            c = record.payload
            videos.append({"video": video, "num_frames": c["num_frames"], "fps": c["fps"],
                           "duration": c["duration"], "candidate_indices": c["frame_indices"],
                           "timestamps": c["timestamps"]})  # fmt: skip
            for name, fp in fingerprints.scorers.items():
                stored = store.get_results("scores", [i.sample_id for i in video_items], fp)
                for item in video_items:
                    got = stored.get(item.sample_id)
                    if got is not None and got.ok:
                        scores.append({"sample_id": item.sample_id, "video": video,
                                       "question": item.question, "scorer": name,
                                       "scores": got.payload["scores"]})  # fmt: skip
    info = {
        "kind": "framesel-selections",
        "config": {"num_candidates": config.num_candidates, "frame_size": config.frame_size,
                   "video_reader": config.video_reader, "strategies": list(config.strategies),
                   "ks": list(config.ks), "rule_options": config.rule_options},
        "scorers": meta.get("scorers", {}),
    }  # fmt: skip
    # Published text names local model directories by their name only (<local>/name).
    return write_selections(out, picks, scores, videos, public_value(info, set()))


def write_selections(
    out: Path,
    picks: list[dict[str, Any]],
    scores: list[dict[str, Any]],
    videos: list[dict[str, Any]],
    info: Mapping[str, Any],
) -> Path:
    """Write the three parquet configs, ``framesel_selections.json`` (``info`` plus counts) and
    the card into ``out``, replacing what is there (the caller checked it may)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "picks": {"positions": pa.list_(pa.uint16()), "frame_indices": pa.list_(pa.int32()),
                  "timestamps": pa.list_(pa.float32()), "k": pa.uint16(),
                  "distinct_frames": pa.uint16(), "num_frames": pa.int32(), "fps": pa.float32()},
        "scores": {"scores": pa.list_(pa.float32())},
        # The candidates' timestamps at full precision, as label datasets keep them: scoring
        # against truth spans decides on which side of a span boundary a candidate falls.
        "videos": {"candidate_indices": pa.list_(pa.int32()), "timestamps": pa.list_(pa.float64()),
                   "num_frames": pa.int32(), "fps": pa.float32(), "duration": pa.float32()},
    }  # fmt: skip
    tables = {"picks": picks, "scores": scores, "videos": videos}
    stage = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None)
    )
    try:
        for name, rows in tables.items():
            target = stage / "data" / name
            target.mkdir(parents=True)
            columns = list(rows[0]) if rows else list(types[name])
            fields = [pa.field(c, types[name].get(c, _infer(rows, c))) for c in columns]
            table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
            pq.write_table(table, target / "train-00000-of-00001.parquet", compression="zstd")
        info = {**info, "counts": {"questions": len({r["sample_id"] for r in picks}),
                                   "videos": len(videos), "picks": len(picks),
                                   "scores": len(scores)}}  # fmt: skip
        (stage / SELECTIONS_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        (stage / "README.md").write_text(_selections_card(info), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        stage.replace(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _infer(rows: list[dict[str, Any]], column: str) -> Any:
    import pyarrow as pa

    return pa.array([r[column] for r in rows]).type


def _selections_card(info: Mapping[str, Any]) -> str:
    import yaml

    front = {
        "tags": ["framesel", "frame-selection", "video-question-answering"],
        "configs": [
            {"config_name": name, "default": name == "picks",
             "data_files": [{"split": "train", "path": f"data/{name}/*.parquet"}]}
            for name in SELECTIONS_CONFIGS
        ],
    }  # fmt: skip
    cfg, counts = info["config"], info["counts"]
    scorers = (
        "\n".join(
            f"- `{name}`: `{fp.get('model')}`"
            + (f" at revision `{fp['revision']}`" if fp.get("revision") else "")
            + f" (content id `{fp.get('model_id')}`)"
            for name, fp in info["scorers"].items()
        )
        or "- none (uniform only)"
    )
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n"
        "# Frame selections\n\n"
        f"Frames picked by framesel for {counts['questions']} questions about {counts['videos']} "
        f"videos: strategies {', '.join(cfg['strategies'])} at k = "
        f"{', '.join(map(str, cfg['ks']))}, from n = {cfg['num_candidates']} candidates per video "
        f"(short side {cfg['frame_size']} px, reader {cfg['video_reader']}).\n\n"
        f"Scorers:\n{scorers}\n\n"
        "Configs: `picks` (per question, strategy and k: candidate positions, frame indices, "
        "timestamps in seconds, distinct frames), `scores` (per question and scorer: the n "
        "scores), `videos` (per video: candidate frame indices, timestamps, fps, frame count).\n\n"
        "```python\nfrom datasets import load_dataset\n"
        'picks = load_dataset("<this dataset>", "picks", split="train")\n```\n'
    )


# --- publishing: the one release path (hub_cards.release), the label datasets' refs -------------


def _files(directory: Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def push_selections(
    directory: str | os.PathLike[str],
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> Any:
    """Publish a selections dataset directory as one tagged release (``v1``, ``v2``, …) of a Hub
    dataset repo, through `hub_cards.release.publish_release` (the label datasets' and selectors'
    path: one commit, immutable tags, a no-op when nothing changed).

    Raises:
        FileNotFoundError: ``directory`` is not a selections dataset.
        PermissionError, TagExistsError, PushError: see `publish_release`.
    """
    from hub_cards import check_public
    from hub_cards.release import publish_release, release_hash_of

    source = Path(directory).expanduser()
    if not (source / SELECTIONS_INFO).is_file():
        raise FileNotFoundError(
            f"{source} is not a selections dataset (no {SELECTIONS_INFO}); make one with "
            "`framesel select build`"
        )
    names = _files(source)
    check_public((source / "README.md").read_text(encoding="utf-8"))

    def stage(out: Path, _tag: str | None) -> None:
        for name in names:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)

    return publish_release(
        repo_id,
        "dataset",
        stage,
        release_hash_of(source, names),
        tag=tag,
        private=private,
        token=token,
        source="selections",
    )


def load_selections(spec: str | os.PathLike[str], revision: str | None = None) -> tuple[Path, dict]:
    """``(directory, info)`` of a selections dataset: a directory, or ``org/name[@rev]`` from the
    Hub (downloaded)."""
    from fslabels.dataset import parse_ref
    from fslabels.dataset.format import download

    ref = parse_ref(spec, revision)
    directory = Path(ref.source) if ref.local else download(ref)
    info_file = directory / SELECTIONS_INFO
    if not info_file.is_file():
        raise ValueError(f"{spec} is not a framesel selections dataset (no {SELECTIONS_INFO})")
    return directory, json.loads(info_file.read_text(encoding="utf-8"))


def read_config(directory: Path, name: str = "picks") -> list[dict[str, Any]]:
    """The rows of one config of a selections dataset: ``picks``, ``scores`` or ``videos``."""
    import pyarrow.parquet as pq

    files = sorted((directory / "data" / name).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def score_selections(
    selections: str | os.PathLike[str],
    truth: str | os.PathLike[str] | Mapping[Any, Any],
    revision: str | None = None,
) -> SelectionReport:
    """Score the picks of a selections dataset (`framesel select build`; a directory or
    ``org/name[@rev]``) against a truth file: per strategy, k and question kind, the picks'
    recall@k, precision@k and coverage@k (`fsmodel.metrics`, over the video's candidates).

    Truth for questions the selections do not hold is counted (``missing``), not an error: a
    selection run leaves out the questions it failed on.

    Raises:
        TruthError: the truth file is malformed, or has spans that start after the video ends
            (each listed with its line).
        ValueError: not a selections dataset, or nothing could be scored.
    """
    from fslabels.quality import read_truth, score_picks

    if isinstance(truth, Mapping):
        known, source_name = dict(truth), "truth"
    else:
        known, source_name = read_truth(truth), Path(truth).name
    directory, _ = load_selections(selections, revision)
    return score_picks(read_config(directory, "picks"), read_config(directory, "videos"), known,
                       source_name)  # fmt: skip


def diff_selections(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> dict[str, Any]:
    """How two selections versions differ: per (strategy, k), how many questions both hold,
    how many got other frames, and the mean share of frames kept; plus the questions only one
    holds."""
    key = ("sample_id", "strategy", "k")
    left = {tuple(r[c] for c in key): r for r in read_config(load_selections(a)[0])}
    right = {tuple(r[c] for c in key): r for r in read_config(load_selections(b)[0])}
    cells: dict[str, dict[str, Any]] = {}
    for k3 in sorted(set(left) & set(right)):
        x, y = set(left[k3]["frame_indices"]), set(right[k3]["frame_indices"])
        cell = cells.setdefault(f"{k3[1]} k={k3[2]}", {"questions": 0, "changed": 0, "kept": []})
        cell["questions"] += 1
        cell["changed"] += int(x != y)
        cell["kept"].append(len(x & y) / max(1, len(x)))
    for cell in cells.values():
        cell["kept"] = float(np.mean(cell["kept"])) if cell["kept"] else 1.0
    return {
        "cells": cells,
        "only_in_a": len({k[0] for k in left} - {k[0] for k in right}),
        "only_in_b": len({k[0] for k in right} - {k[0] for k in left}),
    }


# --- consumers ---------------------------------------------------------------------------------

FRAMES_INDEX = "index.json"


def export_frames(
    selections: str | os.PathLike[str],
    videos_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    strategy: str | None = None,
    k: int | None = None,
    size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the frames a selections dataset picked as JPEG files, each (video, frame) once, and
    ``index.json``: per question, strategy and k, the frames in time order with their frame
    index, timestamp and file — what any evaluator can read without framesel.

    Args:
        selections: a selections directory or ``org/name[@rev]``.
        videos_root: where the dataset's video paths start.
        out_dir: the directory to write (created; must be empty or missing).
        strategy, k: only these picks (default: all).
        size: short side of the written frames (default: as stored in the video).
        progress: a progress bar over the videos.

    Returns:
        The index (also written to ``out_dir/index.json``); a video that cannot be read is
        listed under ``"failed"`` with the reason, and the others are written.

    Raises:
        FileExistsError: ``out_dir`` is a file or a non-empty directory.
        ValueError: no picks match ``strategy``/``k``.
    """
    from PIL import Image

    from fsmodel.video import get_reader, probe

    directory, info = load_selections(selections)
    rows = [
        r
        for r in read_config(directory)
        if (strategy is None or r["strategy"] == strategy) and (k is None or r["k"] == k)
    ]
    if not rows:
        have = sorted({(r["strategy"], r["k"]) for r in read_config(directory)})
        raise ValueError(f"no picks for strategy={strategy!r}, k={k!r}; the dataset has {have}")
    out = Path(out_dir).expanduser()
    if out.is_file() or (out.exists() and any(out.iterdir())):
        raise FileExistsError(f"{out} is a file or not empty; choose another --out")
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_video.setdefault(row["video"], []).append(row)
    reader = get_reader(info["config"].get("video_reader") or "pyav")
    entries, failed = [], {}
    with ProgressBars(progress, {"videos": len(by_video)}, units={"videos": "videos"}) as bar:
        for video, video_rows in by_video.items():
            wanted = np.unique(np.concatenate([r["frame_indices"] for r in video_rows]))
            try:
                frames = reader.read(probe(Path(videos_root) / video), wanted, size)
            except Exception as err:  # a bad video is recorded; the others are written
                failed[video] = f"{type(err).__name__}: {err}"
                bar.advance("videos", 1)
                continue
            stem = Path(video).with_suffix("")
            files = {}
            for index, frame in zip(wanted.tolist(), frames, strict=True):
                name = f"frames/{stem}/{index:07d}.jpg"
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(frame).save(out / name, quality=92)
                files[index] = name
            for row in video_rows:
                entries.append(
                    {
                        "sample_id": row["sample_id"],
                        "video": video,
                        "question": row["question"],
                        "strategy": row["strategy"],
                        "k": row["k"],
                        "frames": [
                            {"frame_index": i, "timestamp": round(float(t), 6), "file": files[i]}
                            for i, t in zip(row["frame_indices"], row["timestamps"], strict=True)
                        ],
                    }
                )
            bar.advance("videos", 1)
    index = {"selections": str(selections), "entries": entries, "failed": failed}
    out.mkdir(parents=True, exist_ok=True)
    (out / FRAMES_INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index


@dataclass
class StoredScoresConfig:
    """Curves read from a selections dataset instead of computed.

    Args:
        selections: the dataset's directory (as loaded).
        scorer: the scorer whose curves to serve (``selector`` for ``selector:*``).
        content_id: the dataset's content hash (part of the fingerprint).
    """

    selections: str
    scorer: str
    content_id: str


class StoredScores(Scorer):
    """The score curves a selections dataset holds, served as a scorer: ``eval qa --selections``
    answers from stored picks without running a selector. Its ``name`` is the stored scorer's
    (so ``selector:nms`` uses the stored selector curves with the nms rule)."""

    name = "stored"
    config_class = StoredScoresConfig

    def __init__(self, config: Any = None, videos_root: str | os.PathLike[str] = ".", **kw: Any):
        super().__init__(config, **kw)
        self.name = self.config.scorer  # the strategies ask for it by the stored scorer's name
        self.videos_root = Path(videos_root)
        self.curves: dict[tuple[str, str], np.ndarray] = {}
        self.candidates: dict[str, np.ndarray] = {}

    def fingerprint(self) -> dict[str, Any]:
        return {"scorer": self.name, "stored": self.config.content_id}

    def _load(self) -> None:
        directory = Path(self.config.selections)
        for row in read_config(directory, "scores"):
            if row["scorer"] == self.name:
                key = (row["video"], row["question"])
                self.curves[key] = np.asarray(row["scores"], np.float64)
        for row in read_config(directory, "videos"):
            self.candidates[row["video"]] = np.asarray(row["candidate_indices"], np.int64)

    def _unload(self) -> None:
        self.curves, self.candidates = {}, {}

    def _video(self, path: str) -> str | None:
        """The stored video a decoded path is: ``videos_root / video``, or (lmms-eval passes
        absolute paths) the one stored path it ends with."""
        for video in self.candidates:
            if os.fspath(self.videos_root / video) == path:
                return video
        posix = Path(path).as_posix()
        ends = [v for v in self.candidates if posix.endswith("/" + Path(v).as_posix())]
        return ends[0] if len(ends) == 1 else None

    def _question(self, video: str, asked: str) -> str | None:
        """The stored question: the one asked, or (a prompt that wraps it, as an lmms-eval
        task's is) the longest stored question of the video inside it."""
        if (video, asked) in self.curves:
            return asked
        inside = [q for v, q in self.curves if v == video and q and q in asked]
        return max(inside, key=len) if inside else None

    def score(self, candidates: Any, question: str, options: Any = ()) -> ScoreCurve:
        from fslabels.evaluation.scorers import ScoringError

        self.load()
        path = os.fspath(candidates.video)
        video = self._video(path)
        if video is None:
            raise ScoringError(f"the selections hold no video {path!r}")
        stored = self._question(video, question)
        if stored is None:
            raise ScoringError(
                f"the selections hold no {self.name} curve for {video!r} and the question "
                f"{question[:80]!r}"
            )
        if not np.array_equal(self.candidates[video], np.asarray(candidates.indices)):
            raise ScoringError(
                f"the selections were made from other candidates of {video!r} (another n, "
                "reader or video file): use their num_candidates and video_reader"
            )
        return ScoreCurve(self.curves[(video, stored)], Cost())


def stored_scorers(
    selections: str | os.PathLike[str], videos_root: str | os.PathLike[str]
) -> tuple[dict[str, StoredScores], dict[str, Any]]:
    """``({scorer name: StoredScores}, the dataset's info)`` for every scorer whose curves a
    selections dataset holds."""
    from hub_cards.release import release_hash_of

    directory, info = load_selections(selections)
    content_id = release_hash_of(directory, _files(directory))[:16]
    names = sorted(info.get("scorers") or {})
    scorers = {
        name: StoredScores(
            StoredScoresConfig(str(directory), name, content_id), videos_root=videos_root
        )
        for name in names
    }
    return scorers, info
