"""The recipe that trains the world's teachers (see `fslabels.evaluation.teachers`).

Same classes, tokenizer and chat template as the tiny models (`fsmodel.tiny`), sized up; the
prompts are the production labelers' own (`SpatialLabeler.request`, `Captioner.requests`,
`TemporalLabeler.request`), so only the weights differ from any other run. Seeded throughout.

**M-LLM** (Qwen2-VL; text hidden 128, 3 layers; vision depth 2, width 64):

1. *vision warm-up*: the vision tower and merger learn to tell the world's 19 frame contents apart
   (18 coloured shapes and the empty background) through a linear probe on their pooled tokens.
   Without it the language model learns the answer prior and never looks at the image;
2. *language*: next-token loss on the replies only, over two tasks mixed 40/60 — captions
   ("A red circle.") for `CAPTION_PROMPT`, and judgements for the chain-of-thought spatial
   prompt: "The frame shows a red circle.\nAnswer: True", True when the shape the question names
   is on the frame (for an order question: its anchor).

Frames are the candidates of encoded world videos decoded by the one sampler (`frame_size`
null: as stored), 60 % of them drawn from inside an event.

**Text LLM** (Qwen2; hidden 128, 4 layers): the temporal prompt built from the captions the
M-LLM writes, replying ``{"frames": [...]}`` with the candidates inside the question's truth
spans (presence and count: every occurrence; order: the anchor and the next event). A
curriculum over the number of caption lines — every 4th candidate (8 lines), every 2nd (16),
then all 32 — is what lets it learn to copy frame numbers: trained on 32 lines from the start,
its loss stalls at the answer prior (0.8 nats per token after 700 steps, measured).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fslabels.spatial import COT_INSTRUCTION, format_question
from fslabels.temporal import CAPTION_PROMPT, TemporalLabeler
from fsmodel.synthetic import COLORS, SHAPES, WORLD, WorldVideo, frame_caption, world_videos
from fsmodel.video import sample_candidates

__all__ = ["RECIPE", "caption_text", "train_teachers"]

# Everything the recipe is run with (hashed into the recipe hash with this file's source).
RECIPE: dict[str, Any] = {
    "seed": 0,
    "train_videos": 400,
    "vlm": {"hidden": 128, "layers": 3, "vision_depth": 2, "vision_width": 64,
            "probe_steps": 300, "probe_batch": 64, "steps": 2500, "batch": 16, "lr": 2e-3,
            "caption_share": 0.4, "inside_event": 0.6},
    "llm": {"hidden": 128, "layers": 4, "steps": 3000, "batch": 8, "lr": 2e-3,
            "curriculum": [[0, 8], [800, 16], [1600, 32]]},
}  # fmt: skip

Log = Callable[[str], None]


def caption_text(events: Any, index: int) -> str:
    """The caption the M-LLM is taught for a frame: ``"A red circle."``."""
    text = frame_caption(events, index)
    return text[0].upper() + text[1:] + "."


def train_teachers(out_dir: str | os.PathLike[str], log: Log = print) -> dict[str, Path]:
    """Train both teachers into ``out_dir/vlm`` and ``out_dir/llm`` (see the module docstring).

    Returns:
        ``{"vlm": dir, "llm": dir}``.
    """
    import torch

    from fsmodel.tiny import build_all

    torch.manual_seed(RECIPE["seed"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="framesel-teachers-") as scratch:
        tiny = build_all(Path(scratch) / "tiny", seed=RECIPE["seed"])
        videos = world_videos(RECIPE["train_videos"], seed=RECIPE["seed"] + 1000, prefix="t")
        frames = _decoded_candidates(videos, Path(scratch) / "videos")
        vlm = _train_vlm(tiny["qwen2-vl"], out / "vlm", videos, frames, log)
        llm = _train_llm(tiny["qwen2"], out / "llm", videos, log)
    return {"vlm": vlm, "llm": llm}


def _decoded_candidates(videos: list[WorldVideo], where: Path) -> list[Any]:
    """Each training video's candidate frames as the label run decodes them."""
    out = []
    for i, video in enumerate(videos):
        clip = video.write(where / f"{video.video_id}.mp4", seed=i)
        out.append(sample_candidates(clip.path, num_candidates=WORLD.num_candidates, size=None))
    return out


