"""`framesel model ...`: create a selector and pick the frames that matter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Create frame selectors and select frames with them.", no_args_is_help=True)


@app.command("select")
def select(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    question: Annotated[str, typer.Argument(help="The question the frames should answer.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Selector: local dir or Hub repo id.")
    ],
    k: Annotated[int, typer.Option("--k", "-k", help="Frames to select.")] = 8,
    strategy: Annotated[str, typer.Option(help="nms (paper), topk or uniform.")] = "nms",
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (tag, branch, commit).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write the score curve with the chosen frames' thumbnails to a PNG."),
    ] = None,
) -> None:
    """Select the K frames of VIDEO that best answer QUESTION."""
    import json

    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes as they load)
    from fsmodel.video import sample_candidates

    hf_logging.disable_progress_bar()  # one small model: the bars are noise here
    selector = AutoModel.from_pretrained(model, revision=revision).eval()
    cands = sample_candidates(video, selector.config.num_candidates, size=selector.frame_size())
    result = selector.select_frames(cands, question, k=k, strategy=strategy)
    if plot is not None:
        from fsmodel.viz import selection_plot

        plot.parent.mkdir(parents=True, exist_ok=True)
        selection_plot(
            cands.timestamps, result.scores, result.positions, cands.frames, question, str(plot)
        )
    if as_json:
        payload = {
            "video": str(video),
            "question": question,
            "strategy": strategy,
            "k": k,
            "indices": [int(i) for i in result.indices],
            "timestamps": [round(float(t), 6) for t in result.timestamps],
            "positions": [int(p) for p in result.positions],
            "scores": [round(float(s), 6) for s in result.scores],
        }
        typer.echo(json.dumps(payload))
        return
    from rich.table import Table

    from cli.console import stdout

    table = Table(title=f"{question}", caption=f"{video} · {strategy} · k={k} of {len(cands)}")
    for col in ("candidate", "frame", "time (s)", "score"):
        table.add_column(col, justify="right")
    for p, i, t in zip(result.positions, result.indices, result.timestamps, strict=True):
        table.add_row(str(int(p)), str(int(i)), f"{float(t):.2f}", f"{float(result.scores[p]):.3f}")
    console = stdout()
    console.print(table)
    if plot is not None:
        console.print(f"Plot: {plot}")


@app.command("init")
def init(
    out: Annotated[Path, typer.Option(help="Directory to write the new selector to.")],
    vision: Annotated[
        str, typer.Option(help="SigLIP checkpoint (Hub id or dir) for the frame encoder.")
    ] = "google/siglip-so400m-patch14-384",
    llm: Annotated[
        str, typer.Option(help="Qwen2/Qwen2.5 checkpoint (Hub id or dir) for the scorer.")
    ] = "Qwen/Qwen2.5-1.5B-Instruct",
    num_candidates: Annotated[
        int | None,
        typer.Option("--n", help="Candidate frames per video [default: 128; with --tiny: 16]."),
    ] = None,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny", help="Write an offline tiny selector (random weights) for demos and tests."
        ),
    ] = False,
    question_first: Annotated[
        bool,
        typer.Option(
            "--question-first",
            help="Write the question before the frames in the prompt (default: after them, the "
            "paper's layout), so each frame's tokens can attend to it. Train and use the "
            "selector with the layout it was made with.",
        ),
    ] = False,
) -> None:
    """Create an untrained selector from pretrained backbones (fresh projector, query and head)."""
    from cli.console import stdout

    console = stdout()
    # Without --n each builder's own default applies (tiny: 16; the config: 128).
    given = {} if num_candidates is None else {"num_candidates": num_candidates}
    if tiny:
        from fsmodel.tiny import build_tiny_selector

        path = build_tiny_selector(out, question_first=question_first, **given)
        console.print(f"Tiny selector (random weights, offline): {path}")
        return
    from fsmodel import FrameSelectorModel, FrameSelectorProcessor

    model = FrameSelectorModel.from_backbones(vision=vision, llm=llm, **given)
    processor = FrameSelectorProcessor.from_backbones(
        vision=vision, llm=llm, question_first=question_first
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"Selector from {vision} + {llm} ({n_params / 1e6:.0f}M parameters): {out}")


def _quiet_hub_bars() -> None:
    # One small model and a few parquet files: per-shard and per-split bars are noise here.
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


@app.command("train")
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (YAML).")],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, e.g. --set optim.lr=3e-4 --set stage=2 (repeatable).",
        ),
    ] = None,
) -> None:
    """Train a selector (stage 1 or 2 of the paper) on a label dataset, with a progress bar.

    Checkpoints go to OUTPUT_DIR/checkpoints; run the same command again to resume an
    interrupted run. Metrics are appended to OUTPUT_DIR/metrics.jsonl. For several processes
    or GPUs, start it with `accelerate launch -m cli.main model train ...` or torchrun.
    """
    import os

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from cli.console import stdout
    from fsmodel.training import TrainConfig, TrainerCallback, train_selector

    # Under torchrun / accelerate launch every rank runs this command; one of them reports.
    main_rank = os.environ.get("RANK", "0") == "0"
    console = stdout()
    console.quiet = not main_rank
    cfg = TrainConfig.from_yaml(config, overrides=overrides or [])
    _quiet_hub_bars()
    progress = Progress(
        TextColumn("[bold]stage {task.fields[stage]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("recall@{task.fields[k]} nms {task.fields[recall]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not main_rank,
    )

    class _Bar(TrainerCallback):
        task = None

        def on_train_begin(self, state):
            if state.global_step:
                console.print(f"Resuming at step {state.global_step} of {state.total_steps}")
            self.task = progress.add_task(
                "train", total=state.total_steps, completed=state.global_step,
                stage=cfg.stage, loss="–", recall="–", k=cfg.eval.k,
            )  # fmt: skip

        def on_step(self, state, logs):
            progress.update(self.task, completed=state.global_step, loss=f"{logs['loss']:.4f}")

        def on_eval(self, state, summary):
            recall = summary[f"recall@{cfg.eval.k}"]
            progress.update(self.task, recall=f"{recall['nms']}")
            progress.console.print(
                f"step {state.global_step}: recall@{cfg.eval.k} on {summary['split']} "
                f"({summary['samples']}) nms {recall['nms']} · topk {recall['topk']} · "
                f"uniform {recall['uniform']}"
            )

    with progress:
        result = train_selector(cfg, callbacks=[_Bar()])
    console.print(f"[bold]Trained selector:[/] {result.final_dir}")
    if result.adapter_dir is not None:
        console.print(f"LoRA adapter: {result.adapter_dir}")
    console.print(f"Metrics: {result.output_dir / 'metrics.jsonl'}")


@app.command("push")
def push(
    model_dir: Annotated[Path, typer.Argument(help="Trained selector directory (e.g. run/final).")],
    repo: Annotated[str, typer.Option("--repo", help="Hub model repo, org/name.")],
    tag: Annotated[
        str | None, typer.Option("--tag", help="Release tag, e.g. v1 (refused if it exists).")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    message: Annotated[str | None, typer.Option("--message", help="Commit message.")] = None,
) -> None:
    """Push a selector (safetensors, config, processor, code, model card) as one tagged commit.

    An existing tag is refused before anything is uploaded; pushing what the repo already holds
    changes nothing.
    """
    from cli.console import stdout
    from fsmodel.hub import push_selector

    _quiet_hub_bars()
    result = push_selector(model_dir, repo, tag=tag, private=private, commit_message=message)
    console = stdout()
    if result.unchanged:
        console.print(
            f"{result.repo_id} already holds this selector"
            + (f" as {result.tag}" if result.tag else "")
            + f" (commit {result.commit[:12]}); nothing pushed."
        )
    else:
        console.print(
            f"Pushed {result.repo_id} commit {result.commit[:12]}"
            + (f", tag {result.tag}" if result.tag else "")
            + f" ({len(result.files)} files): {result.url}"
        )
    revision = f', revision="{result.tag}"' if result.tag else ""
    console.print(f'Load it with AutoModel.from_pretrained("{result.repo_id}"{revision})')


@app.command("eval")
def evaluate(
    model: Annotated[str, typer.Argument(help="Selector: local dir or Hub repo id.")],
    data: Annotated[str, typer.Option("--data", help="Label dataset: local dir or Hub repo id.")],
    revision: Annotated[
        str | None, typer.Option("--revision", help="Dataset revision (tag, branch, commit).")
    ] = None,
    model_revision: Annotated[
        str | None, typer.Option("--model-revision", help="Selector revision on the Hub.")
    ] = None,
    video_root: Annotated[
        Path | None,
        typer.Option(help="Directory the rows' video paths are relative to (default: --data)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Frames picked per question.")] = 8,
    threshold: Annotated[
        float, typer.Option(help="Label score at which a candidate counts as relevant.")
    ] = 0.5,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N rows only.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of a few examples (scores, labels, picks).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Feature cache directory (default: ~/.cache/framesel).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Recall@k of the selector's picks (nms, topk) against uniform sampling on a label dataset."""
    import json

    from rich.table import Table
    from transformers import AutoModel, AutoProcessor

    import fsmodel  # noqa: F401  (registers the selector with the Auto classes as they load)
    from cli.console import stdout
    from fsmodel.training.config import CacheConfig
    from fsmodel.training.data import FeatureCache, FrameSource, load_samples
    from fsmodel.training.evaluate import EVAL_RULES, evaluate_selector, plot_examples

    _quiet_hub_bars()
    selector = AutoModel.from_pretrained(model, revision=model_revision).eval()
    processor = AutoProcessor.from_pretrained(model, revision=model_revision)
    samples = load_samples(data, revision=revision, video_root=video_root, limit=limit)
    cache = None
    if not no_cache:
        cache = FeatureCache(CacheConfig(dir=str(cache_dir) if cache_dir else None).resolved_dir())
    frames = FrameSource(selector, processor, cache=cache)
    report = evaluate_selector(selector, samples, frames, k=k, threshold=threshold)
    summary = report.summary()
    if plot is not None:
        plot_examples(report, samples, plot, frames=frames, title=f"{model} on {data}")
    if as_json:
        typer.echo(json.dumps({"model": model, "data": data, "revision": revision, **summary}))
        return
    table = Table(title=f"{model} on {data}" + (f"@{revision}" if revision else ""),
                  caption=f"{len(samples)} questions, k={k}, relevant = label ≥ {threshold}")  # fmt: skip
    for col in ("strategy", f"recall@{k}", f"coverage@{k}"):
        table.add_column(col, justify="right")
    for strategy in EVAL_RULES:
        recall = summary[f"recall@{k}"][strategy]
        coverage = summary[f"coverage@{k}"][strategy]
        table.add_row(strategy, _fmt_metric(recall), _fmt_metric(coverage))
    console = stdout()
    console.print(table)
    if plot is not None:
        console.print(f"Plot: {plot}")


def _fmt_metric(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
