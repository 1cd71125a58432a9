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

The package's modules: `format` (references, reading and writing a version, its hashes), `guard`
(what published text may not carry), `build` (from a label run), `publish` (push and pull) and
`diff`.
"""

from __future__ import annotations

from fslabels.dataset.build import BuildResult, build_dataset
from fslabels.dataset.diff import DatasetDiff, diff_datasets
from fslabels.dataset.format import (
    DATASET_INFO,
    RUN_CONFIG,
    STATISTICS_PLOT,
    DatasetRef,
    LoadedDataset,
    content_hash,
    load_dataset_version,
    parse_ref,
    release_hash,
    write_dataset,
)
from fslabels.dataset.publish import pull_dataset, push_dataset
from hub_cards.release import PushError, Release

__all__ = [
    "DATASET_INFO",
    "RUN_CONFIG",
    "STATISTICS_PLOT",
    "BuildResult",
    "DatasetDiff",
    "DatasetRef",
    "LoadedDataset",
    "PushError",
    "Release",
    "build_dataset",
    "content_hash",
    "diff_datasets",
    "load_dataset_version",
    "parse_ref",
    "pull_dataset",
    "push_dataset",
    "release_hash",
    "write_dataset",
]
