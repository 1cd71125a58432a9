"""Where the CLI prints: one console for results on stdout, one for errors and progress on stderr.

Messages are never hard-wrapped at the terminal width (``soft_wrap``): an error, a warning or a
summary line stays one line that a user can grep, however long its paths are and however narrow
the terminal. Tables still lay themselves out to the width. Commands print through these and
nothing else (tests/cli/test_console.py checks it); errors reach the user only through
:func:`error`, called by ``cli.main.main``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported on first use, so `framesel --help` stays instant
    from rich.console import Console


def _console(stderr: bool) -> Console:
    # A new one each time: a console reads the terminal's width and colours when it is made.
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def stdout() -> Console:
    """The console for results, tables and summaries (stdout)."""
    return _console(False)


def stderr() -> Console:
    """The console for errors, warnings and progress (stderr; stdout stays free for --json)."""
    return _console(True)


def one_line(message: str) -> str:
    """The message with its line breaks (some libraries' errors have them) turned into spaces."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def error(message: str) -> None:
    """Print ``Error: <message>`` as one line on stderr (brackets in the message kept as text)."""
    from rich.markup import escape

    stderr().print(f"[bold red]Error:[/] {escape(one_line(message))}", highlight=False)


def print_failures(
    console: Console, failures: list[tuple[str, str]], *, title: str, limit: int | None = None
) -> None:
    """Print ``title``, then one line per failure, ``  <where>: <error>`` (an error is a message:
    never wrapped, never cut), at most ``limit`` of them and a count of the rest."""
    from rich.markup import escape

    shown = failures if limit is None else failures[:limit]
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    for where, message in shown:
        console.print(f"  [yellow]{escape(where)}[/]: {escape(one_line(message))}", highlight=False)
    if len(failures) > len(shown):
        console.print(f"  ... and {len(failures) - len(shown)} more", highlight=False)
