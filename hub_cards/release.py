"""Releases on the Hub: tags ``v1``, ``v2``, … that are created once and never moved.

Selectors (``fsmodel.hub``) and label datasets (``fslabels.dataset``) publish the same way: one
commit holds a whole release, then a tag names it. This module is the one place that reads the
existing tags, picks the next version and creates the tag, so both follow the same rules.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "TagExistsError",
    "create_release_tag",
    "next_version_tag",
    "refuse_existing_tag",
    "version_tags",
]

_VERSION_TAG = re.compile(r"^v(\d+)$")


class TagExistsError(ValueError):
    """The release tag already exists in the repo (releases are immutable)."""


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
