"""Label datasets with ground truth, made from `fsmodel.synthetic` videos: a question per event
kind ("When does the red circle appear?"), label 1.0 on the candidates inside its occurrences
and 0 elsewhere, and a caption per candidate naming the shapes it shows.

The demo, the tests and the quality benchmark train on these: no labeller and no pretrained
weights are needed to know which frames are right.

Example:
    >>> from fsmodel.synthetic import Event, write_video
    >>> clip = write_video("data/videos/a.mp4", 64, events=[Event(10, 20, "circle", "red")])
    >>> rows = event_label_rows(clip, "videos/a.mp4", num_candidates=16)
    >>> save_label_dataset(rows, "data", captions=[event_caption_row(clip, 16)])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fsmodel import schema
from fsmodel.metrics import candidates_in_spans
from fsmodel.synthetic import (
    COLORS,
    SHAPES,
    WORLD,
    Event,
    SyntheticVideo,
    WorldVideo,
    frame_caption,
    world_videos,
    write_video,
)
from fsmodel.video import candidate_indices

__all__ = [
    "EVENT_KINDS",
    "EventVideoSpec",
    "build_scratch_selector",
    "event_caption_row",
    "event_label_rows",
    "random_event_spec",
    "random_multi_event_spec",
    "train_world_siglip",
    "world_label_rows",
    "write_event_dataset",
    "write_world",
]

# Every (colour, shape) an event can have: one question each.
EVENT_KINDS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLORS for s in SHAPES)


def _kind(event: Event) -> tuple[str, str]:
    return (event.color, event.shape)


def event_label_rows(
    clip: SyntheticVideo,
    video: str,
    num_candidates: int,
    video_id: str | None = None,
    kinds: Sequence[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Schema v1 label rows of a synthetic video: one per event kind it shows (or per
    ``kinds``), scored 1.0 on the candidates inside any occurrence of that kind.

    Args:
        clip: what `fsmodel.synthetic.write_video` returned.
        video: the ``video`` column (the path relative to the dataset's video root).
        num_candidates: n.
        video_id: the ``video_id`` column (default: the file's stem).
        kinds: the event kinds to ask about (default: every kind in the video, in order of
            first appearance).

    Returns:
        Rows whose ``spatial``, ``temporal`` and ``scores`` all hold the ground truth.
    """
    video_id = video_id or clip.path.stem
    indices = candidate_indices(clip.num_frames, num_candidates)
    stamps = np.asarray(clip.timestamps, np.float64)[indices]
    wanted = list(kinds) if kinds is not None else list(dict.fromkeys(map(_kind, clip.events)))
    rows = []
    for color, shape in wanted:
        question = Event(0, 0, shape, color).question
        inside = np.zeros(len(indices), bool)
        for ev in clip.events:
            if _kind(ev) == (color, shape):
                inside |= (indices >= ev.start) & (indices <= ev.end)
        scores = inside.astype(np.float32).tolist()
        rows.append(
            {
                schema.SAMPLE_ID: schema.make_sample_id(video_id, question),
                schema.VIDEO_ID: video_id,
                schema.VIDEO: video,
                schema.QUESTION: question,
                schema.OPTIONS: [],
                schema.ANSWER: "",
                schema.FRAME_INDICES: indices.tolist(),
                schema.TIMESTAMPS: stamps.tolist(),
                schema.SPATIAL: scores,
                schema.TEMPORAL: scores,
                schema.SCORES: scores,
            }
        )
    return rows


def event_caption_row(
    clip: SyntheticVideo, num_candidates: int, video_id: str | None = None
) -> dict[str, Any]:
    """The ``captions`` config row of a synthetic video: each candidate's caption names the
    shapes on it ("a red circle and a blue bar"), or says the background is empty."""
    indices = candidate_indices(clip.num_frames, num_candidates)
    captions = []
    for index in indices.tolist():
        captions.append(frame_caption(clip.events, index))
    return {
        schema.VIDEO_ID: video_id or clip.path.stem,
        schema.FRAME_INDICES: indices.tolist(),
        schema.TIMESTAMPS: np.asarray(clip.timestamps, np.float64)[indices].tolist(),
        schema.CAPTIONS: captions,
    }


@dataclass(frozen=True)
class EventVideoSpec:
    """A synthetic video to write: its events and which kinds to ask about.

    Attributes:
        name: file stem and ``video_id``.
        num_frames: frames of the video.
        events: the shapes and their frame ranges.
        ask: the event kinds to ask about (default: all shown).
    """

    name: str
    num_frames: int
    events: tuple[Event, ...]
    ask: tuple[tuple[str, str], ...] | None = None


