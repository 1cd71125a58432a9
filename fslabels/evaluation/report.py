"""What an eval run found: accuracy and seconds per question for every (strategy, k).

`build_report` reads an eval work directory (nothing is recomputed and no model is loaded), so
it works during a run and after one. Per cell:

- **accuracy**: by generation (the letter read from the reply; open-ended: the normalised reply
  matches the answer) and, for multiple choice, by option-letter likelihood; ``unparsed`` counts
  multiple-choice replies that named no option (counted wrong, never guessed).
- **seconds per question**, split into decode (a video's decode time shared by its questions;
  ``uniform`` is charged only for decoding its k frames), selection (the scorer's model work +
  the rule) and answering (processor + downstream model), averaged over the answered questions.
- ``Δ uniform``: the accuracy minus uniform's at the same k, over the questions both cells
  answered (a question one of them failed or has not reached yet is left out of both sides),
  with their number ``N`` (when uniform is in the run).

`render_table` makes the rich table, `plot_report` the PNGs (accuracy vs k; accuracy vs
seconds per question beside the time split), `write_results` a ``summary.json`` and one JSON
line per answer (``answers.jsonl``, with the exact prompt and the reply).

Example:
    >>> report = build_report("work")  # doctest: +SKIP
    >>> Console().print(render_table(report))  # doctest: +SKIP
    >>> plot_report(report, "work/results")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fslabels.evaluation.store import EvalStore
from fsmodel._imports import require

__all__ = ["CellRow", "EvalReport", "build_report", "plot_report", "render_table", "write_results"]


@dataclass
class CellRow:
    """One (strategy, k) cell of the report (see the module docstring).

    Attributes:
        strategy, k: the cell.
        questions: questions in the run; ``done``, ``failed``, ``pending``: their state here.
        accuracy: the primary metric (generation, or likelihood when only that was scored).
        acc_generate, acc_likelihood: each metric over the answered questions it applies to.
        multiple_choice: answered multiple-choice questions; ``unparsed``: of their replies,
            those that named no option.
        decode_seconds, selection_seconds, answer_seconds, total_seconds: means per answered
            question.
        selection_calls: mean model calls of the scorer per question.
        delta_vs_uniform: the accuracy minus uniform's at this k, both over the
            ``delta_questions`` questions the two cells answered (``None`` when there are none).
        delta_questions: how many questions ``delta_vs_uniform`` compares.
    """

    strategy: str
    k: int
    questions: int
    done: int = 0
    failed: int = 0
    pending: int = 0
    accuracy: float | None = None
    acc_generate: float | None = None
    acc_likelihood: float | None = None
    multiple_choice: int = 0
    unparsed: int = 0
    decode_seconds: float | None = None
    selection_seconds: float | None = None
    answer_seconds: float | None = None
    total_seconds: float | None = None
    selection_calls: float | None = None
    delta_vs_uniform: float | None = None
    delta_questions: int | None = None


@dataclass
class EvalReport:
    """The report of one eval work directory.

    Attributes:
        workdir: the work directory.
        items, videos: questions and videos in the run.
        metric: ``"generate"`` or ``"likelihood"`` (letter or option-text likelihood): what
            ``accuracy`` is.
        rows: one `CellRow` per (strategy, k), in config order.
        failures: ``{"strategy", "k", "item", "error"}`` of every failed cell.
        prompts: the prompt templates and their hash.
        answerer: the downstream model's fingerprint (model, dtype, frames_as ...).
        config_yaml: the run's exact config.
        answers: one dict per stored answer (with ``include_answers=True``).
    """

    workdir: str
    items: int
    videos: int
    metric: str
    rows: list[CellRow]
    failures: list[dict[str, Any]] = field(default_factory=list)
    prompts: dict[str, Any] = field(default_factory=dict)
    answerer: dict[str, Any] = field(default_factory=dict)
    config_yaml: str = ""
    answers: list[dict[str, Any]] = field(default_factory=list)

    def row(self, strategy: str, k: int) -> CellRow:
        for row in self.rows:
            if row.strategy == strategy and row.k == k:
                return row
        raise KeyError(f"no cell ({strategy!r}, k={k}) in the report")

    def to_dict(self, answers: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not answers:
            data.pop("answers")
        return data


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def build_report(workdir: str | os.PathLike[str], include_answers: bool = False) -> EvalReport:
    """Read the eval run in ``workdir`` (see the module docstring).

    Raises:
        FileNotFoundError: no eval run there.
        ValueError: the directory holds a label run, or an eval that never started.
    """
    with EvalStore(workdir, create=False) as store:
        meta = store.get_meta("eval")
        if meta is None:
            raise ValueError(f"{workdir} holds an eval store but no eval config (never started)")
        items = store.items()
        config = meta["config"]
        fps = meta["fingerprints"]
        per_video = Counter(item.video for item in items)
        ids = [item.sample_id for item in items]
        video_of = {item.sample_id: item.video for item in items}
        videos = list(per_video)
        decode = {
            v: r.seconds
            for v, r in store.get_results("candidates", videos, fps["candidates"]).items()
            if r.ok
        }
        scores = {name: store.get_results("scores", ids, fp) for name, fp in fps["scorers"].items()}
        scoring = config["answerer"]["scoring"]
        metric = "likelihood" if scoring in ("likelihood", "options") else "generate"
        rows: list[CellRow] = []
        # {(strategy, k): {sample id: correct by the primary metric}}, for Δ on shared questions
        correct: dict[tuple[str, int], dict[str, bool]] = {}
        failures: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []
        for strategy in config["strategies"]:
            scorer = None if strategy == "uniform" else strategy.partition(":")[0]
            for k in config["ks"]:
                fp = fps["cells"][strategy][str(k)]
                records = store.get_results("answer", ids, fp)
                uniform_decode = {}
                if scorer is None:
                    keys = [f"{v}#k={k}" for v in videos]
                    uniform_decode = {
                        key.rpartition("#k=")[0]: r.seconds
                        for key, r in store.get_results(
                            "uniform_decode", keys, fps["candidates"]
                        ).items()
                        if r.ok
                    }
                row = CellRow(strategy=strategy, k=k, questions=len(items))
                scored = correct[(strategy, k)] = {}
                gen, lik, dec, sel, ans, calls = [], [], [], [], [], []
                for sample_id in ids:
                    record = records.get(sample_id)
                    if record is None:
                        row.pending += 1
                        continue
                    if not record.ok:
                        row.failed += 1
                        failures.append(
                            {"strategy": strategy, "k": k, "item": sample_id, "error": record.error}
                        )
                        continue
                    row.done += 1
                    p = record.payload
                    if include_answers:
                        answers.append({"sample_id": sample_id, "video": video_of[sample_id], **p})
                    if p.get("correct_generate") is not None:
                        gen.append(float(p["correct_generate"]))
                    if p.get("correct_likelihood") is not None:
                        lik.append(float(p["correct_likelihood"]))
                    primary = p.get(f"correct_{metric}")
                    if primary is not None:
                        scored[sample_id] = bool(primary)
                    if p.get("multiple_choice"):
                        row.multiple_choice += 1
                        row.unparsed += int(bool(p.get("unparsed")))
                    video = video_of[sample_id]
                    share = per_video[video]
                    if scorer is None:
                        seconds = uniform_decode.get(video, decode.get(video))
                    else:
                        seconds = decode.get(video)
                    if seconds is not None:
                        dec.append(seconds / share)
                    selection = float(p.get("rule_seconds") or 0.0)
                    if scorer is not None:
                        curve = scores.get(scorer, {}).get(sample_id)
                        if curve is not None and curve.ok:
                            selection += curve.seconds
                            calls.append(float(curve.payload["cost"]["model_calls"]))
                    sel.append(selection)
                    ans.append(record.seconds)
                row.acc_generate, row.acc_likelihood = _mean(gen), _mean(lik)
                row.accuracy = row.acc_likelihood if metric == "likelihood" else row.acc_generate
                row.decode_seconds, row.selection_seconds = _mean(dec), _mean(sel)
                row.answer_seconds, row.selection_calls = _mean(ans), _mean(calls)
                if row.done:
                    row.total_seconds = sum(
                        v or 0.0
                        for v in (row.decode_seconds, row.selection_seconds, row.answer_seconds)
                    )
                rows.append(row)
    for row in rows:
        base = correct.get(("uniform", row.k))
        if row.strategy == "uniform" or base is None:
            continue
        mine = correct[(row.strategy, row.k)]
        shared = [sample_id for sample_id in mine if sample_id in base]
        row.delta_questions = len(shared)
        if shared:
            row.delta_vs_uniform = _mean([float(mine[s]) - float(base[s]) for s in shared])
    return EvalReport(
        workdir=str(workdir),
        items=len(items),
        videos=len(per_video),
        metric=metric,
        rows=rows,
        failures=failures,
        prompts=meta.get("prompts", {}),
        answerer=meta.get("answerer", {}),
        config_yaml=meta.get("config_yaml", ""),
        answers=answers,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _likelihood(report: EvalReport) -> str:
    """What the report's likelihood accuracy scored: the option letter or the option's text."""
    if report.answerer.get("scoring") == "options":
        return "option-text likelihood"
    return "option-letter likelihood"


def render_table(report: EvalReport) -> Any:
    """A rich table with one line per (strategy, k)."""
    from rich import box
    from rich.table import Table

    answerer = report.answerer
    caption = (
        f"done: answered/questions (failures listed apart) · acc: {report.metric} accuracy; Δ: "
        f"acc minus uniform's at the same k over the N questions both answered; lik: {_likelihood(report)}; unp: replies naming "
        "no option · seconds per question: decode (a video's decode shared by its questions; "
        "uniform decodes only its k frames), selection (scoring + rule), answering · calls: "
        f"scorer model calls per question · {answerer.get('model', '?')} "
        f"({answerer.get('frames_as', '?')}, {answerer.get('dtype', '?')})"
    )
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=f"QA eval · {report.items} questions, {report.videos} videos",
        caption=caption,
        caption_justify="left",
    )
    columns = ("strategy", "k", "done", "acc%", "Δ", "N", "lik%", "unp", "dec s", "sel s", "ans s",
               "tot s", "calls")  # fmt: skip
    for column in columns:
        if column == "strategy":
            table.add_column(column, overflow="fold", min_width=12)
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for row in report.rows:
        delta = "-" if row.delta_vs_uniform is None else f"{100 * row.delta_vs_uniform:+.1f}"
        table.add_row(
            row.strategy,
            str(row.k),
            f"{row.done}/{row.questions}",
            _pct(row.accuracy),
            delta,
            "-" if row.delta_questions is None else str(row.delta_questions),
            _pct(row.acc_likelihood),
            f"{row.unparsed}/{row.multiple_choice}" if row.multiple_choice else "-",
            _secs(row.decode_seconds),
            _secs(row.selection_seconds),
            _secs(row.answer_seconds),
            _secs(row.total_seconds),
            "-" if row.selection_calls is None else f"{row.selection_calls:.3g}",
        )
    return table


def write_results(report: EvalReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """``summary.json`` (config, prompts, rows, failures) and ``answers.jsonl`` (one line per
    answer with its exact prompt and reply; needs a report built with ``include_answers``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n", "utf-8")
    answers = out / "answers.jsonl"
    with answers.open("w", encoding="utf-8") as f:
        for answer in report.answers:
            f.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return [summary, answers]


def plot_report(report: EvalReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Two PNGs: ``accuracy_vs_k.png`` and ``accuracy_vs_seconds.png`` (accuracy against
    seconds per question, beside each cell's decode / selection / answering split).

    Raises:
        ImportError: without matplotlib (``pip install 'framesel[plot]'``).
    """

    require("matplotlib", extra="plot", purpose="the eval plots")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategies = list(dict.fromkeys(r.strategy for r in report.rows))
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    label = "generation" if report.metric == "generate" else _likelihood(report)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in strategies:
        rows = [r for r in report.rows if r.strategy == strategy and r.accuracy is not None]
        if rows:
            ax.plot([r.k for r in rows], [100 * r.accuracy for r in rows], "o-",
                    color=colours[strategy], label=f"{strategy} ({label})")  # fmt: skip
        lik = [r for r in report.rows if r.strategy == strategy and r.acc_likelihood is not None]
        if lik and report.metric == "generate":
            ax.plot([r.k for r in lik], [100 * r.acc_likelihood for r in lik], "s--",
                    color=colours[strategy], alpha=0.6, label=f"{strategy} (likelihood)")  # fmt: skip
    ks = sorted({r.k for r in report.rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("frames given to the model (k)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Accuracy vs k · {report.items} questions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    by_k = out / "accuracy_vs_k.png"
    fig.savefig(by_k, dpi=120)
    plt.close(fig)

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1.2]}
    )
    for strategy in strategies:
        rows = [r for r in report.rows if r.strategy == strategy and r.accuracy is not None]
        if not rows:
            continue
        xs, ys = [r.total_seconds or 0.0 for r in rows], [100 * r.accuracy for r in rows]
        left.plot(xs, ys, "o-", color=colours[strategy], label=strategy)
        for r, x, y in zip(rows, xs, ys, strict=True):
            left.annotate(f"k={r.k}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    left.set_xlabel("seconds per question (decode + selection + answering)")
    left.set_ylabel(f"accuracy (%, {label})")
    left.set_ylim(-2, 102)
    left.set_title("Accuracy vs time")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    cells = [r for r in report.rows if r.total_seconds is not None]
    names = [f"{r.strategy} k={r.k}" for r in cells]
    parts = (("decode", "decode_seconds", "#8da0cb"), ("selection", "selection_seconds", "#fc8d62"),
             ("answering", "answer_seconds", "#66c2a5"))  # fmt: skip
    start = [0.0] * len(cells)
    for part, attr, colour in parts:
        values = [getattr(r, attr) or 0.0 for r in cells]
        right.barh(names, values, left=start, color=colour, label=part)
        start = [a + b for a, b in zip(start, values, strict=True)]
    right.invert_yaxis()
    right.set_xlabel("seconds per question")
    right.set_title("Where the time goes")
    right.legend(fontsize=8)
    right.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    by_time = out / "accuracy_vs_seconds.png"
    fig.savefig(by_time, dpi=120)
    plt.close(fig)
    return [by_k, by_time]
