"""`framesel video ...`: look at the candidate frames the rest of framesel will see."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Decode the candidate frames of a video.", no_args_is_help=True)


@app.command("sample")
def sample(
    video: Annotated[Path, typer.Argument(help="Video file to sample.")],
    n: Annotated[int, typer.Option("--n", "-n", help="Number of candidate frames.")] = 128,
    size: Annotated[
        int, typer.Option(help="Short side of the decoded frames in pixels (0: stored size).")
    ] = 224,
    reader: Annotated[str, typer.Option(help="Frame reader: pyav (default) or decord.")] = "pyav",
    keyframes: Annotated[
        bool,
        typer.Option(
            "--keyframes",
            help="Fast mode for long videos: snap each candidate to the nearest keyframe "
            "and report how far it moved.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    sheet: Annotated[
        Path | None, typer.Option(help="Write a contact sheet of the candidates to this PNG.")
    ] = None,
) -> None:
    """Print the candidate frames of VIDEO (index, timestamp) and optionally draw them."""
    import json

    from fsmodel.video import sample_candidates

    cands = sample_candidates(
        video, n, size=size or None, reader=reader, mode="keyframe" if keyframes else "exact"
    )
    if sheet is not None:
        from fsmodel.viz import contact_sheet

        sheet.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(cands).save(sheet)
    if as_json:
        payload = {
            "video": str(video),
            "num_frames": cands.num_frames,
            "fps": cands.fps,
            "duration": cands.duration,
            "reader": cands.reader,
            "mode": cands.mode,
            "frame_size": list(cands.frames.shape[1:3]),
            "indices": cands.indices.tolist(),
            "timestamps": [round(t, 6) for t in cands.timestamps.tolist()],
        }
        if keyframes:
            payload["offsets"] = cands.offsets.tolist()
        if sheet is not None:
            payload["sheet"] = str(sheet)
        typer.echo(json.dumps(payload))
        return
    from rich.table import Table

    from cli.console import stdout

    table = Table(
        title=str(video),
        caption=f"{cands.num_frames} frames · {cands.fps:.3f} fps · {cands.duration:.2f} s · "
        f"reader {cands.reader} · {cands.mode}",
    )
    table.add_column("#", justify="right")
    table.add_column("frame", justify="right")
    table.add_column("time (s)", justify="right")
    if keyframes:
        table.add_column("moved (frames)", justify="right")
    for k in range(len(cands)):
        row = [str(k), str(int(cands.indices[k])), f"{cands.timestamps[k]:.3f}"]
        if keyframes:
            row.append(f"{int(cands.offsets[k]):+d}")
        table.add_row(*row)
    console = stdout()
    console.print(table)
    if sheet is not None:
        console.print(f"Contact sheet: {sheet}")
