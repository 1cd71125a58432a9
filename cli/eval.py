"""`framesel eval ...`: does selection help? Downstream QA accuracy and cost per strategy and k."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Does selection help? Downstream video-QA accuracy and seconds per question for each "
    "frame-selection strategy and frame budget k (resumable, cached per strategy, k, model and "
    "question).",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON, not tables.")]
Plots = Annotated[
    bool,
    typer.Option("--plots/--no-plots", metavar="", help="accuracy_vs_k/seconds.png plots."),
]
_DATA, _WHAT = "Questions", "What to compare"
# The options `eval qa` shares with `select run` (cli/select.py).
Videos = Annotated[Path, typer.Option(metavar="DIR", help="Where the items' video paths start.")]
Hub = Annotated[
    str | None,
    typer.Option(metavar="REPO", help="A Hub video-QA dataset instead.", rich_help_panel=_DATA),
]
Split = Annotated[str, typer.Option(metavar="NAME", help="--hub split.", rich_help_panel=_DATA)]
Revision = Annotated[
    str | None, typer.Option(metavar="REV", help="--hub revision.", rich_help_panel=_DATA)
]
Columns = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        metavar="FIELD=COL",
        help="Map an item field to a --hub column.",
        rich_help_panel=_DATA,
    ),
]
RetryFailed = Annotated[
    bool, typer.Option("--retry-failed", metavar="", help="Recompute stored failures too.")
]
Progress = Annotated[
    bool, typer.Option("--progress/--no-progress", metavar="", help="A progress bar.")
]


@app.command("qa")
def qa(
    work: Annotated[
        Path, typer.Option(metavar="DIR", help="Eval store; run again with it to resume.")
    ],
    videos: Videos,
    manifest: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="JSONL or CSV: video, question, options, answer.",
            rich_help_panel=_DATA,
        ),
    ] = None,
    hub: Hub = None,
    split: Split = "test",
    revision: Revision = None,
    columns: Columns = None,
    answer_format: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="auto, letter, index or text.", rich_help_panel=_DATA),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(metavar="N", help="Only the first N items.", rich_help_panel=_DATA),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            metavar="LIST",
            help="e.g. uniform,selector:nms (framesel eval strategies).",
            rich_help_panel=_WHAT,
        ),
    ] = None,
    ks: Annotated[
        str | None,
        typer.Option(
            "--k", metavar="LIST", help="Frame budgets (4,8,16,32).", rich_help_panel=_WHAT
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL", help="Downstream model (Qwen2-VL-7B).", rich_help_panel=_WHAT
        ),
    ] = None,
    selector: Annotated[
        str | None,
        typer.Option(metavar="MODEL", help="Selector for selector:*.", rich_help_panel=_WHAT),
    ] = None,
    num_candidates: Annotated[
        int | None,
        typer.Option("--n", metavar="N", help="Candidates per video (128).", rich_help_panel=_WHAT),
    ] = None,
    selections: Annotated[
        str | None,
        typer.Option(
            metavar="DATASET",
            help="Picks of select build, not scorers.",
            rich_help_panel=_WHAT,
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(metavar="FILE", help="YAML eval config.", rich_help_panel=_WHAT)
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config key (repeatable).",
            rich_help_panel=_WHAT,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Results and plots (WORK/results).")
    ] = None,
    plots: Plots = True,
    retry_failed: RetryFailed = False,
    progress: Progress = True,
    as_json: AsJson = False,
) -> None:
    """Answer every question with k frames from each strategy (the same n candidates for all)
    and report accuracy and seconds per question; committed work is never redone.

    Items: a --manifest (multiple choice: options and the answer as a letter, 0-based index or
    option text; open-ended: the text) or a --hub dataset, whose fields --column maps, e.g.
    --column options=candidates --column answer=correct_choice.

    --answer-format auto (the default) reads letters, indices and texts, and fails an item whose
    number reads differently as an index and as an option; index suits NExT-QA, LongVideoBench.

    --set overrides a config key (defaults in fslabels.evaluation.config), e.g. --set
    answerer.dtype=bfloat16 --set scorers.selector.device=cuda (YAML values).

    --selections takes a selections dataset (framesel select build; a directory or
    org/name@rev): its stored curves stand in for the scorers they came from (selector:nms uses
    the stored selector curves), so no selector runs; n and the reader are taken from it.
    """
    import json

    from fslabels.evaluation.config import EvalConfig
    from fslabels.evaluation.run import run_eval

    if (manifest is None) == (hub is None):
        raise typer.BadParameter("pass exactly one of --manifest or --hub")
    sets = list(overrides or [])
    shortcuts = {
        "strategies": None if strategies is None else _list(strategies, str),
        "ks": None if ks is None else _list(ks, int, "--k"),
        "answerer.model": model,
        "scorers.selector.model": selector,
        "num_candidates": num_candidates,
        "limit": limit,
        "answer_format": answer_format,
    }
    for key, value in shortcuts.items():
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    items = _items(manifest, hub, split, revision, columns or [])
    stored = {}
    if selections is not None:
        from fslabels.evaluation.selections import stored_scorers

        stored, info = stored_scorers(selections, videos)
        # The candidates the picks were made from, unless set explicitly.
        values = {key: info["config"][key] for key in ("num_candidates", "video_reader")}
        for name, fingerprint in (info.get("scorers") or {}).items():
            # Recorded in the config for the record; the stored curves are what is used.
            values[f"scorers.{name}.model"] = fingerprint.get("model") or "stored"
        for key, value in values.items():
            if not any(s.startswith(f"{key}=") for s in sets):
                sets.append(f"{key}={json.dumps(value)}")
    eval_config = EvalConfig.load(config, sets)
    summary = run_eval(
        eval_config,
        items,
        videos,
        work,
        progress=progress,
        retry_failed=retry_failed,
        scorers=stored or None,
    )
    written = _outputs(work, out, plots)
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), "outputs": [str(p) for p in written]}))
        return
    from cli.console import stdout

    console = stdout()
    console.print(_render(summary.report))
    console.print(
        f"{summary.cells} cells ({summary.items} questions x {len(eval_config.strategies)} "
        f"strategies x {len(eval_config.ks)} k): {summary.computed} answered now, "
        f"{summary.failed} failed now, {summary.cached} from earlier runs · "
        f"{summary.wall_seconds:.1f} s",
        highlight=False,
    )
    _print_failures(console, summary.report.failures)
    for path in written:
        console.print(f"Wrote {path}", highlight=False)


@app.command("report")
def report(
    work: Annotated[Path, typer.Argument(help="An eval work directory.")],
    out: Annotated[
        Path | None, typer.Option(help="Where results and plots go (default: WORK/results).")
    ] = None,
    plots: Plots = True,
    as_json: AsJson = False,
) -> None:
    """The table, results and plots of an eval run (safe during a run; nothing recomputed)."""
    import json

    from fslabels.evaluation.report import build_report

    written = _outputs(work, out, plots)
    result = build_report(work)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "outputs": [str(p) for p in written]}))
        return
    from cli.console import stdout

    console = stdout()
    console.print(_render(result))
    _print_failures(console, result.failures)
    for path in written:
        console.print(f"Wrote {path}", highlight=False)


@app.command("strategies")
def strategies_command(as_json: AsJson = False) -> None:
    """List the strategies: uniform, and every scorer combined with every selection rule."""
    import json

    from fslabels.evaluation.scorers import SCORERS
    from fslabels.evaluation.strategies import known_strategies

    names = known_strategies()
    if as_json:
        typer.echo(json.dumps({"strategies": names, "scorers": dict(SCORERS)}))
        return
    for name in names:
        typer.echo(name)


def _list(text: str, kind: type, option: str = "--strategies") -> list[Any]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise typer.BadParameter(f"{option} needs at least one value, got {text!r}")
    try:
        return [kind(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated integers, got {text!r}") from None


def _items(
    manifest: Path | None, hub: str | None, split: str, revision: str | None, columns: list[str]
) -> Any:
    from fslabels.manifest import items_from_hub

    if manifest is not None:
        if columns:
            raise typer.BadParameter("--column maps --hub dataset columns; a manifest has none")
        return manifest
    mapping = {}
    for pair in columns:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise typer.BadParameter(f"--column takes field=column, got {pair!r}")
        mapping[field.strip()] = column.strip()
    return items_from_hub(hub, split=split, revision=revision, columns=mapping)


def _outputs(work: Path, out: Path | None, plots: bool) -> list[Path]:
    from fslabels.evaluation.report import build_report, plot_report, write_results

    target = out or work / "results"
    full = build_report(work, include_answers=True)
    written = write_results(full, target)
    if plots:
        written += plot_report(full, target)
    return written


def _render(result: Any) -> Any:
    from fslabels.evaluation.report import render_table

    return render_table(result)


def _print_failures(console: Any, failures: list[dict[str, Any]], limit: int = 10) -> None:
    if not failures:
        return
    from cli.console import print_failures

    rows = [(f"{f['strategy']} k={f['k']} {f['item']}", f["error"] or "") for f in failures]
    print_failures(console, rows, title=f"{len(failures)} failed cell(s)", limit=limit)
    console.print("Retry them with: --retry-failed", highlight=False)
