"""A reviewer's view: an exported task opened in headless Chromium (Debian ``chromium``).

The green clip is an MPEG-4 Part 2 (mp4v) file that no browser plays: export re-encodes it to
VP9 WebM, and this test checks that Chromium really decodes it, fetches the gallery frame and
the contact sheet from Label Studio's Local Files storage (with the session of a logged-in
user), and shows the labelled candidate — read back from the pixels the browser decoded.

Without chromium the test FAILS under ``CI=true`` and is skipped elsewhere
(``scripts/setup_chromium.sh`` installs it). The screenshot is kept in the test's tmp dir and,
when ``FRAMESEL_REVIEW_SCREENSHOT`` names a path, copied there.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from fslabels.review import config as ui
from tests.review.conftest import ON_CI


@pytest.fixture(scope="module")
def chromium() -> str:
    from tests.review.browser import find_chromium

    found = find_chromium()
    if found is None:
        reason = "no chromium on PATH; run scripts/setup_chromium.sh (Debian's chromium)"
        if ON_CI:
            pytest.fail(f"CI must run the browser check: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def test_task_renders_with_its_frames_in_chromium(
    chromium, label_studio, ls_client, review_dataset, review_videos, media_root, tmp_path
):
    from fslabels.dataset import load_dataset_version
    from fslabels.review.export import export_for_review
    from fsmodel.synthetic import read_frame_index
    from tests.review.browser import render_task

    loaded = load_dataset_version(review_dataset)
    green = next(r for r in loaded.rows if r["video"] == "green.mp4")
    only_green = type(loaded)(loaded.ref, loaded.directory, [green], [], None, loaded.info)
    result = export_for_review(
        only_green,
        ls_client,
        videos=review_videos["root"],
        media_root=media_root,
        project="framesel review browser",
        top_k=4,
    )
    task_id = result.created[green["sample_id"]]
    (task,) = [t for t in ls_client.tasks(result.project_id) if t["id"] == task_id]
    data = task["data"]
    assert data["video"].endswith("clip.webm")

    shot = tmp_path / "task.png"
    shown = render_task(
        label_studio.url,
        label_studio.username,
        label_studio.password,
        result.project_id,
        task_id,
        media=[data["sheet"], data["frames"][0], data["video"]],
        min_images=2,
        screenshot=shot,
        timeout=45,
    )
    if os.environ.get("FRAMESEL_REVIEW_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["FRAMESEL_REVIEW_SCREENSHOT"])

    assert shown.fetched.get(data["sheet"]) == 200, shown.fetched
    assert shown.fetched.get(data["frames"][0]) == 200, shown.fetched
    assert shown.fetched.get(data["video"]) in (200, 206), shown.fetched
    assert shown.video_ready and shown.video_size == (128, 96)  # the VP9 clip decodes
    assert green["question"] in shown.text and "accept" in shown.text
    # the gallery shows candidate 0 exactly: the browser's decoded pixels carry its index
    frames = [img for img in shown.images if img.shape[:2] == (96, 128)]
    assert frames, [img.shape for img in shown.images]
    assert read_frame_index(frames[0]) == data[ui.TASK_KEY]["frame_indices"][0]
    # and the contact sheet (8 columns of 160 px thumbnails) is on the page
    assert any(img.shape[1] == 8 * 164 + 4 for img in shown.images)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shown.seconds < 45
    assert np.mean([img.mean() for img in frames]) > 10  # not a blank frame
