"""`framesel select`: select frames once for a whole manifest (fslabels.evaluation.selections),
keep the picks as data, and score them against truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.eval import Columns, Hub, Progress, RetryFailed, Revision, Split, Videos, _items, _list

app = typer.Typer(
    help="Selections as data: pick frames once for a whole video-QA set (resumable), for any "
    "number of evaluators.",
    no_args_is_help=True,
)

_DATA, _WHAT = "Questions", "What to select"


@app.command("run")
def run(
    work: Annotated[
        Path, typer.Option(metavar="DIR", help="Run store; run again with it to resume.")
    ],
    videos: Videos,
    manifest: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="JSONL or CSV: video, question.", rich_help_panel=_DATA),
    ] = None,
    hub: Hub = None,
    split: Split = "test",
    revision: Revision = None,
    columns: Columns = None,
    model: Annotated[
        str | None,
        typer.Option(metavar="MODEL[@REV]", help="Selector for selector:*.", rich_help_panel=_WHAT),
    ] = None,
    ks: Annotated[
        str,
        typer.Option("--k", "-k", metavar="LIST", help="Budgets (8,16,32).", rich_help_panel=_WHAT),
    ] = "8",
    strategies: Annotated[
        str,
        typer.Option(metavar="LIST", help="e.g. selector:nms,uniform.", rich_help_panel=_WHAT),
    ] = "selector:nms",
    num_candidates: Annotated[
        int | None,
        typer.Option("--n", metavar="N", help="Candidates per video (128).", rich_help_panel=_WHAT),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a config key.", rich_help_panel=_WHAT
        ),
    ] = None,
    retry_failed: RetryFailed = False,
    progress: Progress = True,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
) -> None:
    """Pick k frames for every question of a manifest with each strategy, and write them to
    WORK/picks.jsonl (positions, frame indices, timestamps, distinct frames per question,
    strategy and k).

    Each video is decoded once and each scorer scores each question once; every result is
    committed as it is made, so a killed run resumes and a re-run decodes nothing stored. A video
    or question that fails is recorded and the run goes on. The records are framesel eval qa's:
    eval qa on the same --work reuses the score curves.

    --set overrides a config key of fslabels.evaluation.config (the answerer is not used), e.g.
    --set frame_size=448 --set scorers.selector.device=cuda.
    """
    from fslabels.evaluation.config import EvalConfig
    from fslabels.evaluation.selections import PICKS_FILE, run_selection

    if (manifest is None) == (hub is None):
        raise typer.BadParameter("pass exactly one of --manifest or --hub")
    chosen = _list(strategies, str)
    if any(s.partition(":")[0] == "selector" for s in chosen) and model is None:
        raise typer.BadParameter("selector:* strategies need --model (a selector dir or repo)")
    sets = list(overrides or [])
    revision = None
    if model is not None and "@" in model and not Path(model).exists():
        model, revision = model.rsplit("@", 1)  # org/name@v1: a Hub revision
    shortcuts = {
        "strategies": chosen,
        "ks": _list(ks, int, "--k"),
        "scorers.selector.model": model,
        "scorers.selector.revision": revision,
        "num_candidates": num_candidates,
    }
    for key, value in shortcuts.items():
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    config = EvalConfig.load(None, sets)
    items = _items(manifest, hub, split, revision, columns or [])
    summary = run_selection(
        config, items, videos, work, progress=progress, retry_failed=retry_failed
    )
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
        return
    typer.echo(
        f"{summary.items} questions, {summary.videos} videos, {len(config.strategies)} "
        f"strategies: {summary.computed} selected now, {summary.cached} from earlier runs, "
        f"{summary.failed} failed · {summary.wall_seconds:.1f} s"
    )
    typer.echo(f"Wrote {summary.picks} picks to {Path(work) / PICKS_FILE}")


@app.command("build")
def build(
    work: Annotated[Path, typer.Argument(metavar="WORK", help="A select run's work directory.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="The dataset directory to write.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a selections dataset there.")
    ] = False,
) -> None:
    """Write a select run as a Hub-style dataset: configs picks, scores and videos (parquet),
    a card naming the selector, sampler settings and strategies, loadable with
    datasets.load_dataset(DIR, "picks")."""
    from fslabels.evaluation.selections import SELECTIONS_INFO, build_selections

    path = build_selections(work, out, overwrite=overwrite)
    info = json.loads((path / SELECTIONS_INFO).read_text())
    counts = info["counts"]
    size = sum(p.stat().st_size for p in path.rglob("*.parquet"))
    typer.echo(
        f"Wrote {path}: {counts['picks']} picks for {counts['questions']} questions of "
        f"{counts['videos']} videos, {counts['scores']} score curves ({size / 1024:.0f} KiB of "
        "parquet)"
    )


@app.command("push")
def push(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A select build directory.")],
    repo: Annotated[str, typer.Option(metavar="ORG/NAME", help="The Hub dataset repo.")],
    tag: Annotated[
        str | None, typer.Option(metavar="TAG", help="Version tag (default: the next vN).")
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", metavar="", help="Create it private.")
    ] = False,
    token: Annotated[
        str | None, typer.Option(metavar="TOKEN", help="Hub token (default: HF_TOKEN / login).")
    ] = None,
) -> None:
    """Publish DIR as the next version of a Hub dataset (one commit, one immutable tag, through
    the same release path as label datasets); identical content changes nothing."""
    from fslabels.evaluation.selections import push_selections

    result = push_selections(directory, repo, tag=tag, private=private, token=token)
    if result.unchanged:
        typer.echo(f"{result.repo_id} already holds this content as {result.tag}; nothing pushed.")
        return
    typer.echo(f"Pushed {result.repo_id} {result.tag} (commit {result.commit[:12]}).")
    typer.echo(
        f'Load it: datasets.load_dataset("{result.repo_id}", "picks", split="train", '
        f'revision="{result.tag}")'
    )


@app.command("pull")
def pull(
    ref: Annotated[str, typer.Argument(metavar="ORG/NAME[@REV]", help="A selections dataset.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Directory to download into.")],
) -> None:
    """Download one version of a selections dataset (all configs, card and info)."""
    from fslabels.dataset import parse_ref
    from fslabels.dataset.format import download
    from fslabels.evaluation.selections import load_selections

    if out.is_file():
        raise FileExistsError(f"{out} is a file; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose another --out")
    parsed = parse_ref(ref)
    if parsed.local:
        raise typer.BadParameter(f"{ref} is a local directory; pull takes a Hub id")
    path = download(parsed, local_dir=out)
    _, info = load_selections(path)
    typer.echo(f"Pulled {ref} into {path} ({info['counts']['picks']} picks).")


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="A directory or org/name@rev.")],
    b: Annotated[str, typer.Argument(metavar="B", help="A directory or org/name@rev.")],
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
) -> None:
    """Compare two selections versions: per strategy and k, questions whose frames changed and
    the mean share of frames kept."""
    from fslabels.evaluation.selections import diff_selections

    result = diff_selections(a, b)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for cell, got in result["cells"].items():
        typer.echo(
            f"{cell}: {got['changed']} of {got['questions']} questions got other frames "
            f"({got['kept']:.0%} of frames kept)"
        )
    typer.echo(f"questions only in A: {result['only_in_a']}, only in B: {result['only_in_b']}")


@app.command("score")
def score(
    selections: Annotated[
        str, typer.Argument(metavar="SELECTIONS", help="A selections dir or org/name@rev.")
    ],
    truth: Annotated[
        Path,
        typer.Option(metavar="FILE", help="JSONL: sample_id (or video, question), kind, spans."),
    ],
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
) -> None:
    """Score the picks against truth spans: recall@k, precision@k and coverage@k (the share of
    truth spans that get a pick) per strategy, k and question kind.

    The truth file is labels score's: time spans in seconds per question.
    """
    from rich import box
    from rich.table import Table

    from cli.console import stdout
    from fslabels.evaluation.selections import score_selections
    from fslabels.quality import PICK_METRICS

    report = score_selections(selections, truth)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"{selections} vs {truth.name}: {report.questions} questions",
        caption=(f"{report.unscored} questions without truth · " if report.unscored else "")
        + (
            f"{report.missing} truth questions without picks (failed or not selected) · "
            if report.missing
            else ""
        )
        + f"{report.flagged_spans} spans had no candidate inside (nearest used)",
    )
    for column in ("strategy", "k", "kind"):
        table.add_column(column)
    for metric in PICK_METRICS:
        table.add_column(f"{metric}@k", justify="right")
    table.add_column("n", justify="right")
    kinds = report.kinds()
    for strategy, by_k in report.table.items():
        for k, by_kind in by_k.items():
            for kind in kinds:
                if kind in by_kind:
                    got = by_kind[kind]
                    cells = (f"{got.get(m, float('nan')):.3f}" for m in PICK_METRICS)
                    table.add_row(strategy, str(k), kind, *cells, str(got["questions"]))
    stdout().print(table)


frames_app = typer.Typer(
    help="The frames a selections dataset picked, as image files any evaluator can read.",
    no_args_is_help=True,
)


@frames_app.command("export")
def export(
    selections: Annotated[
        str, typer.Argument(metavar="SELECTIONS", help="A selections dir or org/name@rev.")
    ],
    videos: Videos,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Where the frames go (empty).")],
    strategy: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only this strategy's picks.")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", "-k", metavar="K", help="Only this k.")] = None,
    size: Annotated[
        int | None, typer.Option(metavar="PX", help="Short side (default: as stored).")
    ] = None,
    progress: Progress = True,
) -> None:
    """Write every picked frame once as a JPEG under DIR/frames/, and DIR/index.json: per
    question, strategy and k, the frames in time order with frame index, timestamp and file."""
    from fslabels.evaluation.selections import FRAMES_INDEX, export_frames

    index = export_frames(
        selections, videos, out, strategy=strategy, k=k, size=size, progress=progress
    )
    files = len(list((out / "frames").rglob("*.jpg"))) if (out / "frames").exists() else 0
    typer.echo(
        f"Wrote {files} frames for {len(index['entries'])} selections and {out / FRAMES_INDEX}"
    )
    if index["failed"]:
        from cli.console import print_failures, stdout

        print_failures(
            stdout(), sorted(index["failed"].items()), title="Videos that could not be read:"
        )
