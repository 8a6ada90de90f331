"""`regex` and `pii` guards: patterns over text, each hit blocked or redacted.

`pii` knows emails, phone numbers, payment cards (digits that pass the Luhn check), IBANs (that pass the mod-97
check) and API-key shapes (OpenAI, AWS, GitHub, Slack, Google, Stripe, bearer tokens). Checksums keep order
numbers and other long digit runs from counting as cards or IBANs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .base import Span, Stage, Verdict, allow, parse_stages
from .errors import GuardError

ALL_STAGES: frozenset[Stage] = frozenset({"input", "output", "tool_arguments", "tool_result"})
DEFAULT_WINDOW = 64  # characters a streamed pattern hit may span; streaming holds back this many


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a payment card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the country code and check digits to the end, letters to numbers, mod 97 == 1."""
    compact = re.sub(r"\s", "", text).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    if _ISO_DATE.fullmatch(match):
        return False
    return 8 <= len(digits) <= 15 and not (len(digits) >= 13 and luhn_valid(digits))


# label -> (pattern, extra check on the matched text or None)
PII_PATTERNS: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None]] = {
    "email": (re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), None),
    "credit_card": (re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), _card_ok),
    "iban": (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_valid),
    "api_key": (
        re.compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
            r"|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})"
            r"|(?i:bearer\s+)[A-Za-z0-9._~+/-]{20,}=*"
        ),
        None,
    ),
    "phone": (
        re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,6}){1,4}(?![\w-])"),
        _phone_ok,
    ),
}


class PatternGuard:
    """Named patterns; a hit blocks (`action="block"`) or is replaced by its label (`action="redact"`)."""

    def __init__(
        self,
        name: str,
        patterns: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None]],
        action: str = "redact",
        stages: str | Iterable[str] | None = None,
        category: str = "pii",
        window: int = DEFAULT_WINDOW,
    ):
        if action not in ("block", "redact"):
            raise GuardError(f"guard {name!r}: action must be 'block' or 'redact', got {action!r}")
        self.name, self.patterns, self.action, self.category = name, patterns, action, category
        self.stages = parse_stages(stages, ALL_STAGES)
        self.stream_window = int(window)

    def spans(self, text: str) -> list[Span]:
        """Hits in pattern order; a hit overlapping an earlier pattern's (the digits of an IBAN, which also
        look like a phone number) is left out."""
        found: list[Span] = []
        for label, (pattern, accept) in self.patterns.items():
            for match in pattern.finditer(text):
                overlaps = any(s.start < match.end() and match.start() < s.end for s in found)
                if not overlaps and (accept is None or accept(match.group(0))):
                    found.append(Span(match.start(), match.end(), label))
        return found

    def check(self, text: str, stage: Stage) -> Verdict:
        spans = self.spans(text)
        if not spans:
            return allow(self.name)
        labels = sorted({s.label for s in spans})
        reason = f"found {', '.join(labels)}"
        return Verdict(self.action, self.name, reason, self.category, tuple(spans))  # type: ignore[arg-type]


def pii_guard(
    action: str = "redact", kinds: str | None = None, stages: str | None = None, window: int = DEFAULT_WINDOW
) -> PatternGuard:
    """The `pii` guard; `kinds` ("email+credit_card") picks some of the patterns (default: all)."""
    chosen = list(PII_PATTERNS) if kinds is None else kinds.replace(",", "+").split("+")
    unknown = [k for k in chosen if k not in PII_PATTERNS]
    if unknown:
        raise GuardError(f"guard 'pii': unknown kinds {unknown}; known: {', '.join(PII_PATTERNS)}")
    return PatternGuard("pii", {k: PII_PATTERNS[k] for k in chosen}, action, stages, "pii", window)


def regex_guard(
    pattern: str,
    action: str = "block",
    label: str = "match",
    category: str = "regex",
    stages: str | None = None,
    window: int = DEFAULT_WINDOW,
    ignore_case: bool = False,
) -> PatternGuard:
    """The `regex` guard: one pattern of your own."""
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case in (True, "true", "1", "yes") else 0)
    except re.error as err:
        raise GuardError(f"guard 'regex': invalid pattern {pattern!r}: {err}") from None
    return PatternGuard("regex", {label: (compiled, None)}, action, stages, category, window)
