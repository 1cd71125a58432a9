"""fsmodel.hub and hub_cards: a selector trained on a label dataset from the (local) Hub at a
tag is pushed with its card as one tagged commit and loads back at that tag; tags are never
moved; cards publish no local paths or tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fsmodel  # noqa: F401  (registers the Auto classes)
from fsmodel.hub import TagExistsError, push_selector
from fsmodel.training import TrainConfig, train_selector
from fsmodel.training.recipe import TRAINING_RECORD
from fsmodel.training.synthetic_data import random_event_spec, write_event_dataset
from hub_cards import CardError, check_public, render_model_card

N = 16
DATA_REPO = "tester/synthetic-event-labels"
CODE_FILES = (
    "configuration_frame_selector.py",
    "modeling_frame_selector.py",
    "processing_frame_selector.py",
    "selection.py",
)


@pytest.fixture(scope="module")
def trained(hub, tiny_models, tmp_path_factory):
    """A stage-1 run whose labels come from a Hub dataset repo at tag v1 (videos stay local)."""
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("hub-train")
    rng = np.random.default_rng(4)
    specs = [random_event_spec(rng, f"h{i}", 32, lengths=[4]) for i in range(4)]
    labels = write_event_dataset(root / "labels", specs, N)
    api = HfApi()
    api.create_repo(DATA_REPO, repo_type="dataset", exist_ok=True)
    api.upload_folder(
        folder_path=labels, repo_id=DATA_REPO, repo_type="dataset",
        allow_patterns=["README.md", "data/**"],
    )  # fmt: skip
    api.create_tag(DATA_REPO, tag="v1", repo_type="dataset")
    config = TrainConfig.from_dict(
        {
            "model": str(tiny_models["selector"]),
            "output_dir": str(root / "run"),
            "data": {"source": DATA_REPO, "revision": "v1", "video_root": str(labels)},
            "optim": {"epochs": 1, "batch_size": 2},
            "cache": {"dir": str(root / "cache")},
        }
    )
    return train_selector(config)


@pytest.fixture(scope="module")
def pushed(trained, hub):
    return push_selector(trained.final_dir, "tester/frame-selector", tag="v1")


def _logits(model, processor):
    frames = np.random.default_rng(7).integers(0, 256, (N, 48, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        return model(**processor(frames=frames, question="When does the red circle appear?")).logits


def test_pushed_selector_loads_back_at_its_tag(trained, pushed, hub):
    from transformers import AutoModel, AutoProcessor

    assert pushed.tag == "v1" and len(pushed.commit) == 40
    assert hub.refs("tester/frame-selector")["tags"]["v1"] == pushed.commit
    files = set(hub.list_files("tester/frame-selector", revision="v1"))
    assert {"model.safetensors", "config.json", "processor_config.json", "tokenizer.json",
            "README.md", TRAINING_RECORD, *CODE_FILES} <= files  # fmt: skip
    assert not any(f.endswith((".bin", ".pt")) for f in files)
    config = json.loads(hub.read_file("tester/frame-selector", "config.json", revision="v1"))
    assert config["auto_map"]["AutoModel"] == "modeling_frame_selector.FrameSelectorModel"

    remote = AutoModel.from_pretrained("tester/frame-selector", revision="v1").eval()
    processor = AutoProcessor.from_pretrained("tester/frame-selector", revision="v1")
    local = AutoModel.from_pretrained(trained.final_dir).eval()
    torch.testing.assert_close(
        _logits(remote, processor), _logits(local, processor), rtol=0, atol=0
    )


def test_the_card_says_how_the_selector_was_made(pushed, hub, tmp_path):
    import os

    from huggingface_hub import ModelCard

    card = ModelCard(hub.read_file("tester/frame-selector", "README.md", revision="v1").decode())
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers"
    assert meta["datasets"] == [DATA_REPO]
    assert "base_model" not in meta  # the tiny backbones are local, not Hub models
    text = card.text
    for needle in (
        f"`{DATA_REPO}@v1`",  # training data repo@revision
        "a local model (`siglip`)",  # base models, local ones by name only
        "a local model (`qwen2`)",
        "### Stage 1",
        "`lr=0.001`",
        "`warmup_ratio=0.03`",
        "objectives: bce + caption_ce",
        "| nms |",
        "| uniform |",
        'AutoModel.from_pretrained("tester/frame-selector", revision="v1")',
        "select_frames(",
        "## Limitations",
        "apache-2.0",
    ):
        assert needle in text, needle
    assert "/tmp" not in card.content and str(tmp_path.parent) not in card.content
    assert os.environ["HF_TOKEN"] not in card.content


def test_an_existing_tag_is_refused_and_never_moved(trained, pushed, hub):
    before = hub.commit_ids("tester/frame-selector")
    with pytest.raises(TagExistsError, match="already has a tag 'v1'"):
        push_selector(trained.final_dir, "tester/frame-selector", tag="v1")
    assert hub.commit_ids("tester/frame-selector") == before  # nothing was uploaded
    second = push_selector(trained.final_dir, "tester/frame-selector", tag="v2")
    tags = hub.refs("tester/frame-selector")["tags"]
    assert tags == {"v1": pushed.commit, "v2": second.commit} and second.commit != pushed.commit


def test_private_push_and_bad_directories(trained, hub, tmp_path):
    from huggingface_hub import HfApi

    push_selector(trained.final_dir, "tester/private-selector", private=True)
    assert HfApi().model_info("tester/private-selector").private is True
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_selector(tmp_path / "missing", "tester/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="does not hold a loadable frame selector"):
        push_selector(tmp_path / "empty", "tester/x")


def test_cards_refuse_local_paths_and_tokens(trained):
    from transformers import AutoConfig

    with pytest.raises(CardError, match="local path"):
        check_public("trained from /tmp/run/final")
    with pytest.raises(CardError, match="access token"):
        check_public("token hf_" + "a" * 34)
    record = json.loads((trained.final_dir / TRAINING_RECORD).read_text())
    record["stages"][0]["data"]["source"] = {"id": "/home/me/labels", "local": False}
    config = AutoConfig.from_pretrained(trained.final_dir)
    with pytest.raises(CardError, match="/home/me/labels"):
        render_model_card(record, config, "tester/x")
    untrained = render_model_card(None, config, "tester/x")
    assert "No evaluation was recorded" in untrained.text


def test_the_working_directory_counts_only_as_a_whole_path(monkeypatch):
    # In a container whose working directory is /data, a repo named acme/data-labels is fine.
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: Path("/data")))
    check_public("load_dataset('acme/data-labels')")
    with pytest.raises(CardError, match="'/data'"):
        check_public("videos under /data/videos")


def test_selector_pushes_take_the_dataset_release_path(trained, hub):
    """Identical content is a no-op, a push whose tag step failed is finished by pushing again,
    a commit that does not land leaves the remote unchanged, and someone else's repo is a
    PermissionError (`hub_cards.release.publish_release`, shared with label datasets)."""
    from fsmodel.hub import PushError

    repo = "tester/selector-release-path"
    first = push_selector(trained.final_dir, repo)
    again = push_selector(trained.final_dir, repo)
    assert (again.unchanged, again.commit, again.tag) == (True, first.commit, None)
    assert first.files and again.files == []

    hub.fail_next(f"/api/models/{repo}/commit/", status="disconnect")
    with pytest.raises(PushError, match="no commit was made, the remote is unchanged"):
        push_selector(trained.final_dir, repo, tag="v1")
    assert hub.head(repo) == first.commit and hub.refs(repo)["tags"] == {}

    hub.fail_next(f"/api/models/{repo}/tag/", status=403)
    with pytest.raises(PushError, match="push the same model directory again"):
        push_selector(trained.final_dir, repo, tag="v1")
    landed = hub.head(repo)
    assert landed != first.commit and hub.refs(repo)["tags"] == {}
    finished = push_selector(trained.final_dir, repo, tag="v1")
    assert (finished.tag, finished.commit, finished.unchanged) == ("v1", landed, False)
    assert hub.refs(repo)["tags"] == {"v1": landed} and hub.head(repo) == landed

    hub.create_repo("someone-else/selector", "model")
    with pytest.raises(PermissionError, match="cannot write to model repo someone-else/selector"):
        push_selector(trained.final_dir, "someone-else/selector")
