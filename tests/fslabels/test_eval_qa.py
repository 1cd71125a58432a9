"""Downstream QA evaluation (fslabels.evaluation): prompts and gold answers, the frozen answerer, and a
resumable eval run over generated videos with the real tiny models, cached per (strategy, k,
model, question)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from rich.console import Console

from fslabels.evaluation import EvalConfig, run_eval
from fslabels.evaluation.answerer import Answerer
from fslabels.evaluation.prompts import (
    build_prompt,
    gold_answer,
    match_open_answer,
    parse_choice,
    prompt_hash,
)
from fslabels.evaluation.report import (
    EvalReport,
    build_report,
    plot_report,
    render_table,
    write_results,
)
from fslabels.evaluation.scorers import model_content_id
from fslabels.evaluation.store import EvalStore
from fslabels.manifest import read_manifest
from fslabels.store import Record, RunStore, StoreLockedError
from fsmodel.selection import select
from fsmodel.synthetic import Event, write_video
from fsmodel.tiny import build_tiny_similarity
from fsmodel.video import sample_candidates
from tests.fslabels.test_strategies import retrain_in_place

N = 16
KS = [2, 4]


# --- prompts, gold answers, replies ----------------------------------------------------------


def test_multiple_choice_prompt_is_lmms_evals():
    prompt = build_prompt("  What is cut? ", ["A. bread", "(B) cheese", "ham"])
    assert prompt.text == (
        "What is cut?\nA. bread\nB. cheese\nC. ham\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert prompt.letters == ("A", "B", "C") and prompt.options == ("bread", "cheese", "ham")
    open_ended = build_prompt("What is cut?")
    assert not open_ended.multiple_choice
    assert open_ended.text == "What is cut?\nAnswer the question using a single word or phrase."
    assert len(prompt_hash()) == 16
    with pytest.raises(ValueError, match="non-empty"):
        build_prompt("What?", ["bread", " "])


@pytest.mark.parametrize(
    ("answer", "options", "gold"),
    [
        ("B", ["bread", "cheese"], "B"),
        ("(b)", ["bread", "cheese"], "B"),
        ("1", ["bread", "cheese"], "B"),  # NExT-QA / LongVideoBench: a 0-based index
        ("0", ["bread", "cheese"], "A"),
        (" Cheese ", ["A. bread", "B. cheese"], "B"),
        ("a red circle", [], "a red circle"),
    ],
)
def test_gold_answers_resolve_to_a_letter(answer, options, gold):
    assert gold_answer(answer, options) == gold


COUNTS = ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("answer", "options", "answer_format", "gold"),
    [
        ("2", COUNTS, "text", "B"),  # the option whose text is "2", not index 2
        ("2", COUNTS, "index", "C"),
        ("4", COUNTS, "auto", "D"),  # no index 4: only the text reading applies
        ("4", COUNTS, "text", "D"),
        ("2", ["0", "1", "2"], "auto", "C"),  # index and text agree
        ("B", COUNTS, "letter", "B"),
        ("b", ["x", "b"], "text", "B"),
    ],
)
def test_numeric_options_follow_the_answer_format(answer, options, answer_format, gold):
    assert gold_answer(answer, options, answer_format) == gold


@pytest.mark.parametrize(
    ("answer", "options", "answer_format", "match"),
    [
        (
            "2",
            COUNTS,
            "auto",
            r"'2' is ambiguous: as a 0-based index it names C, as an option's "
            r"text B \(A\. 1, B\. 2, C\. 3, D\. 4\); set answer_format to 'index' or 'text'",
        ),
        ("4", COUNTS, "index", r"0-based option index, but there are only 4 options"),
        ("1", ["a", "b"], "letter", r"not an option letter \(answer_format: letter\)"),
        ("B", ["a", "b"], "index", r"not a 0-based option index \(answer_format: index\)"),
        ("1", ["a", "b"], "text", r"not the text of exactly one option"),
        ("A", ["a", "b"], "letters", "answer_format must be one of"),
    ],
)
def test_a_numeric_answer_is_never_silently_misread(answer, options, answer_format, match):
    with pytest.raises(ValueError, match=match):
        gold_answer(answer, options, answer_format)


@pytest.mark.parametrize(
    ("answer", "options", "match"),
    [
        ("", ["a", "b"], "no answer"),
        ("5", ["a", "b"], r"0-based option index, but there are only 2 options"),
        ("F", ["a", "b"], r"not an option letter.*\(A\. a, B\. b\)"),
        ("ham", ["bread", "cheese"], "the text of exactly one option"),
    ],
)
def test_bad_gold_answers_say_why(answer, options, match):
    with pytest.raises(ValueError, match=match):
        gold_answer(answer, options)


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ("B", "B"),
        ("B.", "B"),
        ("(C) ham", "C"),
        ("The answer is A", "A"),
        ("The best answer is: B", "B"),
        ("cheese", "B"),  # names one option's text
        ("I cannot tell", None),
        ("", None),
        ("E", None),  # not among the letters
    ],
)
def test_replies_are_read_for_an_option_letter(reply, choice):
    assert parse_choice(reply, "ABC", ["bread", "cheese", "ham"]) == choice


@pytest.mark.parametrize(
    ("reply", "choice"),
    [("2", "B"), ("The answer is 2.", "B"), ("4 people", "D"), ("C", "C"), ("(A) 1", "A"),
     ("12", None), ("2 or 3", None)],
)  # fmt: skip
def test_a_numeric_reply_names_the_option_with_that_text(reply, choice):
    prompt = build_prompt("How many circles are there?", COUNTS)
    assert parse_choice(reply, prompt.letters, prompt.options) == choice


def test_open_ended_answers_match_normalised():
    assert match_open_answer("The red circle.", "red circle")
    assert match_open_answer("it is a Red  Circle!", "red circle")
    assert not match_open_answer("a blue circle", "red circle")
    assert not match_open_answer("reddish", "red")


# --- the answerer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(
        tmp_path_factory.mktemp("qa-clip") / "clip.mp4",
        num_frames=64,
        events=[Event(8, 23, "circle", "red")],
    )


@pytest.fixture(scope="module")
def answerer(tiny_models):
    answerer = Answerer(model=str(tiny_models["qwen2-vl"]), max_new_tokens=3)
    answerer.load()
    return answerer


def test_answerer_passes_frames_as_images_without_torchvision(answerer, tiny_models, clip):
    assert answerer.frames_as == "images"  # the video processor needs torchvision
    assert answerer.fingerprint()["frames_as"] == "images"
    with pytest.raises(ValueError, match=r"cannot take videos here.*frames_as=images"):
        Answerer(model=str(tiny_models["qwen2-vl"]), frames_as="video").resolve()
    frames = sample_candidates(clip.path, 4, size=48).frames
    prompt = build_prompt("When does the red circle appear?", ["early", "late"])
    result = answerer.answer(frames, prompt)
    assert result.num_frames == 4 and result.frames_as == "images"
    # The exact prompt: chat template, one placeholder per frame, then the question.
    assert result.prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 4
    assert result.prompt.endswith(f"{prompt.text}<|im_end|>\n<|im_start|>assistant\n")
    assert result.reply is not None and result.finish_reason in ("stop", "length")
    with pytest.raises(ValueError, match="at least one frame"):
        answerer.answer(frames[:0], prompt)


def _sharing_the_model(answerer, **changes):
    """An `Answerer` with other settings that reuses ``answerer``'s loaded model."""
    other = Answerer(answerer.config, **changes)
    other.processor, other.tokenizer, other.model = (
        answerer.processor,
        answerer.tokenizer,
        answerer.model,
    )
    other.frames_as, other._eos_ids = answerer.frames_as, answerer._eos_ids
    return other


