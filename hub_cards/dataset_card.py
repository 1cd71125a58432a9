"""The card of a framesel label dataset, rendered from ``templates/dataset_card.md``.

Everything the card says comes from the dataset's info record (``framesel_dataset.json``, written
by ``fslabels.dataset``): how the labels were made (stages, backends, models, prompt hashes,
fusion weights), the work done (counts, failures, tokens, cost), label statistics and the version
history. `render_dataset_card` refuses to produce a card holding a local absolute path or a
token, since cards are published.

Example:
    >>> card = render_dataset_card(info, "org/labels", version="v2")
    >>> card.save("README.md")
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub_cards.model_card import check_public

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

__all__ = ["DEFAULT_DATASET_LICENSE", "render_dataset_card", "size_category"]

_TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"
DEFAULT_DATASET_LICENSE = "cc-by-4.0"
DEFAULT_TAGS = ("framesel", "video", "frame-selection", "pseudo-labels", "video-question-answering")
_MAX_FAILURES = 10
_STAGE_ORDER = ("spatial", "captions", "temporal")
# Settings the stage table shows (the rest are in labels_run.yaml).
_SETTINGS_SHOWN = ("cot", "max_new_tokens", "top_logprobs", "temperature", "max_attempts")


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket of a dataset with ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, name in bounds:
        if n < bound:
            return name
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{float(value):.{digits}f}"


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    stages = []
    for name in _STAGE_ORDER:
        stage = (run.get("stages") or {}).get(name)
        if not stage:
            continue
        settings = stage.get("settings") or {}
        shown = [f"`{k}={settings[k]}`" for k in _SETTINGS_SHOWN if k in settings]
        stages.append(
            {
                "name": name,
                "backend": stage.get("backend", "–"),
                "model": f"`{stage.get('model', '–')}`",
                "prompt_hash": settings.get("prompt_hash", "–"),
                "settings_text": ", ".join(shown) or "–",
            }
        )
    weights = (run.get("fusion") or {}).get("weights") or [0.5, 0.5]
    total = sum(weights) or 1.0
    fusion_text = (
        f"{weights[0] / total:g} · spatial + {weights[1] / total:g} · temporal"
        if weights[0] and weights[1]
        else ("spatial" if weights[0] else "temporal")
    )
    status = run.get("status") or {}
    usage = status.get("usage") or {}
    usage_rows = []
    for stage, counts in (status.get("stages") or {}).items():
        used = usage.get(stage, {})
        usage_rows.append(
            {
                "stage": stage,
                "done": f"{counts.get('done', 0)}/{counts.get('expected', 0)}",
                "failed": counts.get("failed", 0),
                "requests": used.get("requests", 0),
                "prompt_tokens": used.get("prompt_tokens", 0),
                "completion_tokens": used.get("completion_tokens", 0),
                "cost": "–" if used.get("cost") is None else f"{used['cost']:.4f}",
                "seconds": f"{used.get('seconds', 0.0):.1f}",
            }
        )
    failures = [
        {
            "stage": f.get("stage", ""),
            "item": f.get("item", ""),
            "error": _cell(f.get("error", "")),
        }
        for f in (status.get("failures") or [])
    ]
    prompts = []
    for name in _STAGE_ORDER:
        templates = ((run.get("stages") or {}).get(name) or {}).get("prompts") or {}
        shown = [
            (key, text if isinstance(text, str) else json.dumps(text, indent=1))
            for key, text in templates.items()
            if text is not None
        ]
        if shown:
            prompts.append({"name": name, "templates": shown})
    return {
        "prompts": prompts,
        "video_reader": run.get("video_reader", "pyav"),
        "frame_size": run.get("frame_size"),
        "spatial_cot": ((run.get("stages") or {}).get("spatial") or {})
        .get("settings", {})
        .get("cot", True),
        "fusion_text": fusion_text,
        "stages": stages,
        "usage_rows": usage_rows,
        "failures": failures[:_MAX_FAILURES],
        "failure_count": len(failures),
        "local_models": run.get("local_models") or [],
    }


def _cell(text: str, limit: int = 160) -> str:
    """One markdown table cell: no newlines or pipes, bounded length."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _stats_rows(stats: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    above = stats.get("fraction_above_0.5") or {}
    for column, hist in (stats.get("histograms") or {}).items():
        counts = hist.get("counts") or []
        edges = hist.get("edges") or []
        total = sum(counts)
        mean = None
        if total and len(edges) == len(counts) + 1:
            centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            mean = sum(c * w for c, w in zip(centres, counts, strict=True)) / total
        rows.append(
            {
                "column": f"`{column}`",
                "rows": str(stats.get("rows", {}).get(column, stats.get("samples", 0))),
                "above": _num(above.get(column)),
                "mean": "–" if mean is None else f"≈ {mean:.3f}",
            }
        )
    return rows


