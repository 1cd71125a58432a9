"""Releases on the Hub: one commit per release, tags ``v1``, ``v2``, … created once, never moved.

Selectors (``fsmodel.hub``) and label datasets (``fslabels.dataset``) publish through
`publish_release`, the one release path:

1. a token is required and the repo is created if missing (401/403 → `PermissionError`);
2. an asked tag that exists is refused before anything is uploaded (`TagExistsError`);
3. the caller's ``release_hash`` (a hash of what the release holds) is compared with the one the
   head commit records (a ``framesel-release: <hash>`` line in its description): identical
   content at a tagged head is a no-op that reports the existing tag; at an untagged head (a
   push whose tag step failed) only the tag is added;
4. otherwise the caller stages the files, and ONE ``create_commit`` with
   ``parent_commit`` = the head it read adds them and deletes what the release no longer has;
5. the tag names that commit. Every failure says what the remote holds now (`PushError`): no
   commit made, or a commit landed untagged and pushing again finishes it.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PushError",
    "Release",
    "TagExistsError",
    "create_release_tag",
    "next_version_tag",
    "publish_release",
    "refuse_existing_tag",
    "release_hash_of",
    "version_tags",
]

_TRAILER = re.compile(r"^framesel-release: ([0-9a-f]{64})$", re.MULTILINE)

_VERSION_TAG = re.compile(r"^v(\d+)$")


class TagExistsError(ValueError):
    """The release tag already exists in the repo (releases are immutable)."""


class PushError(OSError):
    """A push failed on the way to the Hub; the message says what the remote holds now."""


@dataclass
class Release:
    """What `publish_release` did.

    Attributes:
        repo_id: the repo (as the Hub names it).
        tag: the release tag (the existing one when ``unchanged``; None for an untagged push).
        commit: the release's commit.
        unchanged: True when the head already held this release (nothing was uploaded).
        url: the repo's URL.
        files: the files of the release commit (empty when nothing was uploaded).
    """

    repo_id: str
    tag: str | None
    commit: str
    unchanged: bool
    url: str
    files: list[str] = field(default_factory=list)


def release_hash_of(directory: Path, names: Iterable[str]) -> str:
    """A sha256 over the named files of ``directory``: their paths and bytes, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((directory / name).read_bytes()).digest())
    return digest.hexdigest()


def _tags(api: Any, repo_id: str, repo_type: str) -> dict[str, str]:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return {tag.name: tag.target_commit for tag in refs.tags}


def version_tags(api: Any, repo_id: str, repo_type: str) -> dict[str, str]:
    """The repo's ``vN`` tags → commit ids, oldest version first."""
    tags = _tags(api, repo_id, repo_type)
    named = [(int(m.group(1)), name) for name in tags if (m := _VERSION_TAG.match(name))]
    return {name: tags[name] for _, name in sorted(named)}


def next_version_tag(api: Any, repo_id: str, repo_type: str) -> str:
    """``v<N+1>`` where ``vN`` is the repo's highest version tag (``v1`` for a repo without)."""
    numbers = [int(name[1:]) for name in version_tags(api, repo_id, repo_type)]
    return f"v{max(numbers, default=0) + 1}"


def refuse_existing_tag(api: Any, repo_id: str, tag: str, repo_type: str) -> None:
    """Raise `TagExistsError` if ``tag`` exists (call it before uploading anything)."""
    existing = _tags(api, repo_id, repo_type).get(tag)
    if existing is not None:
        raise TagExistsError(
            f"{repo_id} already has a tag {tag!r} (commit {existing[:12]}); release tags are "
            "never moved: push with a new tag (e.g. the next vN)"
        )


