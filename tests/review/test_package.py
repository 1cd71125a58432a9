"""`fslabels.review` itself: importing the package and its light modules stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "fslabels.review",
        "fslabels.review.client",
        "fslabels.review.config",
        "fslabels.review.media",
    ],
)
def test_import_is_light(module):
    code = (
        f"import sys, {module}; "
        "print(*(m in sys.modules for m in ('torch', 'transformers', 'httpx', 'matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


def test_names_load_their_module_on_use():
    import importlib

    import fslabels.review as review

    assert sorted(review.__all__) == sorted(review._EXPORTS)
    for name, module in review._EXPORTS.items():
        defined = getattr(importlib.import_module(f"fslabels.review.{module}"), name)
        assert getattr(review, name) is defined and name in dir(review)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        review.nope  # noqa: B018
