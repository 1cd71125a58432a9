"""`framesel labels ...`: run a resumable label run, see where it stands, look at one sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Pseudo-label frames with multimodal LLMs (spatial, temporal, fused), resumably.",
    no_args_is_help=True,
)

Workdir = Annotated[Path, typer.Argument(help="The run's work directory (holds run.sqlite).")]
AsJson = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON, not tables.")]
_CONFIG, _ENGINE = "Config", "Engine"

_STAGES = ("candidates", "captions", "spatial", "temporal", "fused")


@app.command("run")
def run(
    manifest: Annotated[
        Path, typer.Option(metavar="FILE", help="JSONL or CSV: video, question[, options, …].")
    ],
    videos: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the manifest's video paths start.")
    ],
    work: Annotated[
        Path, typer.Option(metavar="DIR", help="Run store; run again with it to resume.")
    ],
    config: Annotated[
        Path | None, typer.Option(metavar="FILE", help="YAML run config.", rich_help_panel=_CONFIG)
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config key (repeatable).",
            rich_help_panel=_CONFIG,
        ),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", metavar="", help="Recompute stored failures too.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", metavar="", help="Progress bars.")
    ] = True,
    engine: Annotated[
        str,
        typer.Option(metavar="NAME", help="local or ray.", rich_help_panel=_ENGINE),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDR",
            help="Ray cluster: auto, HOST:PORT, ray://HOST:10001.",
            rich_help_panel=_ENGINE,
        ),
    ] = None,
    actors: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Model copies per backend pool.", rich_help_panel=_ENGINE
        ),
    ] = 1,
    as_json: AsJson = False,
) -> None:
    """Label every (video, question) of MANIFEST; committed work is never redone.

    The run config (YAML; defaults in fslabels.config) sets each stage's backend and model.

    --set overrides one key: --set spatial.cot=false --set num_candidates=64 (YAML values).

    --engine ray runs Ray Data stages across a cluster, same results (needs framesel\\[ray]).

    --address picks the cluster: default, the one `ray start` started here, else a local one.
    """
    import json

    from fslabels.config import LabelRunConfig
    from fslabels.run import run_labels

    if engine == "local" and (address is not None or actors != 1):
        raise ValueError("--address and --actors are options of --engine ray")
    run_config = LabelRunConfig.load(config, overrides or ())
    summary = run_labels(
        run_config,
        manifest,
        videos,
        work,
        progress=progress,
        retry_failed=retry_failed,
        engine=engine,
        engine_options=None if engine == "local" else {"address": address, "actors": actors},
    )
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
        return
    from rich import box
    from rich.table import Table

    from cli.console import stdout

    console = stdout()
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=f"Label run · {work}",
        caption=f"{summary.items} samples of {summary.videos} videos: {summary.done} labelled, "
        f"{summary.failed} without a row · {summary.wall_seconds:.1f} s",
    )
    for column in ("stage", "done", "failed", "cached", "requests", "tok in", "tok out", "$",
                   "s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "stage" else "right", no_wrap=True)
    for stage, stats in summary.stages.items():
        table.add_row(
            stage,
            str(stats.done),
            str(stats.failed),
            str(stats.cached),
            str(stats.requests),
            str(stats.prompt_tokens),
            str(stats.completion_tokens),
            _money(stats.cost),
            f"{stats.seconds:.1f}",
        )
    table.add_row(
        "total", "", "", "", str(sum(s.requests for s in summary.stages.values())),
        str(summary.prompt_tokens), str(summary.completion_tokens), _money(summary.cost),
        f"{summary.wall_seconds:.1f}", style="bold",
    )  # fmt: skip
    console.print(table)
    if summary.failures:
        _print_failures(console, summary.failures, limit=10)
        console.print(f"All failures: framesel labels status {work}")


@app.command("status")
def status(
    workdir: Workdir,
    as_json: AsJson = False,
    every: Annotated[
        bool, typer.Option("--all", help="List every failed unit, not one line per error.")
    ] = False,
) -> None:
    """Per-stage counts, failures grouped by error, tokens and cost (safe during a run)."""
    import json

    from fslabels.fusion import run_statistics
    from fslabels.run import export_rows, run_status

    state = run_status(workdir)
    stats = run_statistics(export_rows(workdir)[0])
    if as_json:
        typer.echo(json.dumps({**state, "statistics": stats}))
        return
    from rich import box
    from rich.table import Table

    from cli.console import stdout

    console = stdout()
    runs = state["runs"]
    last = runs[-1] if runs else None
    if last is None:
        when = "no run recorded"
    elif last["finished"] is None:
        when = f"run {last['id']} (pid {last['pid']}) has not finished: running or interrupted"
    else:
        when = f"run {last['id']} finished"
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=f"{workdir} · {state['items']} samples of {state['videos']} videos · "
        f"{state['done']} labelled",
        caption=f"{when} · tokens and cost count every attempt",
    )
    for column in ("stage", "done", "failed", "blocked", "todo", "requests", "tok in", "tok out",
                   "$", "s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "stage" else "right", no_wrap=True)
    for stage in _STAGES:
        counts = state["stages"][stage]
        usage = state["usage"].get(stage, {})
        table.add_row(
            stage,
            f"{counts['done']}/{counts['expected']}",
            str(counts["failed"]),
            str(counts["blocked"]),
            str(counts["pending"]),
            str(usage.get("requests", 0)),
            str(usage.get("prompt_tokens", 0)),
            str(usage.get("completion_tokens", 0)),
            _money(usage.get("cost")),
            f"{usage.get('seconds', 0.0):.1f}",
        )
    console.print(table)
    if stats["samples"]:
        console.print(_statistics_table(stats))
    if state["failures"]:
        _print_failures(console, state["failures"], every=every)
        console.print("Retry them with: framesel labels run ... --retry-failed")


def _statistics_table(stats: dict):
    """Per-source label statistics: a text histogram, the share of frames above 0.5, and the
    agreement between the spatial and temporal sources."""
    from rich import box
    from rich.table import Table

    bars = " ▁▂▃▄▅▆▇█"
    agreement = stats["agreement"]
    pearson = "n/a" if agreement["pearson"] is None else f"{agreement['pearson']:+.2f}"
    spearman = "n/a" if agreement["spearman"] is None else f"{agreement['spearman']:+.2f}"
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"label statistics · {stats['samples']} samples",
        caption=f"spatial vs temporal agreement per sample: Pearson {pearson}, Spearman "
        f"{spearman} ({agreement['samples']} samples; {agreement['undefined']} undefined)",
    )
    for column in ("source", "histogram 0→1", "frames > 0.5"):
        table.add_column(column, justify="left" if column != "frames > 0.5" else "right")
    for source, hist in stats["histograms"].items():
        counts = hist["counts"]
        top = max(counts) or 1
        spark = "".join(bars[round(c / top * (len(bars) - 1))] for c in counts)
        share = stats["fraction_above_0.5"][source]
        table.add_row(source, spark, "n/a" if share is None else f"{share:.1%}")
    return table


@app.command("show")
def show(
    workdir: Workdir,
    sample_id: Annotated[str, typer.Argument(help="The sample's id (or a unique prefix).")],
    out: Annotated[Path, typer.Option(help="PNG to write: frames with their three scores.")],
    videos: Annotated[
        Path | None, typer.Option(help="Video directory (default: the run's --videos).")
    ] = None,
    columns: Annotated[int, typer.Option(help="Thumbnails per row.")] = 16,
) -> None:
    """Draw SAMPLE_ID's candidate frames with their spatial, temporal and fused scores."""
    import numpy as np
    from rich.table import Table

    from cli.console import stdout
    from fslabels.run import load_sample
    from fsmodel.viz import score_sheets

    view = load_sample(workdir, sample_id, videos_root=videos)
    if view.candidates is None:
        raise ValueError(
            f"cannot decode {view.item.video} for the picture; pass --videos with its directory"
        )
    chosen = np.flatnonzero(np.nan_to_num(view.scores, nan=0.0) >= 0.5).tolist()
    named = []
    for name, values in (("spatial", view.spatial), ("temporal", view.temporal),
                         ("fused", view.scores)):  # fmt: skip
        missing = int(np.isnan(values).sum())
        note = f" · {missing} frames without a score" if missing else ""
        if name in view.errors:
            note += f" · failed: {view.errors[name][:80]}"
        named.append((f"{name} · {view.item.question}{note}", values))
    picture = score_sheets(view.candidates, named, highlight=chosen, columns=columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)

    console = stdout()
    table = Table(
        title=f"{view.item.sample_id} · {view.item.video} · {view.item.question}",
        caption=f"outlined in {out}: fused >= 0.5 · sources: "
        f"{', '.join(view.label_meta.get('sources', [])) or 'none'}",
    )
    for column in ("#", "frame", "time (s)", "spatial", "temporal", "fused"):
        table.add_column(column, justify="right")
    for k, (frame, t) in enumerate(zip(view.frame_indices, view.timestamps, strict=True)):
        table.add_row(
            str(k), str(frame), f"{t:.2f}", _score(view.spatial[k]), _score(view.temporal[k]),
            _score(view.scores[k]),
        )  # fmt: skip
    console.print(table)
    for stage, error in view.errors.items():
        console.print(f"[yellow]{stage} failed:[/] {error}", highlight=False)
    console.print(f"Picture: {out}")


