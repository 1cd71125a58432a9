"""Tests for fsmodel.schema: the label dataset contract (schema v1)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fsmodel import schema
from fsmodel.schema import (
    ANSWER,
    CAPTION_COLUMNS,
    CAPTIONS,
    FRAME_INDICES,
    LABEL_COLUMNS,
    LABELS_SCHEMA_VERSION,
    OPTIONS,
    PER_CANDIDATE_COLUMNS,
    QUESTION,
    SAMPLE_ID,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO,
    VIDEO_ID,
    SchemaError,
    SchemaViolation,
    caption_features,
    check_caption_rows,
    check_label_rows,
    label_features,
    make_sample_id,
    validate_caption_row,
    validate_caption_rows,
    validate_label_row,
    validate_label_rows,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
N = 8


def make_row(
    video_id: str = "vid-001", question: str = "What is the man holding?"
) -> dict[str, Any]:
    """A valid schema v1 row with N candidates, per-candidate columns as Python lists."""
    frame_indices = [0, 0, 3, 7, 12, 20, 31, 40]  # a repeat: short videos repeat frames
    return {
        SAMPLE_ID: make_sample_id(video_id, question),
        VIDEO_ID: video_id,
        VIDEO: f"videos/{video_id}.mp4",
        QUESTION: question,
        OPTIONS: ["a cup", "a phone", "nothing"],
        ANSWER: "a cup",
        FRAME_INDICES: frame_indices,
        TIMESTAMPS: [i / 29.97 for i in frame_indices],
        SPATIAL: [0.0, 0.1, 0.2, 0.9, 1.0, 0.5, 0.3, 0.25],
        TEMPORAL: [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        SCORES: [0.0, 0.05, 0.6, 0.95, 0.5, 0.25, 0.65, 0.125],
    }


def as_numpy(row: dict[str, Any]) -> dict[str, Any]:
    """The same row with numpy arrays in the dtypes label_features declares."""
    dtypes = {
        FRAME_INDICES: np.int64,
        TIMESTAMPS: np.float64,
        SPATIAL: np.float32,
        TEMPORAL: np.float32,
        SCORES: np.float32,
    }
    out = dict(row)
    for column, dtype in dtypes.items():
        out[column] = np.asarray(row[column], dtype=dtype)
    out[OPTIONS] = np.asarray(row[OPTIONS])
    return out


def with_values(**changes: Any) -> dict[str, Any]:
    return {**make_row(), **changes}


def without(column: str) -> dict[str, Any]:
    row = make_row()
    del row[column]
    return row


def replace_at(column: str, position: int, value: Any) -> dict[str, Any]:
    row = make_row()
    values = list(row[column])
    values[position] = value
    row[column] = values
    return row


def numpy_except_changes(row: dict[str, Any]) -> dict[str, Any]:
    """Untouched columns as numpy arrays; the columns a case changed stay as the case wrote them."""
    good, arrays = make_row(), as_numpy(make_row())
    return {k: arrays[k] if k in good and _equal(v, good[k]) else v for k, v in row.items()}


def _equal(a: Any, b: Any) -> bool:
    # Plain == would say a list holding NaN differs from itself, which is what we want here too.
    return type(a) is type(b) and a == b


# One case per kind of violation: (id, bad row, the one column blamed, text the message must hold).
BAD_ROWS = [
    ("missing-column", without(ANSWER), ANSWER, "'answer' is missing"),
    ("unknown-column", with_values(extra=1), "extra", "'extra' is not in the schema"),
    ("string-wrong-type", with_values(video=7), VIDEO, "video = 7 must be a string"),
    ("answer-none", with_values(answer=None), ANSWER, "answer = None"),
    ("empty-question", with_values(question=""), QUESTION, "question = ''"),
    ("blank-question", with_values(question="  \n"), QUESTION, "non-empty"),
    ("empty-video", with_values(video=""), VIDEO, "video = ''"),
    ("options-not-a-list", with_values(options="a cup"), OPTIONS, "options = 'a cup'"),
    ("option-not-a-string", with_values(options=["a", 3]), OPTIONS, "options[1] = 3"),
    ("indices-not-a-list", with_values(frame_indices="0 1 2"), FRAME_INDICES, "'0 1 2'"),
    ("indices-floats", replace_at(FRAME_INDICES, 2, 3.5), FRAME_INDICES, "frame_indices[2] = 3.5"),
    ("indices-none", replace_at(FRAME_INDICES, 4, None), FRAME_INDICES, "frame_indices[4] = None"),
    ("indices-ragged", replace_at(FRAME_INDICES, 1, [1, 2]), FRAME_INDICES, "ragged"),
    ("indices-negative", replace_at(FRAME_INDICES, 0, -1), FRAME_INDICES, "frame_indices[0] = -1"),
    (
        "indices-decrease",
        replace_at(FRAME_INDICES, 5, 9),
        FRAME_INDICES,
        "frame_indices[5] = 9 < frame_indices[4] = 12",
    ),
    ("timestamps-negative", replace_at(TIMESTAMPS, 0, -0.5), TIMESTAMPS, "timestamps[0] = -0.5"),
    ("timestamps-decrease", replace_at(TIMESTAMPS, 7, 0.25), TIMESTAMPS, "timestamps[7] = 0.25"),
    ("timestamps-nan", replace_at(TIMESTAMPS, 3, float("nan")), TIMESTAMPS, "timestamps[3] = nan"),
    ("timestamps-neg-inf", replace_at(TIMESTAMPS, 0, -np.inf), TIMESTAMPS, "timestamps[0] = -inf"),
    (
        "spatial-above-one",
        replace_at(SPATIAL, 5, 1.3),
        SPATIAL,
        "spatial[5] = 1.3 is outside [0, 1]",
    ),
    ("temporal-negative", replace_at(TEMPORAL, 1, -0.2), TEMPORAL, "temporal[1] = -0.2"),
    ("scores-inf", replace_at(SCORES, 2, float("inf")), SCORES, "scores[2] = inf is not finite"),
    ("scores-bool", with_values(scores=[True] * N), SCORES, "scores[0] = True"),
    ("scores-2d", with_values(scores=[[0.5] * N]), SCORES, "shape (1, 8)"),
    ("length-mismatch", with_values(temporal=[0.5] * (N - 1)), TEMPORAL, "temporal has 7 values"),
    (
        "sample-id-mismatch",
        with_values(sample_id="0123456789abcdef"),
        SAMPLE_ID,
        "'0123456789abcdef'",
    ),
    ("sample-id-missing", without(SAMPLE_ID), SAMPLE_ID, "'sample_id' is missing"),
]


@pytest.mark.parametrize("container", ["list", "numpy"])
@pytest.mark.parametrize(
    ("row", "column", "needle"),
    [pytest.param(row, column, needle, id=case) for case, row, column, needle in BAD_ROWS],
)
def test_bad_row_reports_one_violation_naming_value_and_rule(
    row: dict[str, Any], column: str, needle: str, container: str
) -> None:
    if container == "numpy":
        row = numpy_except_changes(row)

    violations = validate_label_row(row)

    assert [v.column for v in violations] == [column], violations
    violation = violations[0]
    assert violation.sample_id == row.get(SAMPLE_ID, "<missing sample_id>")
    assert needle in violation.message
    assert violation.row is None


@pytest.mark.parametrize(
    "convert",
    [lambda row: row, as_numpy, lambda row: {**row, SPATIAL: tuple(row[SPATIAL])}],
    ids=["list", "numpy", "tuple"],
)
def test_good_row_passes(convert: Any) -> None:
    row = convert(make_row())
    assert validate_label_row(row) == []
    assert validate_label_row(row, num_candidates=N) == []


def test_every_violation_of_a_row_is_reported_in_schema_order() -> None:
    row = make_row()
    del row[ANSWER]
    row[QUESTION] = ""
    row[SPATIAL] = np.array([1.5] * N, dtype=np.float32)
    row[FRAME_INDICES] = [3, 2, 1, 0, 0, 0, 0, -4]

    columns = [v.column for v in validate_label_row(row)]

    assert columns == [QUESTION, ANSWER, FRAME_INDICES, FRAME_INDICES, SPATIAL]


def test_many_bad_elements_give_one_compact_message() -> None:
    row = as_numpy(make_row())
    row[SPATIAL] = np.full(N, 1.3, dtype=np.float32)  # float32 1.3 must still print as 1.3

    (violation,) = validate_label_row(row)

    assert violation.message == (
        "8 values of spatial are outside [0, 1]: spatial[0] = 1.3, spatial[1] = 1.3, "
        "spatial[2] = 1.3, ..."
    )


def test_num_candidates_checks_every_per_candidate_column() -> None:
    violations = validate_label_row(make_row(), num_candidates=2 * N)

    assert [v.column for v in violations] == list(PER_CANDIDATE_COLUMNS)
    assert all(
        f"has {N} values, expected num_candidates = {2 * N}" in v.message for v in violations
    )


def test_empty_candidates_are_reported() -> None:
    row = make_row()
    for column in PER_CANDIDATE_COLUMNS:
        row[column] = []

    assert [v.column for v in validate_label_row(row)] == [FRAME_INDICES]
    assert len(validate_label_row(row, num_candidates=N)) == len(PER_CANDIDATE_COLUMNS)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "8"])
def test_invalid_num_candidates_raises(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_candidates must be a positive integer"):
        validate_label_row(make_row(), num_candidates=bad)


def test_a_row_that_is_not_a_mapping_raises() -> None:
    with pytest.raises(TypeError, match="must be a mapping"):
        validate_label_row([1, 2, 3])  # type: ignore[arg-type]


def test_rows_are_numbered_and_duplicate_sample_ids_caught() -> None:
    first, other = make_row(), make_row(question="Where is the dog?")
    bad = {**make_row(question="How many cups?"), SPATIAL: [2.0] * N}

    violations = validate_label_rows([first, other, bad, first])

    assert [(v.row, v.column) for v in violations] == [(2, SPATIAL), (3, SAMPLE_ID)]
    duplicate = violations[1]
    assert duplicate.sample_id == first[SAMPLE_ID]
    assert "appears in 2 rows (0, 3)" in duplicate.message
    assert str(duplicate).startswith(f"row 3 [{first[SAMPLE_ID]}] sample_id: ")


def test_check_label_rows_passes_good_rows_and_raises_on_bad() -> None:
    rows = [make_row(question=f"Question {i}?") for i in range(3)]
    check_label_rows(rows, num_candidates=N)

    rows[1] = {**rows[1], SCORES: [1.5] * N}
    with pytest.raises(SchemaError) as info:
        check_label_rows(rows)
    assert [v.row for v in info.value.violations] == [1]
    assert isinstance(info.value, ValueError)


def test_schema_error_str_shows_twenty_violations_then_a_count() -> None:
    violations = [SchemaViolation(f"id{i}", SPATIAL, f"problem {i}", row=i) for i in range(25)]

    lines = str(SchemaError(violations, what="label rows")).splitlines()

    assert lines[0] == f"25 schema {LABELS_SCHEMA_VERSION} violations in label rows:"
    assert lines[1] == "  row 0 [id0] spatial: problem 0"
    assert lines[20] == "  row 19 [id19] spatial: problem 19"
    assert lines[21] == "  ... and 5 more"
    assert len(lines) == 22


def test_schema_error_survives_pickling() -> None:
    # datasets.map(num_proc=…) sends exceptions between processes.
    error = SchemaError([SchemaViolation("id", SCORES, "scores[0] = 2 is outside [0, 1]")])

    copy = pickle.loads(pickle.dumps(error))

    assert copy.violations == error.violations
    assert str(copy) == str(error)


def test_violation_str() -> None:
    assert str(SchemaViolation("abc", SPATIAL, "spatial[1] = 2 is outside [0, 1]")) == (
        "[abc] spatial: spatial[1] = 2 is outside [0, 1]"
    )


def test_make_sample_id_is_pinned() -> None:
    # Hard-coded on purpose: sample ids join labels, captions, reviews and caches across dataset
    # versions, so any change to the hashing scheme must be a deliberate, visible break.
    assert make_sample_id("vid-001", "What is the man holding?") == "22f2c280e43fdc34"
    assert make_sample_id("vidéo", "Qu'y a-t-il ? 🎬") == make_sample_id(
        "vidéo", "Qu'y a-t-il ? 🎬"
    )


def test_make_sample_id_cannot_collide_through_the_separator() -> None:
    assert make_sample_id("a|b", "c") != make_sample_id("a", "b|c")
    assert make_sample_id('a","b', "c") != make_sample_id("a", '"b","c')
    assert len(make_sample_id("", "")) == 16


def test_make_sample_id_is_stable_across_processes() -> None:
    code = "from fsmodel.schema import make_sample_id; print(make_sample_id('v', 'q'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {make_sample_id("v", "q") + "\n"}


def test_make_sample_id_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="two strings"):
        make_sample_id("v", None)  # type: ignore[arg-type]


def test_importing_schema_stays_lean() -> None:
    # `import fsmodel` registers the selector with transformers' Auto classes (torch and
    # transformers load); the dataset stack must still wait until a dataset is built.
    code = (
        "import sys, fsmodel.schema\n"
        "heavy = [m for m in ('datasets', 'pyarrow', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_label_features_declare_every_column_in_order() -> None:
    features = label_features()

    # the optional columns last
    assert tuple(features) == (*LABEL_COLUMNS, "label_meta", "human", "review")
    assert features[FRAME_INDICES].feature.dtype == "int64"
    assert features[TIMESTAMPS].feature.dtype == "float64"
    for column in (SPATIAL, TEMPORAL, SCORES):
        assert features[column].feature.dtype == "float32"
    assert tuple(caption_features()) == CAPTION_COLUMNS


@pytest.mark.parametrize("convert", [lambda row: row, as_numpy], ids=["list", "numpy"])
def test_label_dataset_round_trips_through_parquet(convert: Any, tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa

    row = {
        **convert(make_row()),
        "label_meta": '{"sources": ["spatial", "temporal"]}',
        "human": [],
        "review": "{}",
    }
    ds = datasets.Dataset.from_list([row], features=label_features())

    arrow = ds.data.schema
    assert arrow.field(FRAME_INDICES).type == pa.list_(pa.int64())
    assert arrow.field(TIMESTAMPS).type == pa.list_(pa.float64())
    for column in (SPATIAL, TEMPORAL, SCORES):
        assert arrow.field(column).type == pa.list_(pa.float32())

    path = tmp_path / "labels.parquet"
    ds.to_parquet(str(path))
    loaded = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))

    assert loaded.features == label_features()
    assert loaded[0] == ds[0]
    assert loaded[0][SPATIAL] == np.asarray(make_row()[SPATIAL], dtype=np.float32).tolist()
    assert loaded[0][TIMESTAMPS] == make_row()[TIMESTAMPS]  # float64: exact
    assert validate_label_rows(loaded, num_candidates=N) == []
    assert validate_label_rows(loaded.with_format("numpy"), num_candidates=N) == []


def make_caption_row(video_id: str = "vid-001") -> dict[str, Any]:
    row = make_row(video_id=video_id)
    return {
        VIDEO_ID: video_id,
        FRAME_INDICES: row[FRAME_INDICES],
        TIMESTAMPS: row[TIMESTAMPS],
        CAPTIONS: [f"frame {i}" for i in row[FRAME_INDICES]],
    }


def test_good_caption_rows_pass_and_round_trip(tmp_path: Path) -> None:
    import datasets

    rows = [make_caption_row("a"), make_caption_row("b")]
    check_caption_rows(rows, num_candidates=N)

    ds = datasets.Dataset.from_list(rows, features=caption_features())
    ds.to_parquet(str(tmp_path / "captions.parquet"))
    loaded = datasets.Dataset.from_parquet(
        str(tmp_path / "captions.parquet"), cache_dir=str(tmp_path / "cache")
    )
    assert loaded.features == caption_features()
    assert loaded.to_list() == ds.to_list()
    assert validate_caption_rows(loaded.with_format("numpy")) == []


@pytest.mark.parametrize(
    ("changes", "column", "needle"),
    [
        pytest.param({CAPTIONS: ["x"] * (N - 1)}, CAPTIONS, "captions has 7 values", id="length"),
        pytest.param(
            {CAPTIONS: ["x", None] + [""] * (N - 2)}, CAPTIONS, "captions[1] = None", id="not-str"
        ),
        pytest.param({VIDEO_ID: ""}, VIDEO_ID, "video_id = ''", id="empty-video-id"),
        pytest.param({QUESTION: "?"}, QUESTION, "'question' is not in the schema", id="unknown"),
        pytest.param(
            {TIMESTAMPS: [0.0] * (N - 1) + [-1.0]}, TIMESTAMPS, "timestamps[7] = -1", id="time"
        ),
    ],
)
def test_bad_caption_row(changes: dict[str, Any], column: str, needle: str) -> None:
    row = {**make_caption_row(), **changes}

    violations = validate_caption_row(row)

    assert column in [v.column for v in violations]
    assert any(needle in v.message for v in violations if v.column == column), violations


def test_duplicate_video_ids_in_captions_raise() -> None:
    with pytest.raises(SchemaError, match="video_id = 'a' appears in 2 rows"):
        check_caption_rows([make_caption_row("a"), make_caption_row("a")])


def test_module_lists_its_public_api() -> None:
    assert set(schema.__all__) <= set(dir(schema))


# --- on-disk layout -----------------------------------------------------------------------------


def _layout_rows(n_videos: int = 2, n: int = 4) -> list[dict]:
    from fsmodel.schema import make_sample_id

    rows = []
    for v in range(n_videos):
        for q in ("When does it start?", "Where is the ball?"):
            vid = f"vid{v}"
            rows.append(
                {
                    "sample_id": make_sample_id(vid, q),
                    "video_id": vid,
                    "video": f"{vid}.mp4",
                    "question": q,
                    "options": [],
                    "answer": "",
                    "frame_indices": list(range(n)),
                    "timestamps": [i / 10 for i in range(n)],
                    "spatial": [0.25] * n,
                    "temporal": [0.75] * n,
                    "scores": [0.5] * n,
                }
            )
    return rows


def test_save_and_load_label_dataset(tmp_path):
    from fsmodel.schema import load_label_dataset, save_label_dataset

    caps = [{"video_id": "vid0", "frame_indices": [0, 1], "timestamps": [0.0, 0.1],
             "captions": ["a cat", "a dog"]}]  # fmt: skip
    out = save_label_dataset(_layout_rows(), tmp_path / "ds", captions=caps)
    labels = load_label_dataset(out)
    assert labels.num_rows == 4 and labels.features["spatial"].feature.dtype == "float32"
    assert labels[0]["spatial"] == [0.25] * 4
    assert load_label_dataset(out, "captions")[0]["captions"] == ["a cat", "a dog"]
    with pytest.raises(ValueError, match="config must be"):
        load_label_dataset(out, "frames")


def test_save_refuses_invalid_rows_before_writing(tmp_path):
    from fsmodel.schema import SchemaError, save_label_dataset

    rows = _layout_rows()
    rows[1]["scores"] = [1.5] * 4
    with pytest.raises(SchemaError, match=r"scores\[0\] = 1.5"):
        save_label_dataset(rows, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_label_dataset_loads_from_the_hub_at_a_tag(tmp_path, hub):
    from huggingface_hub import HfApi

    from fsmodel.schema import load_label_dataset, save_label_dataset

    api = HfApi()
    repo = api.create_repo("tester/labels-layout", repo_type="dataset", exist_ok=True).repo_id
    v1 = save_label_dataset(_layout_rows(1), tmp_path / "v1")
    api.upload_folder(folder_path=v1, repo_id=repo, repo_type="dataset")
    api.create_tag(repo, tag="v1", repo_type="dataset")
    v2 = save_label_dataset(_layout_rows(3), tmp_path / "v2")
    api.upload_folder(folder_path=v2, repo_id=repo, repo_type="dataset")
    assert load_label_dataset(repo, revision="v1").num_rows == 2
    assert load_label_dataset(repo).num_rows == 6


def test_label_meta_is_optional_and_must_be_a_json_object(tmp_path):
    from fsmodel.schema import load_label_dataset, save_label_dataset, validate_label_row

    row = _layout_rows(1)[0]
    assert validate_label_row(row) == []
    assert validate_label_row({**row, "label_meta": '{"failed_sources": ["temporal"]}'}) == []
    (bad,) = validate_label_row({**row, "label_meta": "[1, 2]"})
    assert bad.column == "label_meta" and "JSON object" in bad.message
    rows = [row, {**_layout_rows(1)[1], "label_meta": '{"sources": ["spatial"]}'}]
    ds = load_label_dataset(save_label_dataset(rows, tmp_path / "meta"))
    assert ds["label_meta"] == ["{}", '{"sources": ["spatial"]}']


def test_human_labels_are_optional_and_checked_when_present() -> None:
    row = make_row()
    n = len(row[SCORES])
    assert validate_label_row({**row, "human": [], "review": "{}"}) == []
    assert validate_label_row({**row, "human": [1.0] * n, "review": '{"verdict": "accept"}'}) == []
    short = validate_label_row({**row, "human": [1.0] * (n - 1)})
    assert [v.column for v in short] == ["human"] and "expected" in short[0].message
    out_of_range = validate_label_row({**row, "human": [2.0] * n})
    assert [v.column for v in out_of_range] == ["human"]
    bad_review = validate_label_row({**row, "review": "not json"})
    assert [v.column for v in bad_review] == ["review"]
