"""The frame selector: config, forward, loss, save/load (also as remote code), from_backbones,
the processor's layout and select_frames, all on the offline tiny models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import fsmodel  # registers the Auto classes
from fsmodel import (
    FrameSelectorConfig,
    FrameSelectorModel,
    FrameSelectorOutput,
    FrameSelectorProcessor,
    SelectionResult,
)
from fsmodel.selection import greedy_nms, suppression_radius, uniform
from fsmodel.tiny import TINY_SELECTOR_CANDIDATES
from fsmodel.video import VideoError, candidate_indices, sample_candidates

REPO_ROOT = Path(__file__).resolve().parents[2]
N = TINY_SELECTOR_CANDIDATES  # 16
GRID_TOKENS = 9  # 3x3 pooled grid
QUESTION = "Is there a red circle in the video?"
CODE_FILES = (
    "configuration_frame_selector.py",
    "modeling_frame_selector.py",
    "processing_frame_selector.py",
    "selection.py",
)


@pytest.fixture(scope="module")
def selector_dir(tiny_models) -> Path:
    return tiny_models["selector"]


@pytest.fixture(scope="module")
def model(selector_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(selector_dir).eval()


@pytest.fixture(scope="module")
def processor(selector_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(selector_dir)


def _frames(seed: int, n: int = N, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _batch(processor, seeds=(0,), questions=(QUESTION,), n: int = N, **kwargs):
    frames = [_frames(s, n) for s in seeds]
    if len(seeds) == 1:
        return processor(frames=frames[0], question=questions[0], **kwargs)
    return processor(frames=frames, question=list(questions), **kwargs)


def _tiny_sizes():
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "patch_size": 14,
        "image_size": 56,
    }
    text = {
        "vocab_size": 768,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    ids = {
        "frame_start_token_id": 764,
        "frame_end_token_id": 765,
        "frame_token_id": 766,
        "score_token_id": 767,
    }
    return vision, text, ids


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_describe_the_production_model():
    config = FrameSelectorConfig()
    assert config.model_type == "frame_selector"
    assert type(config.vision_config).__name__ == "SiglipVisionConfig"
    assert type(config.text_config).__name__ == "Qwen2Config"
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (1152, 27)
    assert config.vision_config.vision_use_head is False
    assert config.patch_grid == 27  # 384 px / 14 px patches
    assert (config.text_config.hidden_size, config.text_config.vocab_size) == (1536, 151936)
    assert config.num_candidates == 128 and config.pooled_grid == 3
    assert config.frame_tokens_per_frame == 9 and config.score_layer == -2
    assert config.projector_hidden_size == config.score_head_hidden_size == 1536
    assert (config.frame_start_token_id, config.frame_end_token_id) == (151652, 151653)
    assert (config.frame_token_id, config.score_token_id) == (151655, 151656)


def test_config_accepts_dict_and_object_sub_configs():
    from transformers import Qwen2Config, SiglipConfig, SiglipVisionConfig

    vision, text, ids = _tiny_sizes()
    from_dicts = FrameSelectorConfig(vision_config=vision, text_config=text, **ids)
    from_objects = FrameSelectorConfig(
        vision_config=SiglipVisionConfig(**vision), text_config=Qwen2Config(**text), **ids
    )
    # A full SigLIP (image + text) config contributes its vision tower, as a dict or an object.
    from_siglip = FrameSelectorConfig(
        vision_config=SiglipConfig(vision_config=vision), text_config=text, **ids
    )
    from_siglip_dict = FrameSelectorConfig(
        vision_config={"model_type": "siglip", "vision_config": vision}, text_config=text, **ids
    )
    expected = from_dicts.to_dict()
    for other in (from_objects, from_siglip, from_siglip_dict):
        assert type(other.vision_config) is SiglipVisionConfig
        assert other.to_dict() == expected
    assert from_dicts.patch_grid == 4 and from_dicts.projector_hidden_size == 64


def test_config_round_trips_through_dict_and_json(tmp_path):
    from transformers import AutoConfig

    vision, text, ids = _tiny_sizes()
    config = FrameSelectorConfig(
        vision_config=vision, text_config=text, num_candidates=32, score_layer=-1, **ids
    )
    again = FrameSelectorConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is FrameSelectorConfig
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert (loaded.num_candidates, loaded.score_layer) == (32, -1)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_candidates": 0}, "num_candidates must be a positive integer, got 0"),
        ({"pooled_grid": 5}, r"pooled_grid must be at most the vision tower's patch grid \(4"),
        ({"pooled_grid": True}, "pooled_grid must be a positive integer"),
        ({"score_layer": 3}, r"score_layer .* in \[-3, 2\], got 3"),
        ({"score_layer": -4}, r"in \[-3, 2\], got -4"),
        ({"frame_token_id": 768}, r"frame_token_id must be a token id in \[0, 768\)"),
        ({"score_token_id": 766}, "layout token ids must be distinct"),
        ({"initializer_range": 0.0}, "initializer_range must be a positive number, got 0.0"),
        ({"projector_hidden_size": -1}, "projector_hidden_size must be a positive integer, got -1"),
        (
            {"vision_config": {"model_type": "clip_vision_model"}},
            "vision_config.model_type must be one of",
        ),
    ],
)
def test_config_validation_states_value_and_rule(overrides, match):
    vision, text, ids = _tiny_sizes()
    kwargs = {"vision_config": vision, "text_config": text, **ids, **overrides}
    with pytest.raises(ValueError, match=match):
        FrameSelectorConfig(**kwargs)


# --- forward, loss, gradients ---------------------------------------------------------------


def test_forward_shapes_and_sigmoid_scores(model, processor):
    batch = _batch(processor, seeds=(0, 1), questions=(QUESTION, "What colour is the square?"))
    assert batch["pixel_values"].shape == (2, N, 3, 56, 56)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert isinstance(out, FrameSelectorOutput)
    assert out.loss is None
    assert out.logits.shape == out.scores.shape == (2, N)
    torch.testing.assert_close(out.scores, torch.sigmoid(out.logits))
    assert len(out.hidden_states) == model.config.text_config.num_hidden_layers + 1
    with torch.no_grad():
        as_tuple = model(**batch, return_dict=False)
    assert torch.equal(as_tuple[0], out.logits) and torch.equal(as_tuple[1], out.scores)


def test_loss_is_bce_over_unmasked_candidates(model, processor):
    batch = _batch(processor, seeds=(2, 3), questions=(QUESTION, "Where is the dog?"))
    labels = torch.rand(2, N, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, N, dtype=torch.bool)
    mask[0, 10:] = False
    mask[1, :3] = False
    with torch.no_grad():
        out = model(**batch, labels=labels, candidate_mask=mask)
        expected = torch.nn.BCEWithLogitsLoss()(out.logits[mask], labels[mask])
        torch.testing.assert_close(out.loss, expected)
        # Padded candidates do not count, whatever their labels say.
        perturbed = labels.clone()
        perturbed[~mask] = 1.0 - perturbed[~mask]
        again = model(**batch, labels=perturbed, candidate_mask=mask)
        assert torch.equal(again.loss, out.loss)
        unmasked = model(**batch, labels=labels)
        torch.testing.assert_close(
            unmasked.loss, torch.nn.BCEWithLogitsLoss()(unmasked.logits, labels)
        )


def test_label_weights_scale_each_candidates_loss(model, processor):
    batch = _batch(processor, seeds=(2, 3), questions=(QUESTION, "Where is the dog?"))
    labels = (torch.rand(2, N, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    weights = torch.ones(2, N)
    weights[0, :4] = 3.0
    weights[1, 5] = 0.0
    with torch.no_grad():
        out = model(**batch, labels=labels, label_weights=weights)
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            out.logits, labels, reduction="none"
        )
        # A sum over the candidates, weighted, divided by their count (not by the weights).
        torch.testing.assert_close(out.loss, (per * weights).sum() / (2 * N))
        plain = model(**batch, labels=labels, label_weights=torch.ones(2, N))
        torch.testing.assert_close(plain.loss, model(**batch, labels=labels).loss)
    with pytest.raises(ValueError, match="label_weights must be finite and >= 0"):
        model(**batch, labels=labels, label_weights=-weights)
    with pytest.raises(ValueError, match=r"label_weights must have shape \[B, n\]"):
        model(**batch, labels=labels, label_weights=weights[:1])


def test_gradients_reach_projector_query_and_head(model, processor):
    batch = _batch(processor, seeds=(4,))
    model.zero_grad(set_to_none=True)
    try:
        out = model(**batch, labels=torch.full((1, N), 0.25))
        out.loss.backward()
        for name in ("projector.linear_1.weight", "score_head.linear_2.weight", "score_query"):
            grad = model.get_parameter(name).grad
            assert grad is not None and grad.abs().sum() > 0, name
        assert model.vision_model.embeddings.patch_embedding.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)


def test_frame_features_path_equals_pixel_path(model, processor):
    batch = _batch(processor, seeds=(5, 6), questions=(QUESTION, "Is the door open?"))
    with torch.no_grad():
        features = model.encode_frames(batch["pixel_values"])
        chunked = model.encode_frames(batch["pixel_values"], chunk_size=5)
        assert features.shape == (2, N, GRID_TOKENS, model.config.vision_config.hidden_size)
        torch.testing.assert_close(chunked, features)
        from_pixels = model(**batch).logits
        from_features = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            frame_features=features,
        ).logits
    assert torch.equal(from_features, from_pixels)


def test_pooling_averages_the_patch_grid(model):
    # A 4x4 grid pooled adaptively to 3x3: cell (0, 0) averages patches (0..1, 0..1).
    patches = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)
    pooled = model._pool(patches)
    assert pooled.shape == (1, 9, 1)
    assert pooled[0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert pooled[0, 8, 0].item() == pytest.approx((10 + 11 + 14 + 15) / 4)


def test_left_padded_batch_matches_single_rows(model, processor):
    questions = (QUESTION, "What colour is the square in the middle of the video at the end?")
    batch = _batch(processor, seeds=(7, 8), questions=questions)
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths[0] != lengths[1] and (batch["attention_mask"][:, -1] == 1).all()
    with torch.no_grad():
        batched = model(**batch).logits
        for i, (seed, question) in enumerate(zip((7, 8), questions, strict=True)):
            single = model(**_batch(processor, seeds=(seed,), questions=(question,))).logits
            torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-4, atol=1e-5)


def test_fewer_frames_use_the_first_logits_and_more_are_rejected(model, processor):
    with torch.no_grad():
        out = model(**_batch(processor, seeds=(9,), n=6))
    assert out.logits.shape == (1, 6)
    too_many = _batch(processor, seeds=(9,), n=N + 1)
    with pytest.raises(ValueError, match=f"at most num_candidates = {N}"):
        model(**too_many)


def test_forward_rejects_inconsistent_inputs(model, processor):
    batch = _batch(processor, seeds=(10,))
    ids, mask, pixels = batch["input_ids"], batch["attention_mask"], batch["pixel_values"]
    features = model.encode_frames(pixels).detach()
    frame_id = model.config.frame_token_id
    with pytest.raises(ValueError, match=r"pixel_values must have shape \[B, n, 3, 56, 56\], got"):
        model(input_ids=ids, pixel_values=pixels[..., :28])
    with pytest.raises(ValueError, match=r"frame_features must have shape \[B, n, 9, 32\]"):
        model(input_ids=ids, frame_features=features[:, :, :4])
    with pytest.raises(ValueError, match="exactly one of pixel_values or frame_features"):
        model(input_ids=ids, pixel_values=pixels, frame_features=features)
    with pytest.raises(ValueError, match="exactly one of pixel_values or frame_features"):
        model(input_ids=ids)
    dropped = ids.clone()
    dropped[0, (dropped[0] == frame_id).nonzero()[0]] = model.config.frame_start_token_id
    with pytest.raises(
        ValueError, match=rf"{N} \* 9 = {N * 9} frame tokens .* got \[{N * 9 - 1}\]"
    ):
        model(input_ids=dropped, attention_mask=mask, frame_features=features)
    with pytest.raises(ValueError, match="exactly one score-query token"):
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], frame_features=features)
    with pytest.raises(ValueError, match=r"labels must have shape \[B, n\] = \[1, 16\]"):
        model(input_ids=ids, frame_features=features, labels=torch.zeros(1, N - 1))
    with pytest.raises(ValueError, match=r"soft targets in \[0, 1\]"):
        model(input_ids=ids, frame_features=features, labels=torch.full((1, N), 1.5))
    with pytest.raises(ValueError, match="candidate_mask must have shape"):
        model(
            input_ids=ids,
            frame_features=features,
            labels=torch.zeros(1, N),
            candidate_mask=torch.ones(2, N, dtype=torch.bool),
        )


# --- processor ------------------------------------------------------------------------------


def test_processor_layout(processor, model):
    assert type(processor) is FrameSelectorProcessor
    assert type(processor.image_processor).__name__ == "SiglipImageProcessorPil"
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in fsmodel.processing_frame_selector.LAYOUT_TOKENS}
    config = model.config
    assert ids["<|vision_start|>"] == config.frame_start_token_id
    assert ids["<|vision_end|>"] == config.frame_end_token_id
    assert ids["<|image_pad|>"] == config.frame_token_id
    assert ids["<|video_pad|>"] == config.score_token_id

    batch = processor(frames=_frames(0, 4), question=QUESTION, options=["red", "B. blue"])
    row = batch["input_ids"][0].tolist()
    assert row[-1] == config.score_token_id and row.count(config.score_token_id) == 1
    assert row.count(config.frame_token_id) == 4 * GRID_TOKENS
    # One block of frames: 9 tokens each, wrapped once (the paper's 128 x 9 token budget).
    assert row.count(config.frame_start_token_id) == row.count(config.frame_end_token_id) == 1
    start = row.index(config.frame_start_token_id)
    block = [
        config.frame_start_token_id,
        *[config.frame_token_id] * 9 * 4,
        config.frame_end_token_id,
    ]
    assert row[start : start + len(block)] == block
    text = tok.decode(row)
    assert text.startswith("<|im_start|>user\n" + processor.instruction + "\n<|vision_start|>")
    assert text.endswith(
        f"<|vision_end|>\nQuestion: {QUESTION}\nOptions:\nA. red\nB. blue<|im_end|>\n"
        "<|im_start|>assistant\n<|video_pad|>"
    )
    overhead = len(row) - 4 * 9
    assert processor.prompt_length(128, QUESTION, ["red", "B. blue"]) == 128 * 9 + overhead


def test_processor_per_frame_separators(processor, model):
    config = model.config
    sep = FrameSelectorProcessor(
        processor.image_processor, processor.tokenizer, frame_separators=True
    )
    row = sep(frames=_frames(0, 4), question=QUESTION)["input_ids"][0].tolist()
    assert row.count(config.frame_start_token_id) == row.count(config.frame_end_token_id) == 4
    one_frame = [
        config.frame_start_token_id,
        *[config.frame_token_id] * 9,
        config.frame_end_token_id,
    ]
    start = row.index(config.frame_start_token_id)
    assert row[start : start + 11 * 4] == one_frame * 4, "frames are contiguous, 11 tokens each"
    # The model reads either layout: only the frame tokens are replaced by features.
    with torch.no_grad():
        out = model(**sep(frames=_frames(0, 4), question=QUESTION))
    assert out.logits.shape[-1] == 4  # one logit per frame given


def test_processor_question_first_layout(processor, model, tmp_path):
    first = FrameSelectorProcessor(
        processor.image_processor, processor.tokenizer, question_first=True
    )
    options = ["red", "B. blue"]
    row = first(frames=_frames(0, 4), question=QUESTION, options=options)["input_ids"][0]
    text = processor.tokenizer.decode(row.tolist())
    assert text.startswith(
        f"<|im_start|>user\n{processor.instruction}\n\nQuestion: {QUESTION}\nOptions:\n"
        "A. red\nB. blue<|vision_start|>"
    )
    assert text.endswith("<|vision_end|><|im_end|>\n<|im_start|>assistant\n<|video_pad|>")
    assert first.prompt_length(128, QUESTION, options) == processor.prompt_length(
        128, QUESTION, options
    )
    first.save_pretrained(tmp_path)
    assert FrameSelectorProcessor.from_pretrained(tmp_path).question_first is True
    with torch.no_grad():
        out = model(**first(frames=_frames(0, 4), question=QUESTION))
    assert out.logits.shape[-1] == 4


def test_processor_batches_are_left_padded(processor):
    batch = processor(
        frames=[_frames(1, 3), list(_frames(2, 3))],
        question=["Short?", "A much longer question about the video and its frames?"],
        return_tensors="np",
    )
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[:, -1].all() and mask[1].all()
    pad = processor.tokenizer.pad_token_id
    assert (batch["input_ids"][0][mask[0] == 0] == pad).all()
    assert batch["pixel_values"].shape == (2, 3, 3, 56, 56)
    assert batch["pixel_values"].dtype == np.float32


def test_processor_accepts_pil_images_and_arrays_alike(processor):
    frames = _frames(3, 5)
    from_array = processor(frames=frames, question=QUESTION)
    from_pil = processor(frames=[Image.fromarray(f) for f in frames], question=QUESTION)
    for key in ("input_ids", "attention_mask", "pixel_values"):
        assert torch.equal(from_array[key], from_pil[key])


def test_processor_timestamps_are_optional_text(selector_dir, processor):
    stamped = FrameSelectorProcessor(
        processor.image_processor, processor.tokenizer, timestamp_format="{t:.0f}s"
    )
    row = stamped(frames=_frames(4, 3), question=QUESTION, timestamps=[0.0, 1.2, 2.6])
    text = stamped.tokenizer.decode(row["input_ids"][0])
    assert "\n<|vision_start|>0s<|image_pad|>" in text and "<|image_pad|>1s<|image_pad|>" in text
    assert "<|image_pad|>3s<|image_pad|>" in text
    with pytest.raises(ValueError, match=r"timestamps must hold one value per frame \(3\)"):
        stamped(frames=_frames(4, 3), question=QUESTION)
    with pytest.raises(ValueError, match="timestamp_format must be a format string"):
        FrameSelectorProcessor(
            processor.image_processor, processor.tokenizer, timestamp_format="{x}"
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": _frames(0, 2), "question": "  "}, "question must be a non-empty string"),
        ({"frames": _frames(0, 2), "question": ""}, "question must be a non-empty string"),
        ({"frames": _frames(0, 2)}, "pass both frames"),
        ({"frames": _frames(0, 2)[..., 0], "question": "q?"}, r"\[n, H, W, 3\] \(RGB\), got \[2, 48, 64\]"),
        ({"frames": _frames(0, 2).astype(np.float32), "question": "q?"}, "uint8 RGB, got dtype float32"),
        ({"frames": [], "question": "q?"}, "non-empty list of frames"),
        ({"frames": [_frames(0, 2), _frames(1, 3)], "question": ["a?", "b?"]}, r"same number of frames, got \[2, 3\]"),
        ({"frames": [_frames(0, 2)], "question": ["a?", "b?"]}, "frames must be a list of 2 samples, got 1"),
        ({"frames": _frames(0, 2), "question": "Is <|image_pad|> here?"}, "contain layout tokens"),
        ({"frames": _frames(0, 2), "question": "q?", "options": "A. red"}, "options must be a list of strings"),
    ],
)  # fmt: skip
def test_processor_rejects_bad_inputs(processor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        processor(**kwargs)


# --- save / load ----------------------------------------------------------------------------


def test_save_pretrained_round_trip_through_auto_classes(model, processor, tmp_path):
    from transformers import AutoModel, AutoProcessor

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_frame_selector.FrameSelectorConfig",
        "AutoModel": "modeling_frame_selector.FrameSelectorModel",
    }
    assert config["architectures"] == ["FrameSelectorModel"]
    processor_config = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor_config["auto_map"] == {
        "AutoProcessor": "processing_frame_selector.FrameSelectorProcessor"
    }
    assert processor_config["pooled_grid"] == 3
    for name in CODE_FILES:
        assert (tmp_path / name).read_bytes() == (REPO_ROOT / "fsmodel" / name).read_bytes()

    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    reprocessor = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is FrameSelectorModel and type(reprocessor) is FrameSelectorProcessor
    batch = _batch(processor, seeds=(11,))
    again = _batch(reprocessor, seeds=(11,))
    for key in batch:
        assert torch.equal(batch[key], again[key])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**again).logits)


def test_remote_code_loads_without_framesel(selector_dir, model, processor, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(selector_dir, repo)
    frames = _frames(12)
    np.save(tmp_path / "frames.npy", frames)
    with torch.no_grad():
        expected = model(**processor(frames=frames, question=QUESTION)).logits
    (tmp_path / "expected.json").write_text(json.dumps(expected[0].tolist()))
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("fsmodel", "fslabels", "cli"):
                    raise ImportError(f"{{name}} is blocked: framesel is not installed here")
                return None

        sys.meta_path.insert(0, Blocker())
        import numpy as np
        import torch
        from transformers import AutoModel, AutoProcessor

        torch.set_num_threads(1)
        repo, tmp = {str(repo)!r}, {str(tmp_path)!r}
        model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        assert type(processor).__module__.startswith("transformers_modules.")
        frames = np.load(tmp + "/frames.npy")
        with torch.no_grad():
            logits = model(**processor(frames=frames, question={QUESTION!r})).logits
        expected = torch.tensor(json.load(open(tmp + "/expected.json")))
        torch.testing.assert_close(logits[0], expected, rtol=0, atol=1e-6)
        result = model.select_frames(frames, {QUESTION!r}, k=3)  # processor loaded from the repo
        assert len(result.positions) == 3
        try:
            model.select_frames("clip.mp4", {QUESTION!r}, k=3)
        except ImportError as err:
            assert "pip install framesel" in str(err), err
        else:
            raise AssertionError("a video path needs framesel's sampler")
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("fsmodel", "fslabels", "cli"))
        assert not loaded, loaded
        print("ok")
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# --- from_backbones -------------------------------------------------------------------------


def test_from_backbones_keeps_backbone_weights_and_adds_fresh_parts(tiny_models, tmp_path):
    siglip, qwen2 = tiny_models["siglip"], tiny_models["qwen2"]
    torch.manual_seed(0)
    built = FrameSelectorModel.from_backbones(siglip, qwen2, num_candidates=N)
    assert built.config.num_candidates == N and not built.training
    assert not built.vision_model.use_head, "the SigLIP pooling head is dropped"

    vision_source = load_file(siglip / "model.safetensors")
    vision_state = built.vision_model.state_dict()
    assert vision_state, "the vision tower has weights"
    for key, value in vision_state.items():
        assert torch.equal(value, vision_source[f"vision_model.{key}"]), key
    llm_source = load_file(qwen2 / "model.safetensors")
    llm_state = built.language_model.state_dict()
    for key, value in llm_source.items():
        assert torch.equal(llm_state[key], value), key
    assert torch.equal(  # tied like Qwen2.5-1.5B
        llm_state["lm_head.weight"], llm_source["model.embed_tokens.weight"]
    )

    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(qwen2).get_vocab()
    assert built.config.frame_token_id == vocab["<|image_pad|>"]
    assert built.config.score_token_id == vocab["<|video_pad|>"]

    torch.manual_seed(1)
    other = FrameSelectorModel.from_backbones(siglip, qwen2, num_candidates=N)
    for name in ("projector.linear_1.weight", "score_head.linear_1.weight", "score_query"):
        fresh = built.get_parameter(name)
        assert not torch.equal(fresh, other.get_parameter(name)), f"{name} must be fresh"
        assert 0.01 < fresh.std().item() < 0.03, "initialised with initializer_range = 0.02"
    assert torch.count_nonzero(built.score_head.linear_2.bias) == 0

    # A vision-tower-only checkpoint (SiglipVisionModel) works too.
    built.vision_model.save_pretrained(tmp_path / "tower")
    from_tower = FrameSelectorModel.from_backbones(tmp_path / "tower", qwen2, num_candidates=N)
    for key, value in from_tower.vision_model.state_dict().items():
        assert torch.equal(value, vision_state[key]), key


def test_from_backbones_rejects_a_non_siglip_vision_checkpoint(tiny_models):
    with pytest.raises(ValueError, match="vision tower must be SigLIP"):
        FrameSelectorModel.from_backbones(tiny_models["qwen2"], tiny_models["qwen2"])


def test_processor_from_backbones_matches_the_saved_processor(tiny_models, processor):
    built = FrameSelectorProcessor.from_backbones(tiny_models["siglip"], tiny_models["qwen2"])
    assert type(built.image_processor).__name__ == "SiglipImageProcessorPil"
    ours, theirs = _batch(built, seeds=(13,)), _batch(processor, seeds=(13,))
    for key in ours:
        assert torch.equal(ours[key], theirs[key])


# --- select_frames --------------------------------------------------------------------------


def test_select_frames_on_a_video(model, processor, h264_clip):
    k = 4
    result = model.select_frames(h264_clip.path, QUESTION, k=k, num_candidates=N)
    assert isinstance(result, SelectionResult)
    assert (result.k, result.strategy) == (k, "nms")
    assert result.scores.shape == (N,) and result.scores.dtype == np.float32
    assert result.positions.shape == result.indices.shape == result.timestamps.shape == (k,)
    assert np.all(np.diff(result.positions) > suppression_radius(N, k))
    assert np.array_equal(result.positions, greedy_nms(result.scores, k))

    candidates = candidate_indices(h264_clip.num_frames, N)
    assert np.array_equal(result.indices, candidates[result.positions])
    assert np.all(np.diff(result.indices) > 0)
    truth = np.asarray(h264_clip.timestamps)[result.indices]
    np.testing.assert_allclose(result.timestamps, truth, atol=1e-6)

    # The same numbers as sampling and scoring by hand (frames decoded at the tower's 56 px).
    sampled = sample_candidates(h264_clip.path, num_candidates=N, size=56)
    with torch.no_grad():
        scores = model(**processor(frames=sampled.frames, question=QUESTION)).scores[0]
    np.testing.assert_allclose(result.scores, scores.numpy(), rtol=1e-6, atol=1e-7)


def test_select_frames_batch_equals_single_calls(model, h264_clip):
    frames = _frames(14)
    items = [
        (h264_clip.path, QUESTION),
        (frames, "What colour is the square in the middle of the video?"),
        ([Image.fromarray(f) for f in _frames(15, 8)], "Where is the cat?"),
        (str(h264_clip.path), "When does the circle appear?"),
    ]
    batched = model.select_frames_batch(items, k=3, num_candidates=N, batch_size=3)
    assert len(batched) == len(items)
    for (source, question), got in zip(items, batched, strict=True):
        single = model.select_frames(source, question, k=3, num_candidates=N)
        assert np.array_equal(got.positions, single.positions)
        assert np.array_equal(got.indices, single.indices)
        np.testing.assert_allclose(got.scores, single.scores, rtol=1e-4, atol=1e-6)
    assert batched[2].scores.shape == (8,), "8 frames passed directly score 8 candidates"


def test_questions_about_one_video_decode_and_encode_it_once(model, h264_clip, monkeypatch):
    """The cost grows with videos, not questions: 6 questions about 2 videos run the vision
    tower twice and decode each video once, and score as they would one at a time."""
    import fsmodel.video

    towers, decodes = [], []
    encode = model.encode_frames
    monkeypatch.setattr(
        model, "encode_frames", lambda *a, **kw: towers.append(1) or encode(*a, **kw)
    )
    sample = fsmodel.video.sample_candidates
    monkeypatch.setattr(
        fsmodel.video,
        "sample_candidates",
        lambda *a, **kw: decodes.append(a[0]) or sample(*a, **kw),
    )
    other = _frames(12)
    questions = ["When does the circle appear?", "Where is the cat?", "What colour is it?"]
    items = [(h264_clip.path, q) for q in questions] + [(other, q) for q in questions]
    batched = model.select_frames_batch(items, k=3, num_candidates=N, batch_size=2)
    assert len(towers) == 2 and decodes == [h264_clip.path]
    monkeypatch.undo()
    for (source, question), got in zip(items, batched, strict=True):
        single = model.select_frames(source, question, k=3, num_candidates=N)
        np.testing.assert_allclose(got.scores, single.scores, rtol=1e-4, atol=1e-6)
        assert np.array_equal(got.positions, single.positions)


def test_select_frames_with_frames_in_memory(model, h264_clip):
    frames = _frames(16)
    plain = model.select_frames(frames, QUESTION, k=2, strategy="topk")
    assert np.array_equal(plain.indices, plain.positions), "indices default to positions"
    assert np.isnan(plain.timestamps).all()
    assert np.array_equal(plain.positions, np.sort(np.argsort(-plain.scores, kind="stable")[:2]))

    indices, stamps = np.arange(N) * 10 + 5, np.arange(N) * 0.5
    tagged = model.select_frames(frames, QUESTION, k=2, indices=indices, timestamps=stamps)
    assert np.array_equal(tagged.indices, indices[tagged.positions])
    assert np.array_equal(tagged.timestamps, stamps[tagged.positions])

    spread = model.select_frames(frames, QUESTION, k=4, strategy="uniform")
    assert np.array_equal(spread.positions, uniform(spread.scores, 4))

    sampled = sample_candidates(h264_clip.path, num_candidates=N, size=56)
    from_candidates = model.select_frames(sampled, QUESTION, k=3)
    from_path = model.select_frames(h264_clip.path, QUESTION, k=3, num_candidates=N)
    assert np.array_equal(from_candidates.indices, from_path.indices)
    assert np.array_equal(from_candidates.timestamps, from_path.timestamps)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, v: m.select_frames(v, QUESTION, k=0, num_candidates=N), ValueError, "k must be a positive integer, got 0"),
        (lambda m, v: m.select_frames(v, QUESTION, k=N + 1, num_candidates=N), ValueError, rf"between 1 and the number of candidates \({N}\), got {N + 1}"),
        (lambda m, v: m.select_frames(_frames(0, 3), QUESTION, k=4), ValueError, r"number of candidates \(3\), got 4"),
        (lambda m, v: m.select_frames(v, "", k=2), ValueError, "question must be a non-empty string"),
        (lambda m, v: m.select_frames(v, QUESTION, k=2, strategy="best"), ValueError, "known strategies"),
        (lambda m, v: m.select_frames(v, QUESTION, num_candidates=N + 1), ValueError, rf"at most the model's num_candidates \({N}\)"),
        (lambda m, v: m.select_frames(_frames(0, 3)[:, :, :, :2], QUESTION, k=2), ValueError, r"\[n, H, W, 3\]"),
        (lambda m, v: m.select_frames(_frames(0, 3).astype(float), QUESTION, k=2), ValueError, "uint8"),
        (lambda m, v: m.select_frames(_frames(0, N + 4), QUESTION, k=2), ValueError, f"at most num_candidates = {N}"),
        (lambda m, v: m.select_frames(_frames(0, 3), QUESTION, k=2, indices=[1, 2]), ValueError, r"indices must hold one value per frame \(3\)"),
        (lambda m, v: m.select_frames("/nonexistent/clip.mp4", QUESTION, k=2, num_candidates=N), VideoError, "no such file"),
        (lambda m, v: m.select_frames(str(REPO_ROOT / "pyproject.toml"), QUESTION, k=2, num_candidates=N), VideoError, r"pyproject\.toml: "),
        (lambda m, v: m.select_frames_batch([(v, QUESTION)], batch_size=0), ValueError, "batch_size must be a positive integer"),
        (lambda m, v: m.select_frames_batch([v]), ValueError, r"\(video_or_frames, question\) pairs"),
    ],
)  # fmt: skip
def test_select_frames_rejects_bad_inputs(model, h264_clip, call, error, match):
    with pytest.raises(error, match=match):
        call(model, h264_clip.path)


def test_select_frames_needs_a_processor_for_an_unsaved_model(tiny_models):
    built = FrameSelectorModel.from_backbones(
        tiny_models["siglip"], tiny_models["qwen2"], num_candidates=N
    )
    with pytest.raises(ValueError, match="no processor to load; pass processor="):
        built.select_frames(_frames(0), QUESTION, k=2)
    processor = FrameSelectorProcessor.from_backbones(tiny_models["siglip"], tiny_models["qwen2"])
    result = built.select_frames(_frames(0), QUESTION, k=2, processor=processor)
    assert result.positions.shape == (2,)
