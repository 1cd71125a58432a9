"""Manifests (JSONL, CSV) and Hub datasets into label items; errors name file, line and problem."""

from __future__ import annotations

import json
import uuid

import pytest

from fslabels.manifest import (
    LabelItem,
    ManifestError,
    default_video_id,
    group_by_video,
    items_from_hub,
    read_manifest,
)
from fsmodel.schema import make_sample_id


def _jsonl(tmp_path, lines: list, name: str = "manifest.jsonl"):
    path = tmp_path / name
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_jsonl_items_with_defaults(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {
                "video": "cooking/v001.mp4",
                "question": "What does the man cut?",
                "options": ["bread", "cheese"],
                "answer": "bread",
            },
            "",
            {"video": "v002.webm", "question": "Is it raining?", "video_id": "rain-2", "extra": 1},
        ],
    )
    first, second = read_manifest(path)
    assert first.video_id == "cooking/v001" and first.options == ("bread", "cheese")
    assert first.sample_id == make_sample_id("cooking/v001", "What does the man cut?")
    assert second.video_id == "rain-2" and second.options == () and second.answer == ""
    assert first.row() == {
        "sample_id": first.sample_id,
        "video_id": "cooking/v001",
        "video": "cooking/v001.mp4",
        "question": "What does the man cut?",
        "options": ["bread", "cheese"],
        "answer": "bread",
    }


def test_csv_options_as_json_or_pipes(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(
        "video,question,options,answer\n"
        'a.mp4,"Which one, left or right?","[""left"", ""right""]",left\n'
        "b.mp4,What colour?,red | green|blue,green\n"
        "c.mp4,Open question?,,\n",
        encoding="utf-8",
    )
    items = read_manifest(path)
    assert [i.options for i in items] == [("left", "right"), ("red", "green", "blue"), ()]
    assert items[0].question == "Which one, left or right?"
    assert [i.video_id for i in items] == ["a", "b", "c"]


def test_every_problem_names_file_line_and_cause(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {"video": "a.mp4", "question": "Q1?"},
            {"video": "b.mp4"},
            "{not json",
            {"video": "a.mp4", "question": "Q1?"},
            {"video": "c.mp4", "question": "Q?", "options": "[1, 2]"},
            ["a list"],
            {"video": "d.mp4", "question": "Q?", "options": [1]},
            {"video": 5, "question": "Q?"},
        ],
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    lines = str(info.value).splitlines()
    assert lines[0] == "7 problem(s) in the manifest:"
    where = f"{path}, line"
    assert lines[1] == f"  {where} 2: missing 'question'"
    assert lines[2].startswith(f"  {where} 3: invalid JSON")
    assert lines[3] == (f"  {where} 4: duplicate of line 1 (same video_id 'a' and question 'Q1?')")
    assert lines[4].startswith(f"  {where} 5: options[0] = 1 is not a string")
    assert lines[5] == f"  {where} 6: expected a JSON object, got list"
    assert lines[6] == f"  {where} 7: options[0] = 1 is not a string"
    assert lines[7].startswith(f"  {where} 8: video must be a string")
    assert [p.where for p in info.value.problems] == [f"line {n}" for n in range(2, 9)]


def test_csv_problems_name_lines(tmp_path):
    no_question = tmp_path / "bad-header.csv"
    no_question.write_text("video,q\na.mp4,Why?\n", encoding="utf-8")
    with pytest.raises(
        ManifestError, match=r"bad-header.csv, line 1: the header lacks column\(s\) 'question'"
    ):
        read_manifest(no_question)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        'video,question,options\na.mp4,"A\nmultiline question?",[oops\nb.mp4,Q?,x,extra\nc.mp4,,\n',
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(rows)
    assert [str(p).split(": ", 1)[0] for p in info.value.problems] == [
        f"{rows}, line 2",
        f"{rows}, line 4",
        f"{rows}, line 5",
    ]
    assert "not a JSON list" in str(info.value.problems[0])
    assert "more fields than the header's 3" in str(info.value.problems[1])
    assert "missing 'question'" in str(info.value.problems[2])


def test_unknown_type_and_missing_file(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match=r"unknown manifest type '\.txt'"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("video", "video_id"),
    [
        ("clip.mp4", "clip"),
        ("a/b.c/clip.v2.mp4", "a/b.c/clip.v2"),
        ("noext", "noext"),
        (".hidden", ".hidden"),
        ("https://host/v/clip.mp4?sig=1#t=3", "https://host/v/clip"),
    ],
)
def test_default_video_id(video, video_id):
    assert default_video_id(video) == video_id


def test_items_validate_themselves():
    with pytest.raises(ValueError, match="question must be a non-empty"):
        LabelItem(video="a.mp4", question="  ")
    with pytest.raises(ValueError, match="options must be a list"):
        LabelItem(video="a.mp4", question="Q?", options="a|b")  # type: ignore[arg-type]


def test_group_by_video_keeps_order():
    items = [
        LabelItem("b.mp4", "Q1?"),
        LabelItem("a.mp4", "Q2?"),
        LabelItem("b.mp4", "Q3?"),
    ]
    groups = group_by_video(items)
    assert list(groups) == ["b.mp4", "a.mp4"]
    assert [i.question for i in groups["b.mp4"]] == ["Q1?", "Q3?"]


def test_items_from_the_hub_with_a_column_mapping(hub):
    import datasets
    from huggingface_hub import HfApi

    repo = f"{hub.user}/video-qa-{uuid.uuid4().hex[:8]}"
    rows = [
        {"clip": "a/v1.mp4", "q": "What is cut?", "choices": ["bread", "cheese"], "answer": 0},
        {"clip": "a/v2.mp4", "q": "Is it raining?", "choices": [], "answer": 1},
    ]
    first = datasets.Dataset.from_list(rows).push_to_hub(repo, split="test")
    datasets.Dataset.from_list(rows[:1]).push_to_hub(repo, split="test")
    assert len(HfApi().list_repo_commits(repo, repo_type="dataset")) >= 2

    mapping = {"video": "clip", "question": "q", "options": "choices"}
    latest = items_from_hub(repo, split="test", columns=mapping)
    pinned = items_from_hub(repo, split="test", revision=first.oid, columns=mapping)
    assert len(latest) == 1 and len(pinned) == 2
    assert pinned[0].video_id == "a/v1" and pinned[0].options == ("bread", "cheese")
    assert pinned[0].answer == "0"  # an option index kept as text

    with pytest.raises(ManifestError) as info:
        items_from_hub(repo, split="test", columns={"question": "q"})
    message = str(info.value)
    assert "no column(s) 'video'" in message and "'clip', 'q', 'choices', 'answer'" in message
    with pytest.raises(ValueError, match="unknown item field"):
        items_from_hub(repo, split="test", columns={"clip": "video"})
