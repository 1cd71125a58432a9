"""The selector's registration with transformers' Auto classes, made when transformers loads them.

``import fsmodel`` must not load torch or transformers: the sampler and the schema it holds are
imported by every labelling process and Ray actor. But ``import fsmodel`` followed by
``AutoModel.from_pretrained(dir)`` must load a saved selector without ``trust_remote_code``. So
registration waits for transformers: each step below runs once the module it needs has been
imported (an import hook), or at once if that module is already loaded. A registration also
waits until no module of transformers or of the selector is half-imported (transformers imports
its auto classes half-way through loading a model class), and is made when the last one ends.

- ``transformers.models.auto.configuration_auto`` → ``AutoConfig.register``
- ``transformers.models.auto.modeling_auto`` → ``AutoModel.register``
- ``transformers.models.auto.processing_auto`` → ``AutoProcessor.register``
- ``fsmodel.configuration_frame_selector`` / ``.modeling_`` / ``.processing_`` →
  ``register_for_auto_class`` (``save_pretrained`` then writes ``auto_map`` and copies the code)

Touching any Auto class loads torch anyway, so registering costs only framesel's own modules.
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
from collections.abc import Callable
from types import ModuleType

logger = logging.getLogger(__name__)

_AUTO = "transformers.models.auto."
_OURS = "fsmodel."


def _register_config(auto: ModuleType, config: ModuleType) -> None:
    cls = config.FrameSelectorConfig
    auto.AutoConfig.register(cls.model_type, cls, exist_ok=True)


def _register_model(auto: ModuleType, config: ModuleType, model: ModuleType) -> None:
    auto.AutoModel.register(config.FrameSelectorConfig, model.FrameSelectorModel, exist_ok=True)


def _register_processor(auto: ModuleType, config: ModuleType, processor: ModuleType) -> None:
    cls = processor.FrameSelectorProcessor
    auto.AutoProcessor.register(config.FrameSelectorConfig, cls, exist_ok=True)


# Each registration: the transformers module that triggers it, the framesel modules it needs, and
# the call (given those modules, in that order).
REGISTRATIONS: list[tuple[str, tuple[str, ...], Callable[..., None]]] = [
    (_AUTO + "configuration_auto", (_OURS + "configuration_frame_selector",), _register_config),
    (
        _AUTO + "modeling_auto",
        (_OURS + "configuration_frame_selector", _OURS + "modeling_frame_selector"),
        _register_model,
    ),
    (
        _AUTO + "processing_auto",
        (_OURS + "configuration_frame_selector", _OURS + "processing_frame_selector"),
        _register_processor,
    ),
]
# framesel's own classes, marked for save_pretrained's auto_map as soon as they exist.
MARKS: dict[str, Callable[[ModuleType], None]] = {
    _OURS + "configuration_frame_selector": lambda m: (
        m.FrameSelectorConfig.register_for_auto_class()
    ),
    _OURS + "modeling_frame_selector": lambda m: m.FrameSelectorModel.register_for_auto_class(
        "AutoModel"
    ),
    _OURS + "processing_frame_selector": lambda m: (
        m.FrameSelectorProcessor.register_for_auto_class()
    ),
}
WATCHED = {trigger for trigger, _, _ in REGISTRATIONS} | set(MARKS)
_finished: set[str] = set()  # watched modules whose code has run to the end
_registered: set[str] = set()  # triggers whose registration is made (or given up)
_running: set[str] = set()  # reported modules whose code is executing now


def _reported(name: str) -> bool:
    """Modules whose end is reported: the watched ones, and every module of transformers (a
    registration waits until none of them is half-imported)."""
    return name in WATCHED or name == "transformers" or name.startswith("transformers.")


def _busy() -> bool:
    """A module of transformers or of framesel's selector is executing right now: importing the
    selector's modules then could meet a half-imported transformers module (transformers'
    modeling_layers imports the auto classes before it defines what the model classes need).
    Every such module is reported when it ends, so a registration put off here is made then."""
    return bool(_running)


def _module_finished(name: str) -> None:
    if name in WATCHED:
        _finished.add(name)
    if name in MARKS:
        MARKS[name](sys.modules[name])
    if any(t in _finished and t not in _registered for t, _, _ in REGISTRATIONS):
        _sync()


def _sync() -> None:
    """Make every registration whose transformers module has loaded, once no module of
    transformers or of the selector is half-imported (the end of the last one calls this again).
    A framesel module it needs is imported here."""
    for trigger, needs, register in REGISTRATIONS:
        if trigger in _registered or trigger not in _finished:
            continue
        if _busy():
            return
        try:
            for name in needs:
                if name not in _finished and name not in sys.modules:
                    importlib.import_module(name)
            if trigger not in _registered and all(name in _finished for name in needs):
                _registered.add(trigger)
                register(sys.modules[trigger], *(sys.modules[name] for name in needs))
        except Exception as err:  # never break the import of transformers itself
            # Not a half-imported module (see _busy): this transformers lacks what the selector
            # needs. Said once; loading a selector through the Auto classes then fails.
            _registered.add(trigger)
            logger.warning(
                "framesel's selector is not registered with transformers' Auto classes "
                "(%s: %s); this transformers cannot load a saved selector",
                type(err).__name__,
                err,
            )


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a reported module it takes the spec the other finders give and
    reports the module once its code has run to the end."""

    def find_spec(self, fullname, path, target=None):
        if not _reported(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            _running.add(fullname)
            try:
                exec_module(module)
            finally:
                _running.discard(fullname)
            _module_finished(fullname)

        loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Hook the imports of the watched modules, and register now for those already loaded
    (transformers imported before fsmodel)."""
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
    _finished.update(name for name in WATCHED if name in sys.modules)
    _sync()
