"""Spot-check pseudo-labels in Label Studio: export rows for review, import the corrections.

Modules (importing this package is cheap; httpx, PyAV, PIL and matplotlib load on use):

- `fslabels.review.client`: `LabelStudio`, a small REST client over httpx (legacy or personal
  access tokens), and `LabelStudioError` with messages that say what to fix.
- `fslabels.review.config`: the labelling interface (`label_config`) and its control names.
- `fslabels.review.sampling`: `sample_rows` with the strategies ``random``, ``uncertain`` and
  ``disagree`` (registered by name in `SAMPLING_STRATEGIES`).
- `fslabels.review.media`: a browser-playable clip, the candidate frames (the labelling sampler,
  checked against the row), a contact sheet.
- `fslabels.review.export`: `export_for_review` (create or reuse the project, media through Local
  Files storage, pseudo-labels as predictions tagged with the dataset version, idempotent).
- `fslabels.review.importer`: `import_reviews` (annotations → ``human`` + ``review`` columns → a
  new dataset version via `fslabels.dataset.write_dataset`, optionally pushed).
- `fslabels.review.agreement`: `agreement_report` (accept rate, precision/recall of each source's
  top frames, worst disagreements; markdown, terminal tables, PNG).
- `fslabels.review.server`: `LocalLabelStudio`, a local server from its own venv (tests, laptops).
- `fslabels.review.browser`: `render_task`, a task opened in headless Chromium.
"""

from __future__ import annotations

from fslabels.review.agreement import AgreementReport, agreement_report, top_frames
from fslabels.review.client import LabelStudio, LabelStudioError, ProjectNotFound
from fslabels.review.export import ExportResult, export_for_review
from fslabels.review.importer import ImportResult, ReviewImportError, import_reviews
from fslabels.review.sampling import SAMPLING_STRATEGIES, sample_rows

__all__ = [
    "SAMPLING_STRATEGIES",
    "AgreementReport",
    "ExportResult",
    "ImportResult",
    "LabelStudio",
    "LabelStudioError",
    "ProjectNotFound",
    "ReviewImportError",
    "agreement_report",
    "export_for_review",
    "import_reviews",
    "sample_rows",
    "top_frames",
]
