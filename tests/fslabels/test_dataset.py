"""Versioned label datasets end to end: a label run on the tiny models → `labels build` → two
versions pushed to the local Hub server → loaded back by tag with the real `datasets` client →
pulled → diffed; and every bad input the issue lists, each leaving the remote unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi

from cli.main import main
from fslabels.config import LabelRunConfig
from fslabels.dataset import (
    DATASET_INFO,
    RUN_CONFIG,
    STATISTICS_PLOT,
    PushError,
    build_dataset,
    content_hash,
    diff_datasets,
    load_dataset_version,
    parse_ref,
    pull_dataset,
    push_dataset,
    write_dataset,
)
from fslabels.run import export_rows, run_labels
from fsmodel.schema import SCORES, SPATIAL, SchemaError, check_label_rows
from hub_cards.release import TagExistsError
from tests.fslabels.test_run import N, tiny_config, write_label_inputs


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_models):
    """A finished run over 2 videos (6 questions) plus a corrupt and a missing video."""
    root = tmp_path_factory.mktemp("dataset-run")
    manifest, videos, items = write_label_inputs(root, videos=2, bad=True)
    vocab = json.loads((tiny_models["qwen2"] / "config.json").read_text())["vocab_size"]
    config = tiny_config(tiny_models, vocab)
    run_labels(config, manifest, videos, root / "work", progress=False)
    return root / "work", items, config


@pytest.fixture(scope="module")
def built(finished_run, tmp_path_factory):
    work, _, _ = finished_run
    out = tmp_path_factory.mktemp("built") / "labels-v1"
    result = build_dataset(work, out)
    return result, out


def _texts(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8")
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in (".md", ".json", ".yaml")
    }


def _bump(directory: Path, out: Path, sample: int = 0, value: float = 0.9) -> Path:
    """A second version: one row's spatial and fused labels changed, one row removed."""
    loaded = load_dataset_version(directory)
    rows = [dict(r) for r in loaded.rows]
    rows[sample][SPATIAL] = [value] * len(rows[sample][SPATIAL])
    rows[sample][SCORES] = [value] * len(rows[sample][SCORES])
    removed = rows.pop()
    write_dataset(out, rows, loaded.captions, run_config=loaded.run_config, info=loaded.info,
                  note="one row relabelled, one dropped")  # fmt: skip
    return out, removed


