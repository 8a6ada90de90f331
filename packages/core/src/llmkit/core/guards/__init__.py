"""Guards: a second layer that checks what goes into a model and what comes out, without trusting the model.

Plugins add guards through `llmkit_register_guards(register)`: `register(name, factory)`, where
`factory(**options) -> Guard`. Core ships `schema`, `regex`, `pii`, `prompt_injection` and `lm_policy`.
serve runs them per request; orchestrate on tool arguments and tool results (docs/safety.md)."""

from .base import (
    STAGES,
    Guard,
    Outcome,
    Span,
    Stage,
    Verdict,
    allow,
    check_all,
    check_messages,
    message_text,
    redact,
)
from .errors import GuardError
from .registry import load_guards_config, open_guard, parse_guard_spec

__all__ = [
    "STAGES",
    "Guard",
    "GuardError",
    "Outcome",
    "Span",
    "Stage",
    "Verdict",
    "allow",
    "check_all",
    "check_messages",
    "load_guards_config",
    "message_text",
    "open_guard",
    "parse_guard_spec",
    "redact",
]
