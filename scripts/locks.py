"""The locks every framesel environment installs from (scripts/locks/<name>.txt), and their checks.

Each environment has an input file `scripts/locks/<name>.in` (the top-level requirements, with
the reason for every upper bound) and a lock `scripts/locks/<name>.txt` written by `make lock`
(`uv pip compile --generate-hashes`: every package at an exact version with its hashes). The lock's
header records what it was compiled from:

    # framesel-lock: inputs=<sha256 of the .in file and of pyproject's requirements> exclude=a,b

`exclude` names packages that a dependency asks for but that must not be installed in that venv
(for example the CUDA torchvision that breaks `import vllm` beside the CPU torch): they are left
out of the lock, so they are never installed and never have to be removed afterwards. A
`# torch: pypi` line makes a lock take torch from PyPI (the CUDA build) instead of the CPU build.

Standard library only: set-up runs this with whatever Python creates the venvs.

    python scripts/locks.py inputs-hash main          # what `make lock` writes in the header
    python scripts/locks.py check-inputs              # every lock is up to date with its inputs
    VENV/bin/python scripts/locks.py check-venv main  # the running venv holds exactly the lock
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "scripts" / "locks"
HEADER = "# framesel-lock:"
# Installed in a venv but never in a lock: the installer's own seed packages and framesel itself
# (installed editable, from the working tree, after the lock).
NOT_LOCKED = {"pip", "framesel"}
# What a GPU install adds or changes beside the locked CPU torch (FRAMESEL_TORCH=cuda).
CUDA_PREFIXES = ("nvidia-", "triton", "cuda-")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_names() -> list[str]:
    """The environments that have an input file, in a stable order."""
    return sorted(p.stem for p in LOCK_DIR.glob("*.in"))


def _directive(name: str, key: str) -> str | None:
    """The value of the ``# key: value`` line of the input file of `name`, or None."""
    for line in (LOCK_DIR / f"{name}.in").read_text().splitlines():
        if line.startswith(f"# {key}:"):
            return line.split(":", 1)[1].strip()
    return None


def uses_pyproject(name: str) -> str | None:
    """The pyproject extra the lock of `name` is compiled with ('' for the base requirements),
    read from the `# pyproject:` line of its input file; None if it does not use pyproject."""
    return _directive(name, "pyproject")


def excluded(name: str) -> list[str]:
    """Packages left out of the lock of `name` (the `# exclude:` line of its input file)."""
    return sorted(canonical(n) for n in (_directive(name, "exclude") or "").split())


def torch_build(name: str) -> str:
    """Where the lock of `name` takes torch from: ``cpu`` (default; the CPU build, from the wheel
    directory or the PyTorch CPU index) or ``pypi`` (PyPI's own wheel, the CUDA build, which also
    runs on a CPU-only machine), from the `# torch:` line of its input file."""
    build = _directive(name, "torch") or "cpu"
    if build not in ("cpu", "pypi"):
        raise ValueError(f"scripts/locks/{name}.in: '# torch:' must be cpu or pypi, not {build!r}")
    return build


