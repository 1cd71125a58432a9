"""The frame selector (Hu et al., CVPR 2025, arXiv 2502.19680) as a transformers model.

A SigLIP vision tower encodes every candidate frame; each frame's patch grid is average-pooled to
``pooled_grid x pooled_grid`` tokens and projected into a causal LLM (Qwen2.5-1.5B) that reads
``[instruction, frames..., question, score query]`` in one pass; the score query's hidden state at
``score_layer`` goes through an MLP to one logit per candidate frame. ``select_frames`` turns the
scores into k frames with the pure selection functions of ``selection.py``.

This file ships to the Hub beside the weights as remote code (``auto_map``), so it imports only
torch, transformers, numpy, the standard library and its sibling files: a checkpoint loads with
``AutoModel.from_pretrained(repo, trust_remote_code=True)`` where framesel is not installed.
Decoding a video file is the one thing that needs framesel itself (its frame sampler); frames
already in memory need nothing else.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedModel,
    SiglipVisionModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_frame_selector import FrameSelectorConfig
from .selection import get_rule, select_distinct

logger = logging.getLogger(__name__)

# The Qwen special tokens the layout reuses, by config field (see FrameSelectorConfig).
LAYOUT_TOKENS = {
    "frame_start_token_id": "<|vision_start|>",
    "frame_end_token_id": "<|vision_end|>",
    "frame_token_id": "<|image_pad|>",
    "score_token_id": "<|video_pad|>",
}


@dataclass
class FrameSelectorOutput(ModelOutput):
    """Output of `FrameSelectorModel.forward`.

    Attributes:
        loss: BCE-with-logits against the soft ``labels``, averaged over unmasked candidates
            (only when ``labels`` are given).
        logits: ``[B, n]`` one logit per candidate frame.
        scores: ``[B, n]`` ``sigmoid(logits)``.
        hidden_states: the LLM's hidden states (embeddings, then every layer) when
            ``output_hidden_states=True``.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SelectionResult:
    """The frames `FrameSelectorModel.select_frames` chose for one question.

    Attributes:
        indices: ``[k]`` frame indices in the video, ascending: ``min(k, N)`` distinct ones on a
            video of N frames (picks are made over distinct frames; only a video with fewer than
            k frames repeats one).
        timestamps: ``[k]`` their presentation times in seconds (``nan`` when unknown).
        positions: ``[k]`` the chosen candidate positions in ``0..n-1``, ascending.
        scores: ``[n]`` float32 score of every candidate.
        strategy: the selection strategy used.
        k: how many frames were chosen.
        repeated: ``[k]`` bool, a pick showing a frame an earlier pick shows.
    """

    indices: np.ndarray
    timestamps: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    strategy: str
    k: int
    repeated: np.ndarray | None = None


