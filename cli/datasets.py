"""`framesel labels build | push | pull | diff | score`: versioned label datasets (fslabels.dataset)
and their quality against truth (fslabels.quality).

These commands live on the ``labels`` sub-app (`register`); they are kept in their own module
because they work on finished datasets rather than on runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Repo = Annotated[str, typer.Option("--repo", help="Hub dataset repo id, org/name.")]


def register(app: typer.Typer) -> None:
    """Add the dataset commands to the ``labels`` sub-app."""
    app.command("build")(build)
    app.command("push")(push)
    app.command("pull")(pull)
    app.command("diff")(diff)
    app.command("score")(score)


def build(
    workdir: Annotated[Path, typer.Argument(help="The run's work directory (holds run.sqlite).")],
    out: Annotated[Path, typer.Option("--out", help="The dataset directory to write.")],
    license: Annotated[str, typer.Option(help="Licence id for the dataset card.")] = "cc-by-4.0",
    partial: Annotated[
        bool, typer.Option(help="Build even though some samples are not labelled yet.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a label dataset already in --out.")
    ] = False,
) -> None:
    """Build a loadable label dataset from a finished run: schema-v1 parquet (labels and
    captions configs), a dataset card, the exact run config and label statistics.

    Load it with datasets.load_dataset(OUT, "labels", split="train"), or push it with
    framesel labels push OUT --repo org/name.
    """
    from cli.console import stdout
    from fslabels.dataset import build_dataset

    result = build_dataset(workdir, out, license=license, partial=partial, overwrite=overwrite)
    console = stdout()
    console.print(
        f"[bold]Built[/] {result.directory}: {result.samples} questions over {result.videos} "
        f"videos, captions of {result.caption_videos} videos"
        + (f", {result.failed} samples without a row (see the card)" if result.failed else "")
        + (f", {result.pending} not labelled yet (--partial)" if result.pending else ""),
        highlight=False,
    )
    typer.echo(f'Load it: datasets.load_dataset("{result.directory}", "labels", split="train")')
    typer.echo(f"Publish it: framesel labels push {result.directory} --repo ORG/NAME")


def push(
    directory: Annotated[Path, typer.Argument(help="A dataset directory (labels build).")],
    repo: Repo,
    tag: Annotated[
        str | None, typer.Option(help="Version tag (default: the next vN from the repo's tags).")
    ] = None,
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    token: Annotated[
        str | None, typer.Option(help="Hub token (default: HF_TOKEN or your login).")
    ] = None,
) -> None:
    """Publish DIRECTORY as the next version of a Hub dataset: one commit, one tag.

    Invalid rows are refused before anything is uploaded; pushing content identical to the
    repo's latest version changes nothing.
    """
    from fslabels.dataset import push_dataset

    result = push_dataset(directory, repo, tag=tag, private=private, token=token)
    if result.unchanged:
        typer.echo(
            f"{result.repo_id} already holds this content as {result.tag} "
            f"(commit {result.commit[:12]}); nothing pushed."
        )
        return
    typer.echo(
        f"Pushed {result.repo_id} {result.tag} (commit {result.commit[:12]}, "
        f"{len(result.files)} files)."
    )
    typer.echo(
        f'Load it: datasets.load_dataset("{result.repo_id}", "labels", split="train", '
        f'revision="{result.tag}")'
    )


def pull(
    repo: Repo,
    out: Annotated[Path, typer.Option("--out", help="Directory to download into.")],
    revision: Annotated[
        str | None, typer.Option(help="Tag, branch or commit (default: the latest).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Download one version of a Hub label dataset as a local dataset directory."""
    from fslabels.dataset import load_dataset_version, pull_dataset

    path = pull_dataset(repo, out, revision=revision, overwrite=overwrite)
    loaded = load_dataset_version(path)
    typer.echo(
        f"Pulled {repo}{'@' + revision if revision else ''} into {path}: {len(loaded.rows)} "
        f"questions, captions of {len(loaded.captions)} videos."
    )


