"""fsmodel.training: configs, label data → samples, the feature cache, both stages end to end,
LoRA save/load/merge, resume after an interruption, and a small ground-truth quality check —
all on the offline tiny models and synthetic videos whose events are the labels."""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fsmodel  # noqa: F401  (registers the Auto classes)
from fsmodel import schema
from fsmodel.synthetic import Event, write_video
from fsmodel.training import (
    CandidateMismatchError,
    ConfigError,
    FeatureCache,
    FrameSource,
    TrainConfig,
    TrainerCallback,
    TrainingDataError,
    load_samples,
    train_selector,
)
from fsmodel.training.data import (
    LabelSample,
    collate_bce,
    collate_ce,
    load_captions,
    weigh_hard_negatives,
)
from fsmodel.training.evaluate import coverage_at_k, occurrences
from fsmodel.training.recipe import METRICS_FILE, TRAINING_RECORD, latest_checkpoint
from fsmodel.training.synthetic_data import (
    EventVideoSpec,
    event_label_rows,
    random_event_spec,
    random_multi_event_spec,
    write_event_dataset,
)

N = 16  # the tiny selector's candidates


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory) -> Path:
    """Six 32-frame videos, one question each (an event of 4 frames = 2 candidates), with the
    captions config."""
    rng = np.random.default_rng(0)
    specs = [random_event_spec(rng, f"v{i}", 32, lengths=[4], distractors=1) for i in range(6)]
    return write_event_dataset(tmp_path_factory.mktemp("labels"), specs, num_candidates=N)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


