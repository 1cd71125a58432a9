"""The downstream QA prompts, the gold answer of an item, and reading a model's reply.

Multiple choice uses lmms-eval's LongVideoBench / NExT-QA prompt (the question, one lettered
option per line, then "Answer with the option's letter from the given choices directly."), so
numbers are comparable with lmms-eval runs; open-ended questions ask for a short phrase. The
templates and their hash are recorded with every eval run, and every answer record keeps the
exact rendered prompt.

Gold answers: a manifest's ``answer`` may be the option's letter (``"B"``), its 0-based index
(``"1"``, as NExT-QA and LongVideoBench store it) or its text; `gold_answer` resolves all three
to a letter and fails with a message naming the item when it cannot.

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
    """

    text: str
    letters: tuple[str, ...]
    options: tuple[str, ...]

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
    if not texts:
        return Prompt(OPEN_TEMPLATE.format(question=question.strip()), (), ())
    letters = tuple(LETTERS[: len(texts)])
    lines = "\n".join(
        OPTION_TEMPLATE.format(letter=letter, text=text)
        for letter, text in zip(letters, texts, strict=True)
    )
    return Prompt(MC_TEMPLATE.format(question=question.strip(), options=lines), letters, texts)


def gold_answer(answer: str, options: Sequence[str] = ()) -> str:
    """The gold answer: an option letter for multiple choice, the text for open-ended.

    A multiple-choice ``answer`` may be the letter (``"B"``, ``"(B)"``, ``"B."``), the option's
    0-based index (``"1"``) or the option's text (case and spaces ignored).

    Raises:
        ValueError: an empty answer, or one that names no option (the options are listed).

    Example:
        >>> gold_answer("1", ["bread", "cheese"]), gold_answer("cheese", ["bread", "cheese"])
        ('B', 'B')
    """
    text = str(answer).strip()
    if not text:
        raise ValueError("the item has no answer (the manifest's 'answer' is empty)")
    if not options:
        return text
    texts = [option_text(o) for o in options]
    letters = LETTERS[: len(texts)]
    bare = text.strip("().: ").upper()
    if len(bare) == 1 and bare in letters:
        return bare
    if text.isdigit():
        if int(text) < len(texts):
            return letters[int(text)]
        raise ValueError(
            f"answer {text!r} is read as a 0-based option index, but there are only {len(texts)} "
            f"options"
        )
    wanted = " ".join(text.lower().split())
    matches = [letters[i] for i, t in enumerate(texts) if " ".join(t.lower().split()) == wanted]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(f"{letter}. {t}" for letter, t in zip(letters, texts, strict=True))
    raise ValueError(
        f"answer {text!r} is not an option letter, a 0-based index or the text of exactly one "
        f"option ({shown})"
    )


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
