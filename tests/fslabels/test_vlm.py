"""fslabels.vlm.load_processor: the stock processor where it loads, image-only where it cannot."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fslabels import vlm

# These run in .venv, which has no torchvision, so `load_processor` takes the image-only fallback
# (the stock path runs in .venv-lmms: tests/fslabels/test_stock_processor.py).


@pytest.fixture(scope="module")
def vl_dir(tiny_models) -> Path:
    return tiny_models["qwen2-vl"]


@pytest.fixture(scope="module")
def processor(vl_dir):
    return vlm.load_processor(vl_dir)


@pytest.fixture(scope="module")
def model(vl_dir):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(vl_dir).eval()


def _frame(seed: int, height: int = 48, width: int = 64) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _prompt(processor, question: str, n_images: int = 1) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _processor_files(src: Path, dst: Path) -> Path:
    """A copy of a checkpoint's processor files (no weights), to edit into other layouts."""
    dst.mkdir()
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, dst / name)
    shutil.copy(src / "chat_template.jinja", dst / "chat_template.jinja")
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2))


def test_module_import_is_light():
    code = "import sys, fslabels.vlm; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_processor_output_runs_the_model(processor, model):
    from transformers import Qwen2VLProcessor

    assert isinstance(processor, Qwen2VLProcessor)
    frames = [_frame(0), _frame(1, height=96, width=160)]
    texts = [_prompt(processor, "Is there a red circle?"), _prompt(processor, "Is it dark?")]
    inputs = processor(
        images=frames, text=texts, padding=True, padding_side="left", return_tensors="pt"
    )
    assert inputs["image_grid_thw"].shape == (2, 3)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(logits).all()


def test_chat_template_with_images_tokenizes_and_runs(processor, model):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": _frame(2)},
                {"type": "image", "image": _frame(3)},
                {"type": "text", "text": "Which frame shows the blue square?"},
            ],
        }
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_fallback_logs_one_info_line_and_no_warning(vl_dir, caplog):
    with caplog.at_level(logging.INFO, logger="fslabels.vlm"):
        processor = vlm.load_processor(vl_dir)
    records = [r for r in caplog.records if r.name == "fslabels.vlm"]
    assert [r.levelname for r in records] == ["INFO"]
    message = records[0].getMessage()
    assert "\n" not in message
    assert "torchvision" in message and "Qwen2VLImageOnlyProcessor" in message
    assert type(processor).__name__ == "Qwen2VLImageOnlyProcessor"
    assert not hasattr(processor, "video_processor")


def test_videos_raise_a_clear_error(processor):
    with pytest.raises(ValueError, match="pass the video's frames as images"):
        processor(videos=[[_frame(0)]], text=["<|vision_start|><|video_pad|><|vision_end|>"])


def test_fallback_processor_pickles(processor):
    # datasets.map(num_proc=...) pickles whatever the labeler holds.
    clone = pickle.loads(pickle.dumps(processor))
    assert type(clone) is type(processor)
    text = [_prompt(processor, "Is it dark?")]
    a = processor(images=[_frame(4)], text=text, return_tensors="pt")
    b = clone(images=[_frame(4)], text=text, return_tensors="pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_directory_raises_what_autoprocessor_raises(tmp_path):
    from transformers import AutoProcessor

    missing = tmp_path / "no-such-model"
    with pytest.raises(Exception) as expected:
        AutoProcessor.from_pretrained(missing)
    with pytest.raises(type(expected.value)) as got:
        vlm.load_processor(missing)
    assert str(got.value) == str(expected.value)
    assert "torchvision" not in str(got.value).lower()


def test_text_only_checkpoint_gives_its_tokenizer(tiny_models, caplog):
    from transformers import PreTrainedTokenizerBase

    with caplog.at_level(logging.WARNING, logger="fslabels.vlm"):
        processor = vlm.load_processor(tiny_models["qwen2"])
    assert isinstance(processor, PreTrainedTokenizerBase)
    assert not [r for r in caplog.records if r.name == "fslabels.vlm"]


def test_qwen2_5_vl_uses_its_own_stock_class(vl_dir, tmp_path):
    from transformers import Qwen2_5_VLProcessor

    ckpt = _processor_files(vl_dir, tmp_path / "qwen2.5-vl")
    _edit_json(ckpt / "processor_config.json", processor_class="Qwen2_5_VLProcessor")
    _edit_json(ckpt / "tokenizer_config.json", processor_class="Qwen2_5_VLProcessor")
    processor = vlm.load_processor(ckpt)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert type(processor).__name__ == "Qwen2_5_VLImageOnlyProcessor"
    inputs = processor(
        images=[_frame(5)], text=[_prompt(processor, "Is it dark?")], return_tensors="pt"
    )
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]