def render_dataset_card(
    info: dict[str, Any],
    repo_id: str | None = None,
    version: str | None = None,
    license: str = DEFAULT_DATASET_LICENSE,
    plot: str | None = None,
    pretty_name: str | None = None,
) -> DatasetCard:
    """Render a label dataset's card.

    Args:
        info: the dataset's info record (``framesel_dataset.json``): ``schema``,
            ``num_candidates``, ``counts``, ``configs`` (the YAML configs), ``run`` (or None),
            ``statistics``, ``history`` and ``sections`` (extra ``{title: markdown}``).
        repo_id: the Hub repo (loading snippets use it; a local build says ``path/to/dir``).
        version: the release tag this card describes (None: an unreleased local build).
        license: licence id for the YAML metadata.
        plot: relative path of the statistics picture (e.g. ``assets/label_statistics.png``).
        pretty_name: the title (default: the repo name).

    Returns:
        A `huggingface_hub.DatasetCard` with licence, task categories, tags, size category,
        configs and the framesel schema version in its YAML.

    Raises:
        CardError: the rendered card holds a local absolute path or something like a token.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    counts = info.get("counts") or {}
    name = pretty_name or (repo_id.split("/")[-1] if repo_id else "framesel label dataset")
    stats = info.get("statistics") or {}
    agreement = stats.get("agreement") or {}
    if agreement.get("samples"):
        agreement_text = (
            f"Pearson {_num(agreement.get('pearson'))}, Spearman {_num(agreement.get('spearman'))}"
            f" over {agreement['samples']} questions"
            + (
                f" ({agreement['undefined']} questions with a constant source left out)"
                if agreement.get("undefined")
                else ""
            )
        )
    else:
        agreement_text = "not defined (no question has both sources varying)"
    card_data = DatasetCardData(
        license=license,
        pretty_name=name,
        task_categories=["video-text-to-text"],
        tags=list(DEFAULT_TAGS),
        size_categories=[size_category(int(counts.get("samples", 0)))],
        configs=info.get("configs"),
        framesel_labels_schema=info.get("schema"),
    )
    history = [
        {
            "version": entry.get("version") or "(unreleased)",
            "date": (entry.get("date") or "")[:10],
            "samples": entry.get("samples", "–"),
            "note": _cell(entry.get("note", "")),
        }
        for entry in info.get("history") or []
    ]
    current = next((e for e in info.get("history") or [] if e.get("version") == version), None)
    card = DatasetCard.from_template(
        card_data,
        template_path=str(_TEMPLATE),
        pretty_name=name,
        repo_id=repo_id or "path/to/dataset",
        version=version,
        version_date=(current or {}).get("date", "")[:10],
        num_candidates=info.get("num_candidates"),
        counts=counts,
        history=history,
        run=_run_view(info["run"]) if info.get("run") else None,
        stats_rows=_stats_rows(stats),
        agreement_text=agreement_text,
        plot=plot,
        schema_version=info.get("schema"),
        sections=list((info.get("sections") or {}).items()),
        license=license,
        created=(info.get("created") or "")[:10],
        note=_cell(info.get("note") or ""),
    )
    check_public(card.content)
    return card
