"""Dataset and model card templates, rendered with huggingface_hub's card classes.

Templates live in ``hub_cards/templates/`` (package data); `template_path` finds them.
`render_model_card` turns a trained selector's record (``framesel_training.json``, written by
``fsmodel.training``) into the model card pushed beside its weights.
"""

from __future__ import annotations

from pathlib import Path

from hub_cards.model_card import CardError, check_public, render_model_card

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["TEMPLATES", "CardError", "check_public", "render_model_card", "template_path"]


def template_path(name: str) -> Path:
    """The path of a packaged template, e.g. ``template_path("model_card.md")``.

    Raises:
        FileNotFoundError: naming the known templates.
    """
    path = TEMPLATES / name
    if not path.is_file():
        known = sorted(p.name for p in TEMPLATES.glob("*.md"))
        raise FileNotFoundError(f"no card template {name!r}; known templates: {known}")
    return path
