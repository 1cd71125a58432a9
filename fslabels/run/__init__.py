"""A resumable label run: manifest → candidates → captions, spatial, temporal → fused rows.

`run_labels` walks the manifest one video at a time:

1. **candidates**: the video is decoded once (``fsmodel.video.sample_candidates``) for all its
   questions; indices, timestamps and the video's metadata are stored. A video whose every
   sample is finished is not decoded at all on a re-run.
2. **captions**: every candidate frame is captioned once per video (question-independent).
3. **spatial**: one request per (question, frame); the requests of several questions of the
   video are concatenated into one backend call of up to ``spatial.batch_size`` requests (a
   question's frames are never split across batches), then one call for the forced answers.
4. **temporal**: one request per question from the video's numbered captions, up to
   ``temporal.batch_size`` questions per call, unreadable replies retried. A video whose
   captions record failed gets no temporal request: its questions' temporal labels are recorded
   as failed (``captions failed: …``), so their rows use the spatial source alone (below), and
   ``retry_failed`` redoes the captions and then them.
5. **fused**: the schema-v1 row, validated with `fsmodel.schema.check_label_rows`.

Each batch is committed to the run store (`fslabels.store`) in one transaction as soon as it is
finished, keyed by ``(stage, item, fingerprint)``; a re-run skips what is stored. Failures (a
video that cannot be decoded, a request that failed, a reply that cannot be read) are stored
against their items with the error and the raw reply, the run goes on, and they are retried
only when asked (``retry_failed=True``); spatial retries only the frames that failed. An
exception raised while computing a unit (a bug, an unexpected input) is recorded against that
unit with its type and message, by either engine.

A video whose candidates are stored is decoded again only for the frames of work still to do
(a new question, a retried failure). That decode never replaces the stored candidates: if the
video cannot be read now (moved, another ``videos_root``), or its frame indices differ from the
stored ones (the file changed), only the units that needed its frames fail, naming the cause.

**Fingerprints** (`Fingerprints`), each a hash of what changes that stage's output:

- candidates: n, frame size, reader.
- captions / spatial: the candidates fingerprint + the labeler's settings (prompt hash,
  sampling parameters, max tokens, top-logprobs, chain of thought) + the backend's fingerprint
  (backend name, model id, revision, dtype, processor settings ...).
- temporal: the captions fingerprint + the temporal labeler's settings and backend.
- fused: the spatial and temporal fingerprints + the fusion weights and `FUSION_RULE`.

Batch sizes, worker counts, devices, timeouts and endpoints are in none of them.

**When a source fails** (the documented rule for schema-v1 rows, which hold no missing
values): the fused score uses the other source alone (`fslabels.fusion.fuse`, never an average
with zeros); the failed source's column is filled with 0.0; the row's ``label_meta`` names the
failed source and its error (``failed``) and the filled frame positions (``filled``). A sample
in which some frame has a score from neither source has no row: it is a failure of the fused
stage, reported with both sources' errors.

**Engines.** The per-unit functions (`decode_video`, `caption_video`, `spatial_batch`,
`temporal_batch`, `fuse_sample`) take a `LabelContext` and return `Record`\\ s; `VideoWork`
plans one video's work from the store and runs them as `Step`\\ s without touching the store.
The local engine (``engine="local"``, `fslabels.run.engines`) runs each video's steps in this process and
commits each step as it finishes; the Ray engine (``engine="ray"``, `fslabels.run.ray_engine`) runs
the same steps as Ray Data stages on a cluster and commits them on the driver. Same decisions,
same batches, same records under the same fingerprints.

Example:
    >>> config = LabelRunConfig.load("labels.yaml")  # doctest: +SKIP
    >>> summary = run_labels(config, "manifest.jsonl", "videos/", "work/")  # doctest: +SKIP
    >>> rows, caption_rows = export_rows("work/")  # doctest: +SKIP

The package's modules, one job each: `context` (the `LabelContext` and its `Fingerprints`),
`compute` (the per-unit functions), `plan` (`VideoWork`, `Step`), `session` (the `Session` and
`Run` every engine uses, progress bars), `engines` (`run_labels`, the local engine, the engine
registry), `ray_engine`, and `readers` (`export_rows`, `run_status`, `load_sample`).
"""

from __future__ import annotations

from fslabels.run.compute import (
    SpatialJob,
    candidates_payload,
    caption_video,
    decode_video,
    fuse_sample,
    spatial_batch,
    temporal_batch,
)
from fslabels.run.context import (
    FUSION_RULE,
    MODEL_STAGES,
    BackendLoadError,
    Fingerprints,
    LabelContext,
)
from fslabels.run.engines import ENGINES, run_labels
from fslabels.run.plan import Step, VideoWork, error_text
from fslabels.run.readers import SampleView, export_rows, load_sample, run_status
from fslabels.run.session import ProgressBars, RunSummary, StageStats, as_items

__all__ = [
    "ENGINES",
    "FUSION_RULE",
    "MODEL_STAGES",
    "BackendLoadError",
    "Fingerprints",
    "LabelContext",
    "ProgressBars",
    "RunSummary",
    "SampleView",
    "SpatialJob",
    "StageStats",
    "Step",
    "VideoWork",
    "as_items",
    "candidates_payload",
    "caption_video",
    "decode_video",
    "error_text",
    "export_rows",
    "fuse_sample",
    "load_sample",
    "run_labels",
    "run_status",
    "spatial_batch",
    "temporal_batch",
]
