"""`framesel`: the command line. Sub-apps per area; library imports happen inside commands so
`framesel --help` stays instant."""

from __future__ import annotations

import sys

import typer

from cli import datasets as datasets_cli
from cli import demo as demo_cli
from cli import eval as eval_cli
from cli import labels as labels_cli
from cli import model as model_cli
from cli import review as review_cli
from cli import select as select_cli
from cli import video as video_cli

app = typer.Typer(
    name="framesel",
    help="Question-aware video frame selection: sample candidate frames, build pseudo-label "
    "datasets with multimodal LLMs, and train a selector that picks the frames that matter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(video_cli.app, name="video")
app.add_typer(model_cli.app, name="model")
app.add_typer(labels_cli.app, name="labels")
datasets_cli.register(labels_cli.app)
app.add_typer(review_cli.app, name="review", help="Spot-check labels in Label Studio.")
app.add_typer(eval_cli.app, name="eval", help="Does selection help? Downstream QA evaluation.")
app.add_typer(select_cli.app, name="select", help="Select frames once for a whole QA set.")
app.add_typer(select_cli.frames_app, name="frames", help="Export selected frames as images.")
app.command("demo")(demo_cli.demo)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show library log messages."),
) -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# Errors a user can act on are printed as one line; anything else keeps its traceback.
# (OSError covers missing files, refused connections and failed pushes.)
_USER_ERRORS = (ValueError, OSError, ImportError)


def _is_user_error(err: Exception) -> bool:
    """Errors a user can act on: bad input, missing files, refused connections — including the
    HTTP clients' transport errors (httpx / httpx2 raise their own, not OSError)."""
    if isinstance(err, _USER_ERRORS):
        return True
    names = {cls.__name__ for cls in type(err).__mro__}
    return type(err).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore") and bool(
        names & {"TransportError", "TimeoutException", "NetworkError"}
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `framesel` console script; the one place errors become exit codes.

    Exit codes: 0 success, 1 bad input or a failed step, 2 bad usage, 130 interrupted.
    """
    try:
        # With standalone_mode=False click returns a command's `typer.Exit(code)` as the value.
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except (KeyboardInterrupt, typer.Abort):
        from cli.console import stderr

        stderr().print("Interrupted.", highlight=False)
        return 130
    except typer.TyperException as err:  # bad option, missing argument: one line, then a hint
        from cli.console import error, stderr

        error(err.format_message())
        ctx = getattr(err, "ctx", None)
        if ctx is not None:
            hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
            stderr().print(hint, highlight=False, markup=False)
        return getattr(err, "exit_code", 2)
    except Exception as err:
        if not _is_user_error(err):
            raise
        from cli.console import error

        error(str(err))
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
