"""`framesel labels score`: label datasets against truth spans (fslabels.quality)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli.main import main
from fslabels.quality import TruthError, read_truth, score_labels
from fsmodel.schema import save_label_dataset
from fsmodel.synthetic import world_videos
from fsmodel.training.synthetic_data import world_label_rows


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six world videos: label rows whose spatial column is the truth, whose temporal column
    marks the wrong frames, and whose fused column is their mean."""
    root = tmp_path_factory.mktemp("quality")
    rows, truth = [], []
    for i, video in enumerate(world_videos(6, seed=5)):
        clip = video.write(root / "videos" / f"{video.video_id}.mp4", seed=i)
        got, records = world_label_rows(video, clip, f"{video.video_id}.mp4")
        rows += got
        truth += records
    for row in rows:
        right = np.asarray(row["spatial"])
        row["temporal"] = (1 - right).tolist()
        row["scores"] = ((right + 1 - right) / 2).tolist()  # flat: 0.5 everywhere
    save_label_dataset(rows, root / "ds")
    path = root / "truth.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in truth), encoding="utf-8")
    return root / "ds", path, truth


def test_sources_are_scored_per_kind(world):
    dataset, truth, _ = world
    report = score_labels(dataset, truth, k=8)
    assert report.questions == 18 and report.unscored == 0 and report.flagged_spans == 0
    assert report.kinds() == ["count", "order", "presence", "all"]
    spatial, temporal, fused = (report.table[s]["all"] for s in ("spatial", "temporal", "fused"))
    assert spatial["auc"] == 1.0 and spatial["recall"] == 1.0 and spatial["coverage"] == 1.0
    assert temporal["auc"] == 0.0 and temporal["recall"] == 0.0
    assert fused["auc"] == 0.5  # all tied
    # all tied: the expected precision@8 is the mean share of relevant candidates
    shares = [np.mean(np.asarray(r["spatial"]) > 0) for r in _rows(dataset)]
    assert fused["precision"] == pytest.approx(np.mean(shares))
    assert report.table["spatial"]["order"]["questions"] == 6
    assert "human" not in report.table  # nothing reviewed


def _rows(dataset):
    from fsmodel.schema import load_label_dataset

    return list(load_label_dataset(str(dataset)))


def test_truth_keyed_by_video_and_question(world, tmp_path):
    dataset, _, records = world
    path = tmp_path / "t.jsonl"
    lines = [{"video": r["video"], "question": r["question"], "spans": r["spans"]} for r in records]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    report = score_labels(dataset, path)
    assert report.kinds() == ["all"] and report.table["spatial"]["all"]["questions"] == 18


