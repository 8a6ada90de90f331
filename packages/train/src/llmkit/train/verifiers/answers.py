"""Final-answer verifiers for RL rewards: `math_answer` (numeric, from \\boxed{} or ####) and `answer_match`.

Both read only an explicitly marked final answer (or, for answer_match, the whole reply), never "the
last number anywhere": a policy under RL learns to exploit lenient extraction, e.g. by listing numbers.
"""

from __future__ import annotations

import re
import string
from fractions import Fraction
from typing import Any

from llmkit.core.verifiers import VerifierResult

_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*([^\n]*)", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    index = text.index("{", start) + 1
    depth, begin = 1, index
    while index < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        index += 1
    return text[begin : index - 1].strip() if depth == 0 else None


def marked_answer(text: str) -> str | None:
    """The final answer a reply marks: \\boxed{...}, else the text after the last '####'."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    found = _HASHES.findall(text)
    return found[-1].strip() if found else None


def parse_number(text: str) -> Fraction | None:
    """'1,234', '$12.50', '-3/4', '\\frac{3}{4}', '50%' -> an exact Fraction; None when not a number."""
    cleaned = _LATEX_FRACTION.sub(r"(\1)/(\2)", text)
    for token in ("$", "\\$", ",", "\\!", "\\,", "{", "}", " ", "\\text", "\\left", "\\right"):
        cleaned = cleaned.replace(token, "")
    cleaned = cleaned.strip().rstrip(".").replace("(", "").replace(")", "")
    percent = cleaned.endswith("%") or cleaned.endswith("\\%")
    cleaned = cleaned.removesuffix("\\%").removesuffix("%")
    try:
        if cleaned.count("/") == 1:
            numerator, denominator = cleaned.split("/")
            value = Fraction(numerator) / Fraction(denominator)
        else:
            value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def _reference_text(reference: Any) -> str:
    """A reference given in GSM8K form ('... #### 42') or boxed is reduced to its answer."""
    text = str(reference)
    return (marked_answer(text) or text) if ("####" in text or "\\boxed" in text) else text


def math_answer_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Passes when the marked final answer (\\boxed{} or ####) equals the reference: exactly as numbers when
    both parse (commas, $, %, fractions, \\frac), else as whitespace-free text."""
    answer = marked_answer(completion)
    if answer is None:
        return VerifierResult.from_bool(False, "no marked final answer (\\boxed{...} or #### ...)")
    want = _reference_text(reference).strip()
    got_number, want_number = parse_number(answer), parse_number(want)
    if got_number is not None and want_number is not None:
        return VerifierResult.from_bool(got_number == want_number, f"{answer!r} vs {want!r}", answer=answer)
    same = re.sub(r"\s+", "", answer).rstrip(".") == re.sub(r"\s+", "", want).rstrip(".")
    return VerifierResult.from_bool(same, f"{answer!r} vs {want!r}", answer=answer)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_match_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Passes when the reply's final answer (\\boxed{}, ####, 'answer: X' / 'the answer is X', else the whole
    reply) equals the reference, or any of a list of references, after normalization."""
    answer = marked_answer(completion)
    if answer is None:
        found = _ANSWER_IS.findall(completion)
        answer = found[-1] if found else completion
    accepted = reference if isinstance(reference, list | tuple) else [reference]
    got = normalize_answer(answer)
    for candidate in accepted:
        if got == normalize_answer(str(candidate)):
            return VerifierResult.from_bool(True, f"{got!r} matches", answer=answer)
    return VerifierResult.from_bool(False, f"{got!r} vs {[normalize_answer(str(c)) for c in accepted]}", answer=answer)