def create_release_tag(api: Any, repo_id: str, tag: str, commit: str, repo_type: str) -> None:
    """Tag ``commit`` as ``tag``; a tag created by someone else meanwhile is a `TagExistsError`."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_tag(
            repo_id, tag=tag, revision=commit, tag_message=f"Release {tag}", repo_type=repo_type
        )
    except HfHubHTTPError as err:
        if getattr(err.response, "status_code", None) == 409:
            raise TagExistsError(
                f"{repo_id} already has a tag {tag!r} (created while this push ran); the "
                f"upload is commit {commit}, untagged"
            ) from err
        raise


def publish_release(
    repo_id: str,
    repo_type: str,
    stage: Callable[[Path, str | None], None],
    release_hash: str | Callable[[Path], str],
    *,
    tag: str | None = None,
    auto_tag: bool = True,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    source: str = "directory",
) -> Release:
    """Publish one release of ``repo_id`` (see the module docstring).

    Args:
        repo_id: ``org/name`` (created when missing).
        repo_type: ``"model"`` or ``"dataset"``.
        stage: ``stage(directory, tag)`` writes the release's files into an empty directory
            (cards rendered for ``tag``; public-content checks are the caller's).
        release_hash: what identifies the release's content; a callable computes it from the
            staged directory (when the content depends on the tag, as a model card does).
        tag: the release tag; None: the next ``vN`` when ``auto_tag``, else no tag.
        auto_tag: pick the next version tag when ``tag`` is None.
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token (default: ``HF_TOKEN`` or the logged-in one).
        commit_message: default ``"Release <tag>"``.
        commit_description: the commit's description (the release hash line is added to it).
        source: what the user pushes, for "push the same ... again" in messages.

    Raises:
        PermissionError: no token, or the token cannot write to ``repo_id``.
        TagExistsError: ``tag`` exists (checked before uploading).
        PushError: the repo could not be created or the commit failed (the message says whether
            the remote is unchanged), or the tag failed after the commit landed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    kind = "model" if repo_type == "model" else repo_type
    token = token or get_token()
    if not token:
        raise PermissionError(
            "no Hugging Face token: log in with `hf auth login` or set HF_TOKEN (a write token)"
        )
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    except HfHubHTTPError as err:
        if _status(err) in (401, 403, 404):
            raise PermissionError(f"cannot write to {kind} repo {repo_id}: {err}") from err
        raise PushError(f"cannot create {kind} repo {repo_id} (nothing was pushed): {err}") from err
    repo_id, url = repo_url.repo_id, str(repo_url)
    head = _head(api, repo_id, repo_type)
    if tag is not None:
        refuse_existing_tag(api, repo_id, tag, repo_type)
    with tempfile.TemporaryDirectory(prefix="framesel-push-") as staging:
        directory = Path(staging)
        next_tag = tag or (next_version_tag(api, repo_id, repo_type) if auto_tag else None)
        stage(directory, next_tag)
        digest = release_hash if isinstance(release_hash, str) else release_hash(directory)
        if head is not None and _recorded_hash(api, repo_id, repo_type, head) == digest:
            tagged = [n for n, c in version_tags(api, repo_id, repo_type).items() if c == head]
            if tag is None and (tagged or next_tag is None):
                return Release(repo_id, tagged[-1] if tagged else None, head, True, url)
            # The head holds this release untagged (its tag step failed) or under another tag:
            # tag it, upload nothing.
            _tag(api, repo_id, repo_type, next_tag, head, source)
            return Release(repo_id, next_tag, head, False, url)
        files = sorted(
            p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
        )
        existing = (
            [] if head is None else api.list_repo_files(repo_id, repo_type=repo_type, revision=head)
        )
        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
            for name in files
        ]
        operations += [
            CommitOperationDelete(path_in_repo=name)
            for name in existing
            if name not in files and name != ".gitattributes"
        ]
        what = f"{next_tag} to {repo_id}" if next_tag else f"to {repo_id}"
        description = "\n\n".join(filter(None, [commit_description, f"framesel-release: {digest}"]))
        try:
            commit = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message or (f"Release {next_tag}" if next_tag else "Release"),
                commit_description=description,
                repo_type=repo_type,
                parent_commit=head,
            )
        except HfHubHTTPError as err:
            if _status(err) in (401, 403):
                raise PermissionError(
                    f"cannot write to {kind} repo {repo_id} (nothing was pushed): {err}"
                ) from err
            raise PushError(
                _failed_commit(api, repo_id, repo_type, what, head, err, source)
            ) from err
        except Exception as err:  # the transport's own errors (dropped connections)
            raise PushError(
                _failed_commit(api, repo_id, repo_type, what, head, err, source)
            ) from err
    if next_tag is not None:
        _tag(api, repo_id, repo_type, next_tag, commit.oid, source)
    return Release(repo_id, next_tag, commit.oid, False, url, files)


def _status(err: Exception) -> int | None:
    return getattr(getattr(err, "response", None), "status_code", None)


def _head(api: Any, repo_id: str, repo_type: str) -> str | None:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return next((b.target_commit for b in refs.branches if b.name == "main"), None)


def _recorded_hash(api: Any, repo_id: str, repo_type: str, commit: str) -> str | None:
    """The release hash a framesel push recorded in ``commit``'s description (None if none)."""
    commits = api.list_repo_commits(repo_id, repo_type=repo_type, revision=commit)
    found = _TRAILER.search(commits[0].message) if commits else None
    return found.group(1) if found else None


def _tag(api: Any, repo_id: str, repo_type: str, tag: str, commit: str, source: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        create_release_tag(api, repo_id, tag, commit, repo_type)
    except HfHubHTTPError as err:
        raise PushError(
            f"{repo_id}: commit {commit[:12]} landed but tagging it {tag} failed ({err}); "
            f"push the same {source} again to tag it"
        ) from err


def _failed_commit(
    api: Any,
    repo_id: str,
    repo_type: str,
    what: str,
    parent: str | None,
    err: Exception,
    source: str,
) -> str:
    """Say what the remote holds after a failed commit: the answer may be lost after the server
    made the commit, so look at the head instead of assuming."""
    failure = f"{type(err).__name__}: {err}"
    try:
        head = _head(api, repo_id, repo_type)
    except Exception:
        return (
            f"pushing {what} failed ({failure}) and the repo cannot be read now; push the "
            f"same {source} again when the Hub is reachable"
        )
    if head == parent:
        return f"pushing {what} failed; no commit was made, the remote is unchanged ({failure})"
    return (
        f"pushing {what}: the answer was lost ({failure}) but the head moved to "
        f"{str(head)[:12]}; push the same {source} again to tag it"
    )