def diff(
    a: Annotated[str, typer.Argument(help="Version A: a directory or org/name@revision.")],
    b: Annotated[str, typer.Argument(help="Version B: a directory or org/name@revision.")],
    top: Annotated[int, typer.Option(help="Changed rows to list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare two versions: rows added and removed, label changes, score drift."""
    from fslabels.dataset import diff_datasets

    result = diff_datasets(a, b)
    if as_json:
        import json

        typer.echo(json.dumps(result.to_dict()))
        return
    from rich.table import Table

    from cli.console import stdout

    console = stdout()
    common = result.shared
    console.print(
        f"[bold]{result.a}[/] → [bold]{result.b}[/]: +{len(result.added)} rows, "
        f"−{len(result.removed)} rows, {len(result.changed)} of {common} shared rows with "
        f"changed labels, {len(result.metadata_changed)} with changed question data; "
        f"reviewed rows {result.reviewed[0]} → {result.reviewed[1]}; captions "
        f"+{result.captions['added']} −{result.captions['removed']} "
        f"~{result.captions['changed']} videos",
        highlight=False,
    )
    if result.identical:
        console.print("The two versions hold the same rows and labels.")
        return
    if result.drift:
        drift = Table(title="score drift over shared rows (b − a)")
        for column in ("column", "mean |Δ|", "max |Δ|", "mean Δ"):
            drift.add_column(column, justify="left" if column == "column" else "right")
        for column, d in result.drift.items():
            drift.add_row(
                column, f"{d['mean_abs']:.4f}", f"{d['max_abs']:.4f}", f"{d['mean_shift']:+.4f}"
            )
        console.print(drift)
    if result.changed:
        table = Table(title=f"most changed rows (top {min(top, len(result.changed))})")
        for column in ("sample_id", "question", "max |Δ|", "columns"):
            table.add_column(column, overflow="fold")
        for change in result.changed[:top]:
            table.add_row(
                change["sample_id"],
                change["question"][:60],
                f"{change['max_change']:.3f}",
                ", ".join(change["columns"]),
            )
        console.print(table)
    for title, rows in (("added", result.added), ("removed", result.removed)):
        if rows:
            shown = ", ".join(f"{s} ({q[:40]!r})" for s, q in rows[:top])
            more = f" … and {len(rows) - top} more" if len(rows) > top else ""
            console.print(f"{title}: {shown}{more}", highlight=False)


def score(
    dataset: Annotated[
        str, typer.Argument(help="Label dataset: a directory or org/name@revision.")
    ],
    truth: Annotated[
        Path, typer.Option("--truth", help="JSONL: sample_id (or video, question), kind, spans.")
    ],
    k: Annotated[int, typer.Option("-k", help="Picks per question for the top-k metrics.")] = 8,
    plot: Annotated[Path | None, typer.Option(help="Write a bar chart (PNG) here.")] = None,
    card: Annotated[
        bool, typer.Option("--card", help="Add the report to the (local) dataset's card.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score the labels against truth spans, per source and question kind.

    ROC-AUC, recall@k, precision@k and coverage@k (the share of truth spans that get a pick) of
    the spatial, temporal, fused and (where reviewed) human labels. Ties (0/1 temporal labels)
    count at their expected value over a random order.
    """
    from fslabels.quality import METRICS, add_to_card, score_labels

    report = score_labels(dataset, truth, k=k)
    if plot is not None:
        report.plot(plot)
    if card:
        add_to_card(dataset, report)
    if as_json:
        import json

        typer.echo(json.dumps(report.to_dict()))
        return
    from rich import box
    from rich.table import Table

    from cli.console import stdout

    console = stdout()
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"{dataset} vs {truth.name}: {report.questions} questions, k = {k}",
        caption=(f"{report.unscored} rows without truth · " if report.unscored else "")
        + f"{report.flagged_spans} spans had no candidate inside (nearest used)",
    )
    table.add_column("source")
    table.add_column("kind")
    for metric in METRICS:
        table.add_column(metric if metric == "auc" else f"{metric}@{k}", justify="right")
    table.add_column("n", justify="right")
    for source, by_kind in report.table.items():
        for kind in report.kinds():
            if kind in by_kind:
                values = by_kind[kind]
                table.add_row(
                    source, kind, *(f"{values.get(m, float('nan')):.3f}" for m in METRICS),
                    str(values["questions"]),
                )  # fmt: skip
    console.print(table)
    if plot is not None:
        console.print(f"Plot: {plot}")
    if card:
        console.print(f"Added to the card of {dataset} (README.md, assets/label_quality.png).")
