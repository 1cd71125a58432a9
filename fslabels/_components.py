"""What backends (`fslabels.backends`) and scorers (`fslabels.evaluation.scorers`) share.

Both are named components: a class with a ``name`` and a ``config_class`` (a dataclass validated
in ``__post_init__``), a ``load`` / ``unload`` lifecycle whose heavy imports happen in ``_load``,
a fingerprint of the config fields that change outputs, and a registry that maps a name to
``"module:Class"`` and imports the module only when the name is asked for.

Example:
    >>> registry = {"ordered": "collections:OrderedDict"}
    >>> lookup(registry, "mapping", "ordered", dict).__name__
    'OrderedDict'
    >>> lookup(registry, "mapping", "orderd", dict)
    Traceback (most recent call last):
    ValueError: unknown mapping 'orderd'; known mappings: ordered. Did you mean 'ordered'?
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar, TypeVar

__all__ = ["NOT_IN_FINGERPRINT", "Component", "fingerprint_fields", "lookup", "register"]

# Field metadata for config fields that do not change outputs (batch size, concurrency, timeouts,
# device): they stay out of fingerprints, so changing them never invalidates cached work.
NOT_IN_FINGERPRINT: Mapping[str, Any] = {"fingerprint": False}

_T = TypeVar("_T")
_C = TypeVar("_C", bound="Component")


def fingerprint_fields(config: Any) -> dict[str, Any]:
    """``{field: value}`` of a config dataclass, minus the fields marked `NOT_IN_FINGERPRINT`."""
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.metadata.get("fingerprint", True)
    }


class Component(ABC):
    """Base of a kind of named component (`fslabels.backends.Backend`,
    `fslabels.evaluation.scorers.Scorer`): config handling and an idempotent load/unload lifecycle.

    A kind subclasses it directly and may set ``config_base`` (the class every config of the
    kind derives from) and ``name_hint`` (for the error of a subclass without a name). Each
    concrete subclass of a kind must declare ``name`` and ``config_class`` (checked when the
    class is defined) and implement ``_load`` and ``_unload``.

    Args:
        config: a ``config_class`` instance; or pass its fields as keyword arguments.
        **kwargs: config fields (override those of ``config`` when both are given).

    Raises:
        TypeError: a config of another type.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    config_base: ClassVar[type | None] = None
    name_hint: ClassVar[str] = "<registry name>"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if Component in cls.__bases__:
            return  # a kind (Backend, Scorer), not a component
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} must set a class attribute name = '{cls.name_hint}'")
        config_class = cls.__dict__.get("config_class")
        base = cls.config_base
        if not (
            isinstance(config_class, type)
            and dataclasses.is_dataclass(config_class)
            and (base is None or issubclass(config_class, base))
        ):
            kind = f"{base.__name__} dataclass" if base is not None else "dataclass"
            raise TypeError(f"{cls.__name__}.config_class must be a {kind}")

    def __init__(self, config: Any = None, **kwargs: Any) -> None:
        if config is None:
            config = self.config_class(**kwargs)
        elif not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = config
        self._loaded = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the model or open the client (idempotent). Heavy imports happen here."""
        if not self._loaded:
            self._load()
            self._loaded = True

    def unload(self) -> None:
        """Free the model or close the client (idempotent)."""
        if self._loaded:
            self._unload()
            self._loaded = False

    def __enter__(self: _C) -> _C:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _unload(self) -> None: ...


def register(registry: MutableMapping[str, str], kind: str, name: str, target: str) -> None:
    """Add ``name`` → ``"module:Class"`` to a registry of ``kind`` (``"backend"``, ``"scorer"``).

    Raises:
        ValueError: a target that is not ``"module:Class"``, or a name registered as another
            target.
    """
    module, _, cls = target.partition(":")
    if not module or not cls:
        raise ValueError(f"{kind} target must be 'module:Class', got {target!r}")
    if registry.get(name, target) != target:
        raise ValueError(f"{kind} {name!r} is already registered as {registry[name]!r}")
    registry[name] = target


def lookup(registry: Mapping[str, str], kind: str, name: str, base: type[_T]) -> type[_T]:
    """The class registered as ``name`` (its module is imported now).

    Raises:
        ValueError: an unknown name, listing the known ones (and the closest match).
        TypeError: a target that is not a subclass of ``base``.
    """
    import difflib
    import importlib

    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(registry))}.{hint}"
        )
    module_name, _, class_name = registry[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{registry[name]} is not a fslabels {base.__name__}")
    return cls
