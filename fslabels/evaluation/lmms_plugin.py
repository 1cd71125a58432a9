"""framesel as an lmms-eval model: "a frame-selection strategy + a downstream video LLM".

lmms-eval (0.7.x) finds third-party models through the entry-point group ``lmms_eval.models``;
framesel registers ``framesel = "fslabels.evaluation.lmms_plugin:model_manifests"``, so with framesel
installed beside lmms-eval (``scripts/setup_lmms.sh``)::

    python -m lmms_eval --model framesel \\
        --model_args pretrained=Qwen/Qwen2-VL-7B-Instruct,selector=org/framesel-selector,strategy=selector:nms,k=32,num_candidates=128,device=cuda,dtype=bfloat16 \\
        --tasks longvideobench_val_v --batch_size 1

For every request the plugin takes the task's video file, picks k frames with the strategy from
the video's n candidates (`fslabels.evaluation.strategies`: decoded once per video with framesel's sampler;
``uniform`` decodes only its k frames) and hands exactly those frames to the downstream model
(`fslabels.evaluation.answerer.Answerer`: as a video with ``do_sample_frames=False`` where the family and
processor allow, else as images; the model's wrapper never re-samples them). The selector id,
strategy and k are ``model_args``, so lmms-eval's response cache tells runs apart.

``model_args``:

- ``pretrained``: the downstream model (default Qwen/Qwen2-VL-7B-Instruct); ``revision``.
- ``strategy``: ``uniform``, ``selector:nms`` (default), ``selector:topk``,
  ``similarity:inverse_transform``, ``mllm:topk`` ... (`fslabels.evaluation.strategies`).
- ``k`` (default 8), ``num_candidates`` (default 128), ``frame_size`` (decode short side, default
  448), ``video_reader`` (``pyav``).
- ``selector`` (+ ``selector_revision``): the trained selector for ``selector:*``;
  ``similarity_model`` for ``similarity:*``; ``mllm_model`` for ``mllm:*``.
- ``device``, ``dtype`` (for every model), ``frames_as`` (``auto``/``video``/``images``),
  ``max_pixels``, ``min_pixels`` (the downstream processor), ``max_new_tokens`` (default 32).
- ``trace``: a JSONL file to which every selection is appended (task, doc id, video, frame
  indices, timestamps, seconds): the audit trail of which frames the model saw.
- ``selections``: a selections dataset (``framesel select build``; a directory or
  ``org/name@rev``): its stored curves stand in for the strategy's scorer, so no selector runs
  and any number of downstream models are evaluated from one selection (its ``num_candidates``
  and reader are used; a task's prompt is matched to the stored question it contains).

Log-likelihood requests follow lmms-eval's convention for its models: the result is the
continuation's mean negative log-likelihood per token (its ``multiple_choice`` scoring takes the
argmin), with whether greedy decoding produces the continuation.

The lmms-eval model class (``FramesQAModel``) is built on first access, so this module imports
without lmms-eval; `FrameselVideoQA` is the part that does the work.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fsmodel._imports import require
from fsmodel.video import sample_candidates

__all__ = ["MODEL_ID", "FrameselVideoQA", "model_manifests"]

MODEL_ID = "framesel"
_CACHE_VIDEOS = 2
_CACHE_SELECTIONS = 64


def model_manifests() -> list[Any]:
    """The entry point lmms-eval loads (group ``lmms_eval.models``): one ``ModelManifest`` for
    ``--model framesel``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(
            model_id=MODEL_ID,
            simple_class_path=f"{__name__}.FramesQAModel",
        )
    ]


