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

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Plots = Annotated[bool, typer.Option(help="Write accuracy_vs_k.png and accuracy_vs_seconds.png.")]


@app.command("qa")
def qa(
    work: Annotated[
        Path, typer.Option(help="Work directory: the eval store; re-run with it to resume.")
    ],
    videos: Annotated[Path, typer.Option(help="Directory the items' video paths are relative to.")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="JSONL or CSV: video, question, options (multiple choice), answer (letter, "
            "0-based index or option text, see --answer-format; open-ended: the text)."
        ),
    ] = None,
    hub: Annotated[
        str | None, typer.Option(help="A Hub video-QA dataset instead of --manifest.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the --hub dataset.")] = "test",
    revision: Annotated[str | None, typer.Option(help="Revision of the --hub dataset.")] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            help="Map an item field to a --hub column, e.g. --column options=candidates "
            "--column answer=correct_choice (repeatable).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML eval config (defaults: see fslabels.evaluation.config)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, e.g. --set answerer.dtype=bfloat16 --set "
            "scorers.selector.device=cuda (repeatable; values are YAML).",
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated strategies, e.g. uniform,selector:nms,similarity:"
            "inverse_transform (see `framesel eval strategies`)."
        ),
    ] = None,
    ks: Annotated[
        str | None, typer.Option("--k", help="Comma-separated frame budgets (default 4,8,16,32).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Downstream model (default Qwen/Qwen2-VL-7B-Instruct).")
    ] = None,
    selector: Annotated[
        str | None, typer.Option(help="The trained selector (dir or Hub id) for selector:*.")
    ] = None,
    num_candidates: Annotated[
        int | None, typer.Option("--n", help="Candidate frames per video (default 128).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N items.")] = None,
    answer_format: Annotated[
        str | None,
        typer.Option(
            help="How multiple-choice answers name the option: auto (default; a number that "
            "reads differently as a 0-based index and as an option's text fails its item), "
            "letter, index (NExT-QA, LongVideoBench) or text."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where results and plots go (default: WORK/results)."),
    ] = None,
    plots: Plots = True,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Recompute stored failures too.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: AsJson = False,
) -> None:
    """Answer every question with k frames from each strategy (the same n candidates for all)
    and report accuracy and seconds per question; committed work is never redone."""
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
    eval_config = EvalConfig.load(config, sets)
    items = _items(manifest, hub, split, revision, columns or [])
    summary = run_eval(
        eval_config, items, videos, work, progress=progress, retry_failed=retry_failed
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