def test_letter_likelihood_is_the_models_next_token_distribution(answerer, clip):
    import torch

    frames = sample_candidates(clip.path, 3, size=48).frames
    prompt = build_prompt("When does the red circle appear?", ["early", "late", "never"])
    both = answerer.answer(frames, prompt)  # one generate call: first-step logits + reply
    only = _sharing_the_model(answerer, scoring="likelihood")  # one forward pass, no reply
    forward = only.answer(frames, prompt)
    assert forward.reply is None and forward.choice is None
    assert forward.likelihood_choice == both.likelihood_choice
    for letter in "ABC":
        assert forward.letter_logprobs[letter] == pytest.approx(
            both.letter_logprobs[letter], abs=1e-4
        )
    # Reference: softmax over the vocabulary at the last prompt position, summed over the
    # single-token spellings "A" and " A" (a byte-level BPE always has "A"; " A" may be two).
    _, batch = answerer.inputs(frames, prompt.text)
    with torch.no_grad():
        logprobs = torch.log_softmax(answerer.model(**batch).logits[0, -1].float(), dim=-1)
    tokenizer = answerer.tokenizer
    for letter in "ABC":
        encoded = [
            tokenizer(s, add_special_tokens=False)["input_ids"] for s in (letter, f" {letter}")
        ]
        ids = {e[0] for e in encoded if len(e) == 1}
        assert ids
        expected = float(torch.logsumexp(logprobs[sorted(ids)], dim=0))
        assert forward.letter_logprobs[letter] == pytest.approx(expected, abs=1e-4)
    best = max("ABC", key=lambda letter: forward.letter_logprobs[letter])
    assert forward.likelihood_choice == best


