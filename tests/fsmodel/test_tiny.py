"""The offline tiny models load through the ordinary transformers entry points and behave."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fsmodel import tiny


@pytest.fixture(scope="module")
def paths(tiny_models) -> dict[str, Path]:
    # The session-wide build from conftest.py (tiny.build_all into a tmp_path_factory dir).
    return tiny_models


@pytest.fixture(scope="module")
def tokenizer(paths):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(paths["tokenizer"])


@pytest.fixture(scope="module")
def vl_processor(paths):
    from fslabels.vlm import load_processor

    # The image-only fallback: .venv has no torchvision (the stock path: test_stock_processor.py).
    return load_processor(paths["qwen2-vl"])


@pytest.fixture(scope="module")
def vl_model(paths):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(paths["qwen2-vl"]).eval()


@pytest.fixture(scope="module")
def lm(paths):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(paths["qwen2"]).eval()


def _frame(seed: int, height: int = 48, width: int = 64) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _image_prompt(processor, question: str) -> str:
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": question}],
        }
    ]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _until_eos(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[: i + 1]
    return tokens


# --- tokenizer ------------------------------------------------------------------------------


def test_tokenizer_reloads_as_qwen2_with_stable_special_ids(paths, tokenizer):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    n = len(tokenizer)
    # Special tokens follow the learned vocabulary in Qwen's order.
    expected = {
        tok: n - len(tiny.QWEN_SPECIAL_TOKENS) + i for i, tok in enumerate(tiny.QWEN_SPECIAL_TOKENS)
    }
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    assert tokenizer.pad_token == tiny.PAD_TOKEN
    assert tokenizer.eos_token == tiny.EOS_TOKEN
    # Every model directory carries the same tokenizer, whatever class its model_type implies.
    for name in ("qwen2-vl", "qwen2"):
        other = AutoTokenizer.from_pretrained(paths[name])
        assert other.get_vocab() == tokenizer.get_vocab()
        assert other.chat_template == tokenizer.chat_template == tiny.QWEN2_VL_CHAT_TEMPLATE
    ids = tokenizer("<|im_start|>user\n<|image_pad|><|im_end|>", add_special_tokens=False).input_ids
    assert ids[0] == expected["<|im_start|>"] and ids[-1] == expected["<|im_end|>"]
    assert expected["<|image_pad|>"] in ids


@pytest.mark.parametrize("word", tiny.ANSWER_WORDS)
def test_answer_words_are_single_tokens(tokenizer, word):
    ids = tokenizer(word, add_special_tokens=False).input_ids
    assert len(ids) == 1
    assert tokenizer.decode(ids) == word


def test_answer_words_stay_single_tokens_in_context(tokenizer):
    in_sentence = tokenizer.tokenize("The frame shows a red circle, so the answer is True")
    assert in_sentence[-1] == tokenizer.convert_ids_to_tokens(tokenizer(" True").input_ids)[0]
    reply = tokenizer.tokenize("<|im_start|>assistant\nFalse")
    assert reply[-1] == "False"


def test_chat_template_renders_vision_placeholders(tokenizer):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "video"},
                {"type": "text", "text": "Is there a red circle?"},
            ],
        }
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "<|vision_start|><|video_pad|><|vision_end|>Is there a red circle?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
    )
    assert plain == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


def test_tokenizer_is_deterministic(tmp_path, tokenizer):
    first = tiny.build_tokenizer(tmp_path / "a")
    second = tiny.build_tokenizer(tmp_path / "b")
    assert first.get_vocab() == second.get_vocab() == tokenizer.get_vocab()
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_bytes()


def test_tokenizer_rejects_too_small_vocab(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        tiny.build_tokenizer(tmp_path / "tiny", vocab_size=100)
    with pytest.raises(RuntimeError, match="one token"):
        tiny.build_tokenizer(tmp_path / "small", vocab_size=300)


# --- tiny Qwen2-VL --------------------------------------------------------------------------


def test_qwen2_vl_dir_is_a_stock_checkpoint(paths):
    vl_dir = paths["qwen2-vl"]
    assert not list(vl_dir.glob("*.py")), "no custom code: real checkpoints carry none"
    config = json.loads((vl_dir / "processor_config.json").read_text())
    assert "auto_map" not in json.dumps(config)
    assert config["processor_class"] == "Qwen2VLProcessor"
    assert config["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"
    assert config["image_processor"]["size"] == {
        "shortest_edge": tiny.TINY_MIN_PIXELS,
        "longest_edge": tiny.TINY_MAX_PIXELS,
    }
    assert config["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    tokenizer_config = json.loads((vl_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["processor_class"] == "Qwen2VLProcessor"
    assert "auto_map" not in tokenizer_config
    assert (vl_dir / "chat_template.jinja").read_text() == tiny.QWEN2_VL_CHAT_TEMPLATE


def test_qwen2_vl_processor_encodes_images(vl_processor, tokenizer):
    from transformers import Qwen2VLProcessor

    assert isinstance(vl_processor, Qwen2VLProcessor)
    assert type(vl_processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert vl_processor.tokenizer.get_vocab() == tokenizer.get_vocab()
    text = _image_prompt(vl_processor, "Is there a red circle?")
    inputs = vl_processor(images=[_frame(0)], text=[text], return_tensors="pt")
    # 64x48 resizes to 56x56: 4x4 patches of 14 px, merged 2x2 into 4 image tokens.
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    image_id = vl_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_id).sum()) == 4
    assert inputs["mm_token_type_ids"].shape == inputs["input_ids"].shape
    assert int(inputs["mm_token_type_ids"].sum()) == 4


@pytest.mark.torchvision
def test_stock_processor_loads_with_torchvision(paths):
    from transformers import AutoProcessor, Qwen2VLProcessor

    processor = AutoProcessor.from_pretrained(paths["qwen2-vl"])
    assert type(processor) is Qwen2VLProcessor


def test_stock_processor_fails_without_torchvision(paths):
    """Why fslabels.vlm.load_processor has a fallback (huggingface/transformers#48558).

    If this starts failing, transformers loads Qwen2-VL processors without torchvision again:
    drop the fallback and load with AutoProcessor.
    """
    from transformers import AutoProcessor

    with pytest.raises(ImportError, match=r"(?i)torchvision"):
        AutoProcessor.from_pretrained(paths["qwen2-vl"])


def test_qwen2_vl_forward_and_generate(vl_processor, vl_model, tokenizer):
    assert vl_model.dtype == torch.float32
    assert type(vl_model).__name__ == "Qwen2VLForConditionalGeneration"
    assert vl_model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _frame(1)},
                {"type": "text", "text": "Does this frame show a blue square?"},
            ],
        }
    ]
    inputs = vl_processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        logits = vl_model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    out = vl_model.generate(**inputs, max_new_tokens=5)
    prompt_len = inputs["input_ids"].shape[1]
    assert torch.equal(out[:, :prompt_len], inputs["input_ids"])
    assert 1 <= out.shape[1] - prompt_len <= 5


def test_qwen2_vl_left_padded_batch_matches_single(vl_processor, vl_model):
    frames = [_frame(2), _frame(3, height=96, width=160)]
    texts = [
        _image_prompt(vl_processor, "Is there a red circle?"),
        _image_prompt(vl_processor, "What colour is the square in the middle of the video?"),
    ]
    stop_ids = set(vl_model.generation_config.eos_token_id)
    kwargs = {"max_new_tokens": 5, "do_sample": False}

    singles = []
    for frame, text in zip(frames, texts, strict=True):
        inputs = vl_processor(images=[frame], text=[text], return_tensors="pt")
        out = vl_model.generate(**inputs, **kwargs)
        singles.append(out[0, inputs["input_ids"].shape[1] :].tolist())

    batch = vl_processor(
        images=frames, text=texts, padding=True, padding_side="left", return_tensors="pt"
    )
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths[0] != lengths[1], "the prompts must differ in length to exercise padding"
    assert (batch["attention_mask"][:, -1] == 1).all(), "padding must be on the left"
    out = vl_model.generate(**batch, **kwargs)
    batched = out[:, batch["input_ids"].shape[1] :].tolist()
    for single, row in zip(singles, batched, strict=True):
        assert _until_eos(row, stop_ids) == _until_eos(single, stop_ids)


def test_qwen2_vl_save_load_round_trip(vl_processor, vl_model, tmp_path):
    from transformers import AutoModelForImageTextToText

    inputs = vl_processor(
        images=[_frame(4)], text=[_image_prompt(vl_processor, "Is it dark?")], return_tensors="pt"
    )
    vl_model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(vl_model(**inputs).logits, reloaded(**inputs).logits)


# --- tiny Qwen2 -----------------------------------------------------------------------------


def test_qwen2_generate_and_round_trip(lm, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    assert type(lm).__name__ == "Qwen2ForCausalLM"
    assert lm.dtype == torch.float32
    assert lm.config.vocab_size == len(tokenizer)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Which frames show the red circle?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    out = lm.generate(**inputs, max_new_tokens=5)
    assert 1 <= out.shape[1] - inputs["input_ids"].shape[1] <= 5

    lm.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(lm(**inputs).logits, reloaded(**inputs).logits)


def test_model_weights_follow_the_seed(paths, tmp_path):
    from safetensors.torch import load_file

    tiny.build_tiny_qwen2(tmp_path / "same", seed=0, tokenizer=paths["tokenizer"])
    tiny.build_tiny_qwen2(tmp_path / "other", seed=1, tokenizer=paths["tokenizer"])
    reference = load_file(paths["qwen2"] / "model.safetensors")
    same = load_file(tmp_path / "same" / "model.safetensors")
    other = load_file(tmp_path / "other" / "model.safetensors")
    assert all(torch.equal(reference[k], same[k]) for k in reference)
    assert not all(torch.equal(reference[k], other[k]) for k in reference)


# --- build_all ------------------------------------------------------------------------------


def _marker_mtimes(paths: dict[str, Path]) -> dict[str, int]:
    return {name: (path / tiny.MARKER_NAME).stat().st_mtime_ns for name, path in paths.items()}


def test_build_all_is_idempotent_and_fast(paths):
    root = paths["tokenizer"].parent
    before = _marker_mtimes(paths)
    start = time.perf_counter()
    again = tiny.build_all(root)
    elapsed = time.perf_counter() - start
    assert again == paths
    assert _marker_mtimes(again) == before
    assert elapsed < 0.5
    assert all(tiny.is_complete(again[name], name) for name in again)
    marker = json.loads((again["qwen2-vl"] / tiny.MARKER_NAME).read_text())
    assert marker["kind"] == "qwen2-vl" and marker["vocab_size"] == len(
        json.loads((again["tokenizer"] / "tokenizer.json").read_text())["model"]["vocab"]
    ) + len(tiny.QWEN_SPECIAL_TOKENS)


def test_build_all_rebuilds_only_incomplete_parts(tmp_path):
    first = tiny.build_all(tmp_path)
    before = _marker_mtimes(first)
    (first["qwen2"] / tiny.MARKER_NAME).unlink()  # as if the build had been interrupted
    assert not tiny.is_complete(first["qwen2"], "qwen2")
    second = tiny.build_all(tmp_path)
    after = _marker_mtimes(second)
    assert after["tokenizer"] == before["tokenizer"]
    assert after["qwen2-vl"] == before["qwen2-vl"]
    assert after["siglip"] == before["siglip"]
    assert after["selector"] == before["selector"], "same seed, same weights: no rebuild"
    assert tiny.is_complete(second["qwen2"], "qwen2")
    assert not list(tmp_path.glob(".*-*")), "temporary build directories must be removed"
    assert not tiny.is_complete(tmp_path / "missing", "qwen2")


def test_selector_is_rebuilt_when_its_code_changes(tmp_path):
    # The selector directory carries copies of the model code (remote code): a marker written by
    # other code must not pass as complete, or trust_remote_code would load stale files.
    first = tiny.build_all(tmp_path)
    marker_path = first["selector"] / tiny.MARKER_NAME
    marker = json.loads(marker_path.read_text())
    assert set(marker) >= {"kind", "seed", "recipe_version", "transformers", "code"}
    marker["code"] = "stale"
    marker_path.write_text(json.dumps(marker))
    assert not tiny.is_complete(first["selector"], "selector")
    before = _marker_mtimes(first)
    second = tiny.build_all(tmp_path)
    after = _marker_mtimes(second)
    assert tiny.is_complete(second["selector"], "selector")
    assert {name for name in after if after[name] != before[name]} == {"selector"}
    for name in ("modeling_frame_selector.py", "selection.py"):
        assert (second["selector"] / name).read_bytes() == (
            Path(tiny.__file__).parent / name
        ).read_bytes()


def test_siglip_dir_is_a_full_siglip_checkpoint(paths):
    from transformers import AutoConfig, AutoImageProcessor, SiglipVisionModel

    assert AutoConfig.from_pretrained(paths["siglip"]).model_type == "siglip"
    image_processor = AutoImageProcessor.from_pretrained(paths["siglip"], backend="pil")
    pixels = image_processor(images=[np.zeros((48, 64, 3), np.uint8)], return_tensors="pt")
    assert pixels["pixel_values"].shape == (1, 3, tiny.TINY_SIGLIP_IMAGE_SIZE, 56)
    tower = SiglipVisionModel.from_pretrained(paths["siglip"], vision_use_head=False).eval()
    with torch.no_grad():
        patches = tower(pixel_values=pixels["pixel_values"]).last_hidden_state
    assert patches.shape == (1, 16, 32), "a 4x4 grid of 14 px patches, hidden 32"
