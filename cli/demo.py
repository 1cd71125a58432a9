"""`framesel demo`: the whole offline pipeline on embedded defaults, with nothing downloaded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option(help="Directory for everything the demo writes.")] = Path(
        "demo-output"
    ),
    n: Annotated[int, typer.Option("--n", "-n", help="Candidate frames per video.")] = 128,
) -> None:
    """Run the offline demo (no downloads): video → candidates → selector → pseudo-labels →
    training → selection with the trained selector.

    Generates a video with known events, samples its candidate frames, draws a contact sheet,
    builds the tiny offline models the tests use, selects frames with the tiny selector, labels
    two synthetic-world videos with the world's trained teacher models (a resumable label run,
    scored against the world's truth), and ends by training the tiny selector on the events'
    ground-truth labels and selecting with it.
    """
    import json

    import numpy as np
    from transformers.utils import logging as hf_logging

    from cli.console import stdout
    from fsmodel.synthetic import Event, write_video
    from fsmodel.tiny import build_all
    from fsmodel.video import sample_candidates
    from fsmodel.viz import contact_sheet

    hf_logging.disable_progress_bar()  # tiny models: per-shard bars are noise here
    console = stdout()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    events = [Event(60, 95, "circle", "red"), Event(200, 239, "square", "blue")]
    clip = write_video(
        out / "videos" / "demo.mp4", num_frames=300, size=(320, 180), fps=30, gop=60, events=events
    )
    console.print(f"[bold]1. Video[/]  {clip.path}  ({clip.num_frames} frames, 10 s, H.264)")
    for q in clip.questions():
        first, last = q["relevant_frames"][0], q["relevant_frames"][-1]
        console.print(f"   question: {q['question']!r} → relevant frames {first}–{last}")

    cands = sample_candidates(clip.path, n, size=224)
    relevant = {f for q in clip.questions() for f in q["relevant_frames"]}
    hits = [k for k, i in enumerate(cands.indices) if int(i) in relevant]
    sheet = out / "candidates.png"
    contact_sheet(cands, highlight=hits).save(sheet)
    (out / "candidates.json").write_text(
        json.dumps(
            {
                "video": str(clip.path),
                "indices": cands.indices.tolist(),
                "timestamps": [round(t, 6) for t in cands.timestamps.tolist()],
            }
        )
    )
    console.print(
        f"[bold]2. Candidates[/]  {len(cands)} frames of {cands.num_frames} "
        f"({cands.frames.shape[2]}×{cands.frames.shape[1]}, reader {cands.reader}); "
        f"{len(hits)} show an event (outlined)"
    )
    console.print(f"   contact sheet: {sheet}")

    models = build_all(out / "tiny-models")
    console.print("[bold]3. Tiny offline models[/] (random weights, real classes)")
    for name, path in models.items():
        console.print(f"   {name}: {path}")

    from transformers import AutoModel

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes)

    selector = AutoModel.from_pretrained(models["selector"]).eval()
    question = clip.questions()[0]["question"]
    result = selector.select_frames(clip.path, question, k=4)
    console.print(
        f"[bold]4. Selector[/] (tiny, untrained: its picks are not meaningful yet) "
        f"for {question!r}: frames {[int(i) for i in result.indices]} at "
        f"{[round(float(t), 2) for t in result.timestamps]} s"
    )

    # Pseudo-labels with the world's teachers: tiny models of the production classes trained on
    # the synthetic world (fslabels.evaluation.teachers), through the production labelers and
    # transformers backend, scored against the world's truth. The same run on the production
    # defaults needs the Hub.
    from fslabels.evaluation.teachers import world_run_config
    from fslabels.quality import read_truth, score_rows
    from fslabels.run import export_rows, load_sample, run_labels
    from fsmodel.metrics import candidates_in_spans
    from fsmodel.training.synthetic_data import write_world
    from fsmodel.viz import score_sheets

    world = write_world(out / "world", 2, seed=7)
    work = out / "labels-work"
    summary = run_labels(world_run_config(), world["manifest"], world["videos"], work,
                         progress=False)  # fmt: skip
    rows, captions = export_rows(work)
    console.print(
        f"[bold]5. Labels[/] (the world's teacher models) {summary.done} of {summary.items} "
        f"questions about {len(captions)} synthetic-world videos labelled, each video captioned "
        f"once, work dir {work} (framesel labels status {work})"
    )
    failed = sorted({f["stage"] for f in summary.failures})
    if failed:
        console.print(f"   failed sources, recorded per sample: {', '.join(failed)}")
    if rows:
        truth = read_truth(world["truth"])
        report = score_rows(rows, truth, k=8)
        for source in ("spatial", "temporal", "fused"):
            got = report.table.get(source, {}).get("all")
            if got:
                console.print(
                    f"   {source:8s} vs truth: AUC {got['auc']:.2f}, recall@8 {got['recall']:.2f} "
                    f"(framesel labels score … --truth {world['truth']})"
                )
        order = next((r for r in rows if r["question"].startswith("What appears")), rows[0])
        view = load_sample(work, order["sample_id"])
        groups, _ = candidates_in_spans(truth[order["sample_id"]].spans, view.candidates.timestamps)
        picture = score_sheets(
            view.candidates,
            [(f"{name} · {view.item.question}", values) for name, values in
             (("spatial", view.spatial), ("temporal", view.temporal), ("fused", view.scores))],
            highlight=[int(i) for i in np.flatnonzero(groups >= 0)],
        )  # fmt: skip
        picture.save(out / "labels.png")
        console.print(f"   scores of one question, true frames outlined: {out / 'labels.png'}")
        from fslabels.dataset import build_dataset

        built = build_dataset(work, out / "labels-dataset", overwrite=True)
        console.print(
            f"   dataset: {built.directory} ({built.samples} rows, card, run config; "
            f'datasets.load_dataset("{built.directory}", "labels"); publish it with '
            f"framesel labels push {built.directory} --repo ORG/NAME)",
            soft_wrap=True,
        )

    _train_and_select(out, clip, models["selector"], console)
    console.print(f"Done in {time.perf_counter() - t0:.1f} s. Everything is under {out}/")


def _train_and_select(out: Path, clip, selector_dir: Path, console) -> None:
    """Train the tiny selector on ground-truth labels of the demo's events (1.0 on candidates
    inside an event, 0 elsewhere), then select frames with it.

    The tiny selector has random weights and two questions to learn, so its LLM is trained too
    (the paper's stage 1 freezes it) and it memorises them; that shows the pipeline end to end.
    A real run trains on a label dataset: see "Training" in the README.
    """
    import datasets
    import numpy as np
    from transformers import AutoConfig, AutoModel

    from fsmodel.schema import save_label_dataset
    from fsmodel.selection import select
    from fsmodel.training import TrainConfig, train_selector
    from fsmodel.training.synthetic_data import event_caption_row, event_label_rows

    datasets.disable_progress_bars()
    n = AutoConfig.from_pretrained(selector_dir).num_candidates
    video = clip.path.relative_to(out).as_posix()
    rows = event_label_rows(clip, video, num_candidates=n)
    labels = save_label_dataset(rows, out / "demo-labels", captions=[event_caption_row(clip, n)])
    config = TrainConfig.from_dict(
        {
            "model": str(selector_dir),
            "output_dir": str(out / "demo-train"),
            "data": {"source": str(labels), "video_root": str(out)},
            "optim": {
                "epochs": 300,
                "batch_size": 2,
                "lr": 1e-2,
                "trainable": ["projector", "language_model", "score_query", "score_head"],
            },
            "eval": {"k": 4, "every_steps": 10_000},
            "cache": {"dir": str(out / "feature-cache")},
            "checkpoint": {"every_steps": 0, "resume": False},
        }
    )
    t0 = time.perf_counter()
    result = train_selector(config)
    console.print(
        f"[bold]6. Training[/] on the demo's ground-truth labels ({labels}, schema v1): "
        f"{result.steps} steps in {time.perf_counter() - t0:.1f} s (importance BCE alternated "
        f"with caption CE); trained selector: {result.final_dir}"
    )
    trained = AutoModel.from_pretrained(result.final_dir).eval()
    k = 4
    for row, event in zip(rows, clip.events, strict=True):
        picked = trained.select_frames(clip.path, row["question"], k=k)
        indices = np.asarray(row["frame_indices"])
        uniform = indices[select(picked.scores, k, "uniform")]
        inside = [int(i) for i in picked.indices if event.start <= i <= event.end]
        hits = sum(event.start <= int(i) <= event.end for i in uniform)
        console.print(
            f"   {row['question']!r} (frames {event.start}–{event.end}): picks "
            f"{[int(i) for i in picked.indices]}, {len(inside)} of {k} inside the event "
            f"(uniform sampling: {hits} of {k})"
        )
