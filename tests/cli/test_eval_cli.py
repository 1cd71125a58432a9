"""`framesel eval qa | report | strategies` end to end on generated videos with the tiny models:
the table, the results files and the plots; a resumed run; a Hub-style dataset directory; errors
that name the problem."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from fsmodel.synthetic import Event, write_video
from fsmodel.tiny import build_tiny_similarity


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-cli")
    videos = root / "videos"
    clip = write_video(videos / "clip.mp4", num_frames=64, events=[Event(40, 60, "bar", "green")])
    rows = [
        {"video": "clip.mp4", "question": clip.events[0].question,
         "options": ["early", "late"], "answer": "B"},
        {"video": "clip.mp4", "question": "What colour is the bar?",
         "options": ["green", "red", "blue"], "answer": "0"},
    ]  # fmt: skip
    manifest = root / "qa.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "videos": videos, "manifest": manifest, "rows": rows}


@pytest.fixture(scope="module")
def model_args(tiny_models, tmp_path_factory):
    similarity = build_tiny_similarity(
        tmp_path_factory.mktemp("eval-cli-sim") / "siglip", tiny_models["tokenizer"]
    )
    return ["--model", str(tiny_models["qwen2-vl"]), "--selector", str(tiny_models["selector"]),
            "--n", "16", "--k", "2,4", "--set", "frame_size=48", "--set",
            "answerer.max_new_tokens=3", "--set", f"scorers.similarity.model={similarity}",
            "--no-progress"]  # fmt: skip


def test_eval_qa_prints_the_table_and_writes_results_and_plots(
    inputs, model_args, tmp_path, capsys
):
    work = tmp_path / "work"
    args = ["eval", "qa", "--manifest", str(inputs["manifest"]), "--videos", str(inputs["videos"]),
            "--work", str(work), "--strategies", "uniform,selector:nms,similarity:topk",
            *model_args]  # fmt: skip
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "QA eval" in out and "2 questions, 1 videos" in out
    for strategy in ("uniform", "selector:nms"):  # longer names fold in an 80-column table
        assert strategy in out
    assert "12 cells (2 questions x 3 strategies x 2 k): 12 answered now, 0 failed now" in out
    results = work / "results"
    for name in ("summary.json", "answers.jsonl", "accuracy_vs_k.png", "accuracy_vs_seconds.png"):
        assert (results / name).is_file(), name
    summary = json.loads((results / "summary.json").read_text())
    assert [(r["strategy"], r["k"]) for r in summary["rows"]] == [
        ("uniform", 2), ("uniform", 4), ("selector:nms", 2), ("selector:nms", 4),
        ("similarity:topk", 2), ("similarity:topk", 4),
    ]  # fmt: skip
    assert all(r["done"] == 2 and r["failed"] == 0 for r in summary["rows"])
    answers = [json.loads(x) for x in (results / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 12 and all(a["gold"] in ("A", "B") for a in answers)

    # resumed: nothing recomputed, JSON out
    assert main([*args, "--json", "--no-plots"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["computed"], data["cached"]) == (0, 12)
    assert data["report"]["rows"][2]["selection_calls"] == 1

    # the report alone, from the store
    assert main(["eval", "report", str(work), "--json", "--out", str(tmp_path / "again")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"] == 2 and len(report["rows"]) == 6
    assert (tmp_path / "again" / "accuracy_vs_k.png").is_file()


def test_eval_qa_reads_a_hub_style_dataset(inputs, model_args, tmp_path, capsys):
    # A dataset directory load_dataset reads (a Hub repo id works the same), with its own
    # column names mapped onto the item fields.
    data = tmp_path / "dataset"
    data.mkdir()
    rows = [{"clip": r["video"], "q": r["question"], "candidates": r["options"],
             "correct_choice": int(r["answer"]) if r["answer"].isdigit() else 1}
            for r in inputs["rows"]]  # fmt: skip
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "qa", "--hub", str(data), "--split", "test", "--column", "video=clip",
            "--column", "question=q", "--column", "options=candidates", "--column",
            "answer=correct_choice", "--videos", str(inputs["videos"]), "--work",
            str(tmp_path / "work"), "--strategies", "uniform", "--json", "--no-plots",
            *model_args]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items"] == 2 and result["computed"] == 4 and result["failed"] == 0


def test_eval_strategies_lists_every_combination(capsys):
    assert main(["eval", "strategies"]) == 0
    names = capsys.readouterr().out.split()
    assert names[0] == "uniform" and "selector:nms" in names and "mllm:inverse_transform" in names


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--strategies", "selector:best"], 1, "no selection rule 'best'"),
        (["--k", "two"], 2, "--k takes comma-separated integers"),
        (["--hub", "org/data"], 2, "exactly one of --manifest or --hub"),
        (["--set", "frames=3"], 1, "unknown key 'frames'"),
        (
            ["--strategies", "uniform", "--answer-format", "guess"],
            1,
            "answer_format must be one of ('auto', 'letter'",
        ),
        (["--strategies", "selector", "--selector", ""], 1, "scorers.selector.model is required"),
    ],
)
def test_eval_qa_errors_name_the_problem(inputs, tmp_path, capsys, extra, code, message):
    args = ["eval", "qa", "--manifest", str(inputs["manifest"]), "--videos",
            str(inputs["videos"]), "--work", str(tmp_path / "w"), "--no-progress", *extra]  # fmt: skip
    assert main(args) == code
    captured = capsys.readouterr()
    assert message in " ".join((captured.err + captured.out).split())
    assert not (tmp_path / "w").exists()  # nothing started


def test_eval_report_without_a_run_says_so(tmp_path, capsys):
    assert main(["eval", "report", str(tmp_path)]) == 1
    assert "holds no eval run" in " ".join(capsys.readouterr().err.split())