def test_legacy_hub_layout_falls_back(vl_dir, tmp_path):
    # Qwen2-VL-7B-Instruct on the Hub predates processor_config.json: preprocessor_config.json
    # holds the image settings and names the processor class.
    ckpt = _processor_files(vl_dir, tmp_path / "legacy")
    config = json.loads((ckpt / "processor_config.json").read_text())
    (ckpt / "processor_config.json").unlink()
    image = {**config["image_processor"], "processor_class": "Qwen2VLProcessor"}
    (ckpt / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    processor = vlm.load_processor(ckpt)
    assert type(processor).__name__ == "Qwen2VLImageOnlyProcessor"
    assert processor.image_processor.size == config["image_processor"]["size"]


def test_model_type_names_the_family_when_no_file_does(vl_dir, tmp_path):
    ckpt = _processor_files(vl_dir, tmp_path / "unnamed")
    _edit_json(ckpt / "processor_config.json", processor_class=None)
    _edit_json(ckpt / "tokenizer_config.json", processor_class=None)
    processor = vlm.load_processor(ckpt)
    assert type(processor).__name__ == "Qwen2VLImageOnlyProcessor"


def test_unknown_family_names_family_cause_and_fix(vl_dir, tmp_path):
    # A real transformers processor with a video processor but no image-only fallback here.
    ckpt = _processor_files(vl_dir, tmp_path / "qwen3-vl")
    _edit_json(ckpt / "processor_config.json", processor_class="Qwen3VLProcessor")
    _edit_json(ckpt / "tokenizer_config.json", processor_class="Qwen3VLProcessor")
    with pytest.raises(ImportError) as info:
        vlm.load_processor(ckpt)
    message = str(info.value)
    assert "Qwen3VLProcessor" in message
    assert "torchvision" in message and "Install torchvision" in message
    assert info.value.__cause__ is not None


def test_image_only_classes_are_cached_subclasses_of_the_stock_ones():
    from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor

    cls = vlm.image_only_processor_class("Qwen2VLProcessor")
    assert cls is vlm.image_only_processor_class("Qwen2VLProcessor")
    assert cls is vlm.Qwen2VLImageOnlyProcessor
    assert issubclass(cls, Qwen2VLProcessor)
    assert issubclass(vlm.image_only_processor_class("Qwen2_5_VLProcessor"), Qwen2_5_VLProcessor)
    assert cls.get_attributes() == ["image_processor", "tokenizer"]
    with pytest.raises(ValueError, match="No image-only fallback"):
        vlm.image_only_processor_class("Qwen3VLProcessor")
    with pytest.raises(AttributeError):
        _ = vlm.NoSuchThing


def test_unrelated_errors_are_not_mistaken_for_torchvision():
    assert vlm._needs_torchvision(ImportError("Qwen2VLVideoProcessor requires torchvision"))
    assert vlm._needs_torchvision(RuntimeError("operator torchvision::nms does not exist"))
    try:
        try:
            raise RuntimeError("operator torchvision::nms does not exist")
        except RuntimeError as inner:
            raise ImportError("Failed to import video_processing_qwen2_vl") from inner
    except ImportError as chained:
        assert vlm._needs_torchvision(chained)
    assert not vlm._needs_torchvision(OSError("torchvision"))  # a file error is not a backend one
    assert not vlm._needs_torchvision(ImportError("No module named 'decord'"))
    assert not vlm._needs_torchvision(ValueError("Unrecognized processing class"))