def test_options_scoring_picks_the_likeliest_option_text_after_the_open_question(answerer, clip):
    frames = sample_candidates(clip.path, 3, size=48).frames
    prompt = build_prompt("What appears?", ["the red circle", "the blue bar", "3"])
    assert prompt.open_text == build_prompt("What appears?").text
    scorer = _sharing_the_model(answerer, scoring="options")
    result = scorer.answer(frames, prompt)
    # The question is asked open-ended (no lettered options), nothing is generated.
    assert result.prompt.endswith(f"{prompt.open_text}<|im_end|>\n<|im_start|>assistant\n")
    assert "A. the red circle" not in result.prompt
    assert result.reply is None and result.choice is None
    expected = {
        letter: answerer.loglikelihood(frames, prompt.open_text, text).logprob
        for letter, text in zip(prompt.letters, prompt.options, strict=True)
    }
    assert result.letter_logprobs == pytest.approx(expected, abs=1e-4)
    assert result.likelihood_choice == max(expected, key=expected.get)
    # Open-ended questions are still generated.
    assert scorer.answer(frames, build_prompt("What appears?")).reply is not None


def test_loglikelihood_extends_only_the_per_token_inputs(answerer, clip):
    """Qwen2-VL's pixel_values is [patches, 1176]: with a prompt of exactly 1176 tokens it must
    still be left alone; ids, attention mask and mm token types grow with the continuation."""
    import torch

    frames = sample_candidates(clip.path, 2, size=48).frames
    width = answerer.inputs(frames, "Q")[1]["pixel_values"].shape[1]
    words = width
    for _ in range(8):  # pad the context until the prompt has exactly `width` tokens
        context = "Q" + " a" * words
        _, batch = answerer.inputs(frames, context)
        if batch["input_ids"].shape[1] == width:
            break
        words += width - batch["input_ids"].shape[1]
    assert batch["input_ids"].shape[1] == width == batch["pixel_values"].shape[1]
    assert "mm_token_type_ids" in batch  # a per-token input besides ids and mask

    score = answerer.loglikelihood(frames, context, "B")

    cont = answerer.tokenizer("B", add_special_tokens=False)["input_ids"]
    tail = torch.tensor([cont])
    full = {**batch, "input_ids": torch.cat([batch["input_ids"], tail], dim=1)}
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    full["mm_token_type_ids"] = torch.cat(
        [batch["mm_token_type_ids"], torch.zeros_like(tail)], dim=1
    )
    with torch.no_grad():
        logits = answerer.model(**full).logits[0, width - 1 : width - 1 + len(cont)]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    expected = float(logprobs[torch.arange(len(cont)), torch.tensor(cont)].sum())
    assert score.num_tokens == len(cont)
    assert score.logprob == pytest.approx(expected, abs=1e-4)