def test_build_writes_a_loadable_dataset_with_card_and_run_config(finished_run, built, hub):
    work, items, config = finished_run
    result, out = built
    rows, _ = export_rows(work)
    assert (result.samples, result.videos, result.caption_videos, result.failed) == (
        len(rows), 2, 2, items - len(rows),
    )  # fmt: skip

    # What a user types: datasets' own loader, the card's YAML names the parquet of each config.
    labels = datasets.load_dataset(str(out), "labels", split="train")
    caps = datasets.load_dataset(str(out), "captions", split="train")
    assert labels.num_rows == len(rows) and caps.num_rows == 2
    check_label_rows(labels.to_list(), num_candidates=N)
    assert sorted(labels["sample_id"]) == sorted(r["sample_id"] for r in rows)
    assert labels.to_list()[0]["human"] == [] and labels.to_list()[0]["review"] == "{}"

    # The exact run config, with local model paths named by directory only.
    published = yaml.safe_load((out / RUN_CONFIG).read_text())
    assert published["spatial"]["model"] == "<local>/" + Path(config["spatial"]["model"]).name
    for key in ("num_candidates", "frame_size", "fusion"):
        assert published[key] == config[key]
    assert published["spatial"]["max_new_tokens"] == config["spatial"]["max_new_tokens"]
    LabelRunConfig.from_dict(published)  # still a valid config

    # The card: valid metadata (checked by the Hub's validate-yaml endpoint too) and the body.
    card = DatasetCard.load(out / "README.md")
    card.validate(repo_type="dataset")
    assert card.data.license == "cc-by-4.0"
    assert card.data.task_categories == ["video-text-to-text"]
    assert card.data.size_categories == ["n<1K"]
    assert [c["config_name"] for c in card.data.configs] == ["labels", "captions"]
    assert card.data.to_dict()["framesel_labels_schema"] == "v1"
    text = card.text
    info = json.loads((out / DATASET_INFO).read_text())
    for stage in ("spatial", "captions", "temporal"):
        assert info["run"]["stages"][stage]["settings"]["prompt_hash"] in text
    assert "0.5 · spatial + 0.5 · temporal" in text
    assert "helps answer the question, then answer True or False" in text  # the prompt itself
    assert "corrupt.mp4" in text and "missing.mp4" in text  # failures, by name
    assert f"{len(rows)} questions over 2 videos" in text
    assert "![Histograms of the label scores](assets/label_statistics.png)" in text
    assert (out / STATISTICS_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "datasets.load_dataset" not in text or "load_dataset(" in text
    # Nothing local or secret in anything published.
    for name, content in _texts(out).items():
        assert str(work) not in content and str(out) not in content, name
        assert not re.search(r"/(tmp|home|root|work)/", content), name
        assert hub.token not in content, name


def test_build_refuses_unfinished_or_empty_runs_and_foreign_dirs(finished_run, built, tmp_path):
    work, _, _ = finished_run
    _, out = built
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_dataset(work, out)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a label dataset"):
        build_dataset(work, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError):
        build_dataset(tmp_path / "no-run", tmp_path / "x")


def test_two_versions_push_load_by_tag_pull_and_diff(built, tmp_path, hub):
    _, v1_dir = built
    repo = "tester/labels-versions"
    first = push_dataset(v1_dir, repo)
    assert (first.tag, first.unchanged) == ("v1", False)
    assert {"README.md", RUN_CONFIG, DATASET_INFO, STATISTICS_PLOT} <= set(first.files)

    again = push_dataset(v1_dir, repo)  # identical content: a no-op
    assert (again.tag, again.commit, again.unchanged) == ("v1", first.commit, True)
    assert hub.head(repo, "dataset") == first.commit

    v2_dir, removed = _bump(v1_dir, tmp_path / "labels-v2")
    second = push_dataset(v2_dir, repo)  # no --tag: the next version from the repo's tags
    assert second.tag == "v2" and second.commit != first.commit
    assert set(hub.refs(repo, "dataset")["tags"]) == {"v1", "v2"}

    # The real client returns exactly v1 after v2 exists, and v2 at v2.
    old = datasets.load_dataset(repo, "labels", split="train", revision="v1")
    new = datasets.load_dataset(repo, "labels", split="train", revision="v2")
    v1_rows = load_dataset_version(v1_dir).rows
    assert old.num_rows == len(v1_rows) and new.num_rows == len(v1_rows) - 1
    assert sorted(old["sample_id"]) == sorted(r["sample_id"] for r in v1_rows)
    assert removed["sample_id"] not in new["sample_id"]
    assert np.allclose(new.to_list()[0][SPATIAL], 0.9)

    # The v2 card lists both versions and loads v2 in its snippet.
    card = DatasetCard.load(repo, repo_type="dataset")
    assert "| v1 |" in card.text and "| v2 |" in card.text
    assert f'load_dataset("{repo}", "labels", split="train", revision="v2")' in card.text
    assert "one row relabelled, one dropped" in card.text

    # pull v1: a local directory with the same content as what was pushed.
    pulled = pull_dataset(f"{repo}@v1", tmp_path / "pulled")
    loaded = load_dataset_version(pulled)
    assert content_hash(loaded.rows, loaded.captions, loaded.run_config) == content_hash(
        *(lambda d: (d.rows, d.captions, d.run_config))(load_dataset_version(v1_dir))
    )
    assert not (pulled / ".cache").exists()

    # diff across Hub revisions and local dirs says the same.
    for a, b in ((f"{repo}@v1", f"{repo}@v2"), (str(v1_dir), str(v2_dir)),
                 (str(pulled), f"{repo}@v2")):  # fmt: skip
        change = diff_datasets(a, b)
        assert change.removed == [(removed["sample_id"], removed["question"])]
        assert change.added == []
        assert [c["sample_id"] for c in change.changed] == [loaded.rows[0]["sample_id"]]
        assert set(change.changed[0]["columns"]) == {SPATIAL, SCORES}
        assert change.drift[SPATIAL]["max_abs"] > 0 and not change.identical
    assert diff_datasets(f"{repo}@v1", str(pulled)).identical


def test_bad_revision_and_missing_repo_are_clear(built, tmp_path):
    _, v1_dir = built
    push_dataset(v1_dir, "tester/labels-revisions")
    with pytest.raises(ValueError, match=r"has no revision 'v9' \(it has: main, v1\)"):
        load_dataset_version("tester/labels-revisions@v9")
    with pytest.raises(ValueError, match="does not exist"):
        pull_dataset("tester/no-such-labels", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="neither an existing directory"):
        parse_ref("no such dir")


def test_invalid_dataset_is_refused_before_any_upload(built, tmp_path, hub):
    _, v1_dir = built
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(v1_dir, bad)
    table = datasets.load_dataset(str(bad), "labels", split="train").to_list()
    table[0][SCORES] = [1.5] * N  # out of [0, 1]
    table[1][SCORES] = table[1][SCORES][:-1]  # wrong length
    parquet = next((bad / "data" / "labels").glob("*.parquet"))
    datasets.Dataset.from_list(table).to_parquet(str(parquet))
    before = len(hub.requests)
    with pytest.raises(SchemaError) as err:
        push_dataset(bad, "tester/labels-invalid")
    assert "outside [0, 1]" in str(err.value) and "values" in str(err.value)
    assert table[0]["sample_id"] in str(err.value) and table[1]["sample_id"] in str(err.value)
    assert not hub.repo_exists("tester/labels-invalid", "dataset")
    assert len(hub.requests) == before  # not one request


def test_push_errors_leave_the_remote_unchanged(built, tmp_path, hub, monkeypatch):
    _, v1_dir = built
    repo = "tester/labels-faults"
    first = push_dataset(v1_dir, repo)
    v2_dir, _ = _bump(v1_dir, tmp_path / "v2")

    # A tag that exists is refused before any upload.
    with pytest.raises(TagExistsError, match="already has a tag 'v1'"):
        push_dataset(v2_dir, repo, tag="v1")
    assert hub.head(repo, "dataset") == first.commit

    # The network drops the commit request: no commit, no tag; a retry then works.
    hub.fail_next(f"/api/datasets/{repo}/commit/", status="disconnect")
    with pytest.raises(PushError, match="remote is unchanged"):
        push_dataset(v2_dir, repo)
    assert hub.head(repo, "dataset") == first.commit
    assert set(hub.refs(repo, "dataset")["tags"]) == {"v1"}

    # The commit lands but tagging fails: the next identical push only adds the tag.
    hub.fail_next(f"/api/datasets/{repo}/tag/", status=403)
    with pytest.raises(PushError, match="push the same directory again"):
        push_dataset(v2_dir, repo)
    landed = hub.head(repo, "dataset")
    assert landed != first.commit and set(hub.refs(repo, "dataset")["tags"]) == {"v1"}
    finished = push_dataset(v2_dir, repo)
    assert (finished.tag, finished.commit) == ("v2", landed)
    assert hub.head(repo, "dataset") == landed

    # Someone else's namespace.
    hub.create_repo("someone-else/labels", "dataset")
    head = hub.head("someone-else/labels", "dataset")
    with pytest.raises(PermissionError, match="cannot write to dataset repo someone-else/labels"):
        push_dataset(v1_dir, "someone-else/labels")
    assert hub.head("someone-else/labels", "dataset") == head

    # No token at all.
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PermissionError, match="no Hugging Face token"):
        push_dataset(v1_dir, "tester/labels-no-token")
    assert not hub.repo_exists("tester/labels-no-token", "dataset")


