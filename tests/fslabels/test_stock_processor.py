"""The stock Qwen2-VL processor path, with its video processor: what every GPU user runs.

These tests need torchvision, so they run in `.venv-lmms` (PyPI's torch and torchvision; `make
test` runs them there with ``pytest -m torchvision``); `.venv` holds the CPU torch, where
torchvision cannot be installed and `fslabels.vlm.load_processor` falls back to an image-only
processor (tested in tests/fslabels/test_vlm.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fslabels.evaluation.answerer import Answerer
from fslabels.evaluation.prompts import build_prompt
from fslabels.evaluation.teachers import measure_teachers
from fsmodel.synthetic import Event, write_video
from fsmodel.video import sample_candidates

pytestmark = pytest.mark.torchvision

FRESH_SEED = 5151  # neither the teachers' training videos nor their committed measurement


def test_load_processor_gives_the_stock_processor_with_its_video_processor(tiny_models):
    from transformers import Qwen2VLProcessor

    from fslabels.vlm import load_processor

    processor = load_processor(tiny_models["qwen2-vl"])
    assert type(processor) is Qwen2VLProcessor
    assert processor.video_processor is not None


def test_stock_and_image_only_processors_encode_frames_identically(tiny_models):
    """The image-only fallback CPU users get is the stock processor minus videos: same ids, same
    pixels, so labels made with either agree."""
    from fslabels.vlm import image_only_processor_class, load_processor

    stock = load_processor(tiny_models["qwen2-vl"])
    image_only = image_only_processor_class("Qwen2VLProcessor").from_pretrained(
        tiny_models["qwen2-vl"]
    )
    frames = list(np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8))
    text = ["<|vision_start|><|image_pad|><|vision_end|>Is there a red circle?"] * 2
    a = stock(images=frames, text=text, return_tensors="pt")
    b = image_only(images=frames, text=text, return_tensors="pt")
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].shape == b[key].shape and bool((a[key] == b[key]).all()), key


def test_teachers_label_through_the_stock_processor_like_the_truth(tmp_path):
    """Spatial labels and captions through the transformers backend with the stock processor,
    on freshly seeded world videos, scored against the truth."""
    got = measure_teachers(tmp_path, count=3, seed=FRESH_SEED)
    assert got["failures"] == [] and got["failed_samples"] == 0
    assert got["caption_accuracy"] >= 0.95
    assert got["table"]["spatial"]["presence"]["auc"] >= 0.9


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(
        tmp_path_factory.mktemp("clip") / "clip.mp4",
        num_frames=64,
        events=[Event(8, 23, "circle", "red")],
    )


def test_the_answerer_passes_frames_as_one_video(tiny_models, clip):
    answerer = Answerer(model=str(tiny_models["qwen2-vl"]), max_new_tokens=3)
    answerer.load()
    assert answerer.frames_as == "video"  # auto: a video family whose processor takes videos
    frames = sample_candidates(clip.path, 4, size=48).frames
    prompt = build_prompt("When does the red circle appear?", ["early", "late"])
    result = answerer.answer(frames, prompt)
    assert result.frames_as == "video" and result.num_frames == 4
    assert result.prompt.count("<|vision_start|><|video_pad|><|vision_end|>") == 1
    assert "<|image_pad|>" not in result.prompt
    assert result.reply is not None and set(result.letter_logprobs) == {"A", "B"}
    # Four frames make two temporal patches of the video (temporal_patch_size 2).
    _, batch = answerer.inputs(frames, prompt.text)
    assert int(batch["video_grid_thw"][0, 0]) == 2


@pytest.mark.parametrize("frames_as", ["video", "images"])
def test_eval_qa_answers_from_frames_as_video_and_as_images(frames_as, tiny_models, clip, tmp_path):
    from cli.main import main

    manifest = tmp_path / "qa.jsonl"
    row = {"video": clip.path.name, "question": "When does the red circle appear?",
           "options": ["early", "late"], "answer": "A"}  # fmt: skip
    manifest.write_text(json.dumps(row) + "\n")
    work = tmp_path / "work"
    args = ["eval", "qa", "--manifest", str(manifest), "--videos", str(clip.path.parent),
            "--work", str(work), "--model", str(tiny_models["qwen2-vl"]), "--strategies",
            "uniform", "--n", "8", "--k", "2,4", "--set", "frame_size=48", "--set",
            "answerer.max_new_tokens=3", "--set", f"answerer.frames_as={frames_as}",
            "--no-progress", "--no-plots"]  # fmt: skip
    assert main(args) == 0
    answers = [json.loads(line) for line in (work / "results" / "answers.jsonl").open()]
    assert sorted(a["num_frames"] for a in answers) == [2, 4]
    assert {a["frames_as"] for a in answers} == {frames_as}
    assert all(a["reply"] is not None and "<|vision_start|>" in a["prompt"] for a in answers)
