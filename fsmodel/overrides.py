"""Dotted ``key=value`` overrides (the CLI's ``--set``), the one parser every config uses.

Label runs (`fslabels.config`), evaluations (`fslabels.evaluation.config`) and training
(`fsmodel.training.config`) read their configs from YAML and then apply overrides with
`apply_overrides`; each config checks keys and values itself (who knows its fields), optionally
as each override is applied (``check=``). Part of the contract layer: needs only PyYAML.

Rules:

- ``a.b.c=value``: ``=`` required, every part of the key non-empty;
- the value is read as YAML: ``8`` is an int, ``[1, 2]`` a list, ``true`` a bool, ``null`` and an
  empty value are None (as YAML reads ``key:``);
- missing sections on the way are created; a key that holds a value cannot hold a section.

Example:
    >>> apply_overrides({"optim": {"lr": 1}}, ["optim.lr=3", "data.limit=[1, 2]"])
    {'optim': {'lr': 3}, 'data': {'limit': [1, 2]}}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["apply_overrides", "parse_override"]


def parse_override(
    text: str, *, example: str = "optim.lr=3e-4", error: type[Exception] = ValueError
) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` → ``(["optim", "lr"], 0.0003)`` (see the module docstring).

    Args:
        text: one ``--set`` argument.
        example: a valid override of the caller's config, shown when ``text`` is malformed.
        error: the exception type to raise (a config's own `ValueError` subclass).

    Raises:
        error: without ``=``, with an empty key part, or a value that is not YAML.
    """
    import yaml

    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not key.strip():
        raise error(f"--set expects key=value with a dotted key (e.g. {example}), got {text!r}")
    if not all(parts):
        raise error(f"--set {text!r}: the key {key.strip()!r} has an empty part (e.g. {example})")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise error(f"--set {text!r}: the value is not valid YAML ({err})") from None
    return parts, value


def apply_overrides(
    data: Mapping[str, Any],
    overrides: Iterable[str],
    *,
    check: Callable[[list[str], str], None] | None = None,
    example: str = "optim.lr=3e-4",
    error: type[Exception] = ValueError,
) -> dict[str, Any]:
    """A deep copy of ``data`` with each override set, in order.

    Args:
        data: the config as nested mappings (what its YAML holds).
        overrides: ``--set`` arguments.
        check: called with each override's key parts and text before it is applied; raises
            for a key the config does not have (else keys are checked when the config is built).
        example, error: as in `parse_override`.

    Raises:
        error: a malformed override, or one that puts a section inside a value.
    """
    out = copy.deepcopy(dict(data))
    for text in overrides:
        parts, value = parse_override(text, example=example, error=error)
        if check is not None:
            check(parts, text)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise error(f"--set {text!r}: {where} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out
