"""Publishing label datasets: one commit and one ``vN`` tag per version (`push_dataset`), and
`pull_dataset`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fslabels.dataset.format import (
    DATASET_INFO,
    REPO_ID,
    DatasetRef,
    check_replaceable,
    content_hash,
    download,
    parse_ref,
    read_local,
    release_hash,
    render_card,
    swap_into_place,
    utc_now,
)
from fslabels.dataset.guard import check_public_rows
from fsmodel.schema import check_caption_rows, check_label_rows
from hub_cards.release import Release


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
) -> Release:
    """Publish a dataset directory as the next version of ``repo_id``: one commit, one tag,
    through the one release path (`hub_cards.release.publish_release`).

    Args:
        directory: a label dataset directory (``framesel labels build``).
        repo_id: ``org/name`` (created when missing).
        tag: the version tag (default: ``v<N+1>`` after the repo's highest ``vN``).
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token (default: ``HF_TOKEN`` or the logged-in one).

    Returns:
        A `hub_cards.release.Release` (``unchanged=True`` when the repo's head already holds this
        content).

    Raises:
        SchemaError: invalid rows, listing every violation (nothing is uploaded).
        PermissionError: no token, or the token cannot write to ``repo_id``.
        TagExistsError: ``tag`` already exists (checked before uploading).
        PushError: the upload failed (the message says the remote is unchanged) or the tag could
            not be created after the commit landed.
    """
    from huggingface_hub import HfApi

    from hub_cards import check_public
    from hub_cards.release import publish_release, version_tags

    source = Path(directory).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"dataset directory {source} does not exist")
    if not REPO_ID.match(repo_id):
        raise ValueError(f"--repo must be a Hub repo id like org/name, got {repo_id!r}")
    local = read_local(DatasetRef(str(source.resolve()), local=True), source)
    check_label_rows(local.rows)  # before any network call
    check_caption_rows(local.captions)
    check_public_rows(local.rows)
    digest = content_hash(local.rows, local.captions, local.run_config)

    def stage(out: Path, tag: str | None) -> None:
        # The card and the info file carry the version history of the repo as it is now.
        api = HfApi(token=token)
        versions = version_tags(api, repo_id, "dataset")
        remote = _remote_info(api, repo_id, "main") if versions else None
        info = dict(local.info)
        history = [e for e in (remote or {}).get("history") or [] if e.get("version") in versions]
        info["history"] = [
            *history,
            {
                "version": tag,
                "date": utc_now(),
                "samples": len(local.rows),
                "content_hash": digest,
                "note": info.get("note") or "",
            },
        ]
        info["repo_id"] = repo_id
        info["content_hash"] = digest
        info["release_hash"] = published
        for path in source.rglob("*"):
            relative = path.relative_to(source)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                (out / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out / relative)
        (out / DATASET_INFO).write_text(
            json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        (out / "README.md").write_text(
            render_card(info, out, repo_id, version=tag), encoding="utf-8"
        )
        for path in out.rglob("*"):
            if path.is_file() and path.suffix in (".md", ".json", ".yaml"):
                check_public(path.read_text(encoding="utf-8"), (str(source.resolve()),))

    published = release_hash(source, local)
    return publish_release(
        repo_id,
        "dataset",
        stage,
        published,
        tag=tag,
        private=private,
        token=token,
        commit_description=local.info.get("note") or None,
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
    check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target (same filesystem, never inside it), swapped in at the end.
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.pull-", dir=out.parent))
    try:
        downloaded = download(ref, stage / "dataset")
        shutil.rmtree(downloaded / ".cache", ignore_errors=True)
        read_local(ref, downloaded)  # refuse what is not a label dataset
        swap_into_place(downloaded, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out
