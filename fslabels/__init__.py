"""fslabels: frame-importance pseudo-labels from multimodal LLMs (spatial, temporal, fused).

Modules (importing any of them is cheap; torch, transformers, openai and vllm load on use):

- `fslabels.manifest`: `LabelItem`, `read_manifest` (JSONL/CSV), `items_from_hub`,
  `group_by_video` (decode each video once for all its questions).
- `fslabels.backends`: `get_backend(name, **config)` over the registry ``BACKENDS``
  (``transformers``, ``vllm``, ``openai``); `ChatRequest` in, one `ChatResponse` out per request,
  errors recorded per request.
- `fslabels.spatial`: `SpatialLabeler`, per-frame p(True) after a short explanation.
- `fslabels.temporal`: `Captioner` (once per video) and `TemporalLabeler` (frame indices chosen
  from the numbered captions).
- `fslabels.fusion`: `fuse` (never averages with a failed source) and `run_statistics`.
- `fslabels.vlm`: `load_processor`, the one way framesel loads an image-text processor.
- `fslabels.config`: `LabelRunConfig`, a label run's backends and settings per stage (YAML, dotted
  overrides, validated).
- `fslabels.store`: the SQLite (WAL) store engine every run shares, and `RunStore`, the label
  run store keyed by (stage, item, fingerprint).
- `fslabels.run`: `run_labels` (resumable: each batch committed at once, failures recorded per
  item; ``engine="local"`` or ``"ray"``), `run_status`, `export_rows`, `load_sample`.
- `fslabels.run.ray_engine`: the same stages as Ray Data pipelines, committed by the driver.
- `fslabels.dataset`: `build_dataset`, `write_dataset`, `push_dataset`, `pull_dataset`,
  `load_dataset_version`, `diff_datasets` — versioned label datasets (local dir or Hub, tags vN).
- `fslabels.review`: Label Studio export / import of reviews, agreement reports.
- `fslabels.evaluation.strategies`: every frame-selection strategy behind one interface (selector, text–image
  similarity, online M-LLM scoring, uniform; NMS / top-k / inverse-transform rules) with its cost.
- `fslabels.evaluation`: `run_eval`, downstream video-QA accuracy per strategy and k (resumable).
- `fslabels.evaluation.lmms_plugin`: the ``framesel`` model for lmms-eval (entry point).

Labelers build requests and parse replies as pure functions (``requests`` / ``parse``), so a run
can batch requests across questions and videos, cache replies per video and resume; their
``label`` methods are one-call conveniences.
"""
