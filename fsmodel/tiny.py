"""Offline tiny models for tests, demos and benchmarks.

Every builder writes a directory that the ordinary transformers loaders read
(``AutoTokenizer``, ``AutoModelForImageTextToText``, ``AutoModelForCausalLM``, ``AutoProcessor``,
``AutoModel``), built from configs of the real classes (Qwen2-VL, Qwen2, SigLIP, and the frame
selector on SigLIP + Qwen2) with a byte-level BPE tokenizer trained
here on a small built-in corpus. Nothing is downloaded, so CI and laptops without a GPU or the Hub
exercise the same code paths as production, only with random weights.

    >>> from fsmodel.tiny import build_all
    >>> paths = build_all("/tmp/framesel-tiny")  # cheap after the first call
    >>> sorted(paths)
    ['qwen2', 'qwen2-vl', 'selector', 'siglip', 'tokenizer']

The Qwen2-VL directory is laid out like a stock Hub checkpoint (``processor_config.json`` naming
``Qwen2VLProcessor`` with nested image and video processor settings, tokenizer files,
``chat_template.jinja``; no custom code), so code that loads it loads real checkpoints the same
way. ``AutoProcessor.from_pretrained(path)`` loads it wherever torchvision imports. Without
torchvision it cannot: transformers 5.x builds ``Qwen2VLProcessor``'s video processor eagerly and
every video processor needs torchvision (huggingface/transformers#48558). There, use
``fslabels.vlm.load_processor(path)``, which falls back to an image-only processor (video frames
go in as images).

Heavy libraries (torch, transformers, tokenizers) are imported inside the builders, so this
module adds nothing to import time beyond the ``fsmodel`` package itself (which loads torch and
transformers to register the frame selector's Auto classes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "ANSWER_WORDS",
    "DEFAULT_VOCAB_SIZE",
    "EOS_TOKEN",
    "MARKER_NAME",
    "PAD_TOKEN",
    "QWEN2_VL_CHAT_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "TINY_SELECTOR_CANDIDATES",
    "TINY_SIGLIP_IMAGE_SIZE",
    "build_all",
    "build_tiny_qwen2",
    "build_tiny_qwen2_vl",
    "build_tiny_selector",
    "build_tiny_siglip",
    "build_tiny_similarity",
    "build_tokenizer",
    "corpus_lines",
    "is_complete",
]

# Bump when a builder's output changes, so build_all rebuilds stale caches instead of reusing them.
RECIPE_VERSION = 2

# The Qwen2 / Qwen2-VL special tokens the project relies on, in Qwen's own relative id order.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"

# The spatial labeler reads p(True) / p(False) from one next-token distribution, so each of these
# must be exactly one token (with and without the leading space a reply may or may not carry).
ANSWER_WORDS: tuple[str, ...] = (" True", " False", "True", "False")

# The tiny SigLIP: 56 px images in 14 px patches, a 4x4 patch grid (pooled to the selector's 3x3).
TINY_SIGLIP_IMAGE_SIZE = 56
# Candidates the tiny selector's score head scores (production: 128).
TINY_SELECTOR_CANDIDATES = 16

# Total size including the special tokens; small enough that embeddings cost nothing.
DEFAULT_VOCAB_SIZE = 768

# Written last into every finished directory; its absence means "incomplete, rebuild".
MARKER_NAME = ".framesel-tiny.json"

# Qwen2-VL resizes to multiples of patch_size * merge_size = 28 within [min, max] pixels; these
# bounds keep a 64x48 frame at 56x56 (4 image tokens) and any frame at <= 16 image tokens.
TINY_MIN_PIXELS = 28 * 28
TINY_MAX_PIXELS = 112 * 112

# Qwen2's pre-tokenizer split: the tokenizer is trained with exactly the pipeline Qwen2Tokenizer
# rebuilds on load, so AutoTokenizer's Qwen2Tokenizer encodes exactly like the trained tokenizer.
_QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2-VL-Instruct's ChatML template: string or list content, image/video items rendered as
# vision placeholders the processor expands, a default system turn, add_generation_prompt.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# What a stock Qwen2-VL checkpoint names as its processor (processor_config.json, tokenizer_config).
_PROCESSOR_CLASS = "Qwen2VLProcessor"

# Vocabulary of the built-in corpus: the domain the project's prompts and replies talk about.
_COLOURS = ("red", "green", "blue", "yellow", "black", "white", "orange", "purple", "pink", "grey")
_SHAPES = ("circle", "square", "triangle", "star", "rectangle", "ball", "box", "line", "arrow")
_OBJECTS = ("person", "dog", "cat", "car", "bicycle", "ball", "cup", "book", "phone", "table")
_OBJECTS += ("chair", "tree", "door", "window", "screen", "bird", "boat", "train", "house", "hand")
_ACTIONS = ("walking", "running", "sitting", "jumping", "holding", "opening", "closing", "eating")
_ACTIONS += ("pointing at", "looking at", "moving", "throwing", "picking up", "putting down")
_PLACES = ("kitchen", "street", "park", "room", "office", "garden", "beach", "road", "stage")
_DIRECTIONS = ("left", "right", "up", "down", "towards the camera", "away from the camera")
_WHEN = ("at the start", "at the end", "in the middle", "near the beginning", "near the end")
_ANSWERS = ("True", "False")
# A broader everyday vocabulary, so captions read like captions and the BPE has words to merge.
_ADJECTIVES = ("small", "large", "tiny", "bright", "dark", "fast", "slow", "old", "new", "young")
_ADJECTIVES += ("happy", "empty", "full", "open", "closed", "wooden", "metal", "round", "tall")
_ADJECTIVES += ("short", "long", "wet", "dry", "clear", "busy", "quiet", "loud", "warm", "cold")
_NOUNS = ("man", "woman", "child", "girl", "boy", "player", "teacher", "student", "driver", "cook")
_NOUNS += ("bottle", "plate", "knife", "bag", "shoe", "hat", "shirt", "lamp", "wall", "floor")
_NOUNS += ("camera", "picture", "sign", "road", "river", "mountain", "sky", "cloud", "light")
_NOUNS += ("water", "food", "paper", "computer", "keyboard", "guitar", "piano", "horse", "fish")
_NOUNS += ("flower", "building", "bridge", "bus", "truck", "plane", "group", "crowd", "team")
_VERBS = ("appears", "disappears", "enters", "leaves", "turns", "stops", "starts", "falls")
_VERBS += ("rises", "waves", "smiles", "talks", "speaks", "writes", "reads", "plays", "cuts")
_VERBS += ("pours", "cleans", "drives", "rides", "climbs", "swims", "dances", "sings", "cooks")
_ADVERBS = ("slowly", "quickly", "again", "suddenly", "briefly", "twice", "once", "carefully")


def corpus_lines(seed: int = 0, n_lines: int = 4000) -> Iterator[str]:
    """Yield the deterministic English corpus the tiny tokenizer is trained on.

    Sentences about videos, frames, colours and shapes, questions and answers, numbers 0-200,
    JSON frame lists and chain-of-thought replies ending in True/False, the text the project's
    prompts and parsers handle.

    Args:
        seed: seed of the private random generator (the global one is left alone).
        n_lines: number of templated lines; fixed lines (numbers, answer words) come on top.

    Returns:
        An iterator of strings, identical for identical arguments.

    Example:
        >>> next(iter(corpus_lines()))
        'You are a helpful assistant.'
    """
    rng = random.Random(seed)
    yield "You are a helpful assistant."
    # Every number appears, so digits and number formatting are all covered.
    for n in range(201):
        yield f"Frame {n} of the video. Frame number {n}. There are {n} frames."
    for word in ("system", "user", "assistant"):
        # ChatML role names follow <|im_start|> with no space before them.
        for _ in range(50):
            yield word
    for answer in ("True", "False", "Yes", "No"):
        # Bare words at the start of a line: the reply "True" after "assistant\n" has no space.
        for _ in range(25):
            yield answer
            yield f"The answer is {answer}."
    templates = (
        "The video shows a {c} {s} moving {d} across the frame.",
        "Frame {n} shows a {c} {s} on a {c2} background.",
        "A {o} is {a} a {c} {o2} in the {p}.",
        "In frame {n}, a {o} is {a} the {o2} {w} of the video.",
        "Question: Is there a {c} {s} in frame {n}? Answer: {tf}",
        "Question: What colour is the {s}? Answer: The {s} is {c}.",
        "Question: How many {s}s are in the video? Answer: {k}",
        "Question: What is the {o} doing? Options: A. {a}, B. {a2}. Answer: A",
        'Does this frame help to answer the question "{q}"? Answer True or False.',
        "The frame shows a {c} {s} and a {o}, so the answer is {tf}.",
        "The frame shows a {o} {a} a {o2}. This is relevant to the question, so the answer is {tf}.",
        "Let's think step by step. The frame shows a {c} {s} {w}, so the answer is {tf}.",
        "The frame does not show a {o}, so it cannot help. The answer is False.",
        "The frame clearly shows the {c} {s}, which the question asks about. The answer is True.",
        "Caption: a {c} {s} next to a {o} in the {p}.",
        "Here are the captions of the frames. Which frames help to answer the question?",
        '{{"frames": [{f}]}}',
        'The helpful frames are {{"frames": [{f}]}}',
        "Yes, the {o} is {a} the {o2}.",
        "No, there is no {c} {s} in this frame.",
        "{tf}",
        "The {j} {m} {v} {b} near the {m2}, then the {j2} {o} {v2}.",
        "Caption: a {j} {m} {v} in the {p} while a {m2} {v2} {b}.",
        "Summary: the {m} {v}, the {o} is {a} a {j} {m2}, and the camera {v2}.",
    )
    questions = (
        "What colour is the {s}?",
        "Is the {o} {a} the {o2}?",
        "Where does the {c} {s} go?",
        "What happens {w} of the video?",
        "How many times does the {o} appear?",
    )
    for i in range(n_lines):
        fields = {
            "c": rng.choice(_COLOURS),
            "c2": rng.choice(_COLOURS),
            "s": rng.choice(_SHAPES),
            "o": rng.choice(_OBJECTS),
            "o2": rng.choice(_OBJECTS),
            "a": rng.choice(_ACTIONS),
            "a2": rng.choice(_ACTIONS),
            "p": rng.choice(_PLACES),
            "d": rng.choice(_DIRECTIONS),
            "w": rng.choice(_WHEN),
            "n": rng.randint(0, 200),
            "k": rng.randint(0, 12),
            "tf": rng.choice(_ANSWERS),
            "j": rng.choice(_ADJECTIVES),
            "j2": rng.choice(_ADJECTIVES),
            "m": rng.choice(_NOUNS),
            "m2": rng.choice(_NOUNS),
            "v": rng.choice(_VERBS),
            "v2": rng.choice(_VERBS),
            "b": rng.choice(_ADVERBS),
            "f": ", ".join(str(x) for x in sorted(rng.sample(range(128), rng.randint(1, 6)))),
        }
        fields["q"] = rng.choice(questions).format(**fields)
        yield templates[i % len(templates)].format(**fields)


def build_tokenizer(
    out_dir: str | os.PathLike[str], vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train the tiny byte-level BPE tokenizer and save it where ``AutoTokenizer`` finds it.

    The tokenizer is a ``Qwen2Tokenizer`` (a ``PreTrainedTokenizerFast``): Qwen2's
    pre-tokenizer, the Qwen special tokens (pad ``<|endoftext|>``, eos ``<|im_end|>``, the
    vision tokens) after the learned vocabulary, Qwen2-VL's ChatML chat template, and
    " True", " False", "True", "False" as single tokens.

    Args:
        out_dir: directory to write (created if missing; existing tokenizer files replaced).
        vocab_size: total vocabulary size including the special tokens. The result can be smaller
            if the corpus runs out of merges.

    Returns:
        The tokenizer, equal to ``AutoTokenizer.from_pretrained(out_dir)``.

    Raises:
        ValueError: if ``vocab_size`` cannot hold the 256 byte symbols and the special tokens.
        RuntimeError: if an answer word did not become a single token (vocabulary too small).

    Example:
        >>> tok = build_tokenizer("/tmp/tiny-tokenizer")
        >>> len(tok(" True", add_special_tokens=False).input_ids)
        1
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import Qwen2Tokenizer

    minimum = 256 + len(QWEN_SPECIAL_TOKENS) + 8
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must hold the 256 byte symbols, "
            f"{len(QWEN_SPECIAL_TOKENS)} special tokens and some merges (>= {minimum})."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # Same model settings and pipeline as transformers' Qwen2Tokenizer.__init__ (see the regex).
    raw = Tokenizer(
        models.BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN_SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        # All 256 byte symbols, so any text (any language, emoji) encodes without an unk token.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    raw.train_from_iterator(corpus_lines(), trainer=trainer)

    model = json.loads(raw.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # Special tokens follow the learned vocabulary, as in Qwen (151643 = <|endoftext|>, ...).
    added = {
        len(vocab) + i: AddedToken(token, special=True, normalized=False)
        for i, token in enumerate(QWEN_SPECIAL_TOKENS)
    }
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[t for t in QWEN_SPECIAL_TOKENS if t not in (PAD_TOKEN, EOS_TOKEN)],
        added_tokens_decoder=added,
        model_max_length=32768,
        errors="replace",
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )

    for token in QWEN_SPECIAL_TOKENS:
        got = tokenizer.convert_tokens_to_ids(token)
        if got != len(vocab) + QWEN_SPECIAL_TOKENS.index(token):
            raise RuntimeError(f"special token {token!r} got id {got}, expected it after the vocab")
    for word in ANSWER_WORDS:
        pieces = tokenizer.tokenize(word)
        if len(pieces) != 1:
            raise RuntimeError(
                f"{word!r} is {len(pieces)} tokens {pieces} with vocab_size={vocab_size}; the "
                "spatial labeler needs it to be one token. Use a larger vocab_size."
            )

    tokenizer.save_pretrained(out)
    return tokenizer


def build_tiny_qwen2_vl(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    tokenizer: str | os.PathLike[str] | PreTrainedTokenizerFast | None = None,
) -> Path:
    """Write a tiny random-weight Qwen2-VL (``Qwen2VLForConditionalGeneration``) with its processor.

    Text model: hidden 64, 2 layers, 4 heads (2 KV heads), M-RoPE sections [2, 3, 3]. Vision
    tower: depth 1, embed dim 32, patch 14, 2x2 merge into the 64-d text space. fp32, weights
    drawn from ``torch.manual_seed(seed)`` (the caller's RNG state is restored). Token ids come
    from the tokenizer; image pixels are bounded by ``TINY_MIN_PIXELS``/``TINY_MAX_PIXELS``.

    The directory looks like a stock checkpoint: it loads with
    ``AutoModelForImageTextToText.from_pretrained(out_dir)``, and its processor with
    ``AutoProcessor.from_pretrained(out_dir)`` where torchvision imports or
    ``fslabels.vlm.load_processor(out_dir)`` anywhere (see the module docstring).

    Args:
        out_dir: directory to write (created if missing).
        seed: seed of the random initialisation.
        tokenizer: a tokenizer, or a directory holding one; ``None`` trains the default one.

    Returns:
        ``Path(out_dir)``, with the completeness marker written last.

    Raises:
        RuntimeError: if the tokenizer lacks a Qwen special token.

    Example:
        >>> path = build_tiny_qwen2_vl("/tmp/tiny-qwen2-vl")
        >>> from transformers import AutoModelForImageTextToText
        >>> model = AutoModelForImageTextToText.from_pretrained(path)
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    out = _start_dir(out_dir)
    tok = _resolve_tokenizer(tokenizer, out)
    ids = _special_ids(tok)
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "max_window_layers": 2,
            # head_dim 16: the temporal/height/width sections must sum to head_dim / 2.
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": ids[PAD_TOKEN],
            "eos_token_id": ids[EOS_TOKEN],
            "pad_token_id": ids[PAD_TOKEN],
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 64,  # the merger projects into the text model's width
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = _generation_config(GenerationConfig, ids)
    model.save_pretrained(out)

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS
    )
    _save_processor_files(out, image_processor, tok)
    _write_marker(out, "qwen2-vl", seed=seed, vocab_size=len(tok))
    return out


