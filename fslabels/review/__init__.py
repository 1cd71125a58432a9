"""Spot-check pseudo-labels in Label Studio: export rows for review, import the corrections.

Importing this package is cheap: the names below are loaded from their module on first use
(PEP 562 ``__getattr__``). What each module costs when it is imported:

- `fslabels.review.client`: `LabelStudio`, a small REST client over httpx (legacy or personal
  access tokens), and `LabelStudioError` with messages that say what to fix. Cheap (httpx loads
  when a client is made).
- `fslabels.review.config`: the labelling interface (`label_config`) and its control names.
  Cheap.
- `fslabels.review.media`: a browser-playable clip, the candidate frames (the labelling sampler,
  checked against the row), a contact sheet. Numpy only; PyAV and PIL load on use.
- `fslabels.review.sampling`: `sample_rows` with the strategies ``random``, ``uncertain`` and
  ``disagree`` (registered by name in `SAMPLING_STRATEGIES`).
- `fslabels.review.agreement`: `agreement_report` (accept rate, precision/recall of each source's
  top frames, worst disagreements; markdown, terminal tables, PNG; matplotlib loads on use).
- `fslabels.review.export`: `export_for_review` (create or reuse the project, media through Local
  Files storage, pseudo-labels as predictions tagged with the dataset version, idempotent).
- `fslabels.review.importer`: `import_reviews` (annotations → ``human`` + ``review`` columns → a
  new dataset version via `fslabels.dataset.write_dataset`, optionally pushed).

The last four take the column names from `fsmodel.schema` (light: numpy only); the heavy parts
they use (datasets, the Hub client) load where they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fslabels.review.agreement import AgreementReport, agreement_report, top_frames
    from fslabels.review.client import LabelStudio, LabelStudioError, ProjectNotFound
    from fslabels.review.export import ExportResult, ReviewExportError, export_for_review
    from fslabels.review.importer import ImportResult, ReviewImportError, import_reviews
    from fslabels.review.sampling import SAMPLING_STRATEGIES, sample_rows

# name -> the submodule that defines it
_EXPORTS = {
    "AgreementReport": "agreement",
    "agreement_report": "agreement",
    "top_frames": "agreement",
    "LabelStudio": "client",
    "LabelStudioError": "client",
    "ProjectNotFound": "client",
    "ExportResult": "export",
    "ReviewExportError": "export",
    "export_for_review": "export",
    "ImportResult": "importer",
    "ReviewImportError": "importer",
    "import_reviews": "importer",
    "SAMPLING_STRATEGIES": "sampling",
    "sample_rows": "sampling",
}

__all__ = [
    "SAMPLING_STRATEGIES",
    "AgreementReport",
    "ExportResult",
    "ImportResult",
    "LabelStudio",
    "LabelStudioError",
    "ProjectNotFound",
    "ReviewExportError",
    "ReviewImportError",
    "agreement_report",
    "export_for_review",
    "import_reviews",
    "sample_rows",
    "top_frames",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