# --- a whole eval run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qa_set(tmp_path_factory):
    """Two videos with known events, four questions (one open-ended), plus a missing video and
    a question whose gold answer names no option: both must fail on record."""
    root = tmp_path_factory.mktemp("qa-set")
    videos = root / "videos"
    first = write_video(videos / "a.mp4", num_frames=64, events=[Event(6, 20, "circle", "red")])
    second = write_video(videos / "b.mp4", num_frames=80, events=[Event(50, 70, "square", "blue")])
    rows = [
        {"video": "a.mp4", "question": first.events[0].question,
         "options": ["early", "late"], "answer": "A"},
        {"video": "a.mp4", "question": "What colour is the circle?", "answer": "red"},
        {"video": "b.mp4", "question": second.events[0].question,
         "options": ["early", "late", "never"], "answer": "1"},
        {"video": "b.mp4", "question": "Which shape appears?",
         "options": ["circle", "square"], "answer": "square"},
        {"video": "gone.mp4", "question": "Anything?", "options": ["x", "y"], "answer": "A"},
        {"video": "a.mp4", "question": "Which option?", "options": ["x", "y"], "answer": "F"},
    ]  # fmt: skip
    manifest = root / "qa.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"manifest": manifest, "videos": videos, "rows": rows}


@pytest.fixture(scope="module")
def eval_config(tiny_models, tmp_path_factory, vocab_size):
    similarity = build_tiny_similarity(
        tmp_path_factory.mktemp("qa-similarity") / "siglip", tiny_models["tokenizer"]
    )
    return {
        "num_candidates": N,
        "frame_size": 48,
        "ks": KS,
        "strategies": ["uniform", "selector:nms", "similarity:inverse_transform", "mllm:topk"],
        "scorers": {
            "selector": {"model": str(tiny_models["selector"])},
            "similarity": {"model": str(similarity)},
            "mllm": {
                "model": str(tiny_models["qwen2-vl"]),
                "backend_options": {"batch_size": 8},
                "top_logprobs": vocab_size,
                "force_top_logprobs": vocab_size,
            },
        },
        "answerer": {"model": str(tiny_models["qwen2-vl"]), "max_new_tokens": 3},
    }


def _answers(work) -> dict[tuple, dict]:
    db = sqlite3.connect(work / "run.sqlite")
    rows = db.execute(
        "SELECT item, fingerprint, status, payload, attempts, updated FROM eval_results "
        "WHERE stage = 'answer'"
    ).fetchall()
    db.close()
    return {(r[0], r[1]): {"status": r[2], "payload": json.loads(r[3]), "attempts": r[4],
                           "updated": r[5]} for r in rows}  # fmt: skip


@pytest.fixture(scope="module")
def first_run(qa_set, eval_config, tmp_path_factory):
    work = tmp_path_factory.mktemp("qa-work") / "work"
    summary = run_eval(
        EvalConfig.from_dict(eval_config),
        qa_set["manifest"],
        qa_set["videos"],
        work,
        progress=False,
    )
    return work, summary