def _resize(model_dir: Path, out: Path, build: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Copy a tiny model directory (tokenizer, processor, generation config) to ``out`` and
    give it a fresh, larger model built from its config."""
    from transformers import AutoConfig

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns(".framesel-tiny.json"))
    config = AutoConfig.from_pretrained(out)
    model = build(config)
    return config, model


def _train_vlm(
    tiny_dir: Path, out: Path, videos: list[WorldVideo], frames: list[Any], log: Log
) -> Path:
    import torch
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration

    from fslabels.vlm import load_processor

    spec = RECIPE["vlm"]
    hidden = spec["hidden"]

    def build(config: Any) -> Any:
        text = config.text_config
        text.hidden_size, text.intermediate_size = hidden, 2 * hidden
        text.num_hidden_layers = text.max_window_layers = spec["layers"]
        text.num_attention_heads = text.num_key_value_heads = hidden // 32
        text.layer_types = ["full_attention"] * spec["layers"]
        # head_dim 32: the M-RoPE sections (temporal, height, width) sum to head_dim / 2
        text.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [4, 6, 6]}  # fmt: skip
        vision = config.vision_config
        vision.depth, vision.embed_dim = spec["vision_depth"], spec["vision_width"]
        vision.num_heads, vision.hidden_size = 4, hidden
        return Qwen2VLForConditionalGeneration(config).to(torch.float32)

    _, model = _resize(tiny_dir, out, build)
    processor = load_processor(out)
    tokenizer = processor.tokenizer
    rng = np.random.default_rng(RECIPE["seed"] + 1)
    classes = ["empty"] + [f"{c} {s}" for c in COLORS for s in SHAPES]

    def draw() -> tuple[WorldVideo, int, Any]:
        v = int(rng.integers(len(videos)))
        video, candidates = videos[v], frames[v]
        indices = candidates.indices
        if rng.random() < spec["inside_event"]:
            event = video.events[int(rng.integers(len(video.events)))]
            inside = np.flatnonzero((indices >= event.start) & (indices <= event.end))
            position = int(inside[rng.integers(len(inside))])
        else:
            position = int(rng.integers(len(indices)))
        return video, int(indices[position]), candidates.frames[position]

    # 1. vision warm-up: a linear probe on the pooled merged tokens
    probe = torch.nn.Linear(hidden, len(classes))
    visual = model.model.visual
    optimizer = torch.optim.AdamW([*visual.parameters(), *probe.parameters()], lr=3e-3)
    start = time.perf_counter()
    for step in range(spec["probe_steps"]):
        images, targets = [], []
        for _ in range(spec["probe_batch"]):
            video, index, frame = draw()
            shown = [f"{e.color} {e.shape}" for e in video.events if e.start <= index <= e.end]
            images.append(Image.fromarray(frame))
            targets.append(classes.index(shown[0]) if shown else 0)
        enc = processor.image_processor(images=images, return_tensors="pt")
        tokens = visual(enc["pixel_values"], grid_thw=enc["image_grid_thw"])
        tokens = getattr(tokens, "pooler_output", tokens)
        pooled = tokens.reshape(len(images), -1, hidden).mean(1)
        loss = torch.nn.functional.cross_entropy(probe(pooled), torch.tensor(targets))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == spec["probe_steps"] - 1:
            log(f"vlm warm-up {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")

    # 2. language: captions and judgements, the loss on the replies only
    def example() -> tuple[Any, str]:
        video, index, frame = draw()
        caption = caption_text(video.events, index)
        if rng.random() < spec["caption_share"]:
            prompt, reply = CAPTION_PROMPT, caption
        else:
            question = video.questions[int(rng.integers(len(video.questions)))]
            shown = [(e.color, e.shape) for e in video.events if e.start <= index <= e.end]
            verdict = "True" if question.subject in shown else "False"
            reply = f"The frame shows {caption[0].lower()}{caption[1:]}\nAnswer: {verdict}"
            prompt = f"{format_question(question.question, question.options)}\n{COT_INSTRUCTION}"
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": reply},
        ]
        return Image.fromarray(frame), processor.apply_chat_template(messages, tokenize=False)

    def batch_inputs(batch: list[tuple[Any, str]]) -> dict[str, Any]:
        return processor(images=[b[0] for b in batch], text=[b[1] for b in batch], padding=True,
                         return_tensors="pt")  # fmt: skip

    _language_loop(model, tokenizer, example, batch_inputs, spec, "vlm", log)
    model.eval().save_pretrained(out)
    return out


def _train_llm(tiny_dir: Path, out: Path, videos: list[WorldVideo], log: Log) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from fsmodel.video import candidate_indices

    spec = RECIPE["llm"]
    hidden = spec["hidden"]

    def build(config: Any) -> Any:
        config.hidden_size, config.intermediate_size = hidden, 2 * hidden
        config.num_hidden_layers = config.max_window_layers = spec["layers"]
        config.num_attention_heads = config.num_key_value_heads = hidden // 32
        config.head_dim = 32
        config.layer_types = ["full_attention"] * spec["layers"]
        return Qwen2ForCausalLM(config).to(torch.float32)

    _, model = _resize(tiny_dir, out, build)
    tokenizer = AutoTokenizer.from_pretrained(out)
    labeler = TemporalLabeler(_PromptOnly(), structured_output=False)
    indices = candidate_indices(WORLD.num_frames, WORLD.num_candidates)
    rng = np.random.default_rng(RECIPE["seed"] + 2)

    lines = [WORLD.num_candidates]  # the curriculum's current number of caption lines

    def example() -> str:
        video = videos[int(rng.integers(len(videos)))]
        question = video.questions[int(rng.integers(len(video.questions)))]
        shown = indices[:: WORLD.num_candidates // lines[0]]
        times = shown / WORLD.fps
        captions = [caption_text(video.events, int(i)) for i in shown]
        request = labeler.request(captions, times.tolist(), question.question,
                                  list(question.options))  # fmt: skip
        inside = [any(s <= t < e for s, e in question.spans) for t in times]
        reply = json.dumps({"frames": np.flatnonzero(inside).tolist()})
        messages = [*request.messages, {"role": "assistant", "content": reply}]
        return tokenizer.apply_chat_template(messages, tokenize=False)

    def batch_inputs(batch: list[str]) -> dict[str, Any]:
        return tokenizer(batch, padding=True, return_tensors="pt", add_special_tokens=False)

    def on_step(step: int) -> None:
        lines[0] = max(n for start, n in spec["curriculum"] if step >= start)

    _language_loop(model, tokenizer, example, batch_inputs, spec, "llm", log, on_step)
    model.eval().save_pretrained(out)
    return out


class _PromptOnly:
    """Enough of a backend for `TemporalLabeler.request` (the recipe only builds prompts)."""

    supports_response_format = False


def _language_loop(
    model: Any,
    tokenizer: Any,
    example: Callable[[], Any],
    batch_inputs: Callable[[list[Any]], dict[str, Any]],
    spec: dict[str, Any],
    name: str,
    log: Log,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """Next-token training on the assistant replies only, one-cycle learning rate."""
    import torch

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=spec["lr"], total_steps=spec["steps"], pct_start=0.05
    )
    turn = tokenizer.convert_tokens_to_ids("<|im_start|>")
    start = time.perf_counter()
    for step in range(spec["steps"]):
        if on_step is not None:
            on_step(step)
        inputs = batch_inputs([example() for _ in range(spec["batch"])])
        labels = inputs["input_ids"].clone()
        for row, ids in enumerate(inputs["input_ids"].tolist()):
            reply = max(i for i, t in enumerate(ids) if t == turn) + 3  # <|im_start|>assistant\n
            labels[row, :reply] = -100
        labels[inputs["attention_mask"] == 0] = -100
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 200 == 0 or step == spec["steps"] - 1:
            log(f"{name} {step}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