def random_event_spec(
    rng: np.random.Generator,
    name: str,
    num_frames: int,
    kinds: Sequence[tuple[str, str]] = EVENT_KINDS,
    lengths: Sequence[int] = (1,),
    gap: int = 2,
    distractors: int = 2,
    distractor_kinds: Sequence[tuple[str, str]] | None = None,
) -> EventVideoSpec:
    """A random video asking about one target kind (drawn from ``kinds``) that occurs
    ``len(lengths)`` times (lengths in frames; occurrences more than ``gap`` frames apart), plus
    up to ``distractors`` events of other kinds (from ``distractor_kinds``, default ``kinds``),
    which are not asked about.

    Raises:
        ValueError: when the occurrences cannot fit into ``num_frames``.
    """
    target = kinds[int(rng.integers(len(kinds)))]
    lengths = list(lengths)
    for _ in range(1000):
        order = rng.permutation(len(lengths))
        sizes = [lengths[i] for i in order]
        starts = np.sort(rng.integers(0, num_frames, len(sizes)))
        ends = starts + np.asarray(sizes) - 1
        if ends[-1] < num_frames and all(
            starts[i + 1] - ends[i] > gap for i in range(len(sizes) - 1)
        ):
            break
    else:
        raise ValueError(f"occurrences of {lengths} frames do not fit into {num_frames} frames")
    events = [
        Event(int(s), int(e), target[1], target[0]) for s, e in zip(starts, ends, strict=True)
    ]
    others = list(distractor_kinds) if distractor_kinds is not None else list(kinds)
    for _ in range(int(rng.integers(0, distractors + 1))):
        other = others[int(rng.integers(len(others)))]
        if other == target:
            continue
        start = int(rng.integers(0, num_frames))
        end = min(num_frames - 1, start + int(rng.integers(0, max(1, num_frames // 4))))
        events.append(Event(start, end, other[1], other[0]))
    shuffled = tuple(events[i] for i in rng.permutation(len(events)))
    return EventVideoSpec(name=name, num_frames=num_frames, events=shuffled, ask=(target,))


def random_multi_event_spec(
    rng: np.random.Generator,
    name: str,
    num_frames: int,
    lengths_by_kind: dict[tuple[str, str], Sequence[int]],
    gap: int = 1,
    distractors: int = 2,
    distractor_kinds: Sequence[tuple[str, str]] = EVENT_KINDS,
) -> EventVideoSpec:
    """A random video asking about several kinds at once: kind ``c`` occurs
    ``len(lengths_by_kind[c])`` times (lengths in frames), all occurrences of all asked kinds in
    a random order, more than ``gap`` frames apart; plus up to ``distractors`` events of kinds
    not asked (from ``distractor_kinds``). One label row per asked kind: the frames are the
    same for all of them, so only the question tells the rows apart.

    Raises:
        ValueError: when the occurrences cannot fit into ``num_frames``.
    """
    asked = list(lengths_by_kind)
    placed = [(kind, int(size)) for kind in asked for size in lengths_by_kind[kind]]
    placed = [placed[i] for i in rng.permutation(len(placed))]
    slack = num_frames - sum(size for _, size in placed) - (gap + 1) * (len(placed) - 1)
    if slack < 0:
        raise ValueError(f"{len(placed)} occurrences do not fit into {num_frames} frames")
    # Spread the spare frames over the len(placed) + 1 spaces around the occurrences.
    cuts = np.sort(rng.integers(0, slack + 1, len(placed)))
    extra = np.diff(np.concatenate([[0], cuts]))
    events, start = [], 0
    for (kind, size), more in zip(placed, extra, strict=True):
        start += int(more)
        events.append(Event(start, start + size - 1, kind[1], kind[0]))
        start += size + gap + 1
    others = [k for k in distractor_kinds if k not in lengths_by_kind]
    for _ in range(int(rng.integers(0, distractors + 1)) if others else 0):
        other = others[int(rng.integers(len(others)))]
        first = int(rng.integers(0, num_frames))
        last = min(num_frames - 1, first + int(rng.integers(0, max(1, num_frames // 4))))
        events.append(Event(first, last, other[1], other[0]))
    shuffled = tuple(events[i] for i in rng.permutation(len(events)))
    return EventVideoSpec(name=name, num_frames=num_frames, events=shuffled, ask=tuple(asked))


def write_event_dataset(
    out_dir: str | os.PathLike,
    specs: Sequence[EventVideoSpec],
    num_candidates: int,
    size: tuple[int, int] = (64, 48),
    captions: bool = True,
) -> Path:
    """Encode the videos of ``specs`` under ``out_dir/videos`` and save their ground-truth
    labels (and captions) as a label dataset in ``out_dir`` (video paths relative to it).

    Returns:
        ``out_dir`` (load it with `fsmodel.schema.load_label_dataset`).
    """
    out = Path(out_dir)
    rows, caption_rows = [], []
    for spec in specs:
        relative = f"videos/{spec.name}.mp4"
        clip = write_video(
            out / relative, num_frames=spec.num_frames, size=size, events=list(spec.events)
        )
        rows += event_label_rows(clip, relative, num_candidates, spec.name, kinds=spec.ask)
        if captions:
            caption_rows.append(event_caption_row(clip, num_candidates, spec.name))
    schema.save_label_dataset(rows, out, captions=caption_rows or None)
    return out


def build_scratch_selector(
    out_dir: str | os.PathLike,
    vision: str | os.PathLike,
    llm: str | os.PathLike,
    num_candidates: int = 32,
    layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    init: float = 0.125,
    rope_theta: float = 10_000.0,
    seed: int = 0,
    question_first: bool = False,
    timestamp_format: str | None = None,
    pooled_grid: int = 3,
    vision_weights: bool = False,
) -> Path:
    """Write a selector with fresh random weights for from-scratch ground-truth checks: a SigLIP
    tower of ``vision``'s size and a Qwen2 LLM of ``layers`` x ``hidden``, with ``llm``'s
    tokenizer and ``vision``'s image processor (e.g. the `fsmodel.tiny` directories).

    Every weight is drawn with std ``init``: the 0.02 that suits large pretrained LLMs leaves a
    tiny model's hidden states so small that the score head needs weights of ~1000 to read them,
    and Adam takes ~1e6 steps to grow those; about 1/sqrt(hidden) trains in minutes. RoPE uses
    base ``rope_theta`` (Qwen2.5's 1e6 leaves a 16-dim head few rotation frequencies that tell
    frames 9 tokens apart; 1e4 localises frames sooner and more sharply). ``question_first``
    and ``timestamp_format`` are the processor's layout options (the question before the
    frames; each frame's time written before its tokens); ``pooled_grid`` is the model's and
    the processor's tokens per frame side (1: one token per frame, ~3.5x faster steps). With
    ``vision_weights`` the tower keeps ``vision``'s trained weights (e.g. `train_world_siglip`'s)
    and only the rest is drawn.

    Returns:
        ``Path(out_dir)``, loadable with ``AutoModel`` / ``AutoProcessor``.
    """
    import torch
    from transformers import AutoConfig

    from fsmodel.configuration_frame_selector import FrameSelectorConfig
    from fsmodel.modeling_frame_selector import FrameSelectorModel, _load_vision_tower
    from fsmodel.processing_frame_selector import FrameSelectorProcessor

    processor = FrameSelectorProcessor.from_backbones(
        vision,
        llm,
        question_first=question_first,
        timestamp_format=timestamp_format,
        pooled_grid=pooled_grid,
    )
    vision_config = AutoConfig.from_pretrained(vision)
    vision_config = getattr(vision_config, "vision_config", vision_config)
    if vision_weights:  # the loaded tower has no pooling head (the selector pools patches)
        vision_config.vision_use_head = False
    text = AutoConfig.from_pretrained(llm).to_dict()
    text.update(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        layer_types=["full_attention"] * layers,
        max_window_layers=layers,
        initializer_range=init,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
    )
    vocab = processor.tokenizer.get_vocab()
    config = FrameSelectorConfig(
        vision_config=vision_config.to_dict(),
        text_config=text,
        num_candidates=num_candidates,
        pooled_grid=pooled_grid,
        initializer_range=init,
        frame_start_token_id=vocab["<|vision_start|>"],
        frame_end_token_id=vocab["<|vision_end|>"],
        frame_token_id=vocab["<|image_pad|>"],
        score_token_id=vocab["<|video_pad|>"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FrameSelectorModel(config)
    if vision_weights:
        model.vision_model.load_state_dict(_load_vision_tower(vision).state_dict())
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def train_world_siglip(
    out_dir: str | os.PathLike,
    vision: str | os.PathLike,
    tokenizer: str | os.PathLike,
    *,
    videos: int = 300,
    max_steps: int = 10_000,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a SigLIP of ``vision``'s size on the world's frames and captions: the miniature's
    stand-in for the web-pretrained SigLIP the paper's selector starts from.

    The frames are the candidates of ``videos`` fresh world videos (drawn with their own seed, so
    no benchmark video is among them), rendered as `WorldVideo.write` draws them; each frame's
    text is its `frame_caption` ("a red circle", or the empty background). The loss is SigLIP's
    sigmoid loss between each frame and the distinct captions (its own caption is the positive).
    The image side is a linear map of the mean of the tower's last patch tokens, what the
    selector pools (the map is dropped afterwards, as the selector's projector takes its place),
    so the checkpoint has no attention-pooling head (``vision_use_head=False``); the text tower
    uses ``tokenizer`` (saved beside it). Every 500 steps the caption that scores highest is
    checked on the frames of 20 other world videos; training stops once it is right on 99 % of
    them, or after ``max_steps`` (the loss falls in a late step change whose step varies with
    the seed: 2,000-5,000 measured).

    Args:
        vision: a SigLIP directory whose vision config and image processor to use (e.g.
            `fsmodel.tiny.build_tiny_siglip`'s).
        tokenizer: the text tower's tokenizer (e.g. `fsmodel.tiny.build_all`'s ``tokenizer``).
        log: receives a line after the first step and every 500 (loss, held-out top-1).

    Returns:
        ``Path(out_dir)``, a ``SiglipModel`` checkpoint that ``build_scratch_selector(...,
        vision_weights=True)`` and ``FrameSelectorModel.from_backbones`` read.
    """
    import time

    import torch
    import torch.nn.functional as F
    from transformers import AutoImageProcessor, AutoTokenizer, SiglipConfig, SiglipModel

    processor = AutoImageProcessor.from_pretrained(vision)
    tok = AutoTokenizer.from_pretrained(tokenizer)
    base = SiglipConfig.from_pretrained(vision)
    text = base.text_config.to_dict()
    text.update(vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                bos_token_id=tok.pad_token_id, eos_token_id=tok.pad_token_id)  # fmt: skip
    config = SiglipConfig(
        vision_config={**base.vision_config.to_dict(), "vision_use_head": False},
        text_config=text,
    )
    started = time.perf_counter()
    indices = candidate_indices(WORLD.num_frames, WORLD.num_candidates)

    def world_frames(count: int, first_seed: int) -> tuple[Any, list[str]]:
        frames, captions = [], []
        for i, video in enumerate(world_videos(count, seed=first_seed, prefix="s")):
            frames += video.frames(indices, seed=first_seed + i)
            captions += [frame_caption(video.events, int(index)) for index in indices]
        return processor(images=frames, return_tensors="pt")["pixel_values"], captions

    pixels, captions = world_frames(videos, seed + 3000)
    held_pixels, held_captions = world_frames(20, seed + 4000)
    texts = sorted(set(captions))
    target = torch.tensor([texts.index(c) for c in captions])
    known = [i for i, c in enumerate(held_captions) if c in texts]  # others cannot be told apart
    held_pixels = held_pixels[known]
    held_target = torch.tensor([texts.index(held_captions[i]) for i in known])
    words = tok(texts, padding="max_length", truncation=True,
                max_length=config.text_config.max_position_embeddings, return_tensors="pt")  # fmt: skip
    log(f"world SigLIP: {len(captions)} frames, {len(texts)} captions")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SiglipModel(config).to(torch.float32)
        image_map = torch.nn.Linear(config.vision_config.hidden_size,
                                    config.text_config.projection_size)  # fmt: skip

        def similarity(pixel_values: Any) -> Any:
            patches = model.vision_model(pixel_values=pixel_values).last_hidden_state
            out = model.text_model(input_ids=words.input_ids, attention_mask=words.attention_mask)
            images = F.normalize(image_map(patches.mean(1)), dim=-1)
            return images @ F.normalize(out.pooler_output, dim=-1).T

        optimizer = torch.optim.AdamW([*model.parameters(), *image_map.parameters()], lr=lr)
        for step in range(max_steps):
            batch = torch.randint(len(captions), (batch_size,))
            logits = similarity(pixels[batch]) * model.logit_scale.exp() + model.logit_bias
            signs = 2 * F.one_hot(target[batch], len(texts)).float() - 1
            loss = -F.logsigmoid(signs * logits).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step == 0 or (step + 1) % 500 == 0 or step + 1 == max_steps:
                with torch.no_grad():
                    right = (similarity(held_pixels).argmax(1) == held_target).float().mean()
                log(f"world SigLIP step {step + 1}: loss {loss.item():.4f}, caption top-1 "
                    f"{right.item():.3f} on {len(known)} frames of 20 other videos "
                    f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
                if right >= 0.99:
                    break
    out = Path(out_dir)
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# --- the video-QA world's label-and-caption view ----------------------------------------------


def world_label_rows(
    video: WorldVideo, clip: SyntheticVideo, path: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The world video's truth as data: schema v1 label rows (1.0 on the candidates inside a
    question's spans, in every source) and the truth records `write_world` puts in
    ``truth.jsonl`` (kind and spans in seconds, keyed by sample id)."""
    indices = candidate_indices(clip.num_frames, video.world.num_candidates)
    stamps = np.asarray(clip.timestamps, np.float64)[indices]
    rows, truth = [], []
    for q in video.questions:
        groups, _ = candidates_in_spans(q.spans, stamps)
        scores = (groups >= 0).astype(np.float32).tolist()
        sample_id = schema.make_sample_id(video.video_id, q.question)
        rows.append(
            {
                schema.SAMPLE_ID: sample_id,
                schema.VIDEO_ID: video.video_id,
                schema.VIDEO: path,
                schema.QUESTION: q.question,
                schema.OPTIONS: list(q.options),
                schema.ANSWER: q.answer,
                schema.FRAME_INDICES: indices.tolist(),
                schema.TIMESTAMPS: stamps.tolist(),
                schema.SPATIAL: scores,
                schema.TEMPORAL: scores,
                schema.SCORES: scores,
            }
        )
        truth.append(
            {
                "sample_id": sample_id,
                "video": path,
                "question": q.question,
                "kind": q.kind,
                "spans": [list(span) for span in q.spans],
            }
        )
    return rows, truth


def write_world(
    out_dir: str | os.PathLike,
    count: int,
    seed: int = 0,
    prefix: str = "w",
    kinds: Sequence[str] | None = None,
    labels: bool = False,
    every_presence: bool = False,
) -> dict[str, Path]:
    """Write ``count`` world videos with their manifest and truth.

    Writes ``videos/<video_id>.mp4``, ``manifest.jsonl`` (one line per question: video, video_id,
    question, options, answer; what ``framesel labels run --manifest`` reads) and ``truth.jsonl``
    (what ``framesel labels score --truth`` reads); with ``labels``, also ``labels/``: the
    ground-truth label dataset (schema v1, 1.0 inside the truth spans in every source) with the
    world's captions, what a selector trained on perfect labels learns from.

    Args:
        kinds: ask only these question kinds (default: all of ``WORLD.kinds``).
        every_presence: ask the presence question about every kind a video shows, not one
            (`WorldVideo.every_presence`); the videos stay the same.

    Returns:
        ``{"videos": dir, "manifest": file, "truth": file}`` (and ``"labels": dir``).
    """
    import json

    kinds = tuple(kinds) if kinds is not None else WORLD.kinds
    unknown = sorted(set(kinds) - set(WORLD.kinds))
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {list(WORLD.kinds)}, got {kinds}")
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    manifest, truth, rows, captions = [], [], [], []
    for i, video in enumerate(world_videos(count, seed=seed, prefix=prefix)):
        path = f"{video.video_id}.mp4"
        clip = video.write(out / "videos" / path, seed=seed + i)
        if every_presence:
            others = tuple(q for q in video.questions if q.kind != "presence")
            video = replace(video, questions=(*video.every_presence(), *others))
        got, records = world_label_rows(video, clip, path)
        asked = [q.kind in kinds for q in video.questions]
        rows += [r for r, keep in zip(got, asked, strict=True) if keep]
        truth += [r for r, keep in zip(records, asked, strict=True) if keep]
        captions.append(event_caption_row(clip, video.world.num_candidates, video.video_id))
        manifest += [
            {"video": path, "video_id": video.video_id, "question": q.question,
             "options": list(q.options), "answer": q.answer}
            for q, keep in zip(video.questions, asked, strict=True) if keep
        ]  # fmt: skip
    for name, records in (("manifest", manifest), ("truth", truth)):
        (out / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
        )
    written = {
        "videos": out / "videos",
        "manifest": out / "manifest.jsonl",
        "truth": out / "truth.jsonl",
    }
    if labels:
        written["labels"] = schema.save_label_dataset(rows, out / "labels", captions=captions)
    return written
