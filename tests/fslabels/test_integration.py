"""One video, two questions, end to end through the library (no orchestration layer yet):
candidates sampled once, captions once per video, spatial and temporal per question, fusion,
schema-v1 rows. Real tiny models through the real transformers backend."""

from __future__ import annotations

import numpy as np

from fslabels.fusion import fuse, run_statistics
from fslabels.manifest import group_by_video, read_manifest
from fslabels.spatial import SpatialLabeler
from fslabels.temporal import Captioner, TemporalJob, TemporalLabeler
from fsmodel import video as fsvideo
from fsmodel.schema import (
    CAPTIONS,
    FRAME_INDICES,
    SCORES,
    SPATIAL,
    TEMPORAL,
    TIMESTAMPS,
    VIDEO_ID,
    check_caption_rows,
    check_label_rows,
)
from fsmodel.synthetic import Event, write_video

N = 8


def test_one_video_two_questions_to_schema_rows(tmp_path, vl_backend, text_backend, vocab_size):
    clip = write_video(
        tmp_path / "videos" / "clip.mp4",
        num_frames=48,
        events=[Event(8, 19, "circle", "red"), Event(28, 39, "square", "blue")],
    )
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(
        "".join(
            f'{{"video": "clip.mp4", "question": "{q["question"]}", "options": ["A. early", "B. late"]}}\n'
            for q in clip.questions()
        )
    )
    groups = group_by_video(read_manifest(manifest))
    assert list(groups) == ["clip.mp4"] and len(groups["clip.mp4"]) == 2

    decoded: list[str] = []

    def sample(path):  # counts decodes: one per video, shared by all its questions
        decoded.append(str(path))
        return fsvideo.sample_candidates(path, num_candidates=N, size=48)

    captioner = Captioner(vl_backend, max_new_tokens=6)
    spatial = SpatialLabeler(
        vl_backend, max_new_tokens=4, top_logprobs=vocab_size, force_top_logprobs=vocab_size
    )
    temporal = TemporalLabeler(text_backend, max_new_tokens=8, max_attempts=2)

    rows, caption_rows, fusion_meta = [], [], []
    for video, items in groups.items():
        candidates = sample(tmp_path / "videos" / video)
        captions = captioner.caption(candidates.frames)
        assert len(captions.captions) == N  # caption calls = candidates x videos
        caption_rows.append(
            {
                VIDEO_ID: items[0].video_id,
                FRAME_INDICES: candidates.indices.tolist(),
                TIMESTAMPS: candidates.timestamps.tolist(),
                CAPTIONS: captions.captions,
            }
        )
        temporal_results = temporal.label_batch(
            [
                TemporalJob(captions.captions, candidates.timestamps, item.question, item.options)
                for item in items
            ]
        )
        for item, t in zip(items, temporal_results, strict=True):
            s = spatial.label(candidates.frames, item.question, item.options)
            assert s.ok, s.failures
            # The random tiny text model never writes JSON: the temporal source fails on record
            # (bounded retries, raw replies kept) and fusion uses the spatial source alone.
            assert not t.ok and t.attempts == 2 and len(t.replies) == 2
            fused = fuse(s, t)
            assert fused.complete and fused.metadata["sources"] == ["spatial"]
            assert "temporal failed for this sample" in fused.metadata["note"]
            np.testing.assert_allclose(fused.scores, s.scores)
            # Schema v1 has no per-row metadata column and no missing values: a failed source's
            # column carries the fused score and the fusion metadata is kept beside the row.
            temporal_column = np.where(np.isfinite(t.scores), t.scores, fused.scores)
            rows.append(
                {
                    **item.row(),
                    FRAME_INDICES: candidates.indices.tolist(),
                    TIMESTAMPS: candidates.timestamps.tolist(),
                    SPATIAL: s.scores.astype(np.float32).tolist(),
                    TEMPORAL: temporal_column.astype(np.float32).tolist(),
                    SCORES: fused.scores.astype(np.float32).tolist(),
                }
            )
            fusion_meta.append({"sample_id": item.sample_id, **fused.metadata})

    assert decoded == [str(tmp_path / "videos" / "clip.mp4")]
    check_label_rows(rows, num_candidates=N)
    check_caption_rows(caption_rows, num_candidates=N)
    assert len({r["sample_id"] for r in rows}) == 2
    assert rows[0][FRAME_INDICES] == [3, 9, 15, 21, 27, 33, 39, 45]  # segment midpoints of 48
    stats = run_statistics(rows, bins=5)
    assert stats["samples"] == 2 and sum(stats["histograms"][SPATIAL]["counts"]) == 2 * N
    assert [m["sample_id"] for m in fusion_meta] == [r["sample_id"] for r in rows]