def test_every_cell_is_answered_or_failed_on_record(first_run, qa_set):
    _, summary = first_run
    items, cells = len(qa_set["rows"]), len(qa_set["rows"]) * 4 * len(KS)
    assert (summary.items, summary.videos, summary.cells) == (items, 3, cells)
    # the missing video and the bad gold answer fail every one of their cells; the run goes on
    assert summary.failed == 2 * 4 * len(KS) and summary.computed == cells - summary.failed
    report = summary.report
    errors = {f["error"] for f in report.failures}
    assert any("video gone.mp4: VideoError" in e and "no such file" in e for e in errors)
    assert any("bad item" in e and "answer 'F' is not an option letter" in e for e in errors)
    for row in report.rows:
        assert (row.done, row.failed, row.pending) == (4, 2, 0)
        assert row.multiple_choice == 3  # the open-ended question is generated only
        assert 0.0 <= row.accuracy <= 1.0 and 0.0 <= row.acc_likelihood <= 1.0
        assert row.answer_seconds > 0 and row.decode_seconds > 0
        if row.strategy == "uniform":
            assert row.selection_calls is None and row.delta_vs_uniform is None
        else:
            assert row.selection_seconds > 0 and row.selection_calls >= 1
            assert row.delta_vs_uniform == pytest.approx(
                row.accuracy - report.row("uniform", row.k).accuracy
            )
    assert report.row("selector:nms", 2).selection_calls == 1
    assert report.row("mllm:topk", 2).selection_calls >= N  # one M-LLM request per frame


def test_answers_record_the_frames_and_the_exact_prompt(first_run, qa_set, tiny_models):
    from transformers import AutoModel

    work, summary = first_run
    items = {item.sample_id: item for item in read_manifest(qa_set["manifest"])}
    selector = AutoModel.from_pretrained(tiny_models["selector"]).eval()
    answers = [a for a in _answers(work).values() if a["status"] == "done"]
    assert len(answers) == summary.computed
    for answer in answers:
        p = answer["payload"]
        item = next(
            i for i in items.values() if build_prompt(i.question, i.options).text == p["user_text"]
        )
        candidates = sample_candidates(qa_set["videos"] / item.video, N, size=48)
        positions = np.asarray(p["positions"])
        assert len(positions) == p["k"] == p["num_frames"]
        assert p["frame_indices"] == candidates.indices[positions].tolist()
        if p["strategy"] == "uniform":
            assert positions.tolist() == select(np.zeros(N), p["k"], "uniform").tolist()
        if p["strategy"] == "selector:nms":
            # the same n candidates, scored once and picked by NMS for each k
            expected = selector.select_frames(
                candidates, item.question, k=p["k"], options=list(item.options) or None
            )
            assert positions.tolist() == expected.positions.tolist()
        assert p["prompt"].count("<|image_pad|>") == p["k"] and p["user_text"] in p["prompt"]
        assert p["gold"] == gold_answer(item.answer, item.options)
        if p["multiple_choice"]:
            assert p["correct_likelihood"] == (p["likelihood_choice"] == p["gold"])
            assert p["correct_generate"] == (p["choice"] == p["gold"])
            assert p["unparsed"] == (p["choice"] is None)
    strategies = {a["payload"]["strategy"] for a in answers}
    assert strategies == {"uniform", "selector:nms", "similarity:inverse_transform", "mllm:topk"}


def test_uniform_is_charged_for_decoding_only_its_frames(first_run):
    work, _ = first_run
    with EvalStore(work, create=False) as store:
        fp = store.get_meta("eval")["fingerprints"]["candidates"]
        keys = [f"{v}#k={k}" for v in ("a.mp4", "b.mp4") for k in KS]
        records = store.get_results("uniform_decode", keys, fp)
    assert sorted(records) == sorted(keys)
    for key, record in records.items():
        k = int(key.rpartition("=")[2])
        assert record.ok and record.payload["frames_decoded"] == k
        assert record.payload["same_frames"] is True  # bit-identical to the candidates'


