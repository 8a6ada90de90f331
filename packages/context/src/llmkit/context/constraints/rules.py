"""Rules that find constraints and preferences a user states in conversation, and corrections of them.

Each rule is a named regular expression over one sentence; the sentence is the constraint's wording.
The list is documented in docs/context.md ("Stated constraints"): extend it by passing `rules=`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Literal

Kind = Literal["constraint", "preference"]


@dataclasses.dataclass(frozen=True)
class Rule:
    """A named pattern: a sentence it matches states a `kind` (a constraint or a preference)."""

    name: str
    pattern: re.Pattern[str]
    kind: Kind


def _rule(name: str, pattern: str, kind: Kind = "constraint") -> Rule:
    return Rule(name, re.compile(pattern, re.IGNORECASE), kind)


# "never"/"always"/"don't" count only as instructions: at the start of a sentence or clause, after
# "please", "so", "and", "but", "you (must|should)", "must" -- not in "I never liked it" or "don't worry".
_LEAD = r"(?:^|[,;:(]\s*|\b(?:please|so|and|but|then|also|you|you must|you should|must|should)\s+)"
_NOT_INSTRUCTIONS = r"(?!worry\b|know\b|think\b|mind\b|care\b|understand\b|remember\b|get\b|see\b)"

DEFAULT_RULES: tuple[Rule, ...] = (
    _rule("allergy", r"\b(?:I am|I'm|I've been|I have been)\s+(?:\w+\s+)?allergic to\b|\bI have an? \w+ allergy\b"),
    _rule("cannot-consume", r"\bI (?:can't|cannot|can not|must not|mustn't) (?:eat|have|drink|take|tolerate)\b"),
    _rule(
        "diet",
        r"\b(?:I am|I'm)\s+(?:a\s+)?(?:strict\s+)?(?:vegetarian|vegan|pescatarian|diabetic|celiac|coeliac|"
        r"lactose[- ]intolerant|gluten[- ]intolerant|halal|kosher)\b|\bI keep (?:halal|kosher)\b",
    ),
    _rule("never", _LEAD + r"never\s+\w+"),
    _rule("always", _LEAD + r"always\s+\w+"),
    _rule("do-not", _LEAD + r"(?:don't|do not|dont)\s+" + _NOT_INSTRUCTIONS + r"\w+"),
    _rule("must", r"\byou (?:must|have to|need to)\s+(?:not\s+|never\s+|always\s+)?\w+"),
    _rule("make-sure", r"\bmake sure (?:to|that|you)\b"),
    _rule("from-now-on", r"\bfrom now on\b"),
    _rule("prefer", r"\bI(?: would|'d)? (?:really |much )?prefer\b|\bI(?: would|'d) rather\b", "preference"),
    _rule(
        "dislike",
        r"\bI (?:really )?(?:hate|dislike|can't stand|don't like|do not like|don't eat|do not eat)\b",
        "preference",
    ),
    _rule("favourite", r"\bmy (?:favourite|favorite)\b", "preference"),
)

# A sentence that takes back or changes something said before. It supersedes the active constraint it
# shares the most content words with (see `supersedes`); with no such constraint it corrects nothing.
CORRECTION = re.compile(
    r"\bactually\b|\bno longer\b|\bany ?more\b|\bchanged my mind\b|\bscratch that\b"
    r"|\bignore what I said\b|\bforget (?:what I said|that|about)\b|\binstead\b|\bturns out\b"
    r"|\b(?:is|are) (?:fine|ok|okay|allowed|back on the menu) now\b|\bnow (?:fine|ok|okay|allowed)\b"
    r"|\bI can (?:eat|have|drink) \w+(?: \w+)? now\b|\bfrom now on\b",
    re.IGNORECASE,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The sentences of a message (split after . ! ? and at line breaks), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclasses.dataclass(frozen=True)
class Detection:
    """One stated constraint or correction: its wording (a sentence of the message) and what found it."""

    text: str
    kind: Kind
    source: str  # "rules:<rule name>" or "lm"
    is_correction: bool = False
    corrects: str | None = None  # the earlier constraint it takes back, when the detector names it


@dataclasses.dataclass
class RuleDetector:
    """Find constraints, preferences and corrections sentence by sentence with `rules` (no model needed)."""

    rules: Sequence[Rule] = DEFAULT_RULES
    name: str = "rules"

    def detect(self, text: str, active: Sequence[str] = ()) -> list[Detection]:
        found = []
        for sentence in sentences(text):
            rule = next((r for r in self.rules if r.pattern.search(sentence)), None)
            correction = CORRECTION.search(sentence) is not None
            if rule is not None or correction:
                kind = rule.kind if rule is not None else "constraint"
                source = f"rules:{rule.name}" if rule is not None else "rules:correction"
                found.append(Detection(sentence, kind, source, is_correction=correction))
        return found
