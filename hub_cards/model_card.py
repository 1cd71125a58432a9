"""The model card of a trained frame selector, rendered from ``templates/model_card.md``.

Everything the card says comes from the selector's config and its training record
(``framesel_training.json``): base models, training data (repo@revision), stages and their
hyper-parameters, metrics. Records name local models and datasets by directory name only, and
`render_model_card` refuses to produce a card holding an absolute local path or a token, since
cards are published.

Example:
    >>> card = render_model_card(record, config, "org/selector", revision="v1")
    >>> card.save("README.md")
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

__all__ = ["CardError", "check_public", "render_model_card"]

_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
DEFAULT_LICENSE = "apache-2.0"
DEFAULT_TAGS = ("framesel", "video", "frame-selection", "video-llm", "video-frame-selection")
# User access tokens ("hf_" + 30+ letters) and OpenAI-style keys.
_TOKEN = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,})\b")
_STRATEGIES = ("nms", "topk", "uniform")


class CardError(ValueError):
    """A card would publish something it must not (a local path, a token)."""


def _ref_text(ref: dict[str, Any] | None, kind: str) -> str:
    if not ref:
        return f"an unrecorded {kind}"
    if ref.get("local"):
        return f"a local {kind} (`{ref['id']}`)"
    url = "https://huggingface.co/" + ("datasets/" if kind == "dataset" else "") + ref["id"]
    return f"[{ref['id']}]({url})"


def _data_text(data: dict[str, Any]) -> str:
    source = data.get("source")
    text = _ref_text(source, "dataset")
    revision = data.get("revision")
    if revision:
        text += f" at revision `{revision}`"
        if source and not source.get("local"):
            text = f"`{source['id']}@{revision}` ({_ref_text(source, 'dataset')})"
    return text


def render_model_card(
    record: dict[str, Any] | None,
    config: Any,
    repo_id: str,
    revision: str | None = None,
    license: str = DEFAULT_LICENSE,
    tags: tuple[str, ...] = (),
) -> ModelCard:
    """Render the model card of a selector.

    Args:
        record: the training record (``framesel_training.json``), or None for an untrained
            selector.
        config: the selector's `FrameSelectorConfig`.
        repo_id: the Hub repo the card describes (used in the usage snippet).
        revision: the release tag the snippet loads (e.g. ``v1``).
        license: SPDX-style licence id for the card's metadata.
        tags: extra Hub tags.

    Returns:
        A `huggingface_hub.ModelCard` whose YAML holds licence, library, base models, datasets
        and tags.

    Raises:
        CardError: the rendered card holds a local absolute path or something like a token.

    Example:
        >>> card = render_model_card(record, model.config, "org/selector", revision="v1")
        >>> "select_frames" in card.text
        True
    """
    from huggingface_hub import ModelCard, ModelCardData

    record = record or {}
    stages = [dict(stage) for stage in record.get("stages", [])]
    bases = record.get("base_models") or {}
    vision, llm = bases.get("vision"), bases.get("llm")
    datasets = []
    for stage in stages:
        data = stage.get("data", {})
        stage["data"] = data
        stage["data_text"] = _data_text(data)
        stage["started_from_text"] = _ref_text(stage.get("started_from"), "model")
        source = data.get("source")
        if source and not source.get("local") and source["id"] not in datasets:
            datasets.append(source["id"])
    last = stages[-1] if stages else {}
    metrics = last.get("metrics") or {}
    k = next((key.split("@")[1] for key in metrics if key.startswith("recall@")), "8")
    rows = []
    if metrics:
        recall, coverage = metrics.get(f"recall@{k}", {}), metrics.get(f"coverage@{k}", {})
        rows = [
            {"strategy": s, "recall": _fmt(recall.get(s)), "coverage": _fmt(coverage.get(s))}
            for s in _STRATEGIES
        ]
    split = metrics.get("split")
    samples = metrics.get("samples")
    metrics_split = (
        f"{samples} held-out questions" if split == "eval" else f"{samples} training questions"
    )
    local_parts = []
    if any(ref and ref.get("local") for ref in (vision, llm)):
        local_parts.append("base models")
    if any((s["data"].get("source") or {}).get("local") for s in stages):
        local_parts.append("training data")
    base_ids = [ref["id"] for ref in (vision, llm) if ref and not ref.get("local")]
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        base_model=base_ids or None,
        datasets=datasets or None,
        tags=[*DEFAULT_TAGS, *tags],
        model_name=repo_id.split("/")[-1],
    )
    data_texts = sorted({s["data_text"] for s in stages})
    card = ModelCard.from_template(
        card_data,
        template_path=str(_TEMPLATE),
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        revision=revision,
        vision_text=_ref_text(vision, "model"),
        llm_text=_ref_text(llm, "model"),
        num_candidates=config.num_candidates,
        pooled_grid=config.pooled_grid,
        score_layer=config.score_layer,
        stages=stages,
        data_text="; ".join(data_texts) if data_texts else "not recorded (an untrained selector)",
        metrics_rows=rows,
        metrics_split=metrics_split,
        k=k,
        label_text=(
            "pseudo-labels of multimodal LLMs (spatial relevance and caption-based temporal "
            "selection) inherit those models' mistakes and biases."
        ),
        local_parts=local_parts,
        license=license,
    )
    check_public(card.content)
    return card


def check_public(text: str, extra: tuple[str, ...] = ()) -> None:
    """Refuse text that would publish a local absolute path or a token.

    Args:
        text: what is about to be published.
        extra: other strings that must not appear (e.g. the local model directory).

    Raises:
        CardError: naming what was found.
    """
    match = _TOKEN.search(text)
    if match:
        raise CardError("the card contains something that looks like an access token")
    token = os.environ.get("HF_TOKEN")
    if token and len(token) >= 8 and token in text:
        raise CardError("the card contains the HF_TOKEN value")
    home = str(Path.home())
    forbidden = [s for s in (*extra, home if len(home) > 1 else "") if s]
    forbidden += [str(Path.cwd())] if str(Path.cwd()) != "/" else []
    for value in forbidden:
        # Only as a whole path: with cwd /data, "acme/data-labels" is not a local path.
        if re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", text):
            raise CardError(f"the card contains the local path {value!r}")
    for match in re.finditer(r"(?<![\w:/.])/(?:tmp|home|Users|root|var|work|mnt)/\S+", text):
        raise CardError(f"the card contains the local path {match.group(0)!r}")


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"
