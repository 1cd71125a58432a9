"""`import fslabels.review` stays cheap: label-studio-sdk (≈ 1.6 s to import) loads only when a
client is created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_review_package_does_not_import_the_sdk_until_a_client_is_made():
    code = (
        "import json, sys\n"
        "import fslabels.review, fslabels.review.client, fslabels.review.export\n"
        "import fslabels.review.importer\n"
        "before = 'label_studio_sdk' in sys.modules\n"
        "fslabels.review.client.LabelStudio('http://127.0.0.1:9', 'token').close()\n"
        "print(json.dumps([before, 'label_studio_sdk' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [False, True]