def build_tiny_qwen2(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    tokenizer: str | os.PathLike[str] | PreTrainedTokenizerFast | None = None,
) -> Path:
    """Write a tiny random-weight text LLM (``Qwen2ForCausalLM``) with the tiny tokenizer.

    hidden 64, 2 layers, 4 heads (2 KV heads), tied embeddings like Qwen2.5-1.5B, fp32, weights
    drawn from ``torch.manual_seed(seed)`` (the caller's RNG state is restored).

    Args:
        out_dir: directory to write (created if missing).
        seed: seed of the random initialisation.
        tokenizer: a tokenizer, or a directory holding one; ``None`` trains the default one.

    Returns:
        ``Path(out_dir)``, with the completeness marker written last.

    Raises:
        RuntimeError: if the tokenizer lacks a Qwen special token.

    Example:
        >>> path = build_tiny_qwen2("/tmp/tiny-qwen2")
        >>> from transformers import AutoModelForCausalLM
        >>> model = AutoModelForCausalLM.from_pretrained(path)
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = _start_dir(out_dir)
    tok = _resolve_tokenizer(tokenizer, out)
    ids = _special_ids(tok)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        max_window_layers=2,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.generation_config = _generation_config(GenerationConfig, ids)
    model.save_pretrained(out)
    _write_marker(out, "qwen2", seed=seed, vocab_size=len(tok))
    return out


def build_tiny_siglip(out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny random-weight SigLIP (a full ``SiglipModel``, like
    ``google/siglip-so400m-patch14-384``) with its image processor.

    Vision tower: hidden 32, 2 layers, 2 heads, patch 14, image size 56 (a 4x4 patch grid). Text
    tower: hidden 32, 1 layer, vocab 64 (present only because full SigLIP checkpoints carry one;
    the selector keeps the vision tower). Image processor: ``SiglipImageProcessorPil`` resizing to
    56x56 (``AutoImageProcessor`` loads it with or without torchvision). fp32, weights drawn from
    ``torch.manual_seed(seed)`` (the caller's RNG state is restored).

    Args:
        out_dir: directory to write (created if missing).
        seed: seed of the random initialisation.

    Returns:
        ``Path(out_dir)``, with the completeness marker written last.

    Example:
        >>> path = build_tiny_siglip("/tmp/tiny-siglip")
        >>> from transformers import SiglipVisionModel
        >>> tower = SiglipVisionModel.from_pretrained(path)  # the vision part of the checkpoint
    """
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    out = _start_dir(out_dir)
    config = SiglipConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "patch_size": 14,
            "image_size": TINY_SIGLIP_IMAGE_SIZE,
        },
        text_config={
            "vocab_size": 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            # The defaults (49406/49407) lie outside a 64-token vocabulary.
            "pad_token_id": 1,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SiglipModel(config).to(torch.float32).eval()
    model.save_pretrained(out)
    size = {"height": TINY_SIGLIP_IMAGE_SIZE, "width": TINY_SIGLIP_IMAGE_SIZE}
    SiglipImageProcessorPil(size=size).save_pretrained(out)
    _write_marker(out, "siglip", seed=seed)
    return out


def build_tiny_similarity(
    out_dir: str | os.PathLike[str], tokenizer_dir: str | os.PathLike[str], seed: int = 0
) -> Path:
    """A tiny random SigLIP *dual* encoder (text and vision towers) with the tiny BPE tokenizer
    and a 56 px image processor, saved like a Hub checkpoint: what text–image similarity
    selection (`fslabels.evaluation.strategies`, "similarity") loads. `build_tiny_siglip` is the vision
    tower the selector uses, without a tokenizer.

    Returns at once when ``out_dir`` already holds a checkpoint.
    """
    import torch
    from transformers import AutoTokenizer, SiglipConfig, SiglipImageProcessorPil, SiglipModel

    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = SiglipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "patch_size": 14, "image_size": 56},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 32, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.pad_token_id,
                     "eos_token_id": tokenizer.eos_token_id},
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SiglipModel(config).eval()
    model.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": 56, "width": 56}).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_selector(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    vision: str | os.PathLike[str] | None = None,
    llm: str | os.PathLike[str] | None = None,
    question_first: bool = False,
    num_candidates: int = TINY_SELECTOR_CANDIDATES,
) -> Path:
    """Write a tiny frame selector: ``FrameSelectorModel.from_backbones`` over a tiny SigLIP and
    the tiny Qwen2, saved with its processor and its code (``auto_map``), so the directory loads
    with ``AutoModel``/``AutoProcessor`` after ``import fsmodel`` and with
    ``trust_remote_code=True`` anywhere.

    16 candidates by default (``TINY_SELECTOR_CANDIDATES``), 3x3 pooled grid (9 tokens per
    frame), score layer -2; the projector, score query and score head are drawn from
    ``torch.manual_seed(seed)`` (the caller's RNG state is restored).

    Args:
        out_dir: directory to write (created if missing).
        seed: seed of the fresh parts (and of the backbones when they are built here).
        vision: a tiny SigLIP directory (``None``: build one in a temporary directory).
        llm: a tiny Qwen2 directory with its tokenizer (``None``: build one likewise).
        question_first: the processor writes the question before the frames
            (`FrameSelectorProcessor`'s layout option).
        num_candidates: the most candidates the score head scores (n).

    Returns:
        ``Path(out_dir)``, with the completeness marker written last.

    Example:
        >>> path = build_tiny_selector("/tmp/tiny-selector")
        >>> import fsmodel
        >>> from transformers import AutoModel
        >>> model = AutoModel.from_pretrained(path)
    """
    import torch

    from fsmodel.modeling_frame_selector import FrameSelectorModel
    from fsmodel.processing_frame_selector import FrameSelectorProcessor

    out = _start_dir(out_dir)
    with tempfile.TemporaryDirectory(prefix="framesel-tiny-backbones-") as scratch:
        if vision is None:
            vision = build_tiny_siglip(Path(scratch) / "siglip", seed)
        if llm is None:
            llm = build_tiny_qwen2(Path(scratch) / "qwen2", seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = FrameSelectorModel.from_backbones(vision, llm, num_candidates=num_candidates)
        processor = FrameSelectorProcessor.from_backbones(
            vision, llm, pooled_grid=model.config.pooled_grid, question_first=question_first
        )
        model.save_pretrained(out)
        processor.save_pretrained(out)
    _write_marker(
        out, "selector", seed=seed, question_first=question_first, num_candidates=num_candidates
    )
    return out


def build_all(out_dir: str | os.PathLike[str], *, seed: int = 0) -> dict[str, Path]:
    """Build (or reuse) every tiny artefact under one root directory.

    Writes ``tokenizer/``, ``qwen2-vl/``, ``qwen2/``, ``siglip/`` and ``selector/`` (built from
    the last two, with its code files). A subdirectory whose marker records the
    same recipe, seed and transformers version is reused untouched, so calling this from every
    test session or demo costs milliseconds after the first time. Each part is built in a
    temporary sibling and renamed into place, so an interrupted or concurrent build never leaves
    a half-written directory that looks complete.

    Args:
        out_dir: root directory (created if missing).
        seed: seed of the random initialisation of the models.

    Returns:
        ``{"tokenizer": path, "qwen2-vl": path, "qwen2": path, "siglip": path,
        "selector": path}``.

    Example:
        >>> paths = build_all("/tmp/framesel-tiny")
        >>> paths["qwen2-vl"].name
        'qwen2-vl'
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tok_dir = _build_once(root / "tokenizer", "tokenizer", 0, _build_tokenizer_dir)
    paths = {
        "tokenizer": tok_dir,
        "qwen2-vl": _build_once(
            root / "qwen2-vl", "qwen2-vl", seed, lambda d: build_tiny_qwen2_vl(d, seed, tok_dir)
        ),
        "qwen2": _build_once(
            root / "qwen2", "qwen2", seed, lambda d: build_tiny_qwen2(d, seed, tok_dir)
        ),
        "siglip": _build_once(
            root / "siglip", "siglip", seed, lambda d: build_tiny_siglip(d, seed)
        ),
    }
    paths["selector"] = _build_once(
        root / "selector",
        "selector",
        seed,
        lambda d: build_tiny_selector(d, seed, vision=paths["siglip"], llm=paths["qwen2"]),
    )
    return paths


def is_complete(path: str | os.PathLike[str], kind: str, seed: int = 0) -> bool:
    """Tell whether ``path`` holds a finished tiny artefact of this recipe.

    Args:
        path: a directory written by one of the builders.
        kind: ``"tokenizer"``, ``"qwen2-vl"``, ``"qwen2"``, ``"siglip"`` or ``"selector"``.
        seed: the seed it must have been built with.

    Returns:
        True if the marker exists and records the same kind, seed, recipe version and
        transformers version (for the selector, also the same model code: its directory carries
        copies of the code files).

    Example:
        >>> is_complete("/nonexistent", "qwen2")
        False
    """
    try:
        marker = json.loads((Path(path) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker == {**marker, **_marker_identity(kind, seed)}


def _marker_identity(kind: str, seed: int) -> dict[str, object]:
    import transformers

    # Other transformers versions may save differently; rebuilding is cheap, stale files are not.
    identity: dict[str, object] = {
        "kind": kind,
        "seed": seed,
        "recipe_version": RECIPE_VERSION,
        "transformers": transformers.__version__,
    }
    if kind == "selector":
        identity["code"] = _selector_code_hash()
    return identity


# The files FrameSelectorModel.save_pretrained copies beside the weights (remote code).
_SELECTOR_CODE_FILES = (
    "configuration_frame_selector.py",
    "modeling_frame_selector.py",
    "processing_frame_selector.py",
    "selection.py",
)


def _selector_code_hash() -> str:
    import hashlib

    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SELECTOR_CODE_FILES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()[:16]


def _write_marker(out: Path, kind: str, seed: int, **extra: object) -> None:
    payload = {**_marker_identity(kind, seed), **extra}
    (out / MARKER_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")


def _start_dir(out_dir: str | os.PathLike[str]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A rebuild in place must not look complete until its new marker is written.
    (out / MARKER_NAME).unlink(missing_ok=True)
    return out


def _build_tokenizer_dir(out: Path) -> Path:
    tok = build_tokenizer(out)
    _write_marker(out, "tokenizer", seed=0, vocab_size=len(tok))
    return out


def _build_once(target: Path, kind: str, seed: int, build) -> Path:
    if is_complete(target, kind, seed):
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        if target.exists():
            if is_complete(target, kind, seed):  # a concurrent build finished first
                return target
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process renamed its finished copy in between: use it if it is complete.
            if not is_complete(target, kind, seed):
                raise
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _resolve_tokenizer(
    tokenizer: str | os.PathLike[str] | PreTrainedTokenizerFast | None, out: Path
) -> PreTrainedTokenizerFast:
    if tokenizer is None:
        return build_tokenizer(out)
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    # Model directories carry their own tokenizer files, like every Hub checkpoint.
    tokenizer.save_pretrained(out)
    return tokenizer


def _special_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    vocab = tokenizer.get_vocab()
    missing = [t for t in QWEN_SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise RuntimeError(f"the tokenizer lacks the Qwen special tokens {missing}")
    return {t: vocab[t] for t in QWEN_SPECIAL_TOKENS}


def _generation_config(generation_config_cls, ids: dict[str, int]):
    # Greedy by default: tests compare token sequences, which sampling would make flaky.
    return generation_config_cls(
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=[ids[EOS_TOKEN], ids[PAD_TOKEN]],
        pad_token_id=ids[PAD_TOKEN],
        do_sample=False,
    )


def _save_processor_files(out: Path, image_processor, tokenizer) -> None:
    # No Qwen2VLProcessor can be instantiated without torchvision (its video processor), so this
    # writes by hand exactly what ProcessorMixin.save_pretrained writes (transformers 5.23): the
    # tokenizer files tagged with the processor class, chat_template.jinja, and processor_config.json
    # from the sub-processors' to_dict(), sorted, indent 2, trailing newline.
    previous = getattr(tokenizer, "_processor_class", None)
    tokenizer._set_processor_class(_PROCESSOR_CLASS)
    try:
        tokenizer.save_pretrained(out)
    finally:
        tokenizer._set_processor_class(previous)  # a caller's tokenizer object is left as it was
    (out / "chat_template.jinja").write_text(QWEN2_VL_CHAT_TEMPLATE, encoding="utf-8")
    config = {
        "image_processor": image_processor.to_dict(),
        "processor_class": _PROCESSOR_CLASS,
        # Qwen2VLVideoProcessor (hence its to_dict) needs torchvision too: write the settings that
        # must match the model and the image processor; from_pretrained fills in its defaults.
        "video_processor": {
            "video_processor_type": "Qwen2VLVideoProcessor",
            "size": {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS},
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
        },
    }
    (out / "processor_config.json").write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "tiny-models"
    for name, built in build_all(target).items():
        print(f"{name}: {built}")
