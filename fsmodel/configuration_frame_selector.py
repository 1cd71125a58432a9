"""Configuration of the frame selector (Hu et al., CVPR 2025, arXiv 2502.19680).

This file ships to the Hub beside the weights as remote code (``auto_map``), so it imports only
transformers and the standard library: a checkpoint loads with
``AutoModel.from_pretrained(repo, trust_remote_code=True)`` where framesel is not installed.
"""

# No `from __future__ import annotations`: the config is a dataclass whose field annotations
# transformers may evaluate at runtime.
from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# google/siglip-so400m-patch14-384 vision tower (384 px, 14 px patches: a 27x27 patch grid). The
# attention-pooling head is dropped: the selector pools the patch grid itself.
SIGLIP_SO400M_VISION = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 384,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "vision_use_head": False,
}

# Qwen/Qwen2.5-1.5B-Instruct.
QWEN25_15B_TEXT = {
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "tie_word_embeddings": True,
}

# The pooling reshapes the vision tower's patch sequence into a square grid, which holds for SigLIP
# (no class token). Other towers would need their own feature extraction.
SUPPORTED_VISION_MODEL_TYPES = ("siglip_vision_model",)


class FrameSelectorConfig(PreTrainedConfig):
    r"""Configuration of a `FrameSelectorModel`: a SigLIP vision tower whose per-frame patch grid
    is pooled to ``pooled_grid x pooled_grid`` tokens and projected into a causal LLM that reads
    ``[instruction, frames..., question, score query]``; the score query's hidden state at
    ``score_layer`` goes through an MLP to ``num_candidates`` logits (one per candidate frame).

    The defaults describe the paper's production model: vision tower
    ``google/siglip-so400m-patch14-384`` (hidden 1152, 27 layers, 27x27 patches at 384 px, no
    pooling head) and LLM ``Qwen/Qwen2.5-1.5B-Instruct`` (hidden 1536, 28 layers, vocab 151936).
    The layout reuses Qwen's existing special tokens, so the vocabulary never changes:

    ===================== ===================== ============================
    role                  token                 Qwen2.5 id (default)
    ===================== ===================== ============================
    frame start           ``<|vision_start|>``  151652 (``frame_start_token_id``)
    frame end             ``<|vision_end|>``    151653 (``frame_end_token_id``)
    frame feature slot    ``<|image_pad|>``     151655 (``frame_token_id``)
    score-query slot      ``<|video_pad|>``     151656 (``score_token_id``)
    ===================== ===================== ============================

    Args:
        vision_config: a `SiglipVisionConfig` or a dict of one (a full ``SiglipConfig`` or its
            dict is accepted too: its vision part is used). ``None``: so400m sizes.
        text_config: a causal-LM config (default model type ``qwen2``) or a dict of one.
            ``None``: Qwen2.5-1.5B-Instruct sizes.
        num_candidates: n, the number of candidate frames the score head scores (its output
            width). Inputs may carry fewer frames; they are scored by the first logits.
        pooled_grid: each frame's patch grid is adaptively average-pooled to
            ``pooled_grid x pooled_grid`` tokens.
        projector_hidden_size: width of the projector MLP's hidden layer (``None``: the LLM's
            hidden size).
        projector_act: activation of the projector MLP.
        score_layer: which of the LLM's ``hidden_states`` feeds the score head; ``-2`` is the raw
            output of the penultimate decoder layer, ``-1`` the final (normed) hidden state.
        score_head_hidden_size: width of the score head's hidden layer (``None``: the LLM's hidden
            size).
        score_head_act: activation of the score head.
        frame_start_token_id, frame_end_token_id, frame_token_id, score_token_id: the layout's
            token ids (see the table).
        initializer_range: std of the normal initialisation of the projector, the score head and
            the score query.

    Raises:
        ValueError: on a value outside its rule (the message states both).

    Example:
        >>> config = FrameSelectorConfig(
        ...     vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        ...                    "intermediate_size": 64, "patch_size": 14, "image_size": 56},
        ...     text_config={"vocab_size": 768, "hidden_size": 64, "num_hidden_layers": 2,
        ...                  "num_attention_heads": 4, "num_key_value_heads": 2,
        ...                  "intermediate_size": 128},
        ...     num_candidates=16, frame_start_token_id=764, frame_end_token_id=765,
        ...     frame_token_id=766, score_token_id=767)
        >>> config.frame_tokens_per_frame, config.projector_hidden_size
        (9, 64)
    """

    model_type = "frame_selector"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="siglip_vision_model",
            init_kwargs=SIGLIP_SO400M_VISION,
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig, model_type="qwen2", init_kwargs=QWEN25_15B_TEXT
        ),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_candidates: int = 128
    pooled_grid: int = 3
    projector_hidden_size: int | None = None
    projector_act: str = "gelu"
    score_layer: int = -2
    score_head_hidden_size: int | None = None
    score_head_act: str = "gelu"
    frame_start_token_id: int = 151652
    frame_end_token_id: int = 151653
    frame_token_id: int = 151655
    score_token_id: int = 151656
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        # A full SigLIP (image + text) config names its vision tower in `vision_config`.
        if isinstance(self.vision_config, PreTrainedConfig):
            if getattr(self.vision_config, "model_type", None) == "siglip":
                self.vision_config = self.vision_config.vision_config
        elif (
            isinstance(self.vision_config, dict)
            and self.vision_config.get("model_type") == "siglip"
        ):
            self.vision_config = dict(self.vision_config.get("vision_config") or {})
        super().__post_init__(**kwargs)
        if self.projector_hidden_size is None:
            self.projector_hidden_size = self.text_config.hidden_size
        if self.score_head_hidden_size is None:
            self.score_head_hidden_size = self.text_config.hidden_size
        self._check()

    @property
    def frame_tokens_per_frame(self) -> int:
        """Feature tokens each frame contributes (``pooled_grid ** 2``)."""
        return self.pooled_grid**2

    @property
    def patch_grid(self) -> int:
        """Side of the vision tower's patch grid (``image_size // patch_size``)."""
        return _side(self.vision_config.image_size) // _side(self.vision_config.patch_size)

    def _check(self) -> None:
        vision_type = getattr(self.vision_config, "model_type", None)
        if vision_type not in SUPPORTED_VISION_MODEL_TYPES:
            raise ValueError(
                f"vision_config.model_type must be one of {SUPPORTED_VISION_MODEL_TYPES} (the pooling "
                f"needs a square patch grid without a class token), got {vision_type!r}"
            )
        if not hasattr(self.text_config, "hidden_size") or not hasattr(
            self.text_config, "vocab_size"
        ):
            raise ValueError(
                "text_config must describe a causal LM with hidden_size and vocab_size, got "
                f"{type(self.text_config).__name__}"
            )
        positive = {
            "num_candidates": self.num_candidates,
            "pooled_grid": self.pooled_grid,
            "projector_hidden_size": self.projector_hidden_size,
            "score_head_hidden_size": self.score_head_hidden_size,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.pooled_grid > self.patch_grid:
            raise ValueError(
                f"pooled_grid must be at most the vision tower's patch grid ({self.patch_grid} = "
                f"image_size // patch_size), got {self.pooled_grid}"
            )
        layers = self.text_config.num_hidden_layers
        if (
            isinstance(self.score_layer, bool)
            or not isinstance(self.score_layer, int)
            or not -(layers + 1) <= self.score_layer <= layers
        ):
            raise ValueError(
                f"score_layer indexes the LLM's {layers + 1} hidden states, so it must be an integer "
                f"in [{-(layers + 1)}, {layers}], got {self.score_layer!r}"
            )
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
            raise ValueError(
                f"initializer_range must be a positive number, got {self.initializer_range!r}"
            )
        ids = {
            "frame_start_token_id": self.frame_start_token_id,
            "frame_end_token_id": self.frame_end_token_id,
            "frame_token_id": self.frame_token_id,
            "score_token_id": self.score_token_id,
        }
        vocab = self.text_config.vocab_size
        for name, value in ids.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab:
                raise ValueError(
                    f"{name} must be a token id in [0, {vocab}) (the LLM's vocabulary), got {value!r}"
                )
        if len(set(ids.values())) != len(ids):
            raise ValueError(f"the layout token ids must be distinct, got {ids}")


def _side(value) -> int:
    # SigLIP sizes may be an int or a (height, width) pair; the pooling needs a square grid.
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"the vision tower must use square images and patches, got {value}")
        return int(value[0])
    return int(value)


__all__ = ["FrameSelectorConfig"]