def test_cli_build_push_pull_diff(finished_run, tmp_path, capsys):
    work, _, _ = finished_run
    out = tmp_path / "ds"
    assert main(["labels", "build", str(work), "--out", str(out)]) == 0
    assert f'load_dataset("{out}", "labels"' in " ".join(capsys.readouterr().out.split())
    assert main(["labels", "push", str(out), "--repo", "tester/labels-cli"]) == 0
    assert "Pushed tester/labels-cli v1" in capsys.readouterr().out
    assert main(["labels", "push", str(out), "--repo", "tester/labels-cli"]) == 0
    assert "already holds this content as v1" in capsys.readouterr().out
    v2, _ = _bump(out, tmp_path / "ds2")
    assert main(["labels", "push", str(v2), "--repo", "tester/labels-cli", "--tag", "v7"]) == 0
    assert "v7" in capsys.readouterr().out
    pulled = tmp_path / "pulled"
    assert main(["labels", "pull", "--repo", "tester/labels-cli", "--revision", "v1",
                 "--out", str(pulled)]) == 0  # fmt: skip
    assert "Pulled tester/labels-cli@v1" in capsys.readouterr().out
    assert main(["labels", "diff", str(pulled), "tester/labels-cli@v7"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "−1 rows" in text and "1 of" in text and "score drift" in text
    assert main(["labels", "diff", str(pulled), "tester/labels-cli@v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["identical"] is True
    # errors are one line with exit code 1
    assert main(["labels", "push", str(out), "--repo", "tester/labels-cli", "--tag", "v1"]) == 1
    assert "already has a tag 'v1'" in capsys.readouterr().err
    assert main(["labels", "pull", "--repo", "tester/labels-cli", "--revision", "v3",
                 "--out", str(tmp_path / "p3")]) == 1  # fmt: skip
    assert "has no revision 'v3'" in capsys.readouterr().err


def test_only_label_datasets_are_ever_replaced(built, tmp_path, monkeypatch):
    _, v1_dir = built
    rows = load_dataset_version(v1_dir).rows
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "important.csv").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a label dataset"):
            write_dataset(project, rows, overwrite=overwrite)
        with pytest.raises(FileExistsError, match="not a label dataset"):
            pull_dataset("tester/anything", project, overwrite=overwrite)
    assert (project / "data" / "important.csv").read_text() == "keep me"
    # A label dataset is replaced only when asked, and never the directory we stand in.
    copy = tmp_path / "copy"
    write_dataset(copy, rows)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_dataset(copy, rows)
    write_dataset(copy, rows[:1], overwrite=True)
    assert len(load_dataset_version(copy).rows) == 1
    monkeypatch.chdir(copy)
    with pytest.raises(FileExistsError, match="current directory"):
        pull_dataset("tester/anything", ".", overwrite=True)
    assert (copy / DATASET_INFO).is_file()


def test_pull_overwrite_swaps_a_dataset_in_whole(built, tmp_path):
    _, v1_dir = built
    push_dataset(v1_dir, "tester/labels-pull-swap")
    target = tmp_path / "target"
    write_dataset(target, load_dataset_version(v1_dir).rows[:2])
    pull_dataset("tester/labels-pull-swap", target, overwrite=True)
    assert len(load_dataset_version(target).rows) == len(load_dataset_version(v1_dir).rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_rows_that_would_publish_paths_or_credentials_are_refused(built, tmp_path, hub):
    _, v1_dir = built
    loaded = load_dataset_version(v1_dir)
    for i, (column, value, message) in enumerate(
        (
            ("video", "/home/alice/videos/clip0.mp4", "local path"),
            ("video", "https://cdn.example.org/clip0.mp4?X-Amz-Signature=abc123", "signed URL"),
            (
                "label_meta",
                '{"failed": {"temporal": "hf_abcdefghijklmnopqrstuvwxyz012345"}}',
                "token",
            ),
        )
    ):
        rows = [dict(r) for r in loaded.rows]
        rows[0][column] = value
        bad = write_dataset(tmp_path / f"bad-{i}", rows, loaded.captions)
        before = len(hub.requests)
        with pytest.raises(ValueError, match=message) as err:
            push_dataset(bad, "tester/labels-leaks")
        assert rows[0]["sample_id"] in str(err.value)
        assert len(hub.requests) == before


def test_a_changed_card_is_a_new_version_and_hand_commits_are_not_tagged(built, tmp_path, hub):
    _, v1_dir = built
    repo = "tester/labels-card-change"
    first = push_dataset(v1_dir, repo)
    loaded = load_dataset_version(v1_dir)
    relicensed = write_dataset(tmp_path / "relicensed", loaded.rows, loaded.captions,
                               run_config=loaded.run_config,
                               info={**loaded.info, "license": "mit"})  # fmt: skip
    second = push_dataset(relicensed, repo)
    assert (second.tag, second.unchanged) == ("v2", False)  # same rows, new card: a release
    assert DatasetCard.load(repo, repo_type="dataset").data.license == "mit"
    assert push_dataset(relicensed, repo).unchanged

    # Someone edits the card by hand: the head is no release, and an identical push releases
    # anew instead of tagging that hand-made commit.
    HfApi().upload_file(path_or_fileobj=b"hand edit", path_in_repo="NOTES.md", repo_id=repo,
                        repo_type="dataset", commit_message="Add notes")  # fmt: skip
    third = push_dataset(relicensed, repo)
    assert third.tag == "v3" and third.commit != hub.refs(repo, "dataset")["tags"]["v2"]
    assert "NOTES.md" not in HfApi().list_repo_files(repo, repo_type="dataset", revision="v3")
    assert first.tag == "v1"


def test_an_unreachable_hub_is_one_line(built, monkeypatch, capsys):
    _, v1_dir = built
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    assert main(["labels", "push", str(v1_dir), "--repo", "tester/labels-offline"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1


def test_build_takes_the_prompts_the_run_stored(finished_run, tmp_path):
    """What a card says does not depend on what is installed where it is built: a stored config
    whose backends cannot be built here still gives the run's own prompt templates."""
    import shutil
    import sqlite3

    work, _, _ = finished_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    db = sqlite3.connect(copy / "run.sqlite")
    (config_json,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    config = json.loads(config_json)
    config["temporal"]["backend"] = "no-such-backend"  # as when its extra is missing here
    db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="no-such-backend"):
        LabelRunConfig.from_dict(config)
    out = build_dataset(copy, tmp_path / "labels").directory
    info = json.loads((out / DATASET_INFO).read_text())
    spatial = info["run"]["stages"]["spatial"]["prompts"]
    assert "helps answer the question, then answer True or False" in json.dumps(spatial)
    assert set(info["run"]["stages"]) == {"spatial", "captions", "temporal"}
    assert all("prompts" in stage for stage in info["run"]["stages"].values())
