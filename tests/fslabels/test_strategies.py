"""Selection strategies behind one interface (fslabels.evaluation.strategies), on generated videos whose
frames carry their own index, with the real tiny models: the selector, a SigLIP dual encoder,
and the spatial labeler over the tiny Qwen2-VL. Also the inverse-transform rule it adds to
fsmodel.selection."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fslabels.evaluation.scorers import (
    MLLMScorer,
    ScoringError,
    SelectorScorer,
    SimilarityScorer,
    build_scorer,
    model_content_id,
)
from fslabels.evaluation.strategies import (
    Strategy,
    build_strategy,
    known_strategies,
    parse_strategy,
    uniform_selection,
)
from fsmodel.selection import get_rule, inverse_transform, select, uniform
from fsmodel.synthetic import Event, read_frame_index, write_video
from fsmodel.video import sample_candidates

N = 16


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(
        tmp_path_factory.mktemp("strategy-videos") / "clip.mp4",
        num_frames=80,
        events=[Event(10, 25, "circle", "red"), Event(50, 70, "square", "blue")],
    )


@pytest.fixture(scope="module")
def candidates(clip):
    return sample_candidates(clip.path, N, size=48)


@pytest.fixture(scope="module")
def selector_scorer(tiny_models):
    scorer = SelectorScorer(model=str(tiny_models["selector"]))
    scorer.load()
    yield scorer
    scorer.unload()


@pytest.fixture(scope="module")
def similarity_scorer(similarity_model):
    scorer = SimilarityScorer(model=str(similarity_model), batch_size=5)
    scorer.load()
    yield scorer
    scorer.unload()


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("uniform", (None, "uniform")),
        ("selector", ("selector", "nms")),
        ("selector:topk", ("selector", "topk")),
        ("similarity:inverse_transform", ("similarity", "inverse_transform")),
        (" mllm:nms ", ("mllm", "nms")),
    ],
)
def test_parse_strategy(spec, expected):
    assert parse_strategy(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "non-empty"),
        ("clip:nms", r"no scorer 'clip'.*'uniform' or '<scorer>:<rule>'"),
        ("selector:best", r"no selection rule 'best'; known rules: .*inverse_transform"),
        ("selector:uniform", "the uniform rule ignores scores"),
    ],
)
def test_bad_strategy_names_say_what_is_known(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_strategy(spec)


def test_every_scorer_meets_every_rule():
    names = known_strategies()
    assert names[0] == "uniform"
    for scorer in ("selector", "similarity", "mllm"):
        for rule in ("nms", "topk", "inverse_transform"):
            assert f"{scorer}:{rule}" in names
    assert "selector:uniform" not in names


def test_a_scored_strategy_needs_its_scorer_config():
    with pytest.raises(ValueError, match=r"scorers.selector.model is required.*--selector"):
        build_strategy("selector:nms")
    with pytest.raises(ValueError, match=r"scorers.similarity has unknown field\(s\) \['modle'\]"):
        build_strategy("similarity", {"similarity": {"modle": "x"}})
    with pytest.raises(ValueError, match="rule 'nms' has no option"):
        build_strategy("selector:nms", {"selector": {"model": "x"}}, {"nms": {"alpha": 2}})


# --- the inverse-transform rule (fsmodel.selection) ----------------------------------------------


def test_inverse_transform_is_uniform_on_a_flat_curve():
    for n, k in ((16, 4), (128, 8), (128, 32), (7, 3), (5, 5)):
        assert inverse_transform(np.full(n, 0.3), k).tolist() == uniform(np.zeros(n), k).tolist()
        ramp = np.linspace(0, 1, n)
        assert inverse_transform(ramp, k, alpha=0).tolist() == uniform(ramp, k).tolist()


def test_inverse_transform_follows_the_mass_of_the_curve():
    scores = np.zeros(128)
    scores[40:60] = 1.0  # all the mass in one stretch
    picks = inverse_transform(scores, 8)
    assert picks.min() >= 40 and picks.max() < 60
    # Evenly inside the stretch (quantiles of a flat stretch), unlike topk's first 8.
    assert picks.tolist() == [41, 43, 46, 48, 51, 53, 56, 58]
    assert select(scores, 8, "topk").tolist() == list(range(40, 48))


def test_inverse_transform_alpha_sharpens_towards_the_peak():
    n = 128
    scores = np.exp(-0.5 * ((np.arange(n) - 90) / 12.0) ** 2) + 0.2
    spread = [np.abs(inverse_transform(scores, 8, alpha=a) - 90).mean() for a in (0.5, 1, 4)]
    assert spread[0] > spread[1] > spread[2]


def test_inverse_transform_resolves_collisions_to_the_nearest_free_candidate():
    scores = np.zeros(12)
    scores[7] = 1.0  # every quantile lands on candidate 7
    assert inverse_transform(scores, 5).tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        inverse_transform(scores, 2, alpha=-1)


# --- strategies on videos ----------------------------------------------------------------------


def test_uniform_decodes_only_its_k_frames_and_they_are_the_candidates_frames(clip, candidates):
    selection = uniform_selection(clip.path, k=4, num_candidates=N, frame_size=48)
    positions = uniform(np.zeros(N), 4)
    assert selection.positions.tolist() == positions.tolist()
    assert selection.indices.tolist() == candidates.indices[positions].tolist()
    np.testing.assert_array_equal(selection.frames, candidates.frames[positions])
    assert [read_frame_index(f) for f in selection.frames] == selection.indices.tolist()
    np.testing.assert_allclose(selection.timestamps, candidates.timestamps[positions])
    assert selection.cost.frames_decoded == 4 and selection.cost.decode_seconds > 0
    assert selection.cost.model_calls == 0 and selection.scores is None
    # Through the Strategy interface, and on decoded candidates.
    via_strategy = Strategy("uniform").select_video(clip.path, "anything", 4, N, 48)
    assert via_strategy.indices.tolist() == selection.indices.tolist()
    on_candidates = Strategy("uniform").select(candidates, "anything", 4)
    assert on_candidates.positions.tolist() == positions.tolist()
    assert on_candidates.cost.decode_seconds == 0 and on_candidates.cost.seconds < 0.1


def test_selector_strategies_reproduce_select_frames(candidates, selector_scorer, clip):
    question = clip.events[0].question
    options = ["early", "late"]
    expected = selector_scorer.model.select_frames(
        candidates, question, k=4, strategy="nms", options=options
    )
    nms = build_strategy("selector:nms", {"selector": selector_scorer})
    chosen = nms.select(candidates, question, 4, options)
    assert chosen.positions.tolist() == expected.positions.tolist()
    assert chosen.indices.tolist() == expected.indices.tolist()
    np.testing.assert_allclose(chosen.scores, expected.scores, rtol=1e-5, atol=1e-6)
    assert [read_frame_index(f) for f in chosen.frames] == chosen.indices.tolist()
    assert chosen.cost.model_calls == 1 and chosen.cost.score_seconds > 0
    assert chosen.cost.prompt_tokens > N * 9  # the frame block alone is n x 9 tokens

    # One curve, every rule and k: the rules of fsmodel.selection on the same scores.
    curve = nms.score(candidates, question, options)
    for spec in ("selector:topk", "selector:inverse_transform"):
        strategy = build_strategy(spec, {"selector": selector_scorer})
        for k in (2, 4, 8):
            picked = strategy.select(candidates, question, k, options, curve=curve)
            assert picked.positions.tolist() == select(curve.scores, k, strategy.rule).tolist()
            assert picked.cost.model_calls == 0  # the curve was given: no new scoring


def test_selector_questions_about_one_video_share_one_vision_pass(
    selector_scorer, clip, monkeypatch
):
    candidates = sample_candidates(clip.path, N, size=48)  # a decode no other test scored
    model = selector_scorer.model
    encode, calls = model.encode_frames, []
    monkeypatch.setattr(
        model, "encode_frames", lambda *a, **kw: calls.append(1) or encode(*a, **kw)
    )
    questions = ["When does the red circle appear?", "Where is the blue square?", "What moves?"]
    curves = [selector_scorer.score(candidates, q) for q in questions]
    fresh = sample_candidates(clip.path, N, size=48)  # another decode: another pass
    again = selector_scorer.score(fresh, questions[0])
    assert len(calls) == 2
    monkeypatch.undo()
    for question, curve in zip(questions, curves, strict=True):
        expected = model.select_frames(candidates, question, k=1).scores
        np.testing.assert_allclose(curve.scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again.scores, curves[0].scores, rtol=1e-5, atol=1e-6)


def test_selector_refuses_more_candidates_than_its_head_scores(clip, selector_scorer):
    many = sample_candidates(clip.path, 2 * N, size=48)
    with pytest.raises(ValueError, match=r"scores at most 16 candidates, got 32"):
        selector_scorer.score(many, "When?")


def test_select_video_charges_the_decode_of_all_candidates(clip, selector_scorer):
    strategy = build_strategy("selector", {"selector": selector_scorer})
    selection = strategy.select_video(clip.path, "When does the red circle appear?", 4, N, 48)
    assert selection.strategy == "selector:nms" and selection.num_candidates == N
    assert selection.cost.frames_decoded == N and selection.cost.decode_seconds > 0
    assert selection.cost.seconds == pytest.approx(
        selection.cost.decode_seconds + selection.cost.score_seconds + selection.cost.rule_seconds
    )


def test_similarity_is_the_cosine_of_image_and_text_embeddings(candidates, similarity_scorer):
    import torch

    scorer = similarity_scorer
    scorer.reset()
    question = "When does the red circle appear?"
    first = scorer.score(candidates, question)
    # Reference: the same model through transformers' own API, all frames at once.
    pixels = scorer.image_processor(images=list(candidates.frames), return_tensors="pt")
    tokens = scorer.tokenizer([question], padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        images = scorer.model.get_image_features(**pixels).pooler_output
        text = scorer.model.get_text_features(**tokens).pooler_output
    images = torch.nn.functional.normalize(images, dim=-1)
    text = torch.nn.functional.normalize(text, dim=-1)
    np.testing.assert_allclose(first.scores, (images @ text[0]).numpy(), rtol=1e-4, atol=1e-5)
    # 16 frames in batches of 5: 4 image calls and 1 text call; a second question of the same
    # video reuses the image embeddings.
    assert first.cost.model_calls == 5
    second = scorer.score(candidates, "What colour is the square?")
    assert second.cost.model_calls == 1 and not np.allclose(second.scores, first.scores)
    strategy = build_strategy("similarity:inverse_transform", {"similarity": scorer})
    picked = strategy.select(candidates, question, 4)
    assert picked.positions.tolist() == inverse_transform(first.scores, 4).tolist()


def test_mllm_strategy_is_the_spatial_labelers_score(
    candidates, vl_backend, tiny_models, vocab_size
):
    from fslabels.spatial import SpatialLabeler

    config = {
        "model": str(tiny_models["qwen2-vl"]),
        "top_logprobs": vocab_size,
        "force_top_logprobs": vocab_size,
    }
    scorer = MLLMScorer(config, backend=vl_backend)
    frames = candidates.frames[:6]
    few = type(candidates)(
        frames=frames, indices=candidates.indices[:6], timestamps=candidates.timestamps[:6],
        num_frames=candidates.num_frames, fps=candidates.fps, duration=candidates.duration,
        video=candidates.video, reader=candidates.reader,
    )  # fmt: skip
    question = "When does the red circle appear?"
    curve = scorer.score(few, question)
    reference = SpatialLabeler(
        vl_backend, cot=False, top_logprobs=vocab_size, force_top_logprobs=vocab_size
    ).label(frames, question)
    assert reference.ok
    np.testing.assert_allclose(curve.scores, reference.scores)
    # One request per frame, plus one forced answer per frame whose reply missed the slot.
    assert curve.cost.model_calls == 6 + int(reference.forced.sum())
    assert curve.cost.prompt_tokens == reference.prompt_tokens
    assert curve.failed_positions == []
    # The labeler's prompt hash and the backend's fingerprint key its cache.
    assert scorer.fingerprint()["prompt_hash"] == reference_prompt_hash(vl_backend)


def reference_prompt_hash(backend) -> str:
    from fslabels.spatial import SpatialLabeler

    return SpatialLabeler(backend, cot=False).prompt_hash


def test_mllm_strategy_fails_on_record_when_no_frame_can_be_scored(
    candidates, vl_backend, tiny_models
):
    # With one alternative per step the random model's answer slot never holds True/False.
    scorer = MLLMScorer(
        {"model": str(tiny_models["qwen2-vl"]), "top_logprobs": 1, "force_top_logprobs": 1},
        backend=vl_backend,
    )
    with pytest.raises(
        ScoringError, match=r"scored none of the 16 frames for 'When\?'; first failure"
    ):
        scorer.score(candidates, "When?")
    with pytest.raises(
        ValueError, match=r"but scorers\.mllm names transformers with model 'other'"
    ):
        MLLMScorer({"model": "other"}, backend=vl_backend)


def test_a_config_field_named_like_a_constructor_argument(tiny_models):
    # mllm's `backend` field names the backend ("transformers"); its constructor's `backend=`
    # takes a built one: a config (as --set scorers.mllm.backend=... gives) must not reach it.
    scorer = build_scorer(
        "mllm", {"backend": "transformers", "model": str(tiny_models["qwen2-vl"])}
    )
    assert scorer.config.backend == "transformers" and scorer.backend.name == "transformers"


def test_scorer_fingerprints_leave_out_device_and_batching(similarity_model, tiny_models):
    a = build_scorer("similarity", {"model": str(similarity_model), "batch_size": 3})
    b = build_scorer("similarity", {"model": str(similarity_model), "device": "cuda"})
    assert a.fingerprint() == b.fingerprint()
    c = build_scorer("similarity", {"model": str(similarity_model), "with_options": True})
    assert c.fingerprint() != a.fingerprint()
    selector = build_strategy("selector:nms", {"selector": {"model": str(tiny_models["selector"])}})
    topk = build_strategy("selector:topk", {"selector": {"model": str(tiny_models["selector"])}})
    assert selector.fingerprint()["scorer"] == topk.fingerprint()["scorer"]
    assert selector.fingerprint() != topk.fingerprint()
    sharper = build_strategy(
        "selector:inverse_transform",
        {"selector": {"model": str(tiny_models["selector"])}},
        {"inverse_transform": {"alpha": 3.0}},
    )
    assert sharper.fingerprint()["rule_options"] == {"alpha": 3.0}
    assert json.dumps(sharper.fingerprint())  # JSON-able: it keys the eval store
    assert get_rule("inverse_transform") is inverse_transform


# --- what a model id or directory loads (cache keys) --------------------------------------------


def retrain_in_place(directory: Path, shift: float = 0.01) -> None:
    """Save other weights of the same shapes over the checkpoint in ``directory`` (what
    retraining into the same output directory does)."""
    import torch
    import transformers
    from transformers import AutoConfig

    import fsmodel.video  # noqa: F401  (registers the selector's Auto classes)

    config = AutoConfig.from_pretrained(directory)
    cls = getattr(transformers, config.architectures[0], None)
    if cls is None:
        from transformers import AutoModel as cls
    model = cls.from_pretrained(directory)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(shift)
    model.save_pretrained(directory)


def test_a_model_directorys_content_id_follows_its_files(similarity_model, tmp_path):
    model = Path(shutil.copytree(similarity_model, tmp_path / "siglip"))
    first = model_content_id(model)
    assert first.startswith("dir-") and model_content_id(str(model)) == first
    (model / "README.md").write_text("a model card")  # not what the model computes
    assert model_content_id(model) == first
    retrain_in_place(model)
    second = model_content_id(model)
    assert second != first
    # files above hash_bytes (weight shards) count by size and modification time
    weights = model / "model.safetensors"
    by_stat = model_content_id(model, hash_bytes=0)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert model_content_id(model, hash_bytes=0) != by_stat
    assert model_content_id(model) == second  # hashed: the same bytes are the same model


def test_a_hub_models_content_id_is_the_commit_it_loads(hub, similarity_model, monkeypatch):
    import huggingface_hub

    repo = f"{hub.user}/tiny-siglip-content-id"
    hub.create_repo(repo, exist_ok=True)
    files = {p.name: p.read_bytes() for p in similarity_model.iterdir() if p.is_file()}
    first = hub.commit(repo, files)
    assert model_content_id(repo) == first
    scorer = SimilarityScorer(model=repo)
    assert scorer.fingerprint()["model_id"] == first
    scorer.load()  # downloads and caches `first`
    second = hub.commit(repo, {"README.md": "retrained"})  # the branch moves
    assert model_content_id(repo) == second
    assert model_content_id(repo, revision=first) == first  # a pinned commit needs no lookup
    assert scorer.fingerprint()["model_id"] == first  # what is loaded, not what the Hub has now
    scorer.unload()
    assert scorer.fingerprint()["model_id"] == second
    # offline: the commit of the cached snapshot, which is what would load
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert model_content_id(repo) == first
    with pytest.raises(ValueError, match=r"cannot tell which weights 'nobody/nothing'.*OFFLINE"):
        model_content_id("nobody/nothing")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ValueError, match=r"'nobody/nothing'.*RepositoryNotFoundError"):
        model_content_id("nobody/nothing")


def test_scorer_fingerprints_follow_a_model_retrained_in_place(tiny_models, tmp_path):
    selector_dir = Path(shutil.copytree(tiny_models["selector"], tmp_path / "selector"))
    selector = SelectorScorer(model=str(selector_dir))
    before = selector.fingerprint()
    assert before["model_id"] == model_content_id(selector_dir)
    selector.load()
    retrain_in_place(selector_dir)
    assert selector.fingerprint() == before  # the loaded weights are still the old ones
    selector.unload()
    after = selector.fingerprint()
    assert after["model_id"] != before["model_id"]
    assert {k: v for k, v in after.items() if k != "model_id"} == {
        k: v for k, v in before.items() if k != "model_id"
    }