def test_bad_truth_gets_one_error_per_problem(world, tmp_path):
    dataset, _, records = world
    path = tmp_path / "bad.jsonl"
    good = records[0]
    path.write_text(
        "\n".join(
            [
                "{not json",
                json.dumps({"question": "x", "spans": [[0, 1]]}),
                json.dumps({"sample_id": "a", "spans": [[2, 1]]}),
                json.dumps({"sample_id": "b", "spans": [[-1, 1]]}),
                json.dumps({"sample_id": "c", "spans": []}),
                json.dumps(good),
                json.dumps(good),
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(TruthError) as err:
        read_truth(path)
    lines = str(err.value).splitlines()
    assert lines[0].endswith("6 problem(s)")
    assert lines[1].startswith("bad.jsonl:1: not JSON")
    assert lines[2] == "bad.jsonl:2: needs a sample_id, or a video and a question"
    assert lines[3] == "bad.jsonl:3: span 0 [2, 1] ends before it starts"
    assert lines[4] == "bad.jsonl:4: span 0 [-1, 1] starts before the video (at -1 s)"
    assert "spans must be a non-empty list" in lines[5]
    assert lines[6] == f"bad.jsonl:7: '{good['sample_id']}' again (first on line 6)"
    unknown = tmp_path / "unknown.jsonl"
    late = {**good, "spans": [[30.0, 31.0]]}
    unknown.write_text(
        json.dumps({"sample_id": "nope", "spans": [[0, 1]]}) + "\n" + json.dumps(late) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(TruthError) as err:
        score_labels(dataset, unknown)
    assert str(err.value).splitlines()[1:] == [
        "unknown.jsonl:1: sample_id 'nope' is not in the dataset",
        "unknown.jsonl:2: span [30.0, 31.0] starts after the video ends (about 12.12 s)",
    ]


def test_cli_score_table_json_and_plot(world, tmp_path, capsys):
    dataset, truth, _ = world
    plot = tmp_path / "q.png"
    assert main(["labels", "score", str(dataset), "--truth", str(truth), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "recall@8" in out and "coverage@8" in out and "presence" in out
    assert plot.stat().st_size > 1000
    assert main(["labels", "score", str(dataset), "--truth", str(truth), "-k", "4", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["k"] == 4 and got["table"]["spatial"]["all"]["auc"] == 1.0
    assert main(["labels", "score", str(dataset), "--truth", str(tmp_path / "none")]) == 1
    assert "truth file" in capsys.readouterr().err


def test_the_report_goes_into_the_dataset_card(world, tmp_path, capsys):
    from fslabels.dataset import load_dataset_version, write_dataset

    dataset, truth, _ = world
    rows = _rows(dataset)
    built = write_dataset(tmp_path / "ds", rows, note="world labels")
    args = ["labels", "score", str(built), "--truth", str(truth), "--card"]
    assert main(args) == 0
    assert "Added to the card" in capsys.readouterr().out
    card = (built / "README.md").read_text(encoding="utf-8")
    assert "## Label quality against truth" in card
    assert "| spatial | presence | 1.000 |" in card and "assets/label_quality.png" in card
    assert (built / "assets" / "label_quality.png").stat().st_size > 1000
    again = load_dataset_version(str(built))
    assert [r["sample_id"] for r in again.rows] == [r["sample_id"] for r in rows]
    assert main(["labels", "score", str(dataset), "--truth", str(truth), "--card"]) == 1
    assert "has no framesel_dataset.json: --card rewrites" in capsys.readouterr().err


# --- selections against truth (framesel select score) -----------------------------------------


def test_picks_are_scored_per_strategy_k_and_kind(world):
    from fslabels.quality import score_picks
    from fsmodel.metrics import candidates_in_spans

    dataset, truth, records = world
    rows = _rows(dataset)
    videos = [{"video": r["video"], "timestamps": r["timestamps"]} for r in rows]
    spans = {record["sample_id"]: record["spans"] for record in records}
    picks = []
    for row in rows:
        groups, _ = candidates_in_spans(spans[row["sample_id"]], np.asarray(row["timestamps"]))
        inside, outside = np.flatnonzero(groups >= 0), np.flatnonzero(groups < 0)
        for strategy, chosen in (("oracle", inside[:2]), ("anti", outside[:2])):
            picks.append({"sample_id": row["sample_id"], "video": row["video"],
                          "question": row["question"], "strategy": strategy, "k": 2,
                          "positions": chosen.tolist()})  # fmt: skip
    report = score_picks(picks, videos, read_truth(truth))
    assert report.questions == 18 and report.unscored == 0
    assert report.kinds() == ["count", "order", "presence", "all"]
    oracle, anti = report.table["oracle"][2], report.table["anti"][2]
    assert oracle["all"]["recall"] == 1.0 and oracle["all"]["precision"] == 1.0
    assert anti["all"]["recall"] == 0.0 and anti["all"]["coverage"] == 0.0
    assert oracle["order"]["questions"] == 6
    # an order question has two spans (anchor, next event): its first two candidates inside
    # can both fall in the anchor, so coverage is below 1 where recall is 1
    assert 0.5 <= oracle["order"]["coverage"] <= 1.0


def test_cli_select_score_uniform_picks(tmp_path, capsys):
    from fslabels.evaluation.selections import score_selections
    from fsmodel.training.synthetic_data import write_world

    world = write_world(tmp_path / "world", 3, seed=5)
    work, selections = tmp_path / "work", tmp_path / "selections"
    argv = ["select", "run", "--manifest", str(world["manifest"]), "--videos",
            str(world["videos"]), "--work", str(work), "--strategies", "uniform", "-k", "4,32",
            "--n", "32", "--set", "frame_size=null", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert main(["select", "build", str(work), "--out", str(selections)]) == 0
    capsys.readouterr()
    assert main(["select", "score", str(selections), "--truth", str(world["truth"])]) == 0
    out = capsys.readouterr().out
    assert "recall@k" in out and "coverage@k" in out and "presence" in out
    assert main(["select", "score", str(selections), "--truth", str(world["truth"]), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["questions"] == 9
    every = got["table"]["uniform"]["32"]["all"]  # k = n: every candidate is picked
    assert every["recall"] == 1.0 and every["coverage"] == 1.0
    import pyarrow as pa
    import pyarrow.parquet as pq

    videos = next((selections / "data" / "videos").glob("*.parquet"))
    assert pq.read_schema(videos).field("timestamps").type == pa.list_(pa.float64())
    four = score_selections(selections, world["truth"]).table["uniform"][4]["all"]
    assert 0.0 < four["recall"] < 1.0
    # truth for a question without picks (e.g. one the selection run failed on) is counted
    extra = tmp_path / "extra.jsonl"
    lines = world["truth"].read_text(encoding="utf-8")
    extra.write_text(lines + '{"sample_id": "failed", "spans": [[0, 1]]}\n', encoding="utf-8")
    assert main(["select", "score", str(selections), "--truth", str(extra)]) == 0
    assert "1 truth questions without picks" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "nope", "spans": [[0, 1]]}\n', encoding="utf-8")
    assert main(["select", "score", str(selections), "--truth", str(bad)]) == 1
    assert "nothing to score" in capsys.readouterr().err
