"""Errors are one line: every command's error stays whole at any terminal width, and commands print
through cli/console.py and nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.main import main

CLI_DIR = Path(__file__).resolve().parents[2] / "cli"


@pytest.fixture
def long_dir(tmp_path):
    """A directory whose path is far longer than a 40-column terminal (and holds a file, `file`,
    and a text file posing as a video, `bad.mp4`)."""
    path = tmp_path / ("a-rather-long-directory-name-" * 5)
    path.mkdir()
    (path / "file").write_text("x")
    (path / "bad.mp4").write_text("not a video")
    return path


# One user error per command: arguments (with {d} for the long directory) and what the message says
# besides the path.
CASES = {
    "demo": ("demo --out {d}/file/sub", "Not a directory"),
    "video sample": ("video sample {d}/bad.mp4", "not a readable video"),
    "model select": ("model select {d}/bad.mp4 Where? --model {d}/none", "repo_name"),
    "model init": ("model init --tiny --out {d}/file", "File exists"),
    "model train": ("model train --config {d}/none.yaml", "does not exist"),
    "model push": ("model push {d}/none --repo org/name", "does not exist"),
    "model eval": ("model eval {d}/none --data {d}/none", "repo_name"),
    "labels run": ("labels run --manifest {d}/m.jsonl --videos {d} --work {d}/w", "does not exist"),
    "labels status": ("labels status {d}/w", "holds no label run"),
    "labels show": ("labels show {d}/w abc --out {d}/x.png", "holds no label run"),
    "labels build": ("labels build {d}/w --out {d}/out", "holds no label run"),
    "labels push": ("labels push {d}/none --repo org/name", "does not exist"),
    "labels pull": (
        "labels pull --repo org/name --out {d}/file",
        "is a file; choose another --out",
    ),
    "labels diff": ("labels diff {d}/a {d}/b", "nor a Hub dataset id"),
    "labels score": ("labels score {d}/a --truth {d}/none.jsonl", "does not exist"),
    "review export": (
        "review export {d}/none --url http://127.0.0.1:9 --token t --videos {d} --media-root {d}",
        "nor a Hub dataset id",
    ),
    "review import": (
        "review import --url http://127.0.0.1:9 --token t --project p --dataset {d}/none "
        "--out {d}/new",
        "nor a Hub dataset id",
    ),
    "eval qa": (
        "eval qa --manifest {d}/m.jsonl --work {d}/w --videos {d} --strategies uniform",
        "does not exist",
    ),
    "select run": (
        "select run --manifest {d}/m.jsonl --work {d}/w --videos {d} --strategies uniform",
        "does not exist",
    ),
    "select build": ("select build {d}/w --out {d}/out", "holds no selection run"),
    "select push": ("select push {d}/none --repo org/name", "is not a selections dataset"),
    "select pull": ("select pull org/name --out {d}/file", "is a file; choose another --out"),
    "select diff": ("select diff {d}/a {d}/b", "nor a Hub dataset id"),
    "select score": ("select score {d}/a --truth {d}/t.jsonl", "does not exist"),
    "frames export": ("frames export {d}/a --videos {d} --out {d}/o", "nor a Hub dataset id"),
    "eval report": ("eval report {d}/w", "holds no eval run"),
    # No input of its own to get wrong: a usage error, with its one-line hint.
    "eval strategies": ("eval strategies --{d}", "No such option"),
}


def test_every_command_has_an_error_case():
    import typer

    from cli.main import app

    def leaves(command, path=()):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from leaves(sub, (*path, name))
        else:
            yield " ".join(path)

    assert sorted(leaves(typer.main.get_command(app))) == sorted(CASES)


@pytest.mark.parametrize("columns", ["40", "400"])
@pytest.mark.parametrize("command", sorted(CASES))
def test_an_error_is_one_line_at_any_width(command, columns, long_dir, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", columns)
    template, says = CASES[command]
    long = str(long_dir)
    args = [arg.replace("{d}", long) for arg in template.split()]
    if command == "eval strategies":
        long = long.lstrip("/")  # the option is --<the path>, shown as given
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (1, 2), err
    assert lines, "no error printed"
    # The whole message is the first line: "Error: ", the long path and what it says.
    assert lines[0].startswith("Error: ") and long in lines[0] and says in lines[0], err
    # Nothing of it spills onto another line; a usage error adds its hint.
    rest = lines[1:]
    if code == 2:
        assert len(rest) == 1 and re.fullmatch(r"Try '.* --help' for help\.", rest[0]), err
    else:
        assert rest == [], err


def test_commands_print_only_through_the_console_module():
    """Errors are printed in one place (cli.main through cli.console.error); results through
    cli.console.stdout() or typer.echo. Another Console, print() or stderr write would bypass
    the one-line rule."""
    pattern = re.compile(r"Console\(|err=True|sys\.std(err|out)|rich\.print|(?<![.\w])print\(")
    offenders = []
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "console.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def _short_help_lines(text: str) -> list[str]:
    """Lines of an options panel that hold only a wrapped scrap of help (one or two words)."""
    scraps = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c for c in re.split(r"\s{2,}", line.strip("│ ").strip()) if c]
        if (
            len(cells) == 1
            and len(cells[0].split()) <= 2
            and not cells[0].startswith(("-", "*", "["))
        ):
            scraps.append(line)
    return scraps


@pytest.mark.parametrize("columns", [80, 120])
def test_help_reads_well_at_80_and_120_columns(columns):
    """Every command's --help at both widths: at most a few help lines wrap into one or two
    words (`framesel labels run --help` had 25 at 80 columns), no line overflows."""
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    scraps_by_command = {}
    for command in CASES:
        done = runner.invoke(app, [*command.split(), "--help"], terminal_width=columns,
                             env={"COLUMNS": str(columns)})  # fmt: skip
        assert done.exit_code == 0, (command, done.output)
        assert max(len(line) for line in done.output.splitlines()) <= columns, command
        scraps_by_command[command] = _short_help_lines(done.output)
        # The command's description reflows to the width (source line breaks do not survive:
        # a 96-column docstring line left 1-3 word scraps at 80 columns before).
        prose = [line.strip() for line in done.output.split("╭")[0].splitlines()[3:]]
        assert not [p for p in prose if p and len(p.split()) <= 2 and not p.endswith(".")], (
            command,
            prose,
        )
    worst = {
        c: len(s) for c, s in scraps_by_command.items() if len(s) > (6 if columns == 80 else 0)
    }
    assert worst == {}, {c: scraps_by_command[c] for c in worst}
