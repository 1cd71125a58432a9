"""One ``--set`` parser for every config (`fsmodel.overrides`)."""

from __future__ import annotations

import pytest

from fslabels.config import LabelRunConfig
from fsmodel.overrides import apply_overrides, parse_override
from fsmodel.training.config import ConfigError, TrainConfig


def test_values_are_yaml_and_an_empty_value_is_null():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override(" a . b =true") == (["a", "b"], True)
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a=x=y") == (["a"], "x=y")
    got = apply_overrides({"a": {"b": 1}, "c": 2}, ["a.b=3", "d.e=4"])
    assert got == {"a": {"b": 3}, "c": 2, "d": {"e": 4}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b", "--set expects key=value with a dotted key (e.g. x.y=1), got 'a.b'"),
        ("=1", "--set expects key=value with a dotted key (e.g. x.y=1), got '=1'"),
        ("a..b=1", "--set 'a..b=1': the key 'a..b' has an empty part (e.g. x.y=1)"),
        ("c.d=1", "--set 'c.d=1': c is a value, not a section"),
        ("a.b=[1", "--set 'a.b=[1': the value is not valid YAML"),
    ],
)
def test_malformed_overrides_name_the_argument(text, message):
    class Oops(ValueError):
        pass

    with pytest.raises(Oops) as err:
        apply_overrides({"c": 2}, [text], example="x.y=1", error=Oops)
    assert str(err.value).startswith(message)


def test_label_and_training_configs_read_overrides_alike(tmp_path):
    base = {"model": "m", "output_dir": "out", "data": {"source": "labels"}}
    for bad in ("num_candidates", "a..b=1"):
        with pytest.raises(ValueError) as labels:
            LabelRunConfig.load(None, [bad])
        with pytest.raises(ConfigError) as training:
            TrainConfig.from_dict(base, [bad])
        head = str(labels.value).split("(e.g.")[0]
        assert head == str(training.value).split("(e.g.")[0]
