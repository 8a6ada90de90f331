"""Verifiers: `(prompt, completion, reference) -> VerifierResult`, shared by evaluation and RL training.

Plugins register them through `llmkit_register_verifiers`; `get_verifier(name)` finds one and
`verify(name, ...)` calls it and checks what it returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from .errors import InvalidParameterError, PluginError


@dataclasses.dataclass(frozen=True)
class VerifierResult:
    """A verdict on one completion: `score` in [0, 1] (a reward), `passed` its pass/fail reading."""

    passed: bool
    score: float
    detail: str = ""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.score) <= 1.0:
            raise InvalidParameterError(f"VerifierResult.score must be in [0, 1], got {self.score}")
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "passed", bool(self.passed))

    @classmethod
    def from_bool(cls, passed: bool, detail: str = "", **metadata: Any) -> VerifierResult:
        return cls(passed, 1.0 if passed else 0.0, detail, metadata)


class Verifier(Protocol):
    """The call convention every registered verifier follows."""

    def __call__(self, prompt: str, completion: str, reference: Any) -> VerifierResult: ...


def get_verifier(name: str) -> Verifier:
    """The verifier registered as `name` by any installed plugin."""
    from .plugins import registry

    verifier = registry("verifiers").get(name)
    if not callable(verifier):
        raise PluginError(f"verifier {name!r} ({registry('verifiers').owner(name)}) is not callable")
    return verifier


def verifier_names() -> list[str]:
    from .plugins import registry

    return registry("verifiers").names()


def verify(name: str, prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Run verifier `name`; a verifier that returns anything but a `VerifierResult` is a `PluginError`."""
    result = get_verifier(name)(prompt, completion, reference)
    if not isinstance(result, VerifierResult):
        from .plugins import registry

        raise PluginError(
            f"verifier {name!r} ({registry('verifiers').owner(name)}) returned {type(result).__name__}, "
            "expected VerifierResult"
        )
    return result
