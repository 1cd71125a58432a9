"""The downstream QA prompts, the gold answer of an item, and reading a model's reply.

Multiple choice uses lmms-eval's LongVideoBench / NExT-QA prompt (the question, one lettered
option per line, then "Answer with the option's letter from the given choices directly."), so
numbers are comparable with lmms-eval runs; open-ended questions ask for a short phrase. The
templates and their hash are recorded with every eval run, and every answer record keeps the
exact rendered prompt.

Gold answers: a manifest's ``answer`` may be the option's letter (``"B"``), its 0-based index
(``"1"``, as NExT-QA and LongVideoBench store it) or its text; `gold_answer` resolves all three
to a letter and fails with a message naming the options when it cannot. Where options are
numbers a digit can be both an index and an option's text: ``answer_format`` says which the
dataset means, and the default (``auto``) refuses to guess when the two readings disagree.

Example:
    >>> prompt = build_prompt("What is cut?", ["bread", "cheese"])
    >>> print(prompt.text)
    What is cut?
    A. bread
    B. cheese
    Answer with the option's letter from the given choices directly.
    >>> parse_choice("The answer is (B).", prompt.letters)
    'B'
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from fslabels._hashing import stable_hash

__all__ = [
    "ANSWER_FORMATS",
    "MC_TEMPLATE",
    "OPEN_TEMPLATE",
    "Prompt",
    "build_prompt",
    "gold_answer",
    "match_open_answer",
    "normalise_answer",
    "option_text",
    "parse_choice",
    "prompt_hash",
]

MC_TEMPLATE = (
    "{question}\n{options}\nAnswer with the option's letter from the given choices directly."
)
OPEN_TEMPLATE = "{question}\nAnswer the question using a single word or phrase."
OPTION_TEMPLATE = "{letter}. {text}"
LETTERS = string.ascii_uppercase
# How a manifest's multiple-choice ``answer`` names the option (see `gold_answer`).
ANSWER_FORMATS = ("auto", "letter", "index", "text")

# "A. text", "(A) text", "A) text", "A: text": a label the manifest already carries.
_LABELLED = re.compile(r"^\s*\(?([A-Za-z])[.):]\s*")
# Phrases replies put before the letter (lmms-eval's list, so parsing agrees with its tasks).
_ANSWER_PREFIXES = (
    "the best answer is",
    "the correct answer is",
    "the answer is",
    "the answer",
    "the best option is",
    "the correct option is",
    "best answer:",
    "best option:",
    "answer:",
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def prompt_hash() -> str:
    """Hash of the prompt templates (16 hex chars): part of every answer's cache key."""
    return stable_hash(
        {"mc": MC_TEMPLATE, "open": OPEN_TEMPLATE, "option": OPTION_TEMPLATE, "parse": "v1"}
    )


def option_text(option: str) -> str:
    """An option without a label it already carries (``"A. bread"`` → ``"bread"``)."""
    return _LABELLED.sub("", option, count=1).strip()


@dataclass(frozen=True)
class Prompt:
    """The user text for one question.

    Attributes:
        text: what the downstream model reads after the frames.
        letters: the option letters (``("A", "B", ...)``; empty for open-ended questions).
        options: the options' texts, without labels.
        open_text: the question asked open-ended, without its options (what option-text
            scoring reads before each option; equal to ``text`` for open-ended questions).
    """

    text: str
    letters: tuple[str, ...]
    options: tuple[str, ...]
    open_text: str = ""

    @property
    def multiple_choice(self) -> bool:
        return bool(self.letters)


