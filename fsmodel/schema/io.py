"""Writing and reading a label dataset directory (or Hub repo) of schema v1 (see `fsmodel.schema`).
``datasets`` is imported inside the functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fsmodel.schema.columns import (
    CAPTIONS_CONFIG,
    DATA_DIR,
    LABELS_CONFIG,
    LABELS_SCHEMA_VERSION,
    OPTIONAL_LABEL_COLUMNS,
    caption_features,
    card_metadata,
    label_features,
)
from fsmodel.schema.validation import check_caption_rows, check_label_rows

if TYPE_CHECKING:
    import datasets

__all__ = [
    "load_label_dataset",
    "save_label_dataset",
]


def save_label_dataset(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | Any,
    captions: Iterable[Mapping[str, Any]] | None = None,
    card: str | None = None,
    num_candidates: int | None = None,
) -> Any:
    """Write validated rows (and per-video captions) as a label dataset directory.

    Layout: ``data/labels/train-00000-of-00001.parquet``,
    ``data/captions/train-00000-of-00001.parquet`` and ``README.md`` whose YAML declares both
    configs (see `card_metadata`). ``card`` replaces the minimal README (it must carry the same
    metadata; fslabels renders the full card).

    Returns:
        The output directory as a `pathlib.Path`.

    Raises:
        SchemaError: before anything is written, if a row violates schema v1.
    """
    from pathlib import Path

    import datasets
    import yaml

    rows = list(rows)
    check_label_rows(rows, num_candidates=num_candidates)
    caption_rows = list(captions or [])
    check_caption_rows(caption_rows)
    out = Path(out_dir)
    parts = [(LABELS_CONFIG, rows, label_features())]
    if caption_rows:
        parts.append((CAPTIONS_CONFIG, caption_rows, caption_features()))
    for config in (LABELS_CONFIG, CAPTIONS_CONFIG):
        for stale in (out / DATA_DIR / config).glob("*.parquet"):
            stale.unlink()
    for config, data, features in parts:
        folder = out / DATA_DIR / config
        folder.mkdir(parents=True, exist_ok=True)
        table = datasets.Dataset.from_list(
            [{c: r[c] if c in r else OPTIONAL_LABEL_COLUMNS[c] for c in features} for r in data],
            features=features,
        )
        table.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    if card is None:
        meta = yaml.safe_dump(card_metadata(captions=bool(caption_rows)), sort_keys=False)
        card = f"---\n{meta}---\n\n# framesel label dataset\n\nSchema {LABELS_SCHEMA_VERSION}.\n"
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def load_label_dataset(
    source: str | Any,
    config: str = LABELS_CONFIG,
    revision: str | None = None,
    split: str = "train",
) -> datasets.Dataset:
    """Load one config of a label dataset from a local directory or a Hub dataset repo.

    Args:
        source: a directory written by `save_label_dataset` / ``framesel labels build``, or a
            Hub repo id (``org/name``).
        config: ``"labels"`` or ``"captions"``.
        revision: a tag (``v1``), branch or commit, for Hub repos.
        split: the split (label datasets have ``train``).

    Returns:
        A `datasets.Dataset` cast to the schema's features.

    Raises:
        ValueError: an unknown config, or columns that are not schema v1.
    """
    import datasets

    if config not in (LABELS_CONFIG, CAPTIONS_CONFIG):
        raise ValueError(f"config must be {LABELS_CONFIG!r} or {CAPTIONS_CONFIG!r}, got {config!r}")
    features = label_features() if config == LABELS_CONFIG else caption_features()
    from pathlib import Path

    local = Path(str(source)).expanduser()
    if local.is_dir():
        # datasets caches a local dir's YAML-declared config under the dir's *name* only, so
        # another dir of the same name (or this one rewritten) would load stale rows; the
        # parquet builder keys its cache by the files themselves.
        files = sorted(str(f) for f in (local / DATA_DIR / config).glob("*.parquet"))
        if not files:
            raise ValueError(f"{source} has no {config!r} config ({DATA_DIR}/{config}/*.parquet)")
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split)
    else:
        ds = datasets.load_dataset(str(source), config, split=split, revision=revision)
    for column, default in OPTIONAL_LABEL_COLUMNS.items():
        if config == LABELS_CONFIG and column not in ds.column_names:
            ds = ds.add_column(column, [default] * ds.num_rows)
    missing = [c for c in features if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{source} ({config}) is not a framesel label dataset of schema "
            f"{LABELS_SCHEMA_VERSION}: missing columns {missing}"
        )
    extra = [c for c in ds.column_names if c not in features]
    # Later versions may add columns (e.g. human review labels); keep them, type the known ones.
    if extra:
        return ds.cast(datasets.Features({**features, **{c: ds.features[c] for c in extra}}))
    return ds.cast(features)
