"""`framesel model ...`: create a selector and pick the frames that matter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Create frame selectors and select frames with them.", no_args_is_help=True)


@app.command("select")
def select(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str, typer.Argument(help="The question the frames should answer.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Selector: local dir or Hub repo id.")
    ],
    k: Annotated[int, typer.Option("--k", "-k", help="Frames to select.")] = 8,
    strategy: Annotated[str, typer.Option(help="nms (paper), topk or uniform.")] = "nms",
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (tag, branch, commit).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write the score curve with the chosen frames' thumbnails to a PNG."),
    ] = None,
) -> None:
    """Select the K frames of VIDEO that best answer QUESTION."""
    import json

    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes)
    from fsmodel.video import sample_candidates

    hf_logging.disable_progress_bar()  # one small model: the bars are noise here
    selector = AutoModel.from_pretrained(model, revision=revision).eval()
    cands = sample_candidates(video, selector.config.num_candidates, size=selector.frame_size())
    result = selector.select_frames(cands, question, k=k, strategy=strategy)
    if plot is not None:
        from fsmodel.viz import selection_plot

        plot.parent.mkdir(parents=True, exist_ok=True)
        selection_plot(
            cands.timestamps, result.scores, result.positions, cands.frames, question, str(plot)
        )
    if as_json:
        payload = {
            "video": str(video),
            "question": question,
            "strategy": strategy,
            "k": k,
            "indices": [int(i) for i in result.indices],
            "timestamps": [round(float(t), 6) for t in result.timestamps],
            "positions": [int(p) for p in result.positions],
            "scores": [round(float(s), 6) for s in result.scores],
        }
        typer.echo(json.dumps(payload))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{question}", caption=f"{video} · {strategy} · k={k} of {len(cands)}")
    for col in ("candidate", "frame", "time (s)", "score"):
        table.add_column(col, justify="right")
    for p, i, t in zip(result.positions, result.indices, result.timestamps, strict=True):
        table.add_row(str(int(p)), str(int(i)), f"{float(t):.2f}", f"{float(result.scores[p]):.3f}")
    console = Console()
    console.print(table)
    if plot is not None:
        console.print(f"Plot: {plot}")


@app.command("init")
def init(
    out: Annotated[Path, typer.Option(help="Directory to write the new selector to.")],
    vision: Annotated[
        str, typer.Option(help="SigLIP checkpoint (Hub id or dir) for the frame encoder.")
    ] = "google/siglip-so400m-patch14-384",
    llm: Annotated[
        str, typer.Option(help="Qwen2/Qwen2.5 checkpoint (Hub id or dir) for the scorer.")
    ] = "Qwen/Qwen2.5-1.5B-Instruct",
    num_candidates: Annotated[int, typer.Option("--n", help="Candidate frames per video.")] = 128,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny", help="Write an offline tiny selector (random weights) for demos and tests."
        ),
    ] = False,
) -> None:
    """Create an untrained selector from pretrained backbones (fresh projector, query and head)."""
    from rich.console import Console

    console = Console()
    if tiny:
        from fsmodel.tiny import build_tiny_selector

        path = build_tiny_selector(out)
        console.print(f"Tiny selector (random weights, offline): {path}")
        return
    from fsmodel import FrameSelectorModel, FrameSelectorProcessor

    model = FrameSelectorModel.from_backbones(vision=vision, llm=llm, num_candidates=num_candidates)
    processor = FrameSelectorProcessor.from_backbones(vision=vision, llm=llm)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"Selector from {vision} + {llm} ({n_params / 1e6:.0f}M parameters): {out}")