def build_prompt(question: str, options: Sequence[str] = ()) -> Prompt:
    """The prompt for a question (multiple choice when it has options).

    Raises:
        ValueError: an empty question, more than 26 options, or an empty option.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    texts = tuple(option_text(o) for o in options)
    if len(texts) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options are supported, got {len(texts)}")
    if any(not t for t in texts):
        raise ValueError(f"options must be non-empty, got {list(options)!r}")
    open_text = OPEN_TEMPLATE.format(question=question.strip())
    if not texts:
        return Prompt(open_text, (), (), open_text)
    letters = tuple(LETTERS[: len(texts)])
    lines = "\n".join(
        OPTION_TEMPLATE.format(letter=letter, text=text)
        for letter, text in zip(letters, texts, strict=True)
    )
    text = MC_TEMPLATE.format(question=question.strip(), options=lines)
    return Prompt(text, letters, texts, open_text)


def gold_answer(answer: str, options: Sequence[str] = (), answer_format: str = "auto") -> str:
    """The gold answer: an option letter for multiple choice, the text for open-ended.

    A multiple-choice ``answer`` is read as ``answer_format`` says:

    - ``letter``: the option's letter (``"B"``, ``"(B)"``, ``"B."``);
    - ``index``: its 0-based index (``"1"``, as NExT-QA and LongVideoBench store it);
    - ``text``: its text (case and spaces ignored);
    - ``auto`` (default): a letter, else every reading that applies (index, text). When a
      number is both a valid index and exactly one option's text and the two name different
      options (``"2"`` among the options ``1, 2, 3, 4``: index → C, text → B), nothing is
      guessed: it raises, and the dataset's format must be set (``answer_format: index`` for
      NExT-QA and LongVideoBench). Readings that agree, or a number that is only one of the
      two (``"4"`` among ``1, 2, 3, 4`` is text: there is no index 4), are not ambiguous.

    Raises:
        ValueError: an empty answer, an unknown ``answer_format``, an answer that names no
            option in that format (the options are listed), or an ambiguous one (``auto``).

    Example:
        >>> gold_answer("1", ["bread", "cheese"]), gold_answer("cheese", ["bread", "cheese"])
        ('B', 'B')
        >>> gold_answer("2", ["1", "2", "3", "4"], "text"), gold_answer("4", ["1", "2", "3", "4"])
        ('B', 'D')
    """
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    text = str(answer).strip()
    if not text:
        raise ValueError("the item has no answer (the manifest's 'answer' is empty)")
    if not options:
        return text
    texts = [option_text(o) for o in options]
    letters = LETTERS[: len(texts)]
    shown = ", ".join(f"{letter}. {t}" for letter, t in zip(letters, texts, strict=True))
    readings: dict[str, str] = {}  # how the answer reads -> the letter it names
    if answer_format in ("auto", "letter"):
        bare = text.strip("().: ").upper()
        if len(bare) == 1 and bare in letters:
            return bare
    if answer_format in ("auto", "index") and text.isdigit() and int(text) < len(texts):
        readings["index"] = letters[int(text)]
    if answer_format in ("auto", "text"):
        wanted = " ".join(text.lower().split())
        named = [letters[i] for i, t in enumerate(texts) if " ".join(t.lower().split()) == wanted]
        if len(named) == 1:
            readings["text"] = named[0]
    if len(set(readings.values())) == 1:
        return next(iter(readings.values()))
    if readings:
        raise ValueError(
            f"answer {text!r} is ambiguous: as a 0-based index it names {readings['index']}, as "
            f"an option's text {readings['text']} ({shown}); set answer_format to 'index' or "
            "'text' (the dataset's convention) instead of 'auto'"
        )
    if answer_format in ("auto", "index") and text.isdigit():
        raise ValueError(
            f"answer {text!r} is read as a 0-based option index, but there are only {len(texts)} "
            f"options ({shown})"
        )
    wanted_as = {
        "auto": "an option letter, a 0-based index or the text of exactly one option",
        "letter": "an option letter (answer_format: letter)",
        "index": "a 0-based option index (answer_format: index)",
        "text": "the text of exactly one option (answer_format: text)",
    }[answer_format]
    raise ValueError(f"answer {text!r} is not {wanted_as} ({shown})")


def parse_choice(reply: str, letters: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The option letter a generated reply chose, or ``None`` if it names none.

    A standalone letter among ``letters`` wins (after dropping phrases such as "The answer
    is"); otherwise the reply naming exactly one option's text. Unlike lmms-eval's
    LongVideoBench task, an unreadable reply is never replaced by a random letter: it counts
    as wrong and is reported as unparsed.

    Example:
        >>> parse_choice("B. cheese", "ABCD"), parse_choice("I think it is cheese", "AB", ["bread", "cheese"])
        ('B', 'B')
    """
    text = reply.strip()
    lowered = text.lower()
    for prefix in _ANSWER_PREFIXES:
        at = lowered.find(prefix)
        if at >= 0:
            text = text[:at] + text[at + len(prefix) :]
            lowered = text.lower()
    allowed = "".join(letters)
    if allowed:
        match = re.search(rf"(?<![A-Za-z])([{re.escape(allowed)}])(?![A-Za-z])", text)
        if match:
            return match.group(1)
    if options:
        named = [
            letters[i]
            for i, option in enumerate(options)
            if option and re.search(rf"\b{re.escape(option.lower())}\b", lowered)
        ]
        if len(named) == 1:
            return named[0]
    return None


def normalise_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style)."""
    text = _PUNCTUATION.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def match_open_answer(reply: str, gold: str) -> bool:
    """An open-ended reply is right when, normalised, it equals the gold answer or contains it
    as whole words."""
    got, want = normalise_answer(reply), normalise_answer(gold)
    if not want:
        return False
    return got == want or f" {want} " in f" {got} "
