"""Publish a trained selector to the Hugging Face Hub: one commit per release, one tag per release.

A push stages exactly what a user needs, whatever the local directory holds: the weights as
safetensors, ``config.json`` with ``auto_map``, the processor (tokenizer + image processor), the
remote-code files (so ``trust_remote_code=True`` loads it without framesel), the training record
and a model card rendered from ``hub_cards``. It goes through the release path label datasets
use (`hub_cards.release.publish_release`): one ``create_commit`` on the head it read, tags never
moved (an existing tag is refused before anything is uploaded), identical content a no-op, a
release whose tag step failed finished by pushing again, and 401/403 as `PermissionError`.

Example:
    >>> from fsmodel.hub import push_selector
    >>> result = push_selector("runs/stage2/final", "org/frame-selector", tag="v1")
    >>> AutoModel.from_pretrained("org/frame-selector", revision="v1")
"""

from __future__ import annotations

import os
from pathlib import Path

from hub_cards.release import PushError, Release, TagExistsError

__all__ = ["PushError", "Release", "TagExistsError", "push_selector"]


def push_selector(
    model_dir: str | os.PathLike,
    repo_id: str,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    license: str = "apache-2.0",
) -> Release:
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
        A `hub_cards.release.Release` (``unchanged=True`` when the repo's head already holds
        exactly these files, card included).

    Raises:
        FileNotFoundError: ``model_dir`` does not exist.
        ValueError: it does not hold a frame selector with its processor.
        PermissionError: no token, or the token cannot write to ``repo_id``.
        TagExistsError: ``tag`` already exists in the repo (checked before uploading).
        PushError: the upload or the tag failed (the message says what the remote holds).
        hub_cards.CardError: the card would publish a local path or a token.

    Example:
        >>> push_selector("runs/s2/final", "org/selector", tag="v1", private=True).commit
    """
    from transformers import AutoModel, AutoProcessor

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes as they load)
    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.training.recipe import TRAINING_RECORD, read_training_record
    from hub_cards import check_public, render_model_card
    from hub_cards.release import publish_release, release_hash_of

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
    record = read_training_record(source)

    def stage(out: Path, release_tag: str | None) -> None:
        # Re-saving (not copying) guarantees safetensors, auto_map and the code files.
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        if record is not None:
            text = (source / TRAINING_RECORD).read_text(encoding="utf-8")
            check_public(text, (str(source.resolve()),))
            (out / TRAINING_RECORD).write_text(text, encoding="utf-8")
        card = render_model_card(
            record, model.config, repo_id, revision=release_tag, license=license
        )
        check_public(card.content, (str(source.resolve()),))
        card.save(out / "README.md")

    def content(out: Path) -> str:
        return release_hash_of(
            out, (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        )

    return publish_release(
        repo_id,
        "model",
        stage,
        content,
        tag=tag,
        auto_tag=False,
        private=private,
        token=token,
        commit_message=commit_message or (f"Release {tag}" if tag else "Upload frame selector"),
        source="model directory",
    )
