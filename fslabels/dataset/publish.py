"""Publishing label datasets: one commit and one ``vN`` tag per version (`push_dataset`), and
`pull_dataset`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fslabels.dataset.format import (
    DATASET_INFO,
    REPO_ID,
    DatasetRef,
    PushError,
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
    if not REPO_ID.match(repo_id):
        raise ValueError(f"--repo must be a Hub repo id like org/name, got {repo_id!r}")
    local = read_local(DatasetRef(str(source.resolve()), local=True), source)
    check_label_rows(local.rows)  # before any network call
    check_caption_rows(local.captions)
    check_public_rows(local.rows)
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
    date = utc_now()
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
        card = render_card(info, stage, repo_id, version=tag)
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