def _config(tiny_models, labels_dir, cache_dir, out, **sections) -> TrainConfig:
    data = {
        "model": str(tiny_models["selector"]),
        "output_dir": str(out),
        "data": {"source": str(labels_dir)},
        "optim": {"epochs": 2, "batch_size": 2},
        "cache": {"dir": str(cache_dir)},
        "checkpoint": {"every_steps": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return TrainConfig.from_dict(data)


@pytest.fixture(scope="module")
def stage1(tiny_models, labels_dir, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    return train_selector(_config(tiny_models, labels_dir, cache_dir, out))


# --- config ----------------------------------------------------------------------------------


def test_stage_defaults_are_the_papers(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model: m\noutput_dir: out\ndata:\n  source: labels\n")
    one = TrainConfig.from_yaml(path)
    assert (one.optim.lr, one.optim.epochs, one.optim.scheduler, one.optim.warmup_ratio) == (
        1e-3, 2, "cosine", 0.03,
    )  # fmt: skip
    assert one.optim.trainable == ["projector", "score_query", "score_head"]
    two = TrainConfig.from_yaml(path, overrides=["stage=2"])
    assert (two.optim.lr, two.optim.epochs, two.optim.scheduler) == (1e-5, 5, "cosine")
    assert two.optim.trainable == ["score_query", "score_head"]
    # YAML 1.1 reads 3e-4 as text; numbers are coerced, lists parse, nested keys set.
    tuned = TrainConfig.from_yaml(
        path, ["optim.lr=3e-4", "lora.target_modules=[q_proj, v_proj]", "data.limit=5"]
    )
    assert tuned.optim.lr == 3e-4 and tuned.lora.target_modules == ["q_proj", "v_proj"]
    assert TrainConfig.from_dict(tuned.to_dict()).to_dict() == tuned.to_dict()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optim.lrr=1"], "unknown config key optim.lrr; known keys in optim: lr, epochs"),
        (["colour=red"], "unknown config key colour; known keys in the training config"),
        (["optim.lr"], r"--set expects key=value .* got 'optim.lr'"),
        (["optim..lr=1"], "has an empty part"),
        (["optim.lr=fast"], "optim.lr must be a number, got 'fast'"),
        (["optim.lr=-1"], r"optim.lr must be a number in \(0, 10\], got -1.0"),
        (["optim.batch_size=0"], "optim.batch_size must be an integer >= 1, got 0"),
        (["optim.scheduler=step"], "optim.scheduler must be one of"),
        (["stage=3"], r"stage must be one of \[1, 2\], got 3"),
        (["optim.trainable=[head]"], "optim.trainable must be a non-empty list of distinct parts"),
        (["data=labels"], "data must be a mapping of keys, got 'labels'"),
        (["optim.lr.max=1"], "optim.lr is a value, not a section"),
        (["stage=2", "optim.trainable=[language_model]"], "must not contain 'language_model'"),
        (["optim.trainable=[vision_model]"], "cache.enabled must be false"),
        (["data.eval_fraction=0.2", "data.eval_source=x"], "data.eval_fraction must be 0"),
        (["data.target=human"], r"data.target must be one of \['scores', 'spatial', 'temporal'\]"),
        (["data.questions=(red"], r"data.questions must be a regular expression \(missing \)"),
        (["data.hard_negatives=-1"], r"data.hard_negatives must be a number in \[0, 100\]"),
    ],
)
def test_config_errors_name_the_key_the_value_and_the_rule(overrides, match):
    base = {"model": "m", "output_dir": "out", "data": {"source": "labels"}}
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(base, overrides)


def test_config_needs_a_data_source(tmp_path):
    with pytest.raises(ConfigError, match=r"data.source is required"):
        TrainConfig.from_dict({"model": "m", "output_dir": "out"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


# --- data ------------------------------------------------------------------------------------


def test_event_labels_mark_the_candidates_inside_the_event(tmp_path):
    clip = write_video(tmp_path / "a.mp4", 32, events=[Event(8, 11, "circle", "red")])
    (row,) = event_label_rows(clip, "a.mp4", num_candidates=N)
    assert row["question"] == "When does the red circle appear?"
    assert np.flatnonzero(row["scores"]).tolist() == [4, 5]  # frames 9 and 11
    assert schema.validate_label_row(row, N) == []


def test_samples_resolve_videos_and_reject_bad_data(labels_dir, tmp_path):
    samples = load_samples(labels_dir)
    assert len(samples) == 6 and all(s.num_candidates == N for s in samples)
    assert Path(samples[0].video).is_file() and samples[0].labels.sum() == 2

    # not a schema v1 label dataset
    import datasets

    bad = tmp_path / "not-labels"
    datasets.Dataset.from_list([{"video": "x.mp4", "text": "hi"}]).to_parquet(
        str(bad / "data.parquet")
    )
    with pytest.raises(TrainingDataError, match="not a framesel label dataset of schema v1"):
        load_samples(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_samples(tmp_path / "nowhere")
    with pytest.raises(TrainingDataError, match=r"no .labels. config"):
        load_samples(bad)

    # a missing video file, named with its sample
    rows = schema.load_label_dataset(labels_dir).to_list()
    rows[1]["video"] = "videos/gone.mp4"
    moved = schema.save_label_dataset(rows, tmp_path / "moved")
    with pytest.raises(TrainingDataError, match=rf"sample {rows[1]['sample_id']} .*gone.mp4"):
        load_samples(moved, video_root=labels_dir)
    # URLs need downloading first
    rows[1]["video"] = "https://example.com/v.mp4"
    remote = schema.save_label_dataset(rows, tmp_path / "remote")
    with pytest.raises(TrainingDataError, match="is a URL; download the videos"):
        load_samples(remote, video_root=labels_dir)


def test_target_picks_the_label_column_and_leaves_out_failed_sources(labels_dir, tmp_path):
    import json

    rows = schema.load_label_dataset(labels_dir).to_list()
    for i, row in enumerate(rows):  # spatial: the truth reversed; temporal failed on rows 0, 1
        row["spatial"] = [1.0 - x for x in row["scores"]]
        row["temporal"] = [0.0] * N if i < 2 else [0.5] * N
        filled = {"temporal": {"value": 0.0, "positions": list(range(N))}} if i < 2 else {}
        row["label_meta"] = json.dumps({"filled": filled})
    mixed = schema.save_label_dataset(rows, tmp_path / "mixed")
    fused = load_samples(mixed, video_root=labels_dir)
    spatial = load_samples(mixed, video_root=labels_dir, target="spatial")
    assert [s.labels.tolist() for s in fused] == [r["scores"] for r in rows]
    assert [s.labels.tolist() for s in spatial] == [r["spatial"] for r in rows]
    temporal = load_samples(mixed, video_root=labels_dir, target="temporal")
    assert [s.sample_id for s in temporal] == [r["sample_id"] for r in rows[2:]]
    assert all(s.labels.tolist() == [0.5] * N for s in temporal)
    for row in rows:
        row["label_meta"] = json.dumps({"filled": {"temporal": {"positions": [3]}}})
    none = schema.save_label_dataset(rows, tmp_path / "none")
    with pytest.raises(TrainingDataError, match="no row has 'temporal' labels"):
        load_samples(none, video_root=labels_dir, target="temporal")


def test_questions_keeps_the_rows_whose_question_matches(labels_dir):
    every = load_samples(labels_dir)
    asked = every[0].question  # e.g. "When does the red circle appear?"
    kept = load_samples(labels_dir, questions=re.escape(asked))
    assert kept and [s.question for s in kept] == [s.question for s in every if s.question == asked]
    assert len(kept) < len(every)
    with pytest.raises(
        TrainingDataError, match=r"no row's question matches data.questions 'purple'"
    ):
        load_samples(labels_dir, questions="purple")


def test_candidates_that_differ_from_the_labelled_ones_are_refused(
    labels_dir, tiny_models, tmp_path
):
    from transformers import AutoModel, AutoProcessor

    sample = load_samples(labels_dir)[0]
    model = AutoModel.from_pretrained(tiny_models["selector"])
    source = FrameSource(model, AutoProcessor.from_pretrained(tiny_models["selector"]))
    shifted = type(sample)(**{**sample.__dict__, "frame_indices": sample.frame_indices + 1})
    with pytest.raises(CandidateMismatchError, match=rf"sample {sample.sample_id} .*re-label"):
        source.pixel_values(shifted)
    assert source.pixel_values(sample).shape == (N, 3, 56, 56)
    # A cache hit is checked too: the entry remembers which candidates it holds.
    cached = FrameSource(source.model, source.processor, cache=FeatureCache(tmp_path))
    assert cached.features(sample).shape == (N, 9, 32)
    with pytest.raises(CandidateMismatchError, match=sample.sample_id):
        cached.features(shifted)
    assert cached.cache.hits == 1


def test_frame_source_reads_pixels_for_a_processor_with_timestamps(labels_dir, tiny_models):
    from transformers import AutoModel, AutoProcessor

    sample = load_samples(labels_dir)[0]
    model = AutoModel.from_pretrained(tiny_models["selector"])
    processor = AutoProcessor.from_pretrained(tiny_models["selector"])
    stamped = AutoProcessor.from_pretrained(tiny_models["selector"], timestamp_format="{t:.1f}s")
    assert stamped.timestamp_format == "{t:.1f}s"
    plain = FrameSource(model, processor).pixel_values(sample)
    assert torch.equal(FrameSource(model, stamped).pixel_values(sample), plain)


def _sample(sample_id: str, video: str, labels: list[float]) -> LabelSample:
    n = len(labels)
    return LabelSample(
        sample_id=sample_id,
        video_id=video,
        video=f"{video}.mp4",
        question=f"question {sample_id}",
        options=(),
        answer="",
        frame_indices=np.arange(n),
        timestamps=np.arange(n, dtype=np.float64),
        labels=np.asarray(labels, np.float32),
    )


def test_hard_negatives_weigh_up_the_frames_other_questions_of_the_video_want():
    samples = [
        _sample("a", "v1", [1, 0, 0, 0]),
        _sample("b", "v1", [0, 0, 1, 0]),
        _sample("c", "v1", [0, 0, 0.5, 1]),
        _sample("d", "v2", [0, 1, 0, 0]),  # asked once: nothing to tell apart
    ]
    weighed = weigh_hard_negatives(samples, 2.0)
    assert [s.sample_id for s in weighed] == ["a", "b", "c", "d"]
    np.testing.assert_allclose(weighed[0].weights, [1, 1, 3, 3])
    np.testing.assert_allclose(weighed[1].weights, [3, 1, 1, 3])
    np.testing.assert_allclose(weighed[2].weights, [3, 1, 2, 1])  # b wants frame 2 more than c
    assert weighed[3].weights is None
    assert all(s.weights is None for s in weigh_hard_negatives(samples, 0.0))
    # Another candidate set (another n or sampling) is another video as far as weights go.
    shifted = [samples[0], replace(samples[1], frame_indices=np.arange(1, 5))]
    assert all(s.weights is None for s in weigh_hard_negatives(shifted, 2.0))


def test_a_bce_batch_carries_the_weights_and_the_loss_uses_them(labels_dir, tiny_models):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models["selector"])
    samples = load_samples(labels_dir)[:2]
    source = FrameSource(model, processor)
    plain = collate_bce(samples, source, use_features=False)
    assert plain.label_weights is None
    weights = np.ones(samples[0].num_candidates, np.float32)
    weights[: len(weights) // 2] = 4.0
    weighed = collate_bce([replace(samples[0], weights=weights), samples[1]], source, False)
    assert weighed.label_weights.tolist() == [weights.tolist(), [1.0] * len(weights)]
    with torch.no_grad():
        assert model(**weighed.inputs()).loss > model(**plain.inputs()).loss


def test_cached_features_give_the_same_loss_as_pixels(labels_dir, tiny_models, tmp_path):
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models["selector"])
    samples = load_samples(labels_dir)[:3]
    cache = FeatureCache(tmp_path / "cache")
    cached = FrameSource(model, processor, cache=cache)
    pixels = FrameSource(model, processor)
    captions = load_captions(labels_dir, samples)
    for task, collate, items in (
        ("bce", collate_bce, samples),
        ("ce", collate_ce, [(v, 3) for v in captions]),
    ):
        from_pixels = collate(items, pixels, use_features=False)
        cached_batch = collate(items, cached, use_features=True)  # computes and stores
        again = collate(items, cached, use_features=True)  # reads back
        assert torch.equal(cached_batch.frame_features, again.frame_features)
        losses = []
        for batch in (from_pixels, again):
            with torch.no_grad():
                if task == "bce":
                    losses.append(model(**batch.inputs()).loss)
                else:
                    inputs = batch.inputs()
                    embeds = model.embed_inputs(
                        inputs["input_ids"], inputs["pixel_values"], inputs["frame_features"]
                    )
                    position_ids = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                    losses.append(
                        model.language_model(
                            inputs_embeds=embeds,
                            attention_mask=inputs["attention_mask"],
                            position_ids=position_ids,
                            labels=inputs["labels"],
                        ).loss
                    )
        torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-6)
    assert cache.hits >= 6 and len(list(cache.root.rglob("*.safetensors"))) == 3


def test_cache_key_follows_what_changes_features(labels_dir, tmp_path):
    cache = FeatureCache(tmp_path)
    video = str(next((labels_dir / "videos").glob("*.mp4")))
    key = cache.key(video, "weights-a", n=16, size=56, reader="pyav")
    assert key == cache.key(video, "weights-a", n=16, size=56, reader="pyav")
    changed = [
        cache.key(video, "weights-b", 16, 56, "pyav"),
        cache.key(video, "weights-a", 32, 56, "pyav"),
        cache.key(video, "weights-a", 16, 64, "pyav"),
        cache.key(video, "weights-a", 16, 56, "decord"),
    ]
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(Path(video).read_bytes())
    changed.append(cache.key(str(copy), "weights-a", 16, 56, "pyav"))
    stat = copy.stat()
    before = changed[-1]
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed.append(cache.key(str(copy), "weights-a", 16, 56, "pyav"))
    assert len({key, *changed}) == len(changed) + 1 and before != changed[-1]


def test_coverage_counts_occurrences():
    assert [r.tolist() for r in occurrences(np.array([1, 2, 5]))] == [[1, 2], [5]]
    assert coverage_at_k(np.array([1, 9]), np.array([1, 2, 5])) == 0.5
    assert np.isnan(coverage_at_k(np.array([1]), np.array([], np.int64)))


# --- stage 1 and 2 ---------------------------------------------------------------------------


def test_stage1_trains_only_projector_query_and_head(stage1, tiny_models):
    from transformers import AutoModel

    start = AutoModel.from_pretrained(tiny_models["selector"]).state_dict()
    trained = AutoModel.from_pretrained(stage1.final_dir)
    changed = {
        name.split(".")[0]
        for name, value in trained.state_dict().items()
        if not torch.equal(value, start[name])
    }
    assert changed == {"projector", "score_query", "score_head"}
    lines = [json.loads(x) for x in (stage1.output_dir / METRICS_FILE).read_text().splitlines()]
    tasks = {t for x in lines if x["event"] == "train" for t in ("bce", "ce") if f"loss_{t}" in x}
    assert tasks == {"bce", "ce"}  # importance BCE alternated with the caption CE
    train = [x for x in lines if x["event"] == "train" and "loss_bce" in x]
    assert set(train[0]["recall@8"]) == {"nms", "topk", "uniform"}
    evals = [x for x in lines if x["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2] and evals[-1]["samples"] == 6
    assert set(evals[-1]["recall@8"]) == {"nms", "topk", "uniform"}
    record = json.loads((stage1.final_dir / TRAINING_RECORD).read_text())
    (stage,) = record["stages"]
    assert stage["objectives"] == ["bce", "caption_ce"] and stage["hyperparameters"]["lr"] == 1e-3
    assert stage["data"]["target"] == "scores" and stage["data"]["questions"] is None
    assert record["base_models"]["llm"] == {"id": "qwen2", "local": True}
    assert str(stage1.output_dir) not in json.dumps(record)  # no local absolute paths


def test_stage2_lora_adapter_and_merged_model_are_exact(stage1, labels_dir, cache_dir, tmp_path):
    from transformers import AutoModel, AutoProcessor

    from fsmodel.training.lora import load_adapter

    config = TrainConfig.from_dict(
        {
            "model": str(stage1.final_dir),
            "output_dir": str(tmp_path / "s2"),
            "stage": 2,
            "data": {"source": str(labels_dir)},
            # lr 1e-3 (paper: 1e-5) so that a few steps move the adapter measurably
            "optim": {"epochs": 1, "batch_size": 2, "lr": 1e-3},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
            "cache": {"dir": str(cache_dir)},
        }
    )
    result = train_selector(config)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.adapter_dir / "selector_parameters.safetensors").is_file()

    processor = AutoProcessor.from_pretrained(result.final_dir)
    frames = np.random.default_rng(3).integers(0, 256, (N, 48, 64, 3), dtype=np.uint8)
    batch = processor(frames=frames, question="When does the red circle appear?")
    base = AutoModel.from_pretrained(stage1.final_dir).eval()
    with torch.no_grad():
        before = base(**batch).logits
        adapted = load_adapter(stage1.final_dir, result.adapter_dir)(**batch).logits
        merged = AutoModel.from_pretrained(result.final_dir).eval()  # plain transformers load
        after = merged(**batch).logits
    torch.testing.assert_close(after, adapted, rtol=0, atol=1e-5)
    assert (after - before).abs().max() > 1e-4  # training changed the scores
    assert not any("lora" in name for name in merged.state_dict())
    # The LLM's weights themselves moved (LoRA merged), the vision tower did not.
    old, new = base.state_dict(), merged.state_dict()
    assert not torch.equal(old["language_model.model.layers.0.self_attn.q_proj.weight"],
                           new["language_model.model.layers.0.self_attn.q_proj.weight"])  # fmt: skip
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("vision_model."))
    record = json.loads((result.final_dir / TRAINING_RECORD).read_text())
    assert [s["stage"] for s in record["stages"]] == [1, 2]
    assert record["stages"][1]["lora"]["r"] == 4


class _Interrupt(TrainerCallback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step(self, state, logs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


def test_resume_after_an_interruption_ends_with_the_same_weights(
    tiny_models, labels_dir, cache_dir, tmp_path
):
    # Stage 2 (LoRA dropout draws random numbers) with checkpoints every 2 steps.
    sections = {
        "stage": 2,
        "optim": {"epochs": 2, "batch_size": 2, "lr": 1e-3},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.2},
        "checkpoint": {"every_steps": 2, "keep": 2},
    }
    whole = train_selector(_config(tiny_models, labels_dir, cache_dir, tmp_path / "a", **sections))
    broken = _config(tiny_models, labels_dir, cache_dir, tmp_path / "b", **sections)
    with pytest.raises(KeyboardInterrupt):
        train_selector(broken, callbacks=[_Interrupt(at_step=5)])
    assert latest_checkpoint(tmp_path / "b").name == "step-00000004"
    resumed = train_selector(broken)
    assert resumed.resumed_from == 4 and resumed.steps == whole.steps == 6
    expected = load_file(whole.final_dir / "model.safetensors")
    got = load_file(resumed.final_dir / "model.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / METRICS_FILE).read_text().splitlines()
             if json.loads(x)["event"] == "train"]  # fmt: skip
    assert steps == list(range(1, 7))  # the interrupted step 5 was logged once, after resuming


# --- learning ---------------------------------------------------------------------------------


def test_scratch_selector_carries_the_processor_layout(tiny_models, tmp_path):
    from transformers import AutoConfig, AutoProcessor

    from fsmodel.training.synthetic_data import build_scratch_selector

    model = build_scratch_selector(
        tmp_path / "scratch", tiny_models["siglip"], tiny_models["qwen2"], num_candidates=N,
        question_first=True, timestamp_format="{t:.1f}s", pooled_grid=1,
    )  # fmt: skip
    processor = AutoProcessor.from_pretrained(model)
    assert (processor.question_first, processor.timestamp_format) == (True, "{t:.1f}s")
    assert processor.pooled_grid == AutoConfig.from_pretrained(model).pooled_grid == 1
    plain = AutoProcessor.from_pretrained(build_scratch_selector(
        tmp_path / "plain", tiny_models["siglip"], tiny_models["qwen2"], num_candidates=N
    ))  # fmt: skip
    assert (plain.question_first, plain.timestamp_format) == (False, None)


def test_world_siglip_trains_and_seeds_a_scratch_selector(tiny_models, tmp_path):
    """The mechanics (tests/test_miniature.py shows that it helps a selector learn):
    a SigLIP checkpoint of the tiny tower's size without a pooling head, the loss falls, the
    same seed gives the same weights, and a scratch selector keeps the trained tower."""
    from transformers import AutoModel, AutoTokenizer, SiglipModel

    from fsmodel.training.synthetic_data import build_scratch_selector, train_world_siglip

    def train(out):
        lines = []
        path = train_world_siglip(out, tiny_models["siglip"], tiny_models["tokenizer"],
                                  videos=8, max_steps=60, batch_size=16, log=lines.append)  # fmt: skip
        return path, lines

    path, lines = train(tmp_path / "a")
    losses = [float(m) for m in re.findall(r"loss ([0-9.]+)", "\n".join(lines))]
    assert len(losses) == 2 and losses[1] < 0.8 * losses[0]
    top1 = [
        float(m) for m in re.findall(r"caption top-1 ([0-9.]+) on \d+ frames", "\n".join(lines))
    ]
    assert len(top1) == 2 and top1[1] > top1[0]
    siglip = SiglipModel.from_pretrained(path)
    assert not siglip.config.vision_config.vision_use_head
    assert siglip.config.vision_config.hidden_size == 32
    assert len(AutoTokenizer.from_pretrained(path)) == siglip.config.text_config.vocab_size
    again, _ = train(tmp_path / "b")
    first, second = (load_file(p / "model.safetensors") for p in (path, again))
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key

    selector = build_scratch_selector(tmp_path / "sel", path, tiny_models["qwen2"],
                                      num_candidates=N, vision_weights=True)  # fmt: skip
    tower = AutoModel.from_pretrained(selector).vision_model.state_dict()
    trained = siglip.vision_model.state_dict()
    assert tower.keys() == trained.keys()
    assert all(torch.equal(tower[k], trained[k]) for k in tower)
    random = build_scratch_selector(tmp_path / "rnd", path, tiny_models["qwen2"], num_candidates=N)
    assert not torch.equal(
        AutoModel.from_pretrained(random).vision_model.embeddings.patch_embedding.weight,
        trained["embeddings.patch_embedding.weight"],
    )


@pytest.mark.slow
def test_a_selector_trained_from_scratch_finds_the_event(tiny_models, tmp_path):
    """A small version of benchmarks/bench_train_quality.py: ground-truth labels, no
    pretrained weights; the trained selector's picks must beat uniform sampling clearly on
    held-out videos."""
    from fsmodel.training.synthetic_data import build_scratch_selector

    rng = np.random.default_rng(0)
    kinds = [("red", "circle")]

    def specs(prefix, count):
        return [
            random_event_spec(
                rng, f"{prefix}{i}", 16, kinds, lengths=[int(rng.integers(3, 7))], distractors=0
            )
            for i in range(count)
        ]

    train = write_event_dataset(tmp_path / "train", specs("t", 48), N, captions=False)
    held_out = write_event_dataset(tmp_path / "eval", specs("e", 24), N, captions=False)
    model = build_scratch_selector(
        tmp_path / "scratch", tiny_models["siglip"], tiny_models["qwen2"], num_candidates=N
    )
    config = TrainConfig.from_dict(
        {
            "model": str(model),
            "output_dir": str(tmp_path / "run"),
            "data": {"source": str(train), "eval_source": str(held_out)},
            # From scratch the vision tower stays frozen (random features still tell colours
            # apart) but the LLM must learn to find frames, so it is trained too. 450 steps: the
            # loss sits on a plateau for ~150 before the selector starts localising (~200).
            "optim": {
                "epochs": 75,
                "batch_size": 8,
                "lr": 1e-3,
                "trainable": ["projector", "language_model", "score_query", "score_head"],
            },
            "eval": {"k": 4, "every_steps": 10_000},
            "cache": {"dir": str(tmp_path / "cache")},
            "checkpoint": {"every_steps": 0},
        }
    )
    result = train_selector(config)
    recall = result.metrics["recall@4"]
    assert result.metrics["split"] == "eval"
    assert recall["topk"] >= recall["uniform"] + 0.4, recall
    # NMS spreads its picks (delta = 1 here), so it covers every other frame of an event.
    assert recall["nms"] >= recall["uniform"] + 0.2, recall
    assert result.metrics["coverage@4"]["nms"] == 1.0


def test_datasets_of_the_same_name_do_not_share_a_cache(tmp_path):
    # datasets would key a local dir's cache by its name only; the rows must come from the files.
    rng = np.random.default_rng(2)
    first = write_event_dataset(tmp_path / "a" / "labels", [random_event_spec(rng, "x", 16)], N)
    second = write_event_dataset(
        tmp_path / "b" / "labels", [random_event_spec(rng, f"y{i}", 16) for i in range(3)], N
    )
    assert len(load_samples(first)) == 1 and len(load_samples(second)) == 3
    write_event_dataset(first, [random_event_spec(rng, f"z{i}", 16) for i in range(2)], N)
    assert [s.video_id for s in load_samples(first)] == ["z0", "z1"]


def test_spec_helpers_place_occurrences_apart():
    rng = np.random.default_rng(1)
    spec = random_event_spec(rng, "x", 32, lengths=[1, 1, 1], gap=2, distractors=0)
    assert isinstance(spec, EventVideoSpec) and len(spec.events) == 3
    starts = sorted(e.start for e in spec.events)
    assert all(b - a > 2 for a, b in itertools.pairwise(starts))


def test_multi_event_spec_asks_every_kind_it_places(tmp_path):
    rng = np.random.default_rng(2)
    asked = {("red", "square"): [1, 3], ("green", "circle"): [1, 1, 5]}
    for _ in range(20):
        spec = random_multi_event_spec(rng, "m", 32, asked, gap=1, distractors=2)
        assert spec.ask == tuple(asked)
        placed = sorted((e.start, e.end) for e in spec.events if (e.color, e.shape) in asked)
        assert sorted(end - start + 1 for start, end in placed) == [1, 1, 1, 3, 5]
        assert placed[0][0] >= 0 and placed[-1][1] < 32
        assert all(b[0] - a[1] > 1 for a, b in itertools.pairwise(placed))  # gap=1 apart
        others = [e for e in spec.events if (e.color, e.shape) not in asked]
        assert len(others) <= 2
    rows_dir = write_event_dataset(tmp_path / "multi", [spec], 32, captions=False)
    rows = [dict(r) for r in schema.load_label_dataset(rows_dir)]
    assert len(rows) == 2 and rows[0]["video_id"] == rows[1]["video_id"]
    assert rows[0]["question"] != rows[1]["question"]
    for row, lengths in zip(rows, asked.values(), strict=True):
        assert sum(row["scores"]) == sum(lengths)
    with pytest.raises(ValueError, match="do not fit"):
        random_multi_event_spec(rng, "m", 8, {("red", "bar"): [4, 4]})
