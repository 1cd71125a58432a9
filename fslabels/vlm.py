"""Loading the processor of an image-text model (the one place framesel does it).

``load_processor`` is ``AutoProcessor.from_pretrained`` with one fallback. transformers 5.x builds
the video processor of processors such as ``Qwen2VLProcessor`` eagerly, and every video processor
needs torchvision (huggingface/transformers#48558), so on a machine without a working torchvision
(CPU CI, laptops: torchvision does not import beside torch 2.13 CPU) ``AutoProcessor`` cannot load
*any* Qwen2-VL / Qwen2.5-VL checkpoint. For those families ``load_processor`` then builds an
image-only subclass of the stock processor class: the same tokenizer, chat template and (PIL)
image processor, no video processor. framesel feeds video frames as images anyway, so labelling
works the same; passing ``videos=`` to it raises a ``ValueError``.

    >>> from fslabels.vlm import load_processor
    >>> processor = load_processor("Qwen/Qwen2-VL-7B-Instruct")  # doctest: +SKIP
    >>> inputs = processor(images=frames, text=prompts, return_tensors="pt")  # doctest: +SKIP

Heavy libraries (transformers, torch) are imported inside the functions, so importing this module
stays instant.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, ProcessorMixin

__all__ = ["IMAGE_ONLY_PROCESSORS", "image_only_processor_class", "load_processor"]

logger = logging.getLogger(__name__)

# Stock processor classes that have an image-only fallback: processor_class name -> "module:Class"
# (imported only when the fallback is needed).
IMAGE_ONLY_PROCESSORS: dict[str, str] = {
    "Qwen2VLProcessor": "transformers:Qwen2VLProcessor",
    "Qwen2_5_VLProcessor": "transformers:Qwen2_5_VLProcessor",
}

# For checkpoints whose processor files name no processor class, config.json's model_type does.
_MODEL_TYPE_PROCESSORS: dict[str, str] = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
}

# Where a checkpoint names its processor class, in the order AutoProcessor consults them.
# Hub checkpoints saved before transformers 5 (Qwen2-VL-7B-Instruct) use preprocessor_config.json.
_PROCESSOR_CLASS_FILES = (
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer_config.json",
)

# from_pretrained kwargs that locate files; the fallback reads the checkpoint's files with them.
_HUB_KWARGS = (
    "cache_dir",
    "force_download",
    "proxies",
    "token",
    "local_files_only",
    "subfolder",
    "revision",
)


def load_processor(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> ProcessorMixin | PreTrainedTokenizerBase:
    """Load the processor of an image-text model, image-only where video processors cannot load.

    Tries ``AutoProcessor.from_pretrained``. If that fails only because the checkpoint's video
    processor needs torchvision and torchvision is missing or broken, a known family (Qwen2-VL,
    Qwen2.5-VL; see ``IMAGE_ONLY_PROCESSORS``) is loaded as an image-only subclass of its stock
    processor class, and one info line is logged. Any other failure propagates unchanged. A text-only
    checkpoint gives whatever ``AutoProcessor`` gives (its tokenizer).

    Args:
        name_or_path: a Hub repository id or a local checkpoint directory.
        revision: Hub revision (branch, tag or commit); ``None`` for the default branch.
        trust_remote_code: passed to transformers explicitly (``None`` would prompt).
        **kwargs: further ``from_pretrained`` keyword arguments (``cache_dir``, ``token``,
            ``local_files_only``, processor settings such as ``min_pixels`` ...).

    Returns:
        The stock processor where it loads; otherwise an instance of
        ``image_only_processor_class(<stock class name>)``, which is also an instance of the stock
        class (e.g. ``Qwen2VLProcessor``) and behaves like it for text and images.

    Raises:
        ImportError: the video processor needs torchvision and the family has no image-only
            fallback; the message names the family and says to install torchvision.
        OSError, ValueError, ...: whatever ``AutoProcessor.from_pretrained`` raises for any other
            reason (missing directory, unknown repository, bad config), unchanged.

    Example:
        >>> processor = load_processor("/tmp/framesel-tiny/qwen2-vl")  # doctest: +SKIP
        >>> batch = processor(images=[frame], text=[prompt], return_tensors="pt")  # doctest: +SKIP
        >>> batch["image_grid_thw"].shape  # doctest: +SKIP
        torch.Size([1, 3])
    """
    from transformers import AutoProcessor

    if revision is not None:
        kwargs["revision"] = revision
    try:
        return AutoProcessor.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, **kwargs
        )
    except Exception as err:
        if not _needs_torchvision(err):
            raise
        processor_class, model_type = _processor_family(name_or_path, kwargs)
        stock_name = processor_class or _MODEL_TYPE_PROCESSORS.get(model_type or "")
        if stock_name not in IMAGE_ONLY_PROCESSORS:
            family = processor_class or (f"model_type {model_type!r}" if model_type else "unknown")
            raise ImportError(
                f"Cannot load the processor of {os.fspath(name_or_path)!r} ({family}): its video "
                "processor needs torchvision, which is not installed or does not import here, and "
                f"framesel has an image-only fallback only for {', '.join(IMAGE_ONLY_PROCESSORS)}. "
                "Install torchvision matching your torch build (e.g. on GPU machines) or use a "
                "supported model."
            ) from err
        processor_cls = image_only_processor_class(stock_name)
        # Info, not a warning: labelling passes frames as images anyway, and where a video was
        # wanted the caller says so (the answerer warns when it falls back to images).
        logger.info(
            "%s: %s needs torchvision for its video processor (%s); using the image-only %s "
            "(pass video frames as images).",
            os.fspath(name_or_path),
            stock_name,
            _first_sentence(err),
            processor_cls.__name__,
        )
        return processor_cls.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, **kwargs
        )


@functools.cache
def image_only_processor_class(processor_class: str) -> type[ProcessorMixin]:
    """Return the image-only subclass of a stock processor class, built on first use.

    The subclass takes ``(image_processor, tokenizer, chat_template)``, loads with
    ``from_pretrained`` from an ordinary checkpoint without touching its video settings, and
    raises a ``ValueError`` if called with ``videos=``.

    Args:
        processor_class: a key of ``IMAGE_ONLY_PROCESSORS``, e.g. ``"Qwen2VLProcessor"``.

    Returns:
        A subclass of the stock class named like ``Qwen2VLImageOnlyProcessor``; the same object on
        every call.

    Raises:
        ValueError: if ``processor_class`` has no image-only fallback.

    Example:
        >>> cls = image_only_processor_class("Qwen2VLProcessor")  # doctest: +SKIP
        >>> cls.__name__  # doctest: +SKIP
        'Qwen2VLImageOnlyProcessor'
    """
    try:
        target = IMAGE_ONLY_PROCESSORS[processor_class]
    except KeyError:
        raise ValueError(
            f"No image-only fallback for {processor_class!r}; known: {', '.join(IMAGE_ONLY_PROCESSORS)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    stock = getattr(importlib.import_module(module_name), class_name)
    name = _image_only_name(processor_class)
    cls = type(name, (_ImageOnlyMixin, stock), {"__module__": __name__, "__qualname__": name})
    cls.__doc__ = f"{stock.__name__} without a video processor (text and images only)."
    return cls


class _ImageOnlyMixin:
    # Placed before the stock class in the MRO. ProcessorMixin derives a processor's parts from
    # the parameter names of __init__, so this signature (no video_processor) is what makes
    # from_pretrained skip AutoVideoProcessor, i.e. torchvision.
    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        # ProcessorMixin pairs positional parts with the attributes above and ignores the extra
        # None, so no video_processor attribute exists (its code checks hasattr before use).
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def __call__(
        self,
        images: Any = None,
        text: Any = None,
        videos: Any = None,
        audio: Any = None,
        **kwargs: Any,
    ) -> Any:
        if videos is not None:
            raise ValueError(
                f"{type(self).__name__} is image-only (transformers' video processors need "
                "torchvision, which does not import here): pass the video's frames as images."
            )
        return super().__call__(images=images, text=text, audio=audio, **kwargs)


def __getattr__(name: str) -> type[ProcessorMixin]:
    # pickle (e.g. datasets.map with num_proc) finds the generated classes as module attributes.
    for processor_class in IMAGE_ONLY_PROCESSORS:
        if name == _image_only_name(processor_class):
            return image_only_processor_class(processor_class)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _image_only_name(processor_class: str) -> str:
    return processor_class.removesuffix("Processor") + "ImageOnlyProcessor"


def _needs_torchvision(err: BaseException) -> bool:
    # transformers raises ImportError ("... requires the Torchvision library") when torchvision is
    # absent; an installed torchvision built for another torch fails to import with a RuntimeError
    # ("operator torchvision::nms does not exist") while is_torchvision_available() says True. So
    # the exception chain decides, not is_torchvision_available().
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, (ImportError, RuntimeError))
            and "torchvision" in str(current).lower()
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _processor_family(
    name_or_path: str | os.PathLike[str], kwargs: dict[str, Any]
) -> tuple[str | None, str | None]:
    """The checkpoint's processor_class (as AutoProcessor finds it) and config.json model_type."""
    from transformers.utils import cached_file

    hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}

    def read(filename: str) -> dict[str, Any]:
        path = cached_file(
            os.fspath(name_or_path),
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            _raise_exceptions_for_gated_repo=False,
            **hub_kwargs,
        )
        if path is None:
            return {}
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}

    processor_class = next(
        (name for f in _PROCESSOR_CLASS_FILES if (name := read(f).get("processor_class"))), None
    )
    return processor_class, read("config.json").get("model_type")


def _first_sentence(err: BaseException) -> str:
    # transformers' backend errors run over several lines; the warning must stay one line.
    text = " ".join(str(err).split())
    sentence = text.split(". ", 1)[0].rstrip(".")
    return f"{type(err).__name__}: {sentence}" if sentence else type(err).__name__
