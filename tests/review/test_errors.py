"""Bad input against the real server: each gives a clear error, and nothing is written or lost."""

from __future__ import annotations

import json
import socket

import pytest

from fslabels.review import config as ui
from fslabels.review.client import LabelStudio, LabelStudioError, ProjectNotFound


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_down_and_wrong_token(label_studio):
    with (
        LabelStudio(f"http://127.0.0.1:{_closed_port()}", "t0ken") as down,
        pytest.raises(
            LabelStudioError,
            match=r"cannot reach Label Studio at http://127\.0\.0\.1:\d+.*is the server running",
        ),
    ):
        down.projects()
    with (
        LabelStudio(label_studio.url, "not-the-token") as wrong,
        pytest.raises(
            LabelStudioError, match=r"refused the token \(401.*Invalid token.*check --token"
        ),
    ):
        wrong.projects()


def test_cli_errors_are_one_line_with_exit_1(label_studio, review_dataset, tmp_path, capsys):
    from cli.main import main

    common = ["--url", label_studio.url, "--token", label_studio.token]
    assert (
        main(
            [
                "review",
                "import",
                *common,
                "--project",
                "no such project",
                "--dataset",
                str(review_dataset),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "has no project titled 'no such project'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()

    assert (
        main(
            [
                "review",
                "import",
                "--url",
                label_studio.url,
                "--token",
                "wrong",
                "--project",
                "p",
                "--dataset",
                str(review_dataset),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    assert "refused the token" in " ".join(capsys.readouterr().err.split())

    # a dataset version that does not exist: a missing directory, a missing Hub revision
    assert (
        main(
            [
                "review",
                "import",
                *common,
                "--project",
                "p",
                "--dataset",
                str(tmp_path / "gone"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "neither an existing directory nor a Hub dataset id" in err


def test_missing_hub_revision_is_clear(ls_client, review_dataset, tmp_path, hub):
    from fslabels.dataset import push_dataset
    from fslabels.review.importer import import_reviews

    push_dataset(review_dataset, "framesel-org/review-revisions")
    with pytest.raises(ValueError, match=r"has no revision 'v9' \(it has: .*v1"):
        import_reviews(ls_client, "any", "framesel-org/review-revisions@v9", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_project_lists_the_projects(ls_client):
    with pytest.raises(ProjectNotFound, match=r"no project titled 'nope' \(projects: "):
        ls_client.find_project("nope")


def test_foreign_tasks_and_ranges_outside_the_video_are_refused_together(
    ls_client, review_dataset, review_videos, media_root, tmp_path
):
    from fslabels.dataset import load_dataset_version
    from fslabels.review.export import ensure_project, export_for_review
    from fslabels.review.importer import ReviewImportError, import_reviews

    loaded = load_dataset_version(review_dataset)
    title = "framesel review bad input"
    result = export_for_review(
        loaded,
        ls_client,
        videos=review_videos["root"],
        media_root=media_root,
        project=title,
        sample=1,
        top_k=4,
    )
    (sample_id, task_id) = next(iter(result.created.items()))
    project, created = ensure_project(ls_client, title)
    assert not created
    # a task somebody added by hand, without framesel's block, annotated
    (foreign,) = ls_client.import_tasks(
        project["id"],
        [
            {
                "data": {
                    "question": "hand-made",
                    "context": "",
                    "video": "/x.mp4",
                    "fps": 25,
                    "frames": [],
                    "sheet": "/x.jpg",
                    "scores": {},
                }
            }
        ],
    )
    ls_client.create_annotation(
        foreign,
        [
            {
                "from_name": ui.VERDICT,
                "to_name": ui.VIDEO,
                "type": "choices",
                "value": {"choices": ["accept"]},
            }
        ],
    )
    # a range past the end of the 96- or 80-frame video, and a frame choice on item 99
    ls_client.create_annotation(
        task_id,
        [
            {
                "from_name": ui.RANGES,
                "to_name": ui.VIDEO,
                "type": "timelinelabels",
                "value": {"ranges": [{"start": 5, "end": 500}], "timelinelabels": [ui.RELEVANT]},
            },
            {
                "from_name": ui.FRAME_CHOICE,
                "to_name": ui.FRAMES,
                "type": "choices",
                "value": {"choices": [ui.RELEVANT]},
                "item_index": 99,
            },
        ],
    )
    out = tmp_path / "never"
    with pytest.raises(ReviewImportError) as caught:
        import_reviews(ls_client, title, loaded, out_dir=out)
    message = str(caught.value)
    assert "3 problem(s)" in message and "nothing was written" in message
    assert f"task {foreign} did not come from framesel" in message
    assert f"task {task_id} (sample {sample_id})" in message
    assert "range frames 5..500 is outside the video (frames 1.." in message
    assert "frame choice on item 99, but the task has 16 frames" in message
    assert not out.exists()

    # a project titled like ours but not made by framesel is not taken over
    ls_client.create_project("framesel lookalike", "<View><Text name='t' value='$t'/></View>")
    with pytest.raises(LabelStudioError, match="exists but is not a framesel review project"):
        ensure_project(ls_client, "framesel lookalike")


def test_export_refuses_media_the_server_does_not_serve(
    ls_client, review_dataset, review_videos, tmp_path
):
    from fslabels.review.export import export_for_review

    elsewhere = tmp_path / "not-the-document-root"
    elsewhere.mkdir()
    with pytest.raises(
        LabelStudioError,
        match=r"does not serve the exported media.*LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=",
    ):
        export_for_review(
            review_dataset,
            ls_client,
            videos=review_videos["root"],
            media_root=elsewhere,
            project="framesel review unserved",
            sample=1,
        )
    project = ls_client.find_project("framesel review unserved")
    assert ls_client.tasks(project["id"]) == []  # no task points at media nobody can see


def test_export_bad_videos_fail_before_anything_is_created(ls_client, review_dataset, tmp_path):
    from fslabels.review.export import export_for_review

    with pytest.raises(
        FileNotFoundError, match=r"sample [0-9a-f]{16}: video '.*' not found under --videos"
    ):
        export_for_review(
            review_dataset,
            ls_client,
            videos=tmp_path,
            media_root=tmp_path,
            project="framesel review no videos",
            sample=2,
        )
    with pytest.raises(ProjectNotFound):
        ls_client.find_project("framesel review no videos")


def test_personal_access_token_is_exchanged_for_an_access_token(label_studio):
    """A personal access token (JWT refresh token, made in the UI's Account page — here through
    the same session request) works like the legacy token."""
    import httpx

    from tests.review.browser import login_cookies

    cookies = login_cookies(label_studio.url, label_studio.username, label_studio.password)
    headers = {"X-CSRFToken": cookies["csrftoken"], "Referer": f"{label_studio.url}/"}
    with httpx.Client(base_url=label_studio.url, cookies=cookies, headers=headers) as session:
        reply = session.post("/api/token/")
    assert reply.status_code == 201, reply.text
    pat = reply.json()["token"]
    assert pat.count(".") == 2
    with LabelStudio(label_studio.url, pat) as client:
        assert client.whoami()["email"] == label_studio.username
    with (
        LabelStudio(label_studio.url, pat[:-4] + "AAAA") as forged,
        pytest.raises(LabelStudioError, match="refused the token"),
    ):
        forged.whoami()


def test_import_never_replaces_out_without_overwrite(
    ls_client, label_studio, review_dataset, review_videos, media_root, tmp_path, capsys
):
    from cli.main import main
    from fslabels.review.export import export_for_review

    title = "framesel review overwrite"
    result = export_for_review(
        review_dataset,
        ls_client,
        videos=review_videos["root"],
        media_root=media_root,
        project=title,
        sample=1,
        top_k=4,
    )
    (task_id,) = result.created.values()
    ls_client.create_annotation(
        task_id,
        [
            {
                "from_name": ui.VERDICT,
                "to_name": ui.VIDEO,
                "type": "choices",
                "value": {"choices": ["reject"]},
            }
        ],
    )
    out = tmp_path / "v2"
    argv = ["review", "import", "--url", label_studio.url, "--token", label_studio.token,
            "--project", title, "--dataset", str(review_dataset), "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    assert main(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"--out {out} already holds a label dataset; pass --overwrite" in err
    assert f"the annotations stay in Label Studio project '{title}'" in err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (task,) = ls_client.tasks(result.project_id)
    assert len(task["annotations"]) == 1  # nothing imported is lost

    # a directory that is not a label dataset is never replaced, --overwrite or not
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main([*argv[:-2], str(other), "--overwrite"]) == 1
    assert "is not a label dataset" in " ".join(capsys.readouterr().err.split())
    assert [p.name for p in other.iterdir()] == ["keep.txt"]

    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
