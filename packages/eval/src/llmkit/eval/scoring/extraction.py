"""Pull the answer out of generated text, and normalize answers before comparing them."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from llmkit.core.scaling.answers import normalize_number

from ..errors import EvalError

_NUMBER = re.compile(r"-?[$]?\d[\d,]*(?:\.\d+)?")
_ANSWER_IS = re.compile(r"(?:answer is|answer:|####)\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

Extractor = Callable[[str], str | None]


def last_number(text: str) -> str | None:
    """The last number in the text (commas and $ allowed), as written."""
    found = _NUMBER.findall(text)
    return found[-1] if found else None


def marked_number(text: str) -> str | None:
    """GSM8K strict extraction: the number after 'The answer is' or '####' (first such mark)."""
    match = _ANSWER_IS.search(text)
    return match.group(1) if match else None


def marked_or_last_number(text: str) -> str | None:
    """GSM8K flexible extraction: the marked answer if there is one, else the last number."""
    return marked_number(text) or last_number(text)


def first_line(text: str) -> str | None:
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def choice_letter(text: str) -> str | None:
    """A multiple-choice letter: 'answer is X' first, else the first standalone capital A-J."""
    match = re.search(r"answer is\s*\(?([A-J])\b", text) or re.search(r"\b([A-J])\b", text)
    return match.group(1) if match else None


def regex_extractor(pattern: str, group: int = 1) -> Extractor:
    """The given group of the last match of `pattern`."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise EvalError(f"bad extraction regex {pattern!r}: {err}") from None

    def extract(text: str) -> str | None:
        matches = list(compiled.finditer(text))
        return matches[-1].group(group) if matches else None

    return extract


EXTRACTORS: dict[str, Extractor] = {
    "none": lambda text: text,
    "strip": lambda text: text.strip(),
    "first_line": first_line,
    "last_number": last_number,
    "marked_number": marked_number,
    "marked_or_last_number": marked_or_last_number,
    "choice_letter": choice_letter,
}


def extractor(name: str) -> Extractor:
    """An extractor by name, or `regex:PATTERN`."""
    if name.startswith("regex:"):
        return regex_extractor(name[len("regex:") :])
    if name not in EXTRACTORS:
        raise EvalError(f"unknown answer extractor {name!r}; known: {', '.join(EXTRACTORS)}, regex:PATTERN")
    return EXTRACTORS[name]


def normalize_text(text: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    "exact": lambda text: text,
    "strip": lambda text: text.strip(),
    "text": normalize_text,
    "number": normalize_number,
}


def normalizer(name: str) -> Callable[[str], str | None]:
    if name not in NORMALIZERS:
        raise EvalError(f"unknown answer normalization {name!r}; known: {', '.join(NORMALIZERS)}")
    return NORMALIZERS[name]