class FrameselVideoQA:
    """Selection + downstream answering for one lmms-eval run (see the module docstring).

    Raises:
        ValueError: an unknown strategy, a scorer without its model, or invalid settings.
    """

    def __init__(
        self,
        pretrained: str = "Qwen/Qwen2-VL-7B-Instruct",
        strategy: str = "selector:nms",
        k: int = 8,
        selector: str | None = None,
        selector_revision: str | None = None,
        similarity_model: str | None = None,
        mllm_model: str | None = None,
        num_candidates: int = 128,
        frame_size: int | None = 448,
        video_reader: str = "pyav",
        device: str = "cpu",
        dtype: str = "float32",
        frames_as: str = "auto",
        max_pixels: int | None = None,
        min_pixels: int | None = None,
        max_new_tokens: int = 32,
        revision: str | None = None,
        trace: str | None = None,
        selections: str | None = None,
    ) -> None:
        from fslabels.evaluation.answerer import Answerer, AnswererConfig
        from fslabels.evaluation.strategies import build_strategy, parse_strategy

        scorer, _ = parse_strategy(str(strategy))
        scorers: dict[str, Any] = {}
        if selections:
            # Stored curves (framesel select build) stand in for the scorer: no selector runs,
            # and the candidates are the ones the selections were made from.
            from fslabels.evaluation.selections import stored_scorers

            stored, info = stored_scorers(str(selections), videos_root="")
            if scorer is not None and scorer not in stored:
                raise ValueError(
                    f"selections {selections} hold no {scorer!r} curves (they hold: "
                    f"{sorted(stored) or 'none'})"
                )
            scorers = dict(stored)
            num_candidates = int(info["config"]["num_candidates"])
            video_reader = str(info["config"]["video_reader"])
        elif scorer == "selector":
            if not selector:
                raise ValueError(f"strategy {strategy!r} needs model_args selector=<dir or Hub id>")
            scorers["selector"] = {
                "model": str(selector),
                "revision": selector_revision,
                "device": device,
                "dtype": dtype,
            }
        elif scorer == "similarity":
            scorers["similarity"] = {"device": device, "dtype": dtype}
            if similarity_model:
                scorers["similarity"]["model"] = str(similarity_model)
        elif scorer == "mllm":
            options = {"device": device, "dtype": dtype}
            scorers["mllm"] = {"backend_options": options}
            if mllm_model:
                scorers["mllm"]["model"] = str(mllm_model)
        self.strategy = build_strategy(str(strategy), scorers)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= int(num_candidates):
            raise ValueError(
                f"k must be an integer in 1..num_candidates ({num_candidates}), got {k!r}"
            )
        self.k = k
        self.num_candidates = int(num_candidates)
        self.frame_size = None if frame_size in (None, "None", "none") else int(frame_size)
        self.video_reader = str(video_reader)
        processor_kwargs = {
            key: int(value)
            for key, value in (("max_pixels", max_pixels), ("min_pixels", min_pixels))
            if value is not None
        }
        self.answerer = Answerer(
            AnswererConfig(
                model=str(pretrained),
                revision=revision,
                dtype=dtype,
                device=device,
                frames_as=frames_as,
                processor_kwargs=processor_kwargs,
                max_new_tokens=int(max_new_tokens),
            )
        )
        self.trace = Path(trace) if trace else None
        self._candidates: OrderedDict[str, Any] = OrderedDict()
        self._selections: OrderedDict[tuple[str, str], Any] = OrderedDict()

    # --- selection ----------------------------------------------------------------------------

    def _decoded(self, video: str) -> Any:
        if video not in self._candidates:
            start = time.perf_counter()
            candidates = sample_candidates(
                video, self.num_candidates, size=self.frame_size, reader=self.video_reader
            )
            self._candidates[video] = (candidates, time.perf_counter() - start)
            while len(self._candidates) > _CACHE_VIDEOS:
                self._candidates.popitem(last=False)
        return self._candidates[video]

    def select(self, video: str, question: str, where: dict[str, Any] | None = None) -> Any:
        """The k frames for ``question`` about ``video`` (cached per video and question, so
        the options of a multiple-choice task share one selection)."""
        from fslabels.evaluation.strategies import uniform_selection

        key = (video, question)
        if key in self._selections:
            return self._selections[key]
        if self.strategy.needs_candidates:
            candidates, decode_seconds = self._decoded(video)
            selection = self.strategy.select(candidates, question, self.k)
            selection.cost.decode_seconds = decode_seconds
        else:
            selection = uniform_selection(
                video, self.k, self.num_candidates, self.frame_size, self.video_reader
            )
        self._selections[key] = selection
        while len(self._selections) > _CACHE_SELECTIONS:
            self._selections.popitem(last=False)
        if self.trace is not None:
            self.trace.parent.mkdir(parents=True, exist_ok=True)
            line = {
                **(where or {}),
                "video": video,
                "strategy": selection.strategy,
                "k": selection.k,
                "num_candidates": selection.num_candidates,
                "positions": selection.positions.tolist(),
                "frame_indices": selection.indices.tolist(),
                "timestamps": [round(float(t), 6) for t in selection.timestamps],
                "decode_seconds": selection.cost.decode_seconds,
                "selection_seconds": selection.cost.selection_seconds,
            }
            with self.trace.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return selection

    def frames(
        self, visuals: Sequence[Any], question: str, where: dict[str, Any] | None = None
    ) -> Any:
        """The frames to show for a request's visuals: a strategy's k frames of its one video,
        or the images themselves for image tasks.

        Raises:
            ValueError: no visual, several videos, or a mix of videos and images.
        """
        visuals = [v for v in (visuals or []) if v is not None]
        paths = [v for v in visuals if isinstance(v, (str, os.PathLike))]
        if not visuals:
            raise ValueError("the framesel model needs a video (the request has no visual)")
        if paths and len(paths) != len(visuals):
            raise ValueError("the framesel model takes one video or images, not a mix of both")
        if len(paths) > 1:
            raise ValueError(f"the framesel model takes one video per question, got {len(paths)}")
        if paths:
            return self.select(os.fspath(paths[0]), question, where).frames
        return [np.asarray(v.convert("RGB")) if hasattr(v, "convert") else v for v in visuals]

    # --- what lmms-eval asks for --------------------------------------------------------------

    def generate(
        self,
        context: str,
        visuals: Sequence[Any],
        gen_kwargs: dict[str, Any] | None = None,
        where: dict[str, Any] | None = None,
    ) -> str:
        gen_kwargs = dict(gen_kwargs or {})
        until = gen_kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        return self.answerer.generate_text(
            self.frames(visuals, context, where),
            context,
            max_new_tokens=gen_kwargs.get("max_new_tokens"),
            until=until,
        )

    def loglikelihood(
        self,
        context: str,
        continuation: str,
        visuals: Sequence[Any],
        where: dict[str, Any] | None = None,
    ) -> tuple[float, bool]:
        """``(mean negative log-likelihood per continuation token, is greedy)``: lmms-eval's
        convention (a loss; its multiple-choice scoring picks the lowest)."""
        score = self.answerer.loglikelihood(
            self.frames(visuals, context, where), context, continuation
        )
        return -score.logprob / score.num_tokens, score.is_greedy


