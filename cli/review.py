"""`framesel review ...`: spot-check labels in Label Studio (export for review, import corrections)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Spot-check labels in Label Studio: export rows for review, import the corrections as a "
    "new dataset version with an agreement report.",
    no_args_is_help=True,
)

Url = Annotated[
    str,
    typer.Option(
        envvar="LABEL_STUDIO_URL", metavar="URL", help="Label Studio, e.g. http://127.0.0.1:8080."
    ),
]
Token = Annotated[
    str,
    typer.Option(
        envvar="LABEL_STUDIO_API_KEY",
        metavar="TOKEN",
        help="Legacy or personal access token.",
        show_default=False,
    ),
]
TopK = Annotated[
    int, typer.Option("--top-k", metavar="N", help="Top frames per source, pre-marked.")
]
AsJson = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON, not tables.")]


@contextmanager
def _label_studio(url: str, token: str) -> Iterator[object]:
    """A client whose failures (server down, wrong token, unknown project, …) reach `cli.main`
    as user errors: one line, exit code 1."""
    from fslabels.review.client import LabelStudio, LabelStudioError

    try:
        with LabelStudio(url, token) as client:
            yield client
    except LabelStudioError as err:
        raise ValueError(str(err)) from err


@app.command("export")
def export(
    dataset: Annotated[
        str, typer.Argument(help="The dataset version: a directory or org/name@revision.")
    ],
    url: Url,
    token: Token,
    videos: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the dataset's video paths start.")
    ],
    media_root: Annotated[
        Path,
        typer.Option(metavar="DIR", help="The server's Local Files document root."),
    ],
    project: Annotated[str | None, typer.Option(metavar="TITLE", help="Project title.")] = None,
    sample: Annotated[
        int | None, typer.Option(metavar="N", help="Rows to review (default: all unreviewed).")
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(metavar="NAME", help="random, uncertain or disagree."),
    ] = "random",
    seed: Annotated[int, typer.Option(metavar="N", help="Sampling seed.")] = 0,
    top_k: TopK = 8,
    frame_size: Annotated[
        int, typer.Option(metavar="PX", help="Gallery images' short side (never upscaled).")
    ] = 360,
    as_json: AsJson = False,
) -> None:
    """Create (or reuse) a Label Studio project with sampled rows as tasks; idempotent.

    Clips and frames are written under --media-root, the server's
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, and served by its Local Files storage.

    --strategy: random; uncertain (fused label near 0.5); disagree (spatial vs temporal).

    The project is titled 'framesel review · VERSION' unless --project names it.
    """
    import json
    from dataclasses import asdict

    from fslabels.review.export import export_for_review

    with _label_studio(url, token) as client:
        result = export_for_review(
            dataset,
            client,
            videos=videos,
            media_root=media_root,
            project=project,
            sample=sample,
            strategy=strategy,
            seed=seed,
            top_k=top_k,
            frame_size=frame_size,
        )
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    typer.echo(
        f"Project {result.project_title!r} (id {result.project_id}): {len(result.created)} tasks "
        f"created, {len(result.existing)} already there"
        + (f" ({len(result.updated)} moved to {result.version})" if result.updated else "")
        + f"; pseudo-labels of {result.version} as predictions.\nReview at {result.project_url}"
    )


@app.command("import")
def import_(
    url: Url,
    token: Token,
    project: Annotated[str, typer.Option(metavar="TITLE", help="The review project.")],
    dataset: Annotated[
        str, typer.Option(metavar="VERSION", help="Where the tasks came from: dir or org/name@rev.")
    ],
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write the new version here.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a dataset at --out.")
    ] = False,
    repo: Annotated[
        str | None, typer.Option(metavar="REPO", help="Push it to this Hub dataset repo.")
    ] = None,
    tag: Annotated[
        str | None, typer.Option(metavar="TAG", help="Version tag (default: the next vN).")
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", metavar="", help="Create the repo private.")
    ] = False,
    top_k: TopK = 8,
    reviewer_emails: Annotated[
        bool,
        typer.Option("--reviewer-emails", metavar="", help="E-mails, not pseudonyms."),
    ] = False,
    report_png: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Also write the agreement plot here.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Import finished reviews as human labels into a new dataset version; print the agreement.

    Reviewers appear in the review column as reviewer-<Label Studio user id>, or with
    --reviewer-emails as their e-mail addresses (published with --repo).
    """
    import json

    from fslabels.review.importer import import_reviews

    with _label_studio(url, token) as client:
        result = import_reviews(
            client,
            project,
            dataset,
            out_dir=out,
            repo=repo,
            tag=tag,
            private=private,
            top_k=top_k,
            overwrite=overwrite,
            reviewer_emails=reviewer_emails,
        )
    if report_png is not None:
        report_png.write_bytes(result.report.to_png())
    pushed = f"{result.push.repo_id}@{result.push.tag}" if result.push is not None else None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "out": None if result.out_dir is None else str(result.out_dir),
                    "reviewed": result.reviewed,
                    "unreviewed_tasks": result.unreviewed_tasks,
                    "pushed": pushed,
                    "report": result.report.to_dict(),
                }
            )
        )
        return
    from cli.console import stdout

    console = stdout()
    for table in result.report.rich_tables():
        console.print(table)
    console.print(
        f"{len(result.reviewed)} reviewed rows imported ({result.unreviewed_tasks} tasks still "
        f"open)"
        + (f" into {result.out_dir}" if result.out_dir is not None else "")
        + (f"; pushed as {pushed}" if pushed else ""),
        highlight=False,
    )
