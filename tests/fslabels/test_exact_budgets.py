"""Exact frame budgets: every strategy gives exactly k picks, ``min(k, N)`` of them distinct
frames on a video of N frames, also where the n candidates repeat frames (short videos), on
variable-frame-rate and trimmed (edit-list) files; the selector's own `select_frames` too."""

from __future__ import annotations

import numpy as np
import pytest

from fslabels.evaluation.scorers import MLLMScorer, SelectorScorer, SimilarityScorer
from fslabels.evaluation.strategies import build_strategy, uniform_selection
from fsmodel.selection import RULES
from fsmodel.synthetic import Event, trim_video, write_video
from fsmodel.video import probe, sample_candidates

N = 16
KS = (1, 4, 8, 16)
QUESTION = "When does the red circle appear?"


@pytest.fixture(scope="module")
def edge_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge-videos")
    red = [Event(0, 0, "circle", "red")]
    videos = {
        "1 frame": write_video(root / "one.mp4", num_frames=1, events=red).path,
        "10 frames": write_video(root / "ten.mp4", num_frames=10, gop=5, events=red).path,
        "vfr": write_video(
            root / "vfr.mp4", num_frames=12, frame_durations_ms=[100] * 4 + [20] * 8
        ).path,
    }
    long = write_video(root / "long.mp4", num_frames=40, gop=6).path
    videos["trimmed"] = trim_video(long, root / "trimmed.mp4", start_frame=31)
    return videos


@pytest.fixture(scope="module")
def strategies(tiny_models, similarity_model, vl_backend, vocab_size):
    """Every scorer of the registry with every rule, and uniform."""
    scorers = {
        "selector": SelectorScorer(model=str(tiny_models["selector"])),
        "similarity": SimilarityScorer(model=str(similarity_model), batch_size=8),
        "mllm": MLLMScorer(
            {"model": str(tiny_models["qwen2-vl"]), "top_logprobs": vocab_size,
             "force_top_logprobs": vocab_size},
            backend=vl_backend,
        ),
    }  # fmt: skip
    names = ["uniform"] + [f"{s}:{r}" for s in scorers for r in sorted(RULES) if r != "uniform"]
    built = [build_strategy(name, scorers) for name in names]
    yield built
    for scorer in scorers.values():
        scorer.unload()


def test_every_strategy_spends_exactly_k_picks_on_distinct_frames_first(edge_videos, strategies):
    checked = 0
    for label, path in edge_videos.items():
        frames_in_video = probe(path).num_frames
        candidates = sample_candidates(path, N, size=48)
        assert len(candidates) == N
        for strategy in strategies:
            curve = strategy.score(candidates, QUESTION)
            for k in KS:
                got = strategy.select(candidates, QUESTION, k, curve=curve)
                where = f"{strategy.name} k={k} on the {label} video ({frames_in_video} frames)"
                assert got.positions.shape == (k,) and got.indices.shape == (k,), where
                assert got.distinct_frames == min(k, frames_in_video), where
                assert int(got.repeated.sum()) == k - min(k, frames_in_video), where
                checked += 1
    assert checked == len(edge_videos) * len(strategies) * len(KS)


def test_uniform_decoding_only_its_frames_gives_the_same_exact_budget(edge_videos):
    for label, path in edge_videos.items():
        frames_in_video = probe(path).num_frames
        flat = build_strategy("uniform")
        candidates = sample_candidates(path, N, size=48)
        for k in KS:
            alone = uniform_selection(path, k, N, 48)
            assert alone.indices.tolist() == flat.select(candidates, "", k).indices.tolist()
            assert alone.distinct_frames == min(k, frames_in_video), (label, k)


def test_select_frames_on_a_short_video_picks_distinct_frames(edge_videos, tiny_models):
    from transformers import AutoModel

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes)

    model = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    for k in (4, 8):
        result = model.select_frames(edge_videos["10 frames"], QUESTION, k=k, num_candidates=N)
        assert len(result.indices) == k and len(np.unique(result.indices)) == k
        assert not result.repeated.any()
    result = model.select_frames(edge_videos["1 frame"], QUESTION, k=4, num_candidates=N)
    assert result.indices.tolist() == [0, 0, 0, 0]
    assert result.repeated.tolist() == [False, True, True, True]