class FrameSelectorMLP(nn.Module):
    """Linear -> activation -> Linear (the projector and the score head)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, act: str):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_features)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(hidden_features, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(hidden_states)))


class FrameSelectorPreTrainedModel(PreTrainedModel):
    config_class = FrameSelectorConfig
    config: FrameSelectorConfig
    base_model_prefix = "frame_selector"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = [
        "SiglipVisionEmbeddings",
        "SiglipEncoderLayer",
        "Qwen2DecoderLayer",
    ]
    _supports_sdpa = True
    _supports_flash_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The vision tower and the LLM are PreTrainedModels: transformers dispatches their own
        # _init_weights. What reaches here is the projector, the score head and the query.
        super()._init_weights(module)
        if isinstance(module, FrameSelectorModel):
            init.normal_(module.score_query, mean=0.0, std=self.config.initializer_range)


class FrameSelectorModel(FrameSelectorPreTrainedModel):
    """Scores n candidate frames of a video for a question in one LLM pass.

    Modules: ``vision_model`` (SigLIP vision tower), ``projector`` (MLP, vision hidden -> LLM
    hidden), ``language_model`` (a causal LM, LM head kept for instruction tuning), ``score_query``
    (a learned embedding that replaces the ``<|video_pad|>`` placeholder, the last token of every
    row) and ``score_head`` (MLP, LLM hidden -> ``num_candidates`` logits). Freezing parts for
    training is the trainer's job.

    Args:
        config: a `FrameSelectorConfig`.
        vision_model, language_model: already-built (e.g. pretrained) sub-models to use instead of
            fresh ones; their weights are kept as they are (see `from_backbones`).

    Example:
        >>> import fsmodel  # registers the Auto classes
        >>> from transformers import AutoModel, AutoProcessor
        >>> model = AutoModel.from_pretrained("path/to/selector").eval()
        >>> processor = AutoProcessor.from_pretrained("path/to/selector")
        >>> batch = processor(frames=frames, question="What colour is the ball?")
        >>> model(**batch).scores.shape
        torch.Size([1, 128])
    """

    def __init__(
        self,
        config: FrameSelectorConfig,
        vision_model: PreTrainedModel | None = None,
        language_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        self.vision_model = (
            vision_model
            if vision_model is not None
            else AutoModel.from_config(config.vision_config)
        )
        self.projector = FrameSelectorMLP(
            config.vision_config.hidden_size,
            config.projector_hidden_size,
            config.text_config.hidden_size,
            config.projector_act,
        )
        self.language_model = (
            language_model
            if language_model is not None
            else AutoModelForCausalLM.from_config(config.text_config)
        )
        self.score_query = nn.Parameter(torch.zeros(config.text_config.hidden_size))
        self.score_head = FrameSelectorMLP(
            config.text_config.hidden_size,
            config.score_head_hidden_size,
            config.num_candidates,
            config.score_head_act,
        )
        for given in (vision_model, language_model):
            if given is not None:
                _mark_initialized(given)  # pretrained weights: post_init must leave them alone
        self._processor = None
        self.post_init()

    # --- embeddings -----------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def encode_frames(
        self, pixel_values: torch.Tensor, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Pooled, pre-projector frame features: what `forward` accepts as ``frame_features``.

        The vision tower runs on every frame; its ``g x g`` patch grid (``last_hidden_state``,
        after SigLIP's final layer norm) is adaptively average-pooled to
        ``pooled_grid x pooled_grid``, row-major. With a frozen tower these can be cached per
        video and fed back through ``forward(frame_features=...)``.

        Args:
            pixel_values: ``[B, n, 3, H, W]`` from the processor (H = W = the tower's image size).
            chunk_size: frames per vision-tower call (``None``: all ``B * n`` at once).

        Returns:
            ``[B, n, pooled_grid**2, vision_hidden]``.

        Raises:
            ValueError: if ``pixel_values`` has the wrong shape.
        """
        vision = self.config.vision_config
        # The tower's input resolution (384 for so400m/14, whose patch grid covers 378 px).
        size = _side(vision.image_size)
        expected = f"[B, n, {vision.num_channels}, {size}, {size}]"
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[2:]) != (
            vision.num_channels,
            size,
            size,
        ):
            raise ValueError(
                f"pixel_values must have shape {expected}, got {list(pixel_values.shape)}"
            )
        batch, n = pixel_values.shape[:2]
        flat = pixel_values.reshape(batch * n, *pixel_values.shape[2:])
        flat = flat.to(device=self.vision_model.device, dtype=self.vision_model.dtype)
        if batch * n == 0:
            raise ValueError(
                f"pixel_values must hold at least one frame, got {list(pixel_values.shape)}"
            )
        if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        pooled = [
            self._pool(self.vision_model(pixel_values=part).last_hidden_state)
            for part in flat.split(chunk_size or flat.shape[0])
        ]
        return torch.cat(pooled).reshape(batch, n, self.config.frame_tokens_per_frame, -1)

    def _pool(self, patches: torch.Tensor) -> torch.Tensor:
        # [frames, g*g, D] -> [frames, D, g, g] -> adaptive average pool -> [frames, p*p, D]
        frames, count, dim = patches.shape
        side = self.config.patch_grid
        if count != side * side:
            raise ValueError(
                f"the vision tower returned {count} patches per frame, expected {side}x{side}"
            )
        grid = patches.transpose(1, 2).reshape(frames, dim, side, side)
        pooled = F.adaptive_avg_pool2d(grid, self.config.pooled_grid)
        return pooled.flatten(2).transpose(1, 2)

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        frame_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The LLM's input embeddings with frame features and the score query in place.

        Every ``<|image_pad|>`` token is replaced, in order, by a projected pooled frame token
        (row b takes ``frame_features[b]`` flattened frame-major); every ``<|video_pad|>`` token
        by ``score_query``. Stage-1 instruction tuning can feed the result to
        ``language_model(inputs_embeds=..., labels=...)`` for a CE loss.

        Args:
            input_ids: ``[B, L]`` from the processor.
            pixel_values: ``[B, n, 3, H, W]``; or
            frame_features: ``[B, n, pooled_grid**2, vision_hidden]`` (from `encode_frames`).

        Returns:
            ``[B, L, text_hidden]``.

        Raises:
            ValueError: when both or neither of ``pixel_values``/``frame_features`` are given,
                on wrong shapes, or when a row's frame-token count is not ``n * pooled_grid**2``.
        """
        features = self._frame_features(pixel_values, frame_features)
        batch, n = features.shape[:2]
        if input_ids.ndim != 2 or input_ids.shape[0] != batch:
            raise ValueError(
                f"input_ids must have shape [B={batch}, L] to match the frames, got "
                f"{list(input_ids.shape)}"
            )
        embeds = self.get_input_embeddings()(input_ids)
        frame_mask = input_ids == self.config.frame_token_id
        per_row = frame_mask.sum(dim=1)
        expected = n * self.config.frame_tokens_per_frame
        if bool((per_row != expected).any()):
            raise ValueError(
                f"every row of input_ids must hold n * pooled_grid**2 = {n} * "
                f"{self.config.frame_tokens_per_frame} = {expected} frame tokens (id "
                f"{self.config.frame_token_id}), got {per_row.tolist()}"
            )
        projected = self.projector(features.to(device=embeds.device, dtype=self.projector_dtype))
        embeds = embeds.masked_scatter(
            frame_mask.unsqueeze(-1), projected.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        )
        query_mask = (input_ids == self.config.score_token_id).unsqueeze(-1)
        return torch.where(query_mask, self.score_query.to(embeds.dtype), embeds)

    @property
    def projector_dtype(self) -> torch.dtype:
        return self.projector.linear_1.weight.dtype

    def _frame_features(
        self, pixel_values: torch.Tensor | None, frame_features: torch.Tensor | None
    ) -> torch.Tensor:
        if (pixel_values is None) == (frame_features is None):
            raise ValueError("pass exactly one of pixel_values or frame_features")
        if pixel_values is not None:
            return self.encode_frames(pixel_values)
        expected = (self.config.frame_tokens_per_frame, self.config.vision_config.hidden_size)
        if frame_features.ndim != 4 or tuple(frame_features.shape[2:]) != expected:
            raise ValueError(
                f"frame_features must have shape [B, n, {expected[0]}, {expected[1]}] "
                "(pooled_grid**2 tokens of the vision hidden size, from encode_frames), got "
                f"{list(frame_features.shape)}"
            )
        return frame_features

    # --- forward --------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        frame_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        candidate_mask: torch.Tensor | None = None,
        label_weights: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> FrameSelectorOutput | tuple:
        """Score the candidate frames of each row.

        Args:
            input_ids: ``[B, L]`` from `FrameSelectorProcessor` (left-padded; one score
                placeholder per row, normally the last token).
            attention_mask: ``[B, L]`` (default: all ones).
            pixel_values: ``[B, n, 3, H, W]``; or
            frame_features: ``[B, n, pooled_grid**2, vision_hidden]`` precomputed by
                `encode_frames` (pooled, before the projector).
            labels: ``[B, n]`` soft targets in [0, 1]; gives a BCE-with-logits loss.
            candidate_mask: ``[B, n]`` bool, False for padded candidates, which the loss ignores
                (default: all True).
            label_weights: ``[B, n]`` per-candidate weights ≥ 0 of the loss (default: all 1); the
                loss stays a sum over the candidates divided by their count.
            output_hidden_states: also return the LLM's hidden states.
            return_dict: return a `FrameSelectorOutput` (default) or a tuple.
            **kwargs: passed to the LLM's base model (e.g. attention options).

        Returns:
            `FrameSelectorOutput` with ``loss`` (with labels), ``logits`` and ``scores``
            (``[B, n]``) and optionally ``hidden_states``.

        Raises:
            ValueError: on inconsistent shapes, token counts, label ranges or n larger than
                ``num_candidates``.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        # Cheap checks first: the vision tower is the expensive part of a bad call.
        frames = pixel_values if pixel_values is not None else frame_features
        n = frames.shape[1] if frames is not None and frames.ndim > 1 else 0
        if n > self.config.num_candidates:
            raise ValueError(
                f"got {n} frames per row but the score head scores at most num_candidates = "
                f"{self.config.num_candidates}"
            )
        query_pos = self._query_positions(input_ids)
        inputs_embeds = self.embed_inputs(input_ids, pixel_values, frame_features)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # Positions count real tokens only, so a left-padded row is scored as if unpadded.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        outputs = self.language_model.base_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=True,
            use_cache=False,
            return_dict=True,
            **kwargs,
        )
        hidden = outputs.hidden_states[self.config.score_layer]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        query_state = hidden[rows, query_pos.to(hidden.device)]
        logits = self.score_head(query_state.to(self.score_head.linear_1.weight.dtype))[:, :n]
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels, candidate_mask, label_weights)
        output = FrameSelectorOutput(
            loss=loss,
            logits=logits,
            scores=torch.sigmoid(logits),
            hidden_states=outputs.hidden_states if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()

    def _query_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        query_mask = input_ids == self.config.score_token_id
        counts = query_mask.sum(dim=1)
        if bool((counts != 1).any()):
            raise ValueError(
                "every row of input_ids must hold exactly one score-query token (id "
                f"{self.config.score_token_id}, <|video_pad|>), got counts {counts.tolist()}"
            )
        return query_mask.long().argmax(dim=1)

    @staticmethod
    def _loss(
        logits: torch.Tensor,
        labels: torch.Tensor,
        candidate_mask: torch.Tensor | None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"labels must have shape [B, n] = {list(logits.shape)}, got {list(labels.shape)}"
            )
        labels = labels.to(device=logits.device, dtype=torch.float32)
        if bool(((labels < 0) | (labels > 1)).any()) or not bool(torch.isfinite(labels).all()):
            raise ValueError("labels must be soft targets in [0, 1]")
        if candidate_mask is None:
            mask = torch.ones_like(labels)
        else:
            if tuple(candidate_mask.shape) != tuple(logits.shape):
                raise ValueError(
                    f"candidate_mask must have shape [B, n] = {list(logits.shape)}, got "
                    f"{list(candidate_mask.shape)}"
                )
            mask = candidate_mask.to(device=logits.device, dtype=torch.float32)
        per_candidate = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
        if weights is not None:
            if tuple(weights.shape) != tuple(logits.shape):
                raise ValueError(
                    f"label_weights must have shape [B, n] = {list(logits.shape)}, got "
                    f"{list(weights.shape)}"
                )
            weights = weights.to(device=logits.device, dtype=torch.float32)
            if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
                raise ValueError("label_weights must be finite and >= 0")
            per_candidate = per_candidate * weights
        return (per_candidate * mask).sum() / mask.sum().clamp(min=1.0)

    # --- building from pretrained backbones -----------------------------------------------------

    @classmethod
    def from_backbones(
        cls,
        vision: str | os.PathLike = "google/siglip-so400m-patch14-384",
        llm: str | os.PathLike = "Qwen/Qwen2.5-1.5B-Instruct",
        *,
        dtype: torch.dtype | str | None = None,
        **config_overrides: Any,
    ) -> FrameSelectorModel:
        """A selector from a pretrained SigLIP tower and a pretrained causal LLM, with a fresh
        projector, score query and score head (the starting point of stage-1 training).

        Args:
            vision: Hub id or local directory of a ``SiglipVisionModel`` or a full ``SiglipModel``
                checkpoint (only its vision tower is kept; the attention-pooling head is dropped).
            llm: Hub id or local directory of a causal LM with the Qwen special tokens in its
                tokenizer (the layout's token ids are read from it).
            dtype: dtype to load both backbones in (``None``: transformers' default, fp32); the
                fresh parts follow the LLM's dtype.
            **config_overrides: other `FrameSelectorConfig` fields (``num_candidates``,
                ``pooled_grid``, ``score_layer``...).

        Returns:
            A `FrameSelectorModel` in eval mode. Save it (with
            ``FrameSelectorProcessor.from_backbones(vision, llm)``) to get a loadable directory.

        Raises:
            ValueError: if the vision checkpoint is not SigLIP, or the tokenizer lacks a layout
                token.

        Example:
            >>> model = FrameSelectorModel.from_backbones(num_candidates=128)
        """
        load_kwargs = {} if dtype is None else {"dtype": dtype}
        vision_model = _load_vision_tower(vision, **load_kwargs)
        language_model = AutoModelForCausalLM.from_pretrained(llm, **load_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(llm)
        vocab = tokenizer.get_vocab()
        token_ids = {}
        for field, token in LAYOUT_TOKENS.items():
            if field in config_overrides:
                continue
            if token not in vocab:
                raise ValueError(
                    f"the tokenizer of {llm!s} has no {token} token; the selector's layout reuses "
                    f"the Qwen special tokens (or pass {field}=...)"
                )
            token_ids[field] = vocab[token]
        # The composite config's attn_implementation setter overwrites its sub-configs': hand the
        # loaded backbones' choices back, or both would fall back to eager attention.
        config_overrides.setdefault(
            "attn_implementation",
            {
                "": language_model.config._attn_implementation,
                "vision_config": vision_model.config._attn_implementation,
                "text_config": language_model.config._attn_implementation,
            },
        )
        config = FrameSelectorConfig(
            vision_config=vision_model.config,
            text_config=language_model.config,
            **token_ids,
            **config_overrides,
        )
        model = cls(config, vision_model=vision_model, language_model=language_model)
        fresh_dtype = language_model.dtype
        for module in (model.projector, model.score_head):
            module.to(fresh_dtype)
        model.score_query.data = model.score_query.data.to(fresh_dtype)
        return model.eval()

    # --- inference ------------------------------------------------------------------------------

    def get_processor(self):
        """The processor saved with this model (loaded once with ``AutoProcessor`` from
        ``config.name_or_path``, then cached); `set_processor` overrides it.

        Raises:
            ValueError: if the model was not loaded from a directory or repo holding a processor.
        """
        if self._processor is None:
            source = self.config.name_or_path or getattr(self, "name_or_path", "")
            if not source:
                raise ValueError(
                    "this model was not loaded from a directory or Hub repo, so there is no "
                    "processor to load; pass processor=FrameSelectorProcessor(...) (e.g. "
                    "FrameSelectorProcessor.from_backbones(vision, llm))"
                )
            # A model loaded as remote code was trusted by its user, and its processor's code
            # comes from the same repo; otherwise only the registered (installed) class may load.
            trusted = type(self).__module__.startswith("transformers_modules.")
            try:
                self._processor = AutoProcessor.from_pretrained(source, trust_remote_code=trusted)
            except (OSError, ValueError, TypeError) as err:
                raise ValueError(
                    f"could not load a processor from {source!r} ({err}); pass processor=..."
                ) from err
        return self._processor

    def frame_size(self, processor=None) -> int:
        """Short side (pixels) at which to decode candidate frames for this selector: the vision
        tower's input resolution (smaller would upscale, larger wastes decoding)."""
        return _decode_size(processor or self.get_processor(), self.config)

    def set_processor(self, processor) -> None:
        """Use ``processor`` for `select_frames` calls that pass none."""
        self._processor = processor

    def select_frames(
        self,
        video_or_frames: Any,
        question: str,
        k: int = 8,
        strategy: str = "nms",
        processor=None,
        num_candidates: int | None = None,
        timestamps: Sequence[float] | np.ndarray | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        options: Sequence[str] | None = None,
    ) -> SelectionResult:
        """Choose the ``k`` frames of a video that best help to answer ``question``.

        Args:
            video_or_frames: a video file path (sampled with framesel's ``fsmodel.video``
                sampler, n = ``num_candidates``), frames ``[n, H, W, 3]`` uint8 RGB (array, or a
                list of arrays / PIL images), or a ``Candidates`` from ``fsmodel.video``.
            question: the question (non-empty).
            k: how many frames to choose, 1 <= k <= n.
            strategy: ``"nms"`` (greedy NMS, the paper's) or another rule of `fsmodel.selection`
                (``"topk"``, ``"uniform"``, ``"inverse_transform"``).
            processor: a `FrameSelectorProcessor` (default: the one saved with the model).
            num_candidates: n for a video path (default: ``config.num_candidates``).
            timestamps, indices: per-candidate times (s) and frame indices for frames passed
                directly (default: indices are the positions, timestamps unknown (nan)).
            options: answer options, appended to the question in the prompt.

        Returns:
            `SelectionResult`.

        Raises:
            ValueError: empty question, k out of range, bad frame shapes, unknown strategy.
            fsmodel.video.VideoError: a video that cannot be sampled.
            ImportError: a video path without framesel installed.

        Example:
            >>> result = model.select_frames("clip.mp4", "When does the red ball appear?", k=8)
            >>> result.indices, result.timestamps
        """
        return self.select_frames_batch(
            [(video_or_frames, question)],
            k=k,
            strategy=strategy,
            processor=processor,
            num_candidates=num_candidates,
            timestamps=None if timestamps is None else [timestamps],
            indices=None if indices is None else [indices],
            options=None if options is None else [options],
        )[0]

    def select_frames_batch(
        self,
        items: Sequence[tuple[Any, str]],
        k: int = 8,
        strategy: str = "nms",
        processor=None,
        num_candidates: int | None = None,
        batch_size: int = 4,
        timestamps: Sequence[Any] | None = None,
        indices: Sequence[Any] | None = None,
        options: Sequence[Sequence[str] | None] | None = None,
    ) -> list[SelectionResult]:
        """`select_frames` for many ``(video_or_frames, question)`` pairs, ``batch_size`` rows per
        forward pass (rows with different n go to separate passes).

        ``timestamps``, ``indices`` and ``options``, when given, hold one entry (or ``None``) per
        item. Returns one `SelectionResult` per item, in order. Raises what `select_frames`
        raises; every item is validated before the model runs on any.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        _check_k(k)
        _check_strategy(strategy)
        per_item = {"timestamps": timestamps, "indices": indices, "options": options}
        for name, values in per_item.items():
            if values is not None and len(values) != len(items):
                raise ValueError(
                    f"{name} must hold one entry per item ({len(items)}), got {len(values)}"
                )
        n_video = self.config.num_candidates if num_candidates is None else num_candidates
        if isinstance(n_video, bool) or not isinstance(n_video, int) or n_video < 1:
            raise ValueError(f"num_candidates must be a positive integer, got {n_video!r}")
        if n_video > self.config.num_candidates:
            raise ValueError(
                f"num_candidates must be at most the model's num_candidates "
                f"({self.config.num_candidates}), got {n_video}"
            )
        for item in items:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f"items must be (video_or_frames, question) pairs, got {item!r}")
            _check_question(item[1])
            if _is_path(item[0]) and k > n_video:
                raise ValueError(
                    f"k must be between 1 and the number of candidates ({n_video}), got {k}"
                )
        processor = processor if processor is not None else self.get_processor()

        # Questions about one video share its decode and its frozen-tower features: the cost
        # grows with videos, not questions. Results keep the order of the items.
        results: list[SelectionResult | None] = [None] * len(items)
        for members in _group_by_video(items, timestamps, indices).values():
            first = members[0]
            sample = self._candidates(
                items[first][0],
                n_video,
                processor,
                None if timestamps is None else timestamps[first],
                None if indices is None else indices[first],
            )
            n = len(sample["frames"])
            if k > n:
                raise ValueError(f"k must be between 1 and the number of candidates ({n}), got {k}")
            if n > self.config.num_candidates:
                raise ValueError(
                    f"got {n} frames but the model scores at most num_candidates = "
                    f"{self.config.num_candidates}"
                )
            rows = self._score_video(
                sample,
                [items[i][1] for i in members],
                [None if options is None else options[i] for i in members],
                processor,
                batch_size,
            )
            for i, row in zip(members, rows, strict=True):
                picks = select_distinct(row, sample["indices"], k, strategy)
                positions = picks.positions
                results[i] = SelectionResult(
                    indices=sample["indices"][positions],
                    timestamps=sample["timestamps"][positions],
                    positions=positions,
                    scores=row,
                    strategy=strategy,
                    k=k,
                    repeated=picks.repeated,
                )
        return results  # type: ignore[return-value]

    def _candidates(self, source, n, processor, timestamps, indices) -> dict[str, np.ndarray]:
        if _is_path(source):
            video = _import_video_module()
            candidates = video.sample_candidates(
                source, num_candidates=n, size=self.frame_size(processor)
            )
            return {
                "frames": candidates.frames,
                "indices": np.asarray(candidates.indices, np.int64),
                "timestamps": np.asarray(candidates.timestamps, np.float64),
            }
        if all(hasattr(source, a) for a in ("frames", "indices", "timestamps")):
            # fsmodel.video.Candidates (duck-typed: this file must not import framesel)
            timestamps = source.timestamps if timestamps is None else timestamps
            indices = source.indices if indices is None else indices
            source = source.frames
        if not isinstance(source, (np.ndarray, list, tuple)) or len(source) == 0:
            raise ValueError(
                "frames must be a [n, H, W, 3] uint8 array or a non-empty list of frames, got "
                f"{type(source).__name__}"
            )
        frames = source  # the processor checks shapes and dtype
        n = len(frames)
        indices = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices)
        stamps = np.full(n, np.nan) if timestamps is None else np.asarray(timestamps, np.float64)
        for name, values in (("indices", indices), ("timestamps", stamps)):
            if values.shape != (n,):
                raise ValueError(
                    f"{name} must hold one value per frame ({n}), got shape {values.shape}"
                )
        return {"frames": frames, "indices": indices.astype(np.int64), "timestamps": stamps}

    def _score_video(self, sample, questions, options, processor, batch_size) -> list[np.ndarray]:
        """Scores of every question about one video: its frames through the vision tower once,
        then ``batch_size`` questions per language-model pass."""
        n = len(sample["frames"])
        stamps = sample["timestamps"] if getattr(processor, "timestamp_format", None) else None
        pixels = processor(
            frames=sample["frames"],
            question=questions[0],
            options=options[0],
            timestamps=stamps,
            return_tensors="pt",
        )["pixel_values"]
        device = self.language_model.device
        out: list[np.ndarray] = []
        with torch.no_grad():
            features = self.encode_frames(pixels)
            for start in range(0, len(questions), batch_size):
                part = slice(start, start + batch_size)
                count = len(questions[part])
                text = processor.text_inputs(
                    questions[part],
                    n,
                    options[part],
                    None if stamps is None else [stamps] * count,
                    return_tensors="pt",
                )
                scores = self(
                    input_ids=text["input_ids"].to(device),
                    attention_mask=text["attention_mask"].to(device),
                    frame_features=features.expand(count, *features.shape[1:]),
                ).scores
                out += [row.astype(np.float32) for row in scores.float().cpu().numpy()]
        return out


def _group_by_video(
    items: Sequence[tuple[Any, str]],
    timestamps: Sequence[Any] | None,
    indices: Sequence[Any] | None,
) -> dict[tuple, list[int]]:
    """Item positions by the video they ask about, in first-seen order: the same path, or the
    same frames object with the same timestamps and indices."""
    groups: dict[tuple, list[int]] = {}
    for i, (source, _) in enumerate(items):
        if _is_path(source):
            key: tuple = ("path", os.fspath(source))
        else:
            key = ("frames", id(source))
        extra = tuple(
            None if values is None or values[i] is None else id(values[i])
            for values in (timestamps, indices)
        )
        groups.setdefault((*key, *extra), []).append(i)
    return groups


def _mark_initialized(module: nn.Module) -> None:
    for sub in module.modules():
        sub._is_hf_initialized = True
    for tensor in (*module.parameters(), *module.buffers()):
        tensor._is_hf_initialized = True


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


@contextmanager
def _quiet_load_report():
    # A full SigLIP checkpoint has a text tower and a pooling head the selector does not use; the
    # load report would list hundreds of "unexpected" keys. Missing keys are checked instead.
    # (A filter, not a level: transformers runs extra checks when this logger's level is raised.)
    target = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


def _load_vision_tower(path: str | os.PathLike, **kwargs: Any) -> SiglipVisionModel:
    config = AutoConfig.from_pretrained(path)
    if config.model_type not in ("siglip", "siglip_vision_model"):
        raise ValueError(
            f"{path!s} is a {config.model_type!r} checkpoint; the selector's vision tower must be "
            "SigLIP ('siglip' or 'siglip_vision_model')"
        )
    with _quiet_load_report():
        model, info = SiglipVisionModel.from_pretrained(
            path, vision_use_head=False, output_loading_info=True, **kwargs
        )
    if info["missing_keys"]:
        raise ValueError(
            f"{path!s} lacks vision-tower weights: {sorted(info['missing_keys'])[:5]}..."
        )
    if info["unexpected_keys"]:
        logger.info(
            "%s: ignored %d weights outside the vision tower", path, len(info["unexpected_keys"])
        )
    return model


def _side(value) -> int:
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _check_strategy(strategy: str) -> None:
    get_rule(strategy)  # an unknown name lists the known ones


def _check_question(question: Any) -> None:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _decode_size(processor, config: FrameSelectorConfig) -> int:
    # Decode at the tower's input resolution: smaller would upscale, larger wastes decoding.
    size = getattr(getattr(processor, "image_processor", None), "size", None)
    for keys in (("height", "width"), ("shortest_edge",)):
        values = [_get(size, key) for key in keys]
        if size is not None and all(v is not None for v in values):
            return int(min(values))
    return _side(config.vision_config.image_size)


def _get(mapping: Any, key: str) -> Any:
    if isinstance(mapping, dict):
        return mapping.get(key)
    return getattr(mapping, key, None)


def _import_video_module():
    try:
        return importlib.import_module("fsmodel.video")
    except ImportError as err:
        raise ImportError(
            "sampling frames from a video file needs framesel's frame sampler: pip install "
            "framesel (or pass the frames as a [n, H, W, 3] uint8 array)"
        ) from err


__all__ = [
    "FrameSelectorModel",
    "FrameSelectorOutput",
    "FrameSelectorPreTrainedModel",
    "SelectionResult",
]