def test_a_rerun_computes_nothing_and_a_new_strategy_only_its_cells(first_run, qa_set, eval_config):
    work, _ = first_run
    before = _answers(work)
    with EvalStore(work, create=False) as store:
        scores_before = store.count_results("scores")
    again = run_eval(EvalConfig.from_dict(eval_config), qa_set["manifest"], qa_set["videos"], work,
                     progress=False)  # fmt: skip
    assert (again.computed, again.failed, again.cached) == (0, 0, again.cells)
    assert _answers(work) == before

    # selector:topk reuses the stored selector curves; nothing else is recomputed
    wider = {**eval_config, "strategies": [*eval_config["strategies"], "selector:topk"]}
    more = run_eval(EvalConfig.from_dict(wider), qa_set["manifest"], qa_set["videos"], work,
                    progress=False)  # fmt: skip
    items = len(qa_set["rows"])
    assert more.computed == 4 * len(KS) and more.failed == 2 * len(KS)
    assert more.cached == items * 4 * len(KS)
    after = _answers(work)
    assert {key: after[key] for key in before} == before  # untouched: same attempts and times
    with EvalStore(work, create=False) as store:
        assert store.count_results("scores") == scores_before
    topk = more.report.row("selector:topk", 2)
    assert topk.done == 4 and topk.selection_calls == 1

    # --retry-failed recomputes the failures (still failing) and nothing else
    retried = run_eval(EvalConfig.from_dict(wider), qa_set["manifest"], qa_set["videos"], work,
                       progress=False, retry_failed=True)  # fmt: skip
    assert retried.computed == 0 and retried.failed == 2 * 5 * len(KS)
    final = _answers(work)
    assert all(v["attempts"] == 2 for v in final.values() if v["status"] == "failed")
    assert all(v["attempts"] == 1 for v in final.values() if v["status"] == "done")


