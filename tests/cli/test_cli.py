import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from fsmodel.synthetic import read_frame_index


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from cli.main import app; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'av', 'decord') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_the_sub_apps():
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "video" in out.stdout and "demo" in out.stdout


def test_video_sample_json_and_sheet(h264_clip, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code = main(["video", "sample", str(h264_clip.path), "-n", "10", "--size", "0", "--json",
                 "--sheet", str(sheet)])  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["indices"] == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert payload["num_frames"] == 100 and payload["reader"] == "pyav"
    np.testing.assert_allclose(payload["timestamps"], np.array(payload["indices"]) / 30, atol=1e-6)
    img = Image.open(sheet)
    assert img.size[0] > 300 and img.size[1] > 50


def test_video_sample_table_with_keyframes(h264_clip, capsys):
    assert main(["video", "sample", str(h264_clip.path), "-n", "4", "--keyframes"]) == 0
    out = capsys.readouterr().out
    assert "moved (frames)" in out and "keyframe" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["video", "sample", "/nonexistent/clip.mp4"], "/nonexistent/clip.mp4: no such file"),
        (["video", "sample", "{clip}", "--reader", "nope"], "unknown reader 'nope'"),
        (["video", "sample", "{clip}", "-n", "0"], "num_candidates must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_1(h264_clip, capsys, args, message):
    args = [a.replace("{clip}", str(h264_clip.path)) for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_usage_error_exit_code_2(capsys):
    assert main(["video", "sample"]) == 2


def test_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-n", "32"]) == 0
    sheet = Image.open(out / "candidates.png")
    assert sheet.size[0] > 500
    cands = json.loads((out / "candidates.json").read_text())
    assert len(cands["indices"]) == 32
    for name in ("tokenizer", "qwen2-vl", "qwen2"):
        assert (out / "tiny-models" / name / "config.json").exists() or name == "tokenizer"
    printed = capsys.readouterr().out
    assert "When does the red circle appear?" in printed
    # the label run over two synthetic-world videos: schema-v1 rows from the world's teachers,
    # every source read, scored against the truth
    from fslabels.run import export_rows
    from fsmodel.schema import check_label_rows

    rows, captions = export_rows(out / "labels-work")
    assert len(rows) == 6 and len(captions) == 2
    check_label_rows(rows, num_candidates=32)
    assert "failed sources" not in printed
    assert "spatial vs truth: AUC" in " ".join(printed.split())
    assert Image.open(out / "labels.png").size[1] > 300
    # ... built into a dataset that datasets loads, and the demo says where it is
    import datasets

    built = datasets.load_dataset(str(out / "labels-dataset"), "labels", split="train")
    assert sorted(built["sample_id"]) == sorted(r["sample_id"] for r in rows)
    assert str(out / "labels-dataset") in " ".join(printed.split())
    # The demo's video really shows its frames' indices.
    from fsmodel.video import sample_candidates

    got = sample_candidates(out / "videos" / "demo.mp4", 8, size=None)
    assert [read_frame_index(f) for f in got.frames] == got.indices.tolist()
