"""The whole review loop against the real Label Studio server: export → a reviewer's annotations
(made through the REST API, the requests the UI sends) → import → agreement → a new version that
loads, locally and from the Hub by tag.

The shared export (`exported`) is module-scoped: test_browser.py opens one of its tasks.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fslabels.review import config as ui

PROJECT = "framesel review roundtrip"


@pytest.fixture(scope="module")
def exported(label_studio, review_dataset, review_videos, media_root):
    """Three rows (strategy disagree) exported to PROJECT."""
    from fslabels.dataset import load_dataset_version
    from fslabels.review.client import LabelStudio
    from fslabels.review.export import export_for_review

    loaded = load_dataset_version(review_dataset)
    with LabelStudio(label_studio.url, label_studio.token) as client:
        result = export_for_review(
            loaded,
            client,
            videos=review_videos["root"],
            media_root=media_root,
            project=PROJECT,
            sample=3,
            strategy="disagree",
            seed=0,
            top_k=4,
        )
        tasks = {t["data"][ui.TASK_KEY]["sample_id"]: t for t in client.tasks(result.project_id)}
    return {"result": result, "loaded": loaded, "tasks": tasks}


def _rows_by_question(loaded) -> dict:
    return {row["question"]: row for row in loaded.rows}


def test_export_creates_tasks_with_media_predictions_and_is_idempotent(
    exported, ls_client, label_studio, review_dataset, review_videos, media_root, capsys
):
    result, loaded, tasks = exported["result"], exported["loaded"], exported["tasks"]
    assert len(result.created) == 3 and not result.existing
    # disagree: the three event rows (temporal is shifted), not the yellow one (both low)
    questions = {row["question"] for row in loaded.rows if row["sample_id"] in result.created}
    assert "When does the yellow square appear?" not in questions

    for sample_id, task in tasks.items():
        data = task["data"]
        block = data[ui.TASK_KEY]
        row = next(r for r in loaded.rows if r["sample_id"] == sample_id)
        assert block["dataset"] == result.version and "labels-v1#" in result.version
        assert block["frame_indices"] == row["frame_indices"]
        assert len(data["frames"]) == 16 and data["scores"]["candidate"] == list(range(16))
        # media exist under the document root and the server serves them with the token
        for url in (data["video"], data["sheet"], data["frames"][0], data["frames"][-1]):
            assert ls_client.fetch_status(url) == 200, url
        assert data["video"].endswith((".mp4", ".webm"))
        if row["video"] == "green.mp4":  # mp4v: re-encoded to VP9 WebM
            assert data["video"].endswith("clip.webm")
        # the pseudo-labels as a prediction tagged with the dataset version
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == f"framesel:{result.version}"
        chosen = sorted(
            r["item_index"] for r in prediction["result"] if r["from_name"] == ui.FRAME_CHOICE
        )
        top4 = np.sort(np.argsort(-np.asarray(row["scores"]), kind="stable")[:4]).tolist()
        assert chosen == top4
        assert block["premarked"] == top4  # what import reads for an accept without marks
        assert any(r["type"] == "timelinelabels" for r in prediction["result"])

    # the gallery frames are exactly the labelled candidates (each frame shows its own index)
    from PIL import Image

    from fsmodel.synthetic import read_frame_index

    task = next(iter(tasks.values()))
    for position in (0, 7, 15):
        relative = task["data"]["frames"][position].split("?d=", 1)[1]
        image = np.asarray(Image.open(media_root / relative).convert("RGB"))
        assert read_frame_index(image) == task["data"][ui.TASK_KEY]["frame_indices"][position]

    # the same export again, through the CLI: nothing is duplicated
    from cli.main import main

    code = main(
        ["review", "export", str(review_dataset), "--url", ls_client.url, "--token",
         label_studio.token, "--videos", str(review_videos["root"]), "--media-root",
         str(media_root), "--project", PROJECT, "--sample", "3", "--strategy", "disagree",
         "--seed", "0", "--top-k", "4", "--json"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    again = json.loads(captured.out)
    assert not again["created"] and sorted(again["existing"]) == sorted(result.created)
    assert not again["updated"]  # same version: nothing changes
    assert len(ls_client.tasks(result.project_id)) == 3


def _annotate(client, task_id: int, result: list[dict]) -> dict:
    return client.create_annotation(task_id, result, lead_time=42.0)


def _range(start: int, end: int) -> dict:
    return {
        "from_name": ui.RANGES,
        "to_name": ui.VIDEO,
        "type": "timelinelabels",
        "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [ui.RELEVANT]},
    }


def _frame(item: int, choice: str) -> dict:
    return {
        "from_name": ui.FRAME_CHOICE,
        "to_name": ui.FRAMES,
        "type": "choices",
        "value": {"choices": [choice]},
        "item_index": item,
    }


def _verdict(value: str) -> dict:
    return {
        "from_name": ui.VERDICT,
        "to_name": ui.VIDEO,
        "type": "choices",
        "value": {"choices": [value]},
    }


def _comment(text: str) -> dict:
    return {
        "from_name": ui.COMMENT,
        "to_name": ui.VIDEO,
        "type": "textarea",
        "value": {"text": [text]},
    }


def test_review_import_agreement_and_new_version(
    exported, ls_client, label_studio, review_dataset, review_videos, tmp_path, capsys, hub
):
    from cli.main import main
    from fslabels.dataset import load_dataset_version
    from fsmodel.schema import load_label_dataset

    result, loaded, tasks = exported["result"], exported["loaded"], exported["tasks"]
    rows = _rows_by_question(loaded)
    red = rows["When does the red circle appear?"]
    green = rows["When does the green square appear?"]
    blue = rows["When does the blue bar appear?"]
    red_task = tasks[red["sample_id"]]["id"]
    green_task = tasks[green["sample_id"]]["id"]
    blue_task = tasks[blue["sample_id"]]["id"]

    # Reviewer 1, red: marks the event's frames 30..59 (timeline frames 31..60), then unticks one
    # candidate inside it and ticks one outside; rejects the pseudo-labels with a comment.
    red_fi = np.asarray(red["frame_indices"])
    inside = np.flatnonzero((red_fi >= 30) & (red_fi <= 59))
    _annotate(
        ls_client,
        red_task,
        [
            _range(31, 60),
            _frame(int(inside[0]), ui.IRRELEVANT),
            _frame(0, ui.RELEVANT),
            _verdict("reject"),
            _comment("temporal is late"),
        ],
    )
    # green: accepted as pre-annotated, without touching the marks
    _annotate(ls_client, green_task, [_verdict("accept")])
    # blue stays unreviewed; a cancelled (skipped) annotation does not count
    ls_client.create_annotation(blue_task, [], was_cancelled=True)

    out = tmp_path / "labels-v2"
    code = main(
        [
            "review",
            "import",
            "--url",
            label_studio.url,
            "--token",
            label_studio.token,
            "--project",
            PROJECT,
            "--dataset",
            str(review_dataset),
            "--out",
            str(out),
            "--top-k",
            "4",
            "--report-png",
            str(tmp_path / "agreement.png"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    with capsys.disabled():  # the agreement report of this run, for the record
        print("\n" + printed)
    assert "Review agreement" in printed and "2 reviewed rows imported" in printed

    new = load_dataset_version(out)
    by_id = {r["sample_id"]: r for r in new.rows}
    expected_red = set(inside[1:].tolist()) | {0}
    human_red = np.asarray(by_id[red["sample_id"]]["human"])
    assert set(np.flatnonzero(human_red == 1).tolist()) == expected_red
    assert set(np.unique(human_red).tolist()) <= {0.0, 1.0}
    review = json.loads(by_id[red["sample_id"]]["review"])
    assert review["verdict"] == "reject" and review["comment"] == "temporal is late"
    # a pseudonym, not the reviewer's address: the version may be pushed to the Hub
    me = ls_client.whoami()
    assert review["reviewer"] == f"reviewer-{me['id']}" and review["project"] == PROJECT
    assert "@" in label_studio.username
    for row in new.rows:
        assert label_studio.username not in row["review"]
    for path in out.rglob("*"):
        if path.is_file():
            assert label_studio.username.encode() not in path.read_bytes(), path
    assert review["exported_from"] == result.version and review["task_id"] == red_task
    human_green = np.asarray(by_id[green["sample_id"]]["human"])
    top4 = np.sort(np.argsort(-np.asarray(green["scores"]), kind="stable")[:4])
    assert np.flatnonzero(human_green == 1).tolist() == top4.tolist()
    # unreviewed rows are unchanged
    for row in loaded.rows:
        if row["sample_id"] not in (red["sample_id"], green["sample_id"]):
            assert by_id[row["sample_id"]] == row
    # the new version: card section + plot, provenance, loadable through datasets too
    card = (out / "README.md").read_text()
    assert "## Human review" in card and "assets/review_agreement.png" in card
    assert "Accept rate of the pseudo-labels: **50.0%**" in card
    assert (out / "assets" / "review_agreement.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "agreement.png").is_file()
    assert new.info["parent"]["version"] == result.version
    assert new.info["counts"]["reviewed"] == 2
    assert load_label_dataset(out).num_rows == len(loaded.rows)

    # agreement numbers, by hand: fused top-4 vs the reviewers' frames
    report = json.loads(
        _run_json(
            [
                "review",
                "import",
                "--url",
                label_studio.url,
                "--token",
                label_studio.token,
                "--project",
                PROJECT,
                "--dataset",
                str(review_dataset),
                "--out",
                str(tmp_path / "again"),
                "--top-k",
                "4",
                "--reviewer-emails",
                "--json",
            ],
            capsys,
        )
    )["report"]
    # asked for explicitly: the address is recorded
    again = {r["sample_id"]: r for r in load_dataset_version(tmp_path / "again").rows}
    assert json.loads(again[red["sample_id"]]["review"])["reviewer"] == label_studio.username
    fused_red = set(np.sort(np.argsort(-np.asarray(red["scores"]), kind="stable")[:4]).tolist())
    hits = len(fused_red & expected_red) + 4  # green: accepted, all 4 hit
    fused = next(s for s in report["sources"] if s["source"] == "fused")
    assert fused["precision"] == pytest.approx(hits / 8)
    assert fused["recall"] == pytest.approx(hits / (len(expected_red) + 4))
    assert report["accept_rate"] == 0.5 and report["worst"][0]["sample_id"] == red["sample_id"]

    # push the new version to the (local) Hub and load it back by tag
    pushed = main(
        [
            "review",
            "import",
            "--url",
            label_studio.url,
            "--token",
            label_studio.token,
            "--project",
            PROJECT,
            "--dataset",
            str(review_dataset),
            "--repo",
            "framesel-org/review-labels",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert pushed == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["pushed"] == "framesel-org/review-labels@v1"
    assert payload["out"] is None  # staged in a temporary directory, removed after the push
    import datasets

    from_hub = datasets.load_dataset(
        "framesel-org/review-labels", "labels", split="train", revision="v1"
    )
    assert sum(1 for h in from_hub["human"] if h) == 2


def _run_json(argv: list[str], capsys) -> str:
    from cli.main import main

    assert main(argv) == 0
    return capsys.readouterr().out


def test_second_review_keeps_earlier_imports(
    exported, ls_client, label_studio, review_dataset, review_videos, media_root, tmp_path
):
    """v1 → import project A → v2; export v2's unreviewed rows to project B, review, import onto
    v2 → v3 keeps A's human labels and adds B's."""
    from fslabels.dataset import load_dataset_version
    from fslabels.review.export import export_for_review
    from fslabels.review.importer import import_reviews

    first = tmp_path / "v2"
    import_reviews(ls_client, PROJECT, review_dataset, out_dir=first, top_k=4)
    v2 = load_dataset_version(first)
    reviewed_v2 = {r["sample_id"]: r for r in v2.rows if len(r["human"])}
    assert len(reviewed_v2) >= 2

    second = export_for_review(
        v2,
        ls_client,
        videos=review_videos["root"],
        media_root=media_root,
        project="framesel review second pass",
        sample=1,
        strategy="uncertain",
        top_k=4,
    )
    (sample_id,) = second.created
    assert sample_id not in reviewed_v2  # reviewed rows are not sampled again
    _annotate(ls_client, second.created[sample_id], [_verdict("reject")])
    v3_dir = import_reviews(
        ls_client, "framesel review second pass", first, out_dir=tmp_path / "v3", top_k=4
    ).out_dir
    v3 = {r["sample_id"]: r for r in load_dataset_version(v3_dir).rows}
    for kept, row in reviewed_v2.items():
        assert v3[kept]["human"] == row["human"] and v3[kept]["review"] == row["review"]
    assert json.loads(v3[sample_id]["review"])["verdict"] == "reject"
    assert v3[sample_id]["human"] == [0.0] * 16  # rejected, nothing marked


def test_accept_without_marks_is_read_against_the_version_the_task_showed(
    ls_client, review_dataset, review_videos, media_root, tmp_path
):
    """Export v1, accept a task without touching its marks, import onto v1b (same rows, other
    scores): the human labels are v1's pre-marked frames. Exporting v1b to the project refuses
    the annotated task (changing nothing) and moves an unannotated one to the new version."""
    from fslabels.dataset import load_dataset_version, write_dataset
    from fslabels.review.export import ReviewExportError, dataset_version_id, export_for_review
    from fslabels.review.importer import import_reviews

    title = "framesel review versions"
    v1 = load_dataset_version(review_dataset)
    common = {"videos": review_videos["root"], "media_root": media_root, "project": title}
    first = export_for_review(v1, ls_client, sample=2, strategy="disagree", top_k=4, **common)
    tasks = {t["data"][ui.TASK_KEY]["sample_id"]: t for t in ls_client.tasks(first.project_id)}
    accepted, untouched = sorted(first.created)
    _annotate(ls_client, first.created[accepted], [_verdict("accept")])

    def top4(scores) -> list[int]:
        return np.sort(np.argsort(-np.asarray(scores), kind="stable")[:4]).tolist()

    # v1b: the same candidates, the scores reversed, so every row's top-4 moves
    rows = [
        {**row, **{c: row[c][::-1] for c in ("spatial", "temporal", "scores")}} for row in v1.rows
    ]
    v1b_dir = write_dataset(tmp_path / "v1b", rows, v1.captions, run_config=v1.run_config)
    v1b = load_dataset_version(v1b_dir)
    old = {r["sample_id"]: r for r in v1.rows}
    new = {r["sample_id"]: r for r in v1b.rows}
    assert top4(old[accepted]["scores"]) != top4(new[accepted]["scores"])

    imported = import_reviews(ls_client, title, v1b, out_dir=tmp_path / "v2", top_k=4)
    v2 = {r["sample_id"]: r for r in load_dataset_version(imported.out_dir).rows}
    assert imported.reviewed == [accepted]
    assert np.flatnonzero(v2[accepted]["human"]).tolist() == top4(old[accepted]["scores"])
    assert json.loads(v2[accepted]["review"])["exported_from"] == first.version

    # v1b onto the project: the accepted task cannot be moved; nothing changes
    with pytest.raises(ReviewExportError) as caught:
        export_for_review(v1b, ls_client, sample=2, strategy="disagree", top_k=4, **common)
    message = str(caught.value)
    assert "nothing was changed" in message and "new --project" in message
    assert f"task {first.created[accepted]} (sample {accepted}" in message
    assert "1 finished annotation(s)" in message and untouched not in message
    after = {t["data"][ui.TASK_KEY]["sample_id"]: t for t in ls_client.tasks(first.project_id)}
    assert after[untouched]["data"] == tasks[untouched]["data"]
    assert len(after[untouched]["predictions"]) == 1

    # v2 (reviewed rows are not sampled again): the unannotated task moves to v2
    moved = export_for_review(
        imported.out_dir, ls_client, sample=None, strategy="disagree", top_k=4, **common
    )
    assert moved.updated == [first.created[untouched]] and accepted not in moved.sampled
    assert moved.version == dataset_version_id(load_dataset_version(imported.out_dir))
    task = next(t for t in ls_client.tasks(first.project_id) if t["id"] == moved.updated[0])
    data, block = task["data"], task["data"][ui.TASK_KEY]
    assert block["dataset"] == moved.version
    assert block["premarked"] == top4(new[untouched]["scores"])
    assert data["scores"]["fused"] == [round(float(v), 4) for v in new[untouched]["scores"]]
    assert data["frames"] == tasks[untouched]["data"]["frames"]  # same candidates, same images
    assert data["sheet"] != tasks[untouched]["data"]["sheet"]
    assert ls_client.fetch_status(data["sheet"]) == 200
    assert ls_client.fetch_status(tasks[untouched]["data"]["sheet"]) == 200  # old one untouched
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == f"framesel:{moved.version}"
    chosen = sorted(
        r["item_index"] for r in prediction["result"] if r["from_name"] == ui.FRAME_CHOICE
    )
    assert chosen == block["premarked"]
    # and an accept without marks on the moved task means v2's pre-marked frames
    _annotate(ls_client, task["id"], [_verdict("accept")])
    v3 = import_reviews(ls_client, title, imported.out_dir, out_dir=tmp_path / "v3", top_k=4)
    human = {r["sample_id"]: r["human"] for r in load_dataset_version(v3.out_dir).rows}
    assert np.flatnonzero(human[untouched]).tolist() == top4(new[untouched]["scores"])