class _Interrupting(Answerer):
    """The real answerer, interrupted (like Ctrl-C) at its n-th answer."""

    def __init__(self, *args, stop_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.stop_at = 0, stop_at

    def answer(self, frames, prompt):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().answer(frames, prompt)


def test_an_interrupted_run_keeps_its_answers_and_resumes(qa_set, eval_config, tmp_path):
    config = EvalConfig.from_dict({**eval_config, "strategies": ["uniform", "selector:nms"]})
    work = tmp_path / "work"
    interrupted = _Interrupting(config.answerer, stop_at=6)
    with pytest.raises(KeyboardInterrupt):
        run_eval(config, qa_set["manifest"], qa_set["videos"], work, progress=False,
                 answerer=interrupted)  # fmt: skip
    kept = {k: v for k, v in _answers(work).items() if v["status"] == "done"}
    assert len(kept) == 5
    resumed = run_eval(config, qa_set["manifest"], qa_set["videos"], work, progress=False)
    assert resumed.computed == 4 * 2 * len(KS) - 5
    after = _answers(work)
    assert {k: after[k] for k in kept} == kept
    assert resumed.report.row("selector:nms", 4).done == 4


def test_models_retrained_in_place_are_not_served_from_the_cache(
    qa_set, eval_config, tiny_models, tmp_path
):
    """The cache keys hold what the model directories contain, not only their paths."""
    selector = shutil.copytree(tiny_models["selector"], tmp_path / "selector")
    model = shutil.copytree(tiny_models["qwen2-vl"], tmp_path / "qwen2-vl")
    config = EvalConfig.from_dict(
        {**eval_config, "strategies": ["uniform", "selector:nms"], "ks": [2], "limit": 1,
         "scorers": {"selector": {"model": str(selector)}},
         "answerer": {**eval_config["answerer"], "model": str(model)}}
    )  # fmt: skip
    work = tmp_path / "work"

    def run():
        return run_eval(config, qa_set["manifest"], qa_set["videos"], work, progress=False)

    assert run().computed == 2 and run().cached == 2  # computed, then served from the cache
    with EvalStore(work, create=False) as store:
        assert store.count_results("scores") == 1
    retrain_in_place(selector)
    again = run()
    assert (again.computed, again.cached) == (1, 1)  # the selector's cell; uniform's is cached
    with EvalStore(work, create=False) as store:
        assert store.count_results("scores") == 2  # the new selector scored the question anew
    retrain_in_place(model)
    assert run().computed == 2 and run().cached == 2  # a new answerer answers everything anew
    assert build_report(work).answerer["model_id"] == model_content_id(model)


def test_delta_vs_uniform_compares_the_questions_both_cells_answered(qa_set, eval_config, tmp_path):
    """An interrupted run leaves uniform with fewer answers than the selector: Δ must compare
    the two on their shared questions only, and say how many."""
    config = EvalConfig.from_dict(
        {**eval_config, "strategies": ["selector:nms", "uniform"], "ks": [2],
         "answerer": {**eval_config["answerer"], "scoring": "likelihood"}}
    )  # fmt: skip
    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        run_eval(config, qa_set["manifest"], qa_set["videos"], work, progress=False,
                 answerer=_Interrupting(config.answerer, stop_at=7))  # fmt: skip
    report = build_report(work, include_answers=True)
    correct = {
        strategy: {
            a["sample_id"]: a["correct_likelihood"]
            for a in report.answers
            if a["strategy"] == strategy and a["correct_likelihood"] is not None
        }
        for strategy in ("selector:nms", "uniform")
    }
    selector, uniform = correct["selector:nms"], correct["uniform"]
    shared = sorted(set(selector) & set(uniform))
    assert 0 < len(shared) == len(uniform) < len(selector)  # uniform was cut short
    row = report.row("selector:nms", 2)
    assert row.delta_questions == len(shared)
    assert row.delta_vs_uniform == pytest.approx(
        np.mean([selector[s] for s in shared]) - np.mean([uniform[s] for s in shared])
    )
    assert report.row("uniform", 2).delta_questions is None
    table = Console(width=200, record=True)
    table.print(render_table(report))
    lines = [x.split() for x in table.export_text().splitlines()]
    header = next(x for x in lines if x[:1] == ["strategy"])
    cells = next(x for x in lines if x[:1] == ["selector:nms"])
    assert header[4:6] == ["Δ", "N"] and cells[4] == f"{100 * row.delta_vs_uniform:+.1f}"
    assert cells[5] == str(len(shared))  # N is shown beside Δ


def test_answer_format_decides_numeric_golds_and_rescores_stored_answers(
    qa_set, eval_config, tmp_path
):
    """An ambiguous numeric answer fails its item (naming the question) under ``auto``; setting
    the format computes it without --retry-failed, and changing the format again re-scores the
    stored answer without asking the model."""
    manifest = tmp_path / "counts.jsonl"
    rows = [{"video": "a.mp4", "question": "How many circles appear?", "options": COUNTS,
             "answer": "2"}]  # fmt: skip
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    work = tmp_path / "work"
    base = {**eval_config, "strategies": ["uniform"], "ks": [2]}

    def run(answer_format):
        config = EvalConfig.from_dict({**base, "answer_format": answer_format})
        return run_eval(config, manifest, qa_set["videos"], work, progress=False)

    auto = run("auto")
    assert (auto.computed, auto.failed) == (0, 1)
    (error,) = [f["error"] for f in auto.report.failures]
    assert "'How many circles appear?'" in error and "'2' is ambiguous" in error
    by_index = run("index")
    assert (by_index.computed, by_index.failed) == (1, 0)
    (answer,) = _answers(work).values()
    assert answer["payload"]["gold"] == "C" and answer["attempts"] == 2
    by_text = run("text")
    assert (by_text.computed, by_text.failed, by_text.cached) == (0, 0, 1)
    (rescored,) = _answers(work).values()
    p = rescored["payload"]
    assert p["gold"] == "B" and p["correct_likelihood"] == (p["likelihood_choice"] == "B")
    assert p["correct_generate"] == (p["choice"] == "B")
    unchanged = {k: v for k, v in p.items() if not k.startswith("correct") and k != "gold"}
    assert unchanged == {
        k: v for k, v in answer["payload"].items() if not k.startswith("correct") and k != "gold"
    }  # the same reply and choices: the model was not asked again
    assert by_text.report.row("uniform", 2).acc_likelihood == float(p["correct_likelihood"])


def test_results_and_plots_are_written(first_run, tmp_path):
    work, _ = first_run
    report = build_report(work, include_answers=True)
    summary, answers = write_results(report, tmp_path / "results")
    data = json.loads(summary.read_text())
    assert data["prompts"]["multiple_choice"].startswith("{question}\n{options}")
    assert data["prompts"]["hash"] == prompt_hash()
    assert data["answerer"]["frames_as"] == "images"
    assert "strategies:" in data["config_yaml"]
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert len(lines) == sum(row.done for row in report.rows)
    assert all("<|im_start|>assistant" in line["prompt"] for line in lines)
    for path in plot_report(report, tmp_path / "results"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# --- config and store ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"ks": [4, 200], "strategies": ["uniform"]},
            r"every k must be at most num_candidates \(128\), got 200",
        ),
        ({"strategies": ["uniform", "uniform"]}, "lists a strategy twice"),
        (
            {"strategies": ["selector:nms"]},
            r"strategies use the 'selector' scorer: scorers.selector.model is required",
        ),
        (
            {"strategies": ["uniform"], "answerer": {"modle": "x"}},
            r"unknown config key\(s\) answerer.modle",
        ),
        (
            {"strategies": ["uniform"], "answerer": {"scoring": "vibes"}},
            "answerer.scoring must be one of",
        ),
        ({"strategies": ["uniform"], "scorers": {"clip": {}}}, r"unknown scorer\(s\) \['clip'\]"),
        ({"strategies": ["uniform"], "frames": 8}, r"unknown config key\(s\) frames"),
    ],
)
def test_bad_configs_name_the_key_and_the_rule(data, match):
    with pytest.raises(ValueError, match=match):
        EvalConfig.from_dict(data)


