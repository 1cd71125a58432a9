"""`framesel select run` end to end on generated videos with the tiny selector: picks for every
question, strategy and k with exact budgets, the same picks `select_frames` makes, a re-run that
decodes and scores nothing, a failing video recorded while the others finish, and the curves
shared with `framesel eval qa` on the same work directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli.main import main
from fsmodel.synthetic import Event, write_video

N = 16


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("select-cli")
    videos = root / "videos"
    write_video(videos / "a.mp4", num_frames=64, events=[Event(10, 30, "circle", "red")])
    write_video(videos / "short.mp4", num_frames=10, gop=5)  # fewer frames than candidates
    questions = ["When does the red circle appear?", "What colour is the circle?", "Is it round?"]
    rows = [{"video": v, "question": q, "options": ["yes", "no"], "answer": "A"}
            for v in ("a.mp4", "short.mp4") for q in questions]  # fmt: skip
    rows.append(
        {"video": "gone.mp4", "question": "Anything?", "options": ["x", "y"], "answer": "A"}
    )
    manifest = root / "qa.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"videos": videos, "manifest": manifest, "rows": rows}


def _args(inputs, tiny_models, work):
    return ["select", "run", "--manifest", str(inputs["manifest"]), "--videos",
            str(inputs["videos"]), "--work", str(work), "--model", str(tiny_models["selector"]),
            "--strategies", "selector:nms,uniform", "-k", "4,8", "--n", str(N), "--set",
            "frame_size=48", "--no-progress", "--json"]  # fmt: skip


def _selections(inputs, tiny_models, tmp_path):
    """`select run` into tmp_path/work, then `select build` into tmp_path/sel."""
    work, sel = tmp_path / "work", tmp_path / "sel"
    assert main(_args(inputs, tiny_models, work)) == 0
    assert main(["select", "build", str(work), "--out", str(sel)]) == 0
    return sel


def test_select_run_writes_exact_picks_and_resumes(inputs, tiny_models, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(_args(inputs, tiny_models, work)) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # 7 questions x 2 strategies; the missing video's question fails on record, the run finishes.
    assert (first["items"], first["videos"], first["units"]) == (7, 3, 14)
    assert (first["computed"], first["failed"], first["cached"]) == (12, 2, 0)
    picks = [json.loads(line) for line in (work / "picks.jsonl").open()]
    assert first["picks"] == len(picks) == 6 * 2 * 2  # answered questions x strategies x ks
    for row in picks:
        frames = 10 if row["video"] == "short.mp4" else 64
        assert len(row["positions"]) == len(row["frame_indices"]) == row["k"]
        assert row["distinct_frames"] == len(set(row["frame_indices"])) == min(row["k"], frames)
        assert row["num_frames"] == frames and row["fps"] > 0
        assert len(row["timestamps"]) == row["k"]

    # The selector's picks are select_frames' picks.
    from transformers import AutoModel

    import fsmodel  # noqa: F401
    from fsmodel.video import sample_candidates

    model = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    row = next(r for r in picks if r["strategy"] == "selector:nms" and r["k"] == 8)
    candidates = sample_candidates(inputs["videos"] / row["video"], N, size=48)
    expected = model.select_frames(candidates, row["question"], k=8, options=["yes", "no"])
    assert row["frame_indices"] == expected.indices.tolist()
    np.testing.assert_allclose(row["timestamps"], expected.timestamps)

    # A re-run decodes and scores nothing and writes the same picks.
    assert main(_args(inputs, tiny_models, work)) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (again["computed"], again["cached"]) == (0, 12)
    assert [json.loads(line) for line in (work / "picks.jsonl").open()] == picks


def test_select_run_needs_a_model_for_selector_strategies(inputs, tmp_path, capsys):
    args = ["select", "run", "--manifest", str(inputs["manifest"]), "--videos",
            str(inputs["videos"]), "--work", str(tmp_path / "w")]  # fmt: skip
    assert main(args) != 0
    assert "need --model" in capsys.readouterr().err


def test_eval_qa_on_the_same_work_reuses_the_selection_curves(inputs, tiny_models, tmp_path):
    import sqlite3

    work = tmp_path / "work"
    assert main(_args(inputs, tiny_models, work)) == 0

    def curves():
        with sqlite3.connect(work / "run.sqlite") as db:
            return db.execute(
                "SELECT item, fingerprint, attempts, updated FROM eval_results "
                "WHERE stage = 'scores' ORDER BY item"
            ).fetchall()

    before = curves()
    assert len(before) == 6
    args = ["eval", "qa", "--manifest", str(inputs["manifest"]), "--videos", str(inputs["videos"]),
            "--work", str(work), "--model", str(tiny_models["qwen2-vl"]), "--selector",
            str(tiny_models["selector"]), "--strategies", "selector:nms", "--k", "4", "--n",
            str(N), "--set", "frame_size=48", "--set", "answerer.max_new_tokens=3",
            "--no-progress", "--no-plots", "--json"]  # fmt: skip
    assert main(args) == 0
    assert curves() == before  # not one curve computed again


def test_select_build_writes_a_loadable_selections_dataset(inputs, tiny_models, tmp_path, capsys):
    from datasets import load_dataset

    work, out = tmp_path / "work", tmp_path / "selections"
    assert main(_args(inputs, tiny_models, work)) == 0
    picks = [json.loads(line) for line in (work / "picks.jsonl").open()]
    capsys.readouterr()
    assert main(["select", "build", str(work), "--out", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out
    loaded = load_dataset(str(out), "picks", split="train")
    assert len(loaded) == len(picks)
    first = loaded[0]
    assert first["frame_indices"] == picks[0]["frame_indices"]
    assert first["distinct_frames"] == picks[0]["distinct_frames"]
    np.testing.assert_allclose(first["timestamps"], picks[0]["timestamps"], rtol=1e-6)
    scores = load_dataset(str(out), "scores", split="train")
    assert len(scores) == 6 and len(scores[0]["scores"]) == N  # 6 questions, one scorer
    videos = load_dataset(str(out), "videos", split="train")
    assert sorted(videos["video"]) == ["a.mp4", "short.mp4"]
    info = json.loads((out / "framesel_selections.json").read_text())
    assert info["scorers"]["selector"]["model_id"]
    card = (out / "README.md").read_text()
    assert "selector:nms" in card and "<local>/selector" in card
    assert str(tiny_models["selector"]) not in card  # no local path is published
    # An existing dataset is replaced only when asked; another directory never.
    assert main(["select", "build", str(work), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["select", "build", str(work), "--out", str(out), "--overwrite"]) == 0
    assert main(["select", "build", str(work), "--out", str(inputs["videos"]), "--overwrite"]) == 1
    assert "not a selections dataset" in capsys.readouterr().err


def test_selections_push_pull_diff_through_the_release_path(
    inputs, tiny_models, tmp_path, capsys, hub
):
    import datasets

    work = tmp_path / "work"
    assert main(_args(inputs, tiny_models, work)) == 0
    assert main(["select", "build", str(work), "--out", str(tmp_path / "v1")]) == 0
    repo = "tester/selections"
    capsys.readouterr()
    assert main(["select", "push", str(tmp_path / "v1"), "--repo", repo]) == 0
    assert "Pushed tester/selections v1" in capsys.readouterr().out
    assert main(["select", "push", str(tmp_path / "v1"), "--repo", repo]) == 0  # a no-op
    assert "already holds this content as v1" in capsys.readouterr().out

    # A second version: more budgets from the same stored curves (nothing is recomputed).
    args = _args(inputs, tiny_models, work)
    args[args.index("4,8")] = "4,8,16"
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["computed"] == 0
    assert main(["select", "build", str(work), "--out", str(tmp_path / "v2")]) == 0
    assert main(["select", "push", str(tmp_path / "v2"), "--repo", repo]) == 0
    assert set(hub.refs(repo, "dataset")["tags"]) == {"v1", "v2"}

    # The real datasets client loads each version by tag.
    old = datasets.load_dataset(repo, "picks", split="train", revision="v1")
    new = datasets.load_dataset(repo, "picks", split="train", revision="v2")
    assert sorted(set(old["k"])) == [4, 8] and sorted(set(new["k"])) == [4, 8, 16]

    assert main(["select", "pull", f"{repo}@v1", "--out", str(tmp_path / "pulled")]) == 0
    capsys.readouterr()
    assert main(["select", "diff", str(tmp_path / "pulled"), f"{repo}@v2", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["cells"]["selector:nms k=8"] == {"questions": 6, "changed": 0, "kept": 1.0}
    assert "selector:nms k=16" not in diff["cells"]
    assert (diff["only_in_a"], diff["only_in_b"]) == (0, 0)


def test_frames_export_writes_each_picked_frame_once_with_an_index(
    inputs, tiny_models, tmp_path, capsys
):
    from PIL import Image

    from fsmodel.video import sample_candidates

    sel, out = _selections(inputs, tiny_models, tmp_path), tmp_path / "frames"
    capsys.readouterr()
    args = ["frames", "export", str(sel), "--videos", str(inputs["videos"]), "--out", str(out),
            "--strategy", "selector:nms", "-k", "8", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index["entries"]) == 6 and index["failed"] == {}
    files = sorted((out / "frames").rglob("*.jpg"))
    wanted = {(e["video"], f["frame_index"]) for e in index["entries"] for f in e["frames"]}
    assert len(files) == len(wanted)  # each (video, frame) written once
    # The files are the frames the sampler decodes at those indices (JPEG, so close, not equal).
    entry = next(e for e in index["entries"] if e["video"] == "a.mp4")
    candidates = sample_candidates(inputs["videos"] / "a.mp4", N, size=None)
    for frame in entry["frames"]:
        assert len(entry["frames"]) == 8
        position = list(candidates.indices).index(frame["frame_index"])
        got = np.asarray(Image.open(out / frame["file"]), np.float32)
        assert np.abs(got - candidates.frames[position]).mean() < 8
    capsys.readouterr()
    assert main(args) == 1  # --out is not empty now
    assert "not empty" in capsys.readouterr().err
    other = ["frames", "export", str(sel), "--videos", str(inputs["videos"]), "--out",
             str(tmp_path / "x"), "--strategy", "nope", "--no-progress"]  # fmt: skip
    assert main(other) == 1
    assert "no picks for strategy='nope'" in capsys.readouterr().err


def test_frames_export_records_an_unreadable_video_and_writes_the_others(
    inputs, tiny_models, tmp_path, capsys
):
    import shutil

    sel = _selections(inputs, tiny_models, tmp_path)
    videos = tmp_path / "videos"
    shutil.copytree(inputs["videos"], videos)
    (videos / "short.mp4").write_bytes(b"not a video any more")
    capsys.readouterr()
    args = ["frames", "export", str(sel), "--videos", str(videos), "--out",
            str(tmp_path / "frames"), "-k", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    index = json.loads((tmp_path / "frames" / "index.json").read_text())
    assert list(index["failed"]) == ["short.mp4"]
    assert {e["video"] for e in index["entries"]} == {"a.mp4"}
    assert "short.mp4" in capsys.readouterr().out


def test_eval_qa_answers_from_stored_selections_without_a_selector(
    inputs, tiny_models, tmp_path, capsys
):
    sel = _selections(inputs, tiny_models, tmp_path)
    common = ["eval", "qa", "--manifest", str(inputs["manifest"]), "--videos",
              str(inputs["videos"]), "--model", str(tiny_models["qwen2-vl"]), "--strategies",
              "selector:nms", "--k", "4,8", "--set", "frame_size=48", "--set",
              "answerer.max_new_tokens=3", "--no-progress", "--no-plots", "--json"]  # fmt: skip
    # No --selector: the default is a Hub model that cannot load here, so nothing may run it.
    assert main([*common, "--work", str(tmp_path / "stored"), "--selections", str(sel)]) == 0
    assert main([*common, "--work", str(tmp_path / "live"), "--selector",
                 str(tiny_models["selector"]), "--n", str(N)]) == 0  # fmt: skip

    def answers(name):
        rows = [json.loads(x) for x in (tmp_path / name / "results" / "answers.jsonl").open()]
        return {(r["sample_id"], r["k"]): r for r in rows}

    stored, live = answers("stored"), answers("live")
    assert len(stored) == len(live) == 12  # 6 answerable questions x 2 ks
    for key, row in live.items():
        assert stored[key]["frame_indices"] == row["frame_indices"], key
        assert stored[key]["reply"] == row["reply"], key


def test_select_run_takes_a_hub_selector_at_a_revision(inputs, tiny_models, tmp_path, capsys, hub):
    from fsmodel.hub import push_selector

    release = push_selector(tiny_models["selector"], "tester/select-selector", tag="v1")
    assert release.tag == "v1"
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(_args(inputs, tiny_models, local)) == 0
    args = _args(inputs, tiny_models, remote)
    args[args.index("--model") + 1] = "tester/select-selector@v1"
    assert main(args) == 0
    same = [json.loads(x)["frame_indices"] for x in (local / "picks.jsonl").open()]
    assert [json.loads(x)["frame_indices"] for x in (remote / "picks.jsonl").open()] == same
    assert main(["select", "build", str(remote), "--out", str(tmp_path / "sel")]) == 0
    card = (tmp_path / "sel" / "README.md").read_text()
    assert "`tester/select-selector` at revision `v1`" in card