def inputs_hash(name: str) -> str:
    """A hash of everything the lock of `name` is resolved from."""
    digest = hashlib.sha256((LOCK_DIR / f"{name}.in").read_bytes())
    if uses_pyproject(name) is not None:
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        wanted = {
            "dependencies": project.get("dependencies", []),
            "optional-dependencies": project.get("optional-dependencies", {}),
        }
        digest.update(json.dumps(wanted, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def read_lock(name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(pins, header fields) of scripts/locks/<name>.txt: pins maps canonical name → version."""
    path = LOCK_DIR / f"{name}.txt"
    if not path.is_file():
        raise SystemExit(f"locks: {path.relative_to(ROOT)} is missing; run `make lock`")
    pins: dict[str, str] = {}
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith(HEADER):
            for field in line[len(HEADER) :].split():
                key, _, value = field.partition("=")
                header[key] = value
        elif match := _PIN.match(line):
            pins[canonical(match.group(1))] = match.group(2)
    return pins, header


def installed() -> dict[str, str]:
    """canonical name → version of every distribution in the running interpreter's environment."""
    import importlib.metadata as md

    return {canonical(d.metadata["Name"]): d.version for d in md.distributions()}


def venv_problems(name: str, have: dict[str, str], *, cuda_torch: bool = False) -> list[str]:
    """How the environment `have` differs from the lock of `name` (empty when it matches)."""
    pins, _ = read_lock(name)
    problems = []
    for pkg, version in sorted(pins.items()):
        got = have.get(pkg)
        if cuda_torch and pkg == "torch" and got is not None:
            if got.split("+")[0] != version.split("+")[0]:
                problems.append(f"torch {got} (lock: {version.split('+')[0]} of any build)")
        elif got is None:
            problems.append(f"{pkg} missing (lock: {version})")
        elif got != version:
            problems.append(f"{pkg} {got} (lock: {version})")
    for pkg in sorted(set(have) - set(pins) - NOT_LOCKED):
        if cuda_torch and pkg.startswith(CUDA_PREFIXES):
            continue
        why = "excluded from this venv" if pkg in excluded(name) else "not in the lock"
        problems.append(f"{pkg} {have[pkg]} installed but {why}")
    return problems


def lock_entries(name: str, package: str, *, keep: bool) -> str:
    """The lock of `name` with only (keep=True) or without (keep=False) the entry of `package`:
    its pin, hashes and comments."""
    out, inside = [], False
    for line in (LOCK_DIR / f"{name}.txt").read_text().splitlines():
        if match := _PIN.match(line):
            inside = canonical(match.group(1)) == canonical(package)
        elif not line.startswith(" "):
            inside = False
        if inside == keep:
            out.append(line)
    return "\n".join(out) + "\n"


def stale_locks() -> list[str]:
    """One line per lock whose inputs changed since `make lock` wrote it."""
    lines = []
    for name in lock_names():
        _, header = read_lock(name)
        if header.get("inputs") != inputs_hash(name):
            lines.append(
                f"scripts/locks/{name}.txt is out of date with scripts/locks/{name}.in"
                + (" and pyproject.toml" if uses_pyproject(name) is not None else "")
                + ": run `make lock` and commit the result"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("names", help="the environments that have a lock")
    for cmd in ("inputs-hash", "exclude", "pyproject-extra", "torch"):
        sub.add_parser(cmd).add_argument("name")
    for cmd in ("only", "without"):
        entry = sub.add_parser(cmd, help=f"the lock {cmd} one package's entry")
        entry.add_argument("name")
        entry.add_argument("package")
    sub.add_parser("check-inputs", help="every lock is up to date with its inputs")
    check = sub.add_parser("check-venv", help="the running interpreter's venv equals the lock")
    check.add_argument("name")
    check.add_argument("--cuda-torch", action="store_true", help="torch of any build (GPU set-up)")
    args = parser.parse_args(argv)

    if args.command == "names":
        print("\n".join(lock_names()))
    elif args.command == "inputs-hash":
        print(inputs_hash(args.name))
    elif args.command == "exclude":
        print(" ".join(excluded(args.name)))
    elif args.command == "torch":
        print(torch_build(args.name))
    elif args.command == "pyproject-extra":
        extra = uses_pyproject(args.name)
        if extra is None:
            return 1
        print(extra)
    elif args.command in ("only", "without"):
        keep = args.command == "only"
        sys.stdout.write(lock_entries(args.name, args.package, keep=keep))
    elif args.command == "check-inputs":
        stale = stale_locks()
        for line in stale:
            print(f"locks: {line}", file=sys.stderr)
        return 1 if stale else 0
    elif args.command == "check-venv":
        problems = venv_problems(args.name, installed(), cuda_torch=args.cuda_torch)
        if problems:
            print(
                f"locks: {sys.prefix} differs from scripts/locks/{args.name}.txt: "
                + "; ".join(problems),
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
