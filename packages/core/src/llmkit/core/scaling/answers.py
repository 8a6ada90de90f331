"""Answer extractors per task kind: the part of a sample that votes (a number, a choice letter, code, a string)."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import InvalidParameterError

AnswerExtractor = Callable[[str], str | None]

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_MARKED_NUMBER = re.compile(r"(?:answer is|answer:|####|\\boxed\{)\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_MARKED_CHOICE = re.compile(r"answer(?: is|:)?\s*\(?([A-J])\b")
_CHOICE = re.compile(r"\b([A-J])\b")
_CODE_BLOCK = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)(?:```|$)", re.S)


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5', '7.0' -> '7'; None when the text is not a number."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return str(int(value)) if value == int(value) else repr(value)


def number_answer(text: str) -> str | None:
    """Math: the marked answer ('The answer is', '####', \\boxed{) if any, else the last number; normalized."""
    marked = _MARKED_NUMBER.search(text)
    found = marked.group(1) if marked else (_NUMBER.findall(text) or [None])[-1]
    return normalize_number(found) if found is not None else None


def choice_answer(text: str) -> str | None:
    """Multiple choice: the letter after 'answer is', else the first standalone capital A-J."""
    match = _MARKED_CHOICE.search(text) or _CHOICE.search(text)
    return match.group(1) if match else None


def code_answer(text: str) -> str | None:
    """Code: the first fenced block (or the whole text), with blank lines, comments and trailing spaces
    dropped, so samples that differ only in layout vote together."""
    match = _CODE_BLOCK.search(text)
    code = match.group(1) if match else text
    lines = [line.rstrip() for line in code.splitlines()]
    kept = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    return "\n".join(kept) or None


def exact_answer(text: str) -> str | None:
    """Exact string: stripped, case-folded, single spaces, a trailing period dropped."""
    cleaned = " ".join(text.split()).rstrip(".").casefold()
    return cleaned or None


ANSWER_KINDS: dict[str, AnswerExtractor] = {
    "number": number_answer,
    "choice": choice_answer,
    "code": code_answer,
    "exact": exact_answer,
}


def answer_extractor(kind: str | AnswerExtractor) -> AnswerExtractor:
    """The extractor for a task kind (number, choice, code, exact), or the callable itself."""
    if callable(kind):
        return kind
    if kind not in ANSWER_KINDS:
        raise InvalidParameterError(f"unknown answer kind {kind!r}; known: {', '.join(ANSWER_KINDS)}")
    return ANSWER_KINDS[kind]