def test_config_overrides_and_yaml_round_trip(tmp_path):
    config = EvalConfig.load(
        None,
        ["strategies=[uniform, selector]", "scorers.selector.model=/models/sel", "ks=[16, 8, 8]",
         "answerer.dtype=bfloat16"],
    )  # fmt: skip
    assert config.strategies == ["uniform", "selector:nms"] and config.ks == [8, 16]
    assert config.answerer.dtype == "bfloat16"
    path = tmp_path / "eval.yaml"
    config.to_yaml(path)
    assert EvalConfig.load(path) == config
    with pytest.raises(ValueError, match="unknown key 'modle' in answerer"):
        EvalConfig.load(None, ["answerer.modle=x"])


def test_the_eval_store_refuses_a_label_run_and_a_second_writer(tmp_path):
    with RunStore(tmp_path / "labels") as labels:
        labels.put([Record("fused", "s1", "fp", "done", {})])
    with pytest.raises(ValueError, match="holds a label run, not an eval"):
        EvalStore(tmp_path / "labels")
    with pytest.raises(FileNotFoundError, match=r"holds no eval run.*framesel eval qa"):
        EvalStore(tmp_path / "nothing", create=False)
    with EvalStore(tmp_path / "eval") as first:
        first.lock()
        with (
            EvalStore(tmp_path / "eval") as second,
            pytest.raises(StoreLockedError, match="another eval run"),
        ):
            second.lock()


@pytest.mark.parametrize(
    ("scoring", "said"), [("likelihood", "option-letter"), ("options", "option-text")]
)
def test_the_report_says_what_its_likelihood_scored(scoring, said):
    report = EvalReport("w", 0, 0, "likelihood", [], answerer={"model": "m", "scoring": scoring})
    table = Console(width=400, record=True)
    table.print(render_table(report))
    assert f"lik: {said} likelihood" in " ".join(table.export_text().split())
