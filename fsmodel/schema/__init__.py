"""The label dataset contract, schema v1: column names, `datasets` features and validators.

One row of the labels config is one (video, question) pair with ``n`` candidate frames::

    sample_id      str          make_sample_id(video_id, question)
    video_id       str
    video          str          path relative to the video root, or a URL
    question       str          non-empty
    options        list[str]    may be empty (open-ended questions)
    answer         str          may be empty
    frame_indices  n × int64    decoded frame numbers, >= 0, non-decreasing
    timestamps     n × float64  presentation times in seconds, >= 0, non-decreasing
    spatial        n × float32  per-frame M-LLM relevance, in [0, 1]
    temporal       n × float32  caption-based LLM selection, in [0, 1]
    scores         n × float32  the fused label, in [0, 1]
    label_meta     str          optional: a JSON object saying how the row was labelled (which
                                sources were used, which failed and why); "{}" when absent
    human          n × float32  optional: a reviewer's per-candidate labels in [0, 1] (1 = the
                                reviewer marked the frame relevant); [] when not reviewed
    review         str          optional: a JSON object of review metadata (reviewer, time,
                                verdict, comment, project); "{}" when not reviewed

The ``captions`` config holds one row per video: ``video_id``, ``frame_indices``, ``timestamps``
and ``captions`` (n strings).

Everything that writes or reads label datasets (fslabels, training, review) takes the column names
from here, so a rename is one edit. ``datasets`` is imported inside the functions that need it:
importing this module must stay cheap for projects that only load a selector.

The package holds three modules, and exports their public names here:

- `fsmodel.schema.columns`: the names (columns, configs, layout), `datasets` features, sample
  ids and card metadata;
- `fsmodel.schema.validation`: `validate_label_rows`, `check_label_rows` (and the caption rows'),
  `SchemaViolation`, `SchemaError`;
- `fsmodel.schema.io`: `save_label_dataset`, `load_label_dataset`.
"""

from fsmodel.schema.columns import (
    ANSWER,
    CAPTION_COLUMNS,
    CAPTIONS,
    CAPTIONS_CONFIG,
    DATA_DIR,
    FRAME_INDICES,
    HUMAN,
    LABEL_COLUMNS,
    LABEL_META,
    LABELS_CONFIG,
    LABELS_SCHEMA_VERSION,
    OPTIONAL_LABEL_COLUMNS,
    OPTIONS,
    PER_CANDIDATE_COLUMNS,
    QUESTION,
    REVIEW,
    SAMPLE_ID,
    SCHEMA_VERSION_KEY,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO,
    VIDEO_ID,
    caption_features,
    card_metadata,
    label_features,
    make_sample_id,
)
from fsmodel.schema.io import load_label_dataset, save_label_dataset
from fsmodel.schema.validation import (
    SchemaError,
    SchemaViolation,
    check_caption_rows,
    check_label_rows,
    validate_caption_row,
    validate_caption_rows,
    validate_label_row,
    validate_label_rows,
)

__all__ = [
    "ANSWER",
    "CAPTIONS",
    "CAPTIONS_CONFIG",
    "CAPTION_COLUMNS",
    "DATA_DIR",
    "FRAME_INDICES",
    "HUMAN",
    "LABELS_CONFIG",
    "LABELS_SCHEMA_VERSION",
    "LABEL_COLUMNS",
    "LABEL_META",
    "OPTIONAL_LABEL_COLUMNS",
    "OPTIONS",
    "PER_CANDIDATE_COLUMNS",
    "QUESTION",
    "REVIEW",
    "SAMPLE_ID",
    "SCHEMA_VERSION_KEY",
    "SCORES",
    "SPATIAL",
    "TEMPORAL",
    "TIMESTAMPS",
    "VIDEO",
    "VIDEO_ID",
    "SchemaError",
    "SchemaViolation",
    "caption_features",
    "card_metadata",
    "check_caption_rows",
    "check_label_rows",
    "label_features",
    "load_label_dataset",
    "make_sample_id",
    "save_label_dataset",
    "validate_caption_row",
    "validate_caption_rows",
    "validate_label_row",
    "validate_label_rows",
]
