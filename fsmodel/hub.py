"""Publish a trained selector to the Hugging Face Hub: one commit per release, one tag per release.

A push stages exactly what a user needs, whatever the local directory holds: the weights as
safetensors, ``config.json`` with ``auto_map``, the processor (tokenizer + image processor), the
remote-code files (so ``trust_remote_code=True`` loads it without framesel), the training record
and a model card rendered from ``hub_cards``. Tags are releases: a tag that already exists is
refused before anything is uploaded, never moved.

Example:
    >>> from fsmodel.hub import push_selector
    >>> result = push_selector("runs/stage2/final", "org/frame-selector", tag="v1")
    >>> AutoModel.from_pretrained("org/frame-selector", revision="v1")
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hub_cards.release import TagExistsError

__all__ = ["PushResult", "TagExistsError", "push_selector"]


@dataclass
class PushResult:
    """What `push_selector` published.

    Attributes:
        repo_id: the model repo.
        commit: the 40-hex id of the release commit.
        tag: the release tag (None when pushed untagged).
        url: the repo's URL.
        files: the files of the release commit.
    """

    repo_id: str
    commit: str
    tag: str | None
    url: str
    files: list[str]


def push_selector(
    model_dir: str | os.PathLike,
    repo_id: str,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    license: str = "apache-2.0",
) -> PushResult:
    """Push the selector in ``model_dir`` to ``repo_id`` as one commit, tagged ``tag``.

    Args:
        model_dir: a selector directory (e.g. a training run's ``final/``).
        repo_id: ``org/name`` (created if missing).
        tag: release tag such as ``v1`` (None: no tag).
        private: create the repo private (an existing repo keeps its visibility).
        token: Hub token (default: the logged-in one / ``HF_TOKEN``).
        commit_message: defaults to "Release <tag>" or "Upload frame selector".
        license: the card's licence id.

    Returns:
        A `PushResult`.

    Raises:
        FileNotFoundError: ``model_dir`` does not exist.
        ValueError: it does not hold a frame selector with its processor.
        TagExistsError: ``tag`` already exists in the repo (checked before uploading).
        hub_cards.CardError: the card would publish a local path or a token.

    Example:
        >>> push_selector("runs/s2/final", "org/selector", tag="v1", private=True).commit
    """
    from huggingface_hub import HfApi
    from transformers import AutoModel, AutoProcessor

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes as they load)
    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.training.recipe import TRAINING_RECORD, read_training_record
    from hub_cards import check_public, render_model_card
    from hub_cards.release import create_release_tag, refuse_existing_tag

    source = Path(model_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"model directory {source} does not exist")
    try:
        model = AutoModel.from_pretrained(source)
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"{source} does not hold a loadable frame selector: {err}") from err
    if not isinstance(model, FrameSelectorModel):
        raise ValueError(f"{source} holds a {type(model).__name__}, not a frame selector")

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    repo_id = repo_url.repo_id
    if tag is not None:
        refuse_existing_tag(api, repo_id, tag, repo_type="model")

    record = read_training_record(source)
    card = render_model_card(record, model.config, repo_id, revision=tag, license=license)
    with tempfile.TemporaryDirectory(prefix="framesel-push-") as staging:
        stage = Path(staging)
        # Re-saving (not copying) guarantees safetensors, auto_map and the code files.
        model.save_pretrained(stage, safe_serialization=True)
        processor.save_pretrained(stage)
        if record is not None:
            (stage / TRAINING_RECORD).write_text(
                (source / TRAINING_RECORD).read_text(encoding="utf-8"), encoding="utf-8"
            )
            check_public(
                (stage / TRAINING_RECORD).read_text(encoding="utf-8"), (str(source.resolve()),)
            )
        card.save(stage / "README.md")
        check_public(card.content, (str(source.resolve()),))
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        message = commit_message or (f"Release {tag}" if tag else "Upload frame selector")
        commit = api.upload_folder(
            folder_path=stage, repo_id=repo_id, repo_type="model", commit_message=message
        )
    commit_id = commit.oid
    if tag is not None:
        create_release_tag(api, repo_id, tag, commit_id, repo_type="model")
    return PushResult(repo_id=repo_id, commit=commit_id, tag=tag, url=str(repo_url), files=files)
