"""llmkit-train's built-in verifiers (registered through `llmkit_register_verifiers`) and RL rewards."""

from .answers import answer_match_verifier, marked_answer, math_answer_verifier, parse_number
from .code import code_tests_verifier, extract_code
from .rewards import VerifierRewards, prompt_text

BUILTIN_VERIFIERS = {
    "math_answer": math_answer_verifier,
    "answer_match": answer_match_verifier,
    "code_tests": code_tests_verifier,
}

__all__ = [
    "BUILTIN_VERIFIERS",
    "VerifierRewards",
    "answer_match_verifier",
    "code_tests_verifier",
    "extract_code",
    "marked_answer",
    "math_answer_verifier",
    "parse_number",
    "prompt_text",
]