def _money(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.4f}"


def _score(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN: no score


def _print_failures(
    console: Any, failures: list[dict[str, Any]], limit: int | None = None, every: bool = False
) -> None:
    """Failures grouped by stage and error, with a count and a few items each (``every``: one
    line per failed unit)."""
    from cli.console import one_line, print_failures

    if every:
        rows = [
            (
                f"{f['stage']} {f['item']} ({len(f['samples'])} sample(s), "
                f"{f.get('attempts', '?')} attempt(s))",
                f["error"] or "",
            )
            for f in failures
        ]
        print_failures(console, rows, title=f"{len(failures)} failure(s)", limit=limit)
        return
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in failures:
        groups.setdefault((f["stage"], one_line(f["error"] or "")), []).append(f)
    rows = []
    for (stage, error), members in groups.items():
        shown = ", ".join(str(f["item"]) for f in members[:3])
        more = f", +{len(members) - 3} more" if len(members) > 3 else ""
        samples = sum(len(f["samples"]) for f in members)
        rows.append((f"{stage} ×{len(members)} ({samples} sample(s): {shown}{more})", error))
    title = f"{len(failures)} failure(s), {len(groups)} distinct"
    if len(groups) < len(failures):
        title += " (--all lists each)"
    print_failures(console, rows, title=title, limit=limit)
