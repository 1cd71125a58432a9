"""Who may import whom (DESIGN.md, CONTRIBUTING.md), read from the code with `ast`.

Every import counts, at module level or inside a function, and so does a module named in a string
(`importlib.import_module("fslabels.x")`, a registry's ``"module:Class"``): a dependency loaded
lazily is still a dependency. Imports under ``if TYPE_CHECKING:`` do not count (they never run).
One link is left out on purpose: `fsmodel._auto` loads the selector's modules (the model layer)
when transformers loads its Auto classes; it builds their names, so no string names them here.

Layers:

    cli ─────────► everything
    evaluation ──► labelling, model, contract, hub_cards   (fslabels/evaluation/)
    labelling ───► contract, hub_cards                     (the rest of fslabels)
    model ───────► contract, hub_cards                     (the rest of fsmodel)
    contract ────► contract: fsmodel.video, .schema, .selection, .metrics, .synthetic,
                   .overrides, ._imports, the package itself; never torch or transformers
                   at import time
    hub_cards ───► nothing of ours
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cli", "fslabels", "fsmodel", "hub_cards")
CONTRACT = {
    "fsmodel",
    "fsmodel._auto",
    "fsmodel._imports",
    "fsmodel.overrides",
    "fsmodel.video",
    "fsmodel.schema",
    "fsmodel.schema.columns",
    "fsmodel.schema.validation",
    "fsmodel.schema.io",
    "fsmodel.selection",
    "fsmodel.metrics",
    "fsmodel.synthetic",
}
EVALUATION = ("fslabels.evaluation",)
ALLOWED = {
    "cli": {"cli", "evaluation", "labelling", "model", "contract", "hub_cards"},
    "evaluation": {"evaluation", "labelling", "model", "contract", "hub_cards"},
    "labelling": {"labelling", "contract", "hub_cards"},
    "model": {"model", "contract", "hub_cards"},
    "contract": {"contract"},
    "hub_cards": {"hub_cards"},
}
# What the contract layer never imports when it is imported.
HEAVY = ("torch", "transformers", "datasets", "peft", "accelerate")
_MODULE_STRING = re.compile(r"^((?:cli|fslabels|fsmodel|hub_cards)(?:\.\w+)*)(?::\w+)?$")


def layer(module: str) -> str:
    if module.split(".")[0] == "cli":
        return "cli"
    if module.split(".")[0] == "hub_cards":
        return "hub_cards"
    if module in CONTRACT:
        return "contract"
    if module.split(".")[0] == "fsmodel":
        return "model"
    if any(module == e or module.startswith(e + ".") for e in EVALUATION):
        return "evaluation"
    return "labelling"


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of `module`'s file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    top = {id(node) for node in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _MODULE_STRING.match(node.value)
            if match and "." in match.group(1):
                names = [match.group(1)]
        for name in names:
            yield name, node.lineno, id(node) in top


def _ours(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` names (a submodule, or the module an attribute is of)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def test_every_import_follows_the_layers():
    known = modules()
    violations: list[str] = []
    for module, path in known.items():
        for name, line, _ in imports(module, path):
            target = _ours(name, known)
            if target is None:
                continue
            if layer(target) not in ALLOWED[layer(module)]:
                where = path.relative_to(ROOT)
                found = (
                    f"{where}:{line}: {module} ({layer(module)}) imports {target} ({layer(target)})"
                )
                if found not in violations:
                    violations.append(found)
    assert violations == [], "\n".join(violations)


def test_the_contract_layer_imports_nothing_heavy_at_import_time():
    known = modules()
    violations = []
    for module in sorted(CONTRACT):
        path = known[module]
        for name, line, top_level in imports(module, path):
            if top_level and name.split(".")[0] in HEAVY:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {name}")
    assert violations == [], "\n".join(violations)


def test_no_import_circles():
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for name, _, _ in imports(module, path):
            target = _ours(name, known)
            # a module's own package is imported first anyway; that is no circle
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == [], "\n".join(circles)


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("fslabels.manifest", "fslabels.evaluation.run", "labelling"),
        ("fsmodel.video", "fsmodel.modeling_frame_selector", "contract"),
        ("fsmodel.training.recipe", "fslabels.run", "model"),
        ("hub_cards.release", "fsmodel.schema", "hub_cards"),
    ],
)
def test_the_rules_catch_a_forbidden_import(importer, imported, expected):
    assert layer(importer) == expected
    assert layer(imported) not in ALLOWED[layer(importer)]


# The remote-code files ship to the Hub on their own and must stay self-contained.
REMOTE_CODE = {
    "fsmodel.configuration_frame_selector",
    "fsmodel.modeling_frame_selector",
    "fsmodel.processing_frame_selector",
    "fsmodel.selection",
}
MAX_LINES = 900


def test_no_module_is_over_900_lines():
    too_long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for module, path in modules().items()
        if module not in REMOTE_CODE
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert too_long == [], "split these modules along their seams:\n" + "\n".join(too_long)