def _build_model_class() -> type:
    from lmms_eval.api.model import lmms

    class FramesQAModel(lmms):
        """lmms-eval's view of `FrameselVideoQA` (``--model framesel``)."""

        is_simple = True

        def __init__(self, batch_size: int | str = 1, **kwargs: Any) -> None:
            super().__init__()
            if str(batch_size) not in ("1", "auto"):
                raise ValueError(
                    f"the framesel model answers one request at a time (batch_size=1), got {batch_size}"
                )
            self.core = FrameselVideoQA(**kwargs)

        def _visuals(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> list[Any]:
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            return visuals if isinstance(visuals, list) else [visuals]

        def generate_until(self, requests: list[Any]) -> list[str]:
            out = []
            for request in requests:
                context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
                where = {"task": task, "split": split, "doc_id": doc_id}
                visuals = self._visuals(doc_to_visual, doc_id, task, split)
                reply = self.core.generate(context, visuals, gen_kwargs, where)
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), reply)
                out.append(reply)
            return out

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            out = []
            for request in requests:
                context, continuation, doc_to_visual, doc_id, task, split = request.args
                where = {"task": task, "split": split, "doc_id": doc_id}
                visuals = self._visuals(doc_to_visual, doc_id, task, split)
                result = self.core.loglikelihood(context, continuation, visuals, where)
                self.cache_hook.add_partial("loglikelihood", (context, continuation), result)
                out.append(_passthrough(result))
            return out

        def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
            raise NotImplementedError(
                "the framesel model answers single-turn questions; multi-round tasks are not "
                "supported"
            )

    FramesQAModel.__module__ = __name__
    FramesQAModel.__qualname__ = "FramesQAModel"
    return FramesQAModel


def _passthrough(result: tuple[float, bool]) -> Any:
    # lmms-eval 0.7.3 turns a model output that is not a str, a (str, dict) pair or a
    # GenerationResult into str(output) (api/instance.py, unwrap_generation_output), so a
    # (loss, is_greedy) pair reaches its own multiple_choice scoring as "(6.49, False)" and
    # fails to unpack. A GenerationResult passes through unchanged.
    try:
        from lmms_eval.api.instance import GenerationResult
    except ImportError:  # older lmms-eval: plain tuples pass
        return result
    return GenerationResult(text=result)  # type: ignore[arg-type]


_BUILT: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    # lmms-eval imports "fslabels.evaluation.lmms_plugin.FramesQAModel": built on first access so this
    # module (and its manifest) import without lmms-eval installed.
    if name == "FramesQAModel":
        if name not in _BUILT:
            require("lmms_eval", extra="lmms", purpose="the framesel lmms-eval model")
            _BUILT[name] = _build_model_class()
        return _BUILT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
