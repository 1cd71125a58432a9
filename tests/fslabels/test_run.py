"""The label run end to end with real engines (the transformers backend over the tiny models):
config, fingerprints, captions once per video, batching across questions, resume, failures
recorded per item, retries, export to schema-v1 rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fslabels.config import LabelRunConfig
from fslabels.run import (
    FUSION_RULE,
    LabelContext,
    export_rows,
    load_sample,
    run_labels,
    run_status,
)
from fslabels.run.plan import batches
from fsmodel.schema import (
    LABEL_META,
    SCORES,
    SPATIAL,
    TEMPORAL,
    check_caption_rows,
    check_label_rows,
)
from fsmodel.synthetic import Event, write_video

N = 8  # candidates per video


# --- helpers the CLI tests share -------------------------------------------------------------


def write_label_inputs(root: Path, videos: int = 2, bad: bool = False) -> tuple[Path, Path, int]:
    """Generated videos (two events each) and a manifest with three questions per video (the
    two events' and one open question), plus a corrupt and a missing video when ``bad``.

    Returns:
        ``(manifest, videos_dir, number of items)``.
    """
    video_dir = root / "videos"
    rows = []
    for v in range(videos):
        clip = write_video(
            video_dir / f"clip{v}.mp4",
            num_frames=40 + 8 * v,
            events=[Event(4, 12, "circle", "red"), Event(20 + v, 30 + v, "square", "blue")],
            seed=v,
        )
        questions = [q["question"] for q in clip.questions()] + ["What happens in the video?"]
        rows += [
            {"video": clip.path.name, "question": q, "options": ["A. early", "B. late"]}
            for q in questions
        ]
    if bad:
        (video_dir / "corrupt.mp4").write_bytes(b"\x00not a video" * 64)
        rows.append({"video": "corrupt.mp4", "question": "What happens?"})
        rows.append({"video": "missing.mp4", "question": "What happens?"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, video_dir, len(rows)


def tiny_config(models: dict[str, Path], vocab_size: int, **stage_overrides) -> dict:
    """The offline run config (every stage on the tiny models, n = N) as a plain mapping
    (``LabelRunConfig.offline`` reads the vocabulary size itself; ``vocab_size`` is checked)."""
    config = LabelRunConfig.offline(models, num_candidates=N, frame_size=48, **stage_overrides)
    if "top_logprobs" not in stage_overrides.get("spatial", {}):
        assert config.spatial.top_logprobs == vocab_size
    return config.to_dict()


class CallCounter:
    """Counts the requests a real backend receives (wraps its ``generate``)."""

    def __init__(self, monkeypatch, *backends) -> None:
        self.calls: list[int] = []
        for backend in dict.fromkeys(backends):
            real = backend.generate

            def generate(requests, _real=real):
                self.calls.append(len(requests))
                return _real(requests)

            monkeypatch.setattr(backend, "generate", generate)

    @property
    def requests(self) -> int:
        return sum(self.calls)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_label_inputs(tmp_path_factory.mktemp("label-inputs"))


@pytest.fixture
def config(tiny_models, vocab_size) -> LabelRunConfig:
    return LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size))


@pytest.fixture
def backends(vl_backend, text_backend):
    return {"spatial": vl_backend, "captions": vl_backend, "temporal": text_backend}


# --- config ----------------------------------------------------------------------------------


def test_default_config_is_the_paper_setup():
    config = LabelRunConfig()
    assert config.num_candidates == 128 and config.spatial.cot
    assert config.spatial.backend == config.captions.backend == "transformers"
    assert config.spatial.model == config.captions.model == "Qwen/Qwen2-VL-7B-Instruct"
    assert (config.temporal.backend, config.temporal.model) == ("openai", "gpt-4o-mini")
    assert config.fusion.weights == (0.5, 0.5)


def test_config_yaml_round_trip_with_overrides(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text(
        "num_candidates: 64\nspatial:\n  cot: false\n  backend_options: {dtype: bfloat16}\n"
    )
    config = LabelRunConfig.load(
        path, ["spatial.backend_options.batch_size=4", "fusion.spatial_weight=1", "frame_size=null"]
    )
    assert config.num_candidates == 64 and not config.spatial.cot and config.frame_size is None
    assert config.spatial.backend_options == {"dtype": "bfloat16", "batch_size": 4}
    assert config.fusion.spatial_weight == 1.0
    written = tmp_path / "labels_run.yaml"
    config.to_yaml(written)
    assert LabelRunConfig.load(written) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["num_candidates=0"], "num_candidates must be an integer >= 1, got 0"),
        (["spatial.batch_size=-2"], "spatial.batch_size must be an integer >= 1, got -2"),
        (["spatial.cot=maybe"], "spatial.cot must be true or false, got 'maybe'"),
        (["temporal.max_attempts=0"], "temporal.max_attempts must be an integer >= 1, got 0"),
        (["spatial.colour=1"], "unknown key 'colour' in spatial"),
        (["spatial.backend=vlm"], "spatial.backend: unknown backend 'vlm'; known backends:"),
        (["captions.backend_options.batchsize=2"], "unknown field(s) ['batchsize']"),
        (["fusion.spatial_weight=0", "fusion.temporal_weight=0"], "must not both be 0"),
        (["prices.gpt-4o-mini=[1]"], "prices.gpt-4o-mini must be [usd per 1M prompt tokens"),
        (["num_candidates"], "--set expects key=value"),
        (["video_reader=opencv"], "video_reader must be one of ('pyav', 'decord'), got 'opencv'"),
    ],
)
def test_config_errors_state_value_and_rule(overrides, message):
    with pytest.raises(ValueError) as err:
        LabelRunConfig.load(None, overrides)
    assert message in str(err.value)


def test_fingerprints_change_with_outputs_not_with_batching(tiny_models, vocab_size):
    def fingerprints(**overrides):
        config = LabelRunConfig.from_dict(tiny_config(tiny_models, vocab_size, **overrides))
        return LabelContext(config).fingerprints

    base = fingerprints()
    batching = fingerprints(
        spatial={"batch_size": 3, "backend_options": {"batch_size": 1, "device": "cpu"}},
        temporal={"batch_size": 1},
    )
    assert batching == base
    prompt = fingerprints(spatial={"max_new_tokens": 16})
    assert prompt.spatial != base.spatial and prompt.captions == base.captions
    assert prompt.temporal == base.temporal and prompt.fused != base.fused
    model = fingerprints(captions={"backend_options": {"revision": "v2"}})
    assert model.captions != base.captions and model.temporal != base.temporal
    assert model.spatial == base.spatial
    n = LabelContext(
        LabelRunConfig.from_dict({**tiny_config(tiny_models, vocab_size), "num_candidates": 16})
    ).fingerprints
    assert len({n.candidates, n.spatial, n.captions} & {base.candidates, base.spatial}) == 0


def test_batches_pack_whole_units_deterministically():
    assert batches([8, 8, 8, 8, 8], 16) == [[0, 1], [2, 3], [4]]
    assert batches([20, 3, 3], 16) == [[0], [1, 2]]
    # a resumed run's pending work is a suffix cut at a batch boundary: same batches
    assert batches([8, 8, 8], 16) == [[0, 1], [2]]


# --- the run with real engines -----------------------------------------------------------------


def test_run_end_to_end_then_resume_skips_everything(
    tmp_path, inputs, config, backends, monkeypatch
):
    manifest, videos, items = inputs
    counter = CallCounter(monkeypatch, *backends.values())
    summary = run_labels(config, manifest, videos, tmp_path / "work", progress=False,
                         backends=backends)  # fmt: skip
    assert (summary.items, summary.videos, summary.done, summary.failed) == (items, 2, items, 0)
    stages = summary.stages
    # captions once per video: candidates x videos requests, not x questions
    assert stages["captions"].requests == N * summary.videos
    assert stages["spatial"].done == items and stages["spatial"].requests >= N * items
    # spatial batches: the 3 questions of a video (24 requests) in calls of <= 16 requests
    # except one question's frames are never split -> 2 calls per video, plus forced passes
    assert stages["spatial"].prompt_tokens > 0 and stages["spatial"].seconds > 0
    # the random tiny text model never writes JSON: temporal fails on record, per item
    assert stages["temporal"].failed == items and stages["temporal"].requests == 2 * items
    assert {f["stage"] for f in summary.failures} == {"temporal"}
    assert all("gave up after 2 attempts" in f["error"] for f in summary.failures)
    assert counter.requests == sum(s.requests for s in stages.values())

    rows, caption_rows = export_rows(tmp_path / "work")
    check_label_rows(rows, num_candidates=N)
    check_caption_rows(caption_rows, num_candidates=N)
    assert len(rows) == items and len(caption_rows) == 2
    for row in rows:
        meta = json.loads(row[LABEL_META])
        assert meta["sources"] == ["spatial"] and meta["rule"] == FUSION_RULE
        assert "gave up" in meta["failed"]["temporal"]
        assert meta["filled"]["temporal"] == {"value": 0.0, "positions": list(range(N))}
        assert row[TEMPORAL] == [0.0] * N  # the failed source's column: zeros, said in label_meta
        assert row[SCORES] == row[SPATIAL]  # fused = the spatial source alone, not halved

    # resume: nothing is recomputed, not even decoded
    counter.calls.clear()
    again = run_labels(config, manifest, videos, tmp_path / "work", progress=False,
                       backends=backends)  # fmt: skip
    assert counter.calls == []
    assert again.stages["candidates"].cached == 2 and again.stages["fused"].cached == items
    assert again.stages["candidates"].seconds == 0.0  # no video was decoded
    assert export_rows(tmp_path / "work") == (rows, caption_rows)

    # a changed spatial prompt budget: spatial (and fused) are recomputed, captions are not;
    # a price table (not in any fingerprint) prices the tokens of the models it names
    price = json.dumps({config.spatial.model: [1.0, 2.0]})
    changed = config.with_overrides(["spatial.max_new_tokens=4", f"prices={price}"])
    counter.calls.clear()
    third = run_labels(changed, manifest, videos, tmp_path / "work", progress=False,
                       backends=backends)  # fmt: skip
    assert third.stages["captions"].requests == 0 and third.stages["captions"].cached == 2
    assert third.stages["temporal"].requests == 0 and third.stages["spatial"].done == items
    assert counter.requests == third.stages["spatial"].requests
    spent = third.stages["spatial"]
    assert spent.cost == pytest.approx((spent.prompt_tokens + 2 * spent.completion_tokens) / 1e6)
    assert third.stages["temporal"].cost is None and third.cost == spent.cost

    status = run_status(tmp_path / "work")
    assert status["done"] == items and status["stages"]["fused"]["done"] == items
    assert status["usage"]["captions"]["requests"] == N * 2  # spent once, ever
    assert len(status["runs"]) == 3 and all(r["finished"] for r in status["runs"])


def test_bad_videos_and_bad_replies_are_recorded_per_item(
    tmp_path, config, backends, tiny_models, vocab_size, monkeypatch
):
    manifest, videos, items = write_label_inputs(tmp_path, videos=1, bad=True)
    summary = run_labels(config, manifest, videos, tmp_path / "work", progress=False,
                         backends=backends)  # fmt: skip
    assert (summary.items, summary.done, summary.failed) == (items, 3, 2)
    bad = {f["item"]: f for f in summary.failures if f["stage"] == "candidates"}
    assert set(bad) == {"corrupt.mp4", "missing.mp4"}
    assert "not a readable video" in bad["corrupt.mp4"]["error"]
    assert "no such file" in bad["missing.mp4"]["error"]
    status = run_status(tmp_path / "work")
    assert status["stages"]["fused"] == {"done": 3, "failed": 0, "blocked": 2, "pending": 0,
                                         "expected": 5}  # fmt: skip

    # Bad replies: with one alternative per token the tiny model's answer slot rarely holds
    # True or False: those frames fail with the raw reply kept, and a sample whose frames have
    # no score from either source gets no row. The run still completes.
    stingy = LabelRunConfig.from_dict(
        tiny_config(tiny_models, vocab_size, spatial={"top_logprobs": 1, "force_top_logprobs": 1})
    )
    work = tmp_path / "stingy"
    summary = run_labels(stingy, manifest, videos, work, progress=False, backends=backends)
    spatial_failures = [f for f in summary.failures if f["stage"] == "spatial"]
    assert spatial_failures and all("frames have no spatial score" in f["error"]
                                    for f in spatial_failures)  # fmt: skip
    assert all("neither True nor False" in f["error"] for f in spatial_failures)
    view = load_sample(work, spatial_failures[0]["item"], decode=False)
    failed_frames = int(np.isnan(view.spatial).sum())
    assert failed_frames > 0 and view.errors["spatial"].startswith(f"{failed_frames} of {N}")

    # --retry-failed recomputes only the failed units; spatial only its failed frames
    counter = CallCounter(monkeypatch, *backends.values())
    retried = run_labels(stingy, manifest, videos, work, progress=False, retry_failed=True,
                         backends=backends)  # fmt: skip
    failed_spatial_frames = sum(
        int(np.isnan(load_sample(work, f["item"], decode=False).spatial).sum())
        for f in spatial_failures
    )
    first_pass = failed_spatial_frames  # greedy: the same frames fail again
    assert retried.stages["spatial"].requests >= first_pass
    assert retried.stages["spatial"].requests <= 2 * first_pass  # first pass + forced answers
    assert retried.stages["candidates"].failed == 2  # the bad videos were tried again
    assert counter.requests == sum(s.requests for s in retried.stages.values())
    assert all(f["attempts"] == 2 for f in retried.failures)


def test_show_data_for_a_sample(tmp_path, inputs, config, backends):
    manifest, videos, _ = inputs
    run_labels(config, manifest, videos, tmp_path / "work", progress=False, backends=backends)
    rows, _ = export_rows(tmp_path / "work")
    view = load_sample(tmp_path / "work", rows[0]["sample_id"][:6])
    assert view.item.sample_id == rows[0]["sample_id"]
    assert view.candidates is not None and view.candidates.frames.shape[0] == N
    assert view.frame_indices == rows[0]["frame_indices"]
    np.testing.assert_allclose(view.scores, rows[0][SCORES])
    assert len(view.captions) == N and len(view.rationales) == N
    with pytest.raises(ValueError, match="is not in the run"):
        load_sample(tmp_path / "work", "zzzz")


def test_labelers_take_their_stage_config_whole_and_hash_its_fields(vl_backend, text_backend):
    """A stage config field keys the fingerprint unless it is marked NOT_FINGERPRINTED."""
    from fslabels.config import (
        CaptionStageConfig,
        SpatialStageConfig,
        TemporalStageConfig,
        fingerprinted_fields,
    )
    from fslabels.spatial import SpatialLabeler
    from fslabels.temporal import Captioner, TemporalLabeler

    assert fingerprinted_fields(SpatialStageConfig()) == (
        "cot", "max_new_tokens", "top_logprobs", "force_top_logprobs", "temperature",
    )  # fmt: skip
    assert fingerprinted_fields(CaptionStageConfig()) == ("max_new_tokens", "temperature")
    assert fingerprinted_fields(TemporalStageConfig()) == (
        "max_new_tokens", "temperature", "max_attempts", "structured_output",
    )  # fmt: skip
    config = SpatialStageConfig(cot=False, batch_size=3, backend_options={"batch_size": 1})
    labeler = SpatialLabeler(vl_backend, config)
    assert labeler.config is config and labeler.max_new_tokens == 1  # direct: one token
    assert labeler.settings() == SpatialLabeler(vl_backend, cot=False).settings()
    captioner = Captioner(vl_backend, CaptionStageConfig(prompt="Name the shapes."))
    assert captioner.prompts == {"caption_prompt": "Name the shapes."}
    assert set(captioner.settings()) == {"stage", "prompt_hash", "backend", "max_new_tokens",
                                         "temperature"}  # fmt: skip
    temporal = TemporalLabeler(text_backend, TemporalStageConfig(max_attempts=2), temperature=0.5)
    assert (temporal.max_attempts, temporal.temperature) == (2, 0.5)
    with pytest.raises(ValueError, match=r"temporal\.max_attempts must be an integer >= 1"):
        TemporalLabeler(text_backend, max_attempts=0)
