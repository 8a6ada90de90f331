"""eval's built-in verifiers (registered through `llmkit_register_verifiers`, shared with llmkit-train)."""

from __future__ import annotations

from typing import Any

from llmkit.core.verifiers import VerifierResult

from .scoring.extraction import marked_or_last_number, normalize_number, normalize_text


def exact_match_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Passes when the completion equals the reference after SQuAD normalization (case, punctuation, articles)."""
    got, want = normalize_text(completion), normalize_text(str(reference))
    return VerifierResult.from_bool(got == want, f"{got!r} vs {want!r}")


def numeric_match_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Passes when the completion's final number ('The answer is N', '#### N' or the last number) equals the reference."""
    extracted = marked_or_last_number(completion)
    got = normalize_number(extracted) if extracted is not None else None
    want = normalize_number(str(reference))
    return VerifierResult.from_bool(got is not None and got == want, f"{got!r} vs {want!r}")
