import itertools
import json

import pytest

from cli.main import main


@pytest.fixture(scope="module")
def selector_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-selector") / "sel"
    assert main(["model", "init", "--tiny", "--out", str(out)]) == 0
    return out


def test_init_tiny_writes_a_loadable_selector(selector_dir):
    from transformers import AutoModel

    import fsmodel  # noqa: F401

    model = AutoModel.from_pretrained(selector_dir)
    assert type(model).__name__ == "FrameSelectorModel"
    assert (selector_dir / "modeling_frame_selector.py").exists()


def test_init_from_backbones_with_the_question_first(tiny_models, tmp_path):
    from fsmodel import FrameSelectorProcessor

    out = tmp_path / "qf"
    args = ["model", "init", "--out", str(out), "--vision", str(tiny_models["siglip"]),
            "--llm", str(tiny_models["qwen2"]), "--n", "8", "--question-first"]  # fmt: skip
    assert main(args) == 0
    assert FrameSelectorProcessor.from_pretrained(out).question_first is True


def test_init_tiny_with_the_question_first_scores_a_video(h264_clip, tmp_path):
    from fsmodel import FrameSelectorModel, FrameSelectorProcessor

    out = tmp_path / "tiny-qf"
    args = ["model", "init", "--tiny", "--question-first", "--n", "8", "--out", str(out)]
    assert main(args) == 0
    processor = FrameSelectorProcessor.from_pretrained(out)
    assert processor.question_first is True
    model = FrameSelectorModel.from_pretrained(out)
    assert model.config.num_candidates == 8  # --n is kept with --tiny too
    picked = model.select_frames(
        str(h264_clip.path),
        "When does the red circle appear?",
        k=4,
        num_candidates=8,
        processor=processor,
    )
    assert len(picked.positions) == 4


def test_select_json_and_plot(selector_dir, h264_clip, tmp_path, capsys):
    plot = tmp_path / "plot.png"
    args = ["model", "select", str(h264_clip.path), "When does the red circle appear?",
            "--model", str(selector_dir), "-k", "4", "--json", "--plot", str(plot)]  # fmt: skip
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(payload["indices"]) == 4 and payload["indices"] == sorted(payload["indices"])
    assert len(payload["scores"]) == 16  # the tiny selector has 16 candidates
    n, k = 16, 4
    delta = n // (4 * k)
    pos = payload["positions"]
    assert all(b - a > delta for a, b in itertools.pairwise(pos))
    assert plot.stat().st_size > 5_000


def test_select_table(selector_dir, h264_clip, capsys):
    args = ["model", "select", str(h264_clip.path), "Where is the circle?", "--model",
            str(selector_dir), "-k", "3", "--strategy", "uniform"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "uniform" in out and "k=3 of 16" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-k", "17"], "k must be between 1 and the number of candidates (16), got 17"),
        (["-k", "0"], "k must be"),
        (["--strategy", "best"], "unknown selection strategy 'best'"),
    ],
)
def test_select_bad_input(selector_dir, h264_clip, capsys, extra, message):
    args = ["model", "select", str(h264_clip.path), "Where?", "--model", str(selector_dir), *extra]
    assert main(args) == 1
    assert message in " ".join(capsys.readouterr().err.split())


def test_select_bad_video_and_question(selector_dir, tmp_path, h264_clip, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["model", "select", str(bad), "Where?", "--model", str(selector_dir)]) == 1
    assert "not a readable video" in capsys.readouterr().err
    args = ["model", "select", str(h264_clip.path), "  ", "--model", str(selector_dir)]
    assert main(args) == 1
    assert "question must be a non-empty string" in capsys.readouterr().err
