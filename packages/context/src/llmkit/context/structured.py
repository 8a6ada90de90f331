"""Structured output from any backend: a pydantic instance from a chat, validated, retried with the error.

Two `StructuredGenerator`s: `ConstrainedJSON` asks the backend for grammar-constrained decoding of the
schema (backends whose `supports_structured` is True, e.g. llmkit-serve's engine, take `structured=` in
`chat`), so the reply is valid JSON by construction; `PromptedJSON` asks for JSON in the prompt and
retries with the validation error. `json_generator(backend)` picks the first where the backend can
constrain and says so (a `PromptedJSONFallback` warning) when it cannot. Pydantic validates either way.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import StructuredOutput

from .errors import ContextError, StructuredOutputError

Model = TypeVar("Model", bound=BaseModel)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class StructuredGenerator(Protocol):
    """Produces an instance of `schema` for a conversation, or raises `StructuredOutputError`."""

    method: str  # how the JSON is obtained: "constrained" (grammar) or "prompted"

    def generate(self, messages: Sequence[Mapping[str, Any]], schema: type[Model]) -> Model: ...


def extract_json(text: str) -> str:
    """The JSON object in a reply: a code fence's body, else the span from the first '{' to the last '}'."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if start != -1 and end > start else text.strip()


def schema_instruction(schema: type[BaseModel]) -> str:
    return "Reply with one JSON object and nothing else. It must validate against this JSON schema:\n" + json.dumps(
        schema.model_json_schema(), sort_keys=True
    )


def validation_problem(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in err.errors())


def with_schema_instruction(messages: Sequence[Mapping[str, Any]], schema: type[BaseModel]) -> list[dict[str, Any]]:
    """The conversation with the schema instruction appended to its last message."""
    conversation = [dict(m) for m in messages]
    conversation[-1] = {
        **conversation[-1],
        "content": f"{conversation[-1]['content']}\n\n{schema_instruction(schema)}",
    }
    return conversation


class PromptedJSON:
    """Ask for JSON, validate with pydantic, feed the validation error back; fail loudly after `max_attempts`."""

    method = "prompted"

    def __init__(self, backend: Backend, *, max_attempts: int = 3, params: SamplingParams | None = None):
        if max_attempts < 1:
            raise ContextError(f"max_attempts must be at least 1, got {max_attempts}")
        self.backend = backend
        self.max_attempts = max_attempts
        self.params = params or SamplingParams(temperature=0.0, max_tokens=512)
        self.attempts_used: list[int] = []  # per call, how many attempts it took (for measuring validity)

    def generate(self, messages: Sequence[Mapping[str, Any]], schema: type[Model]) -> Model:
        conversation = with_schema_instruction(messages, schema)
        errors = []
        for attempt in range(1, self.max_attempts + 1):
            reply = self.backend.chat([conversation], self.params)[0].choices[0].text
            try:
                value = schema.model_validate_json(extract_json(reply))
            except ValidationError as err:
                problem = validation_problem(err)
                errors.append(f"attempt {attempt}: {problem}")
                conversation += [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"That reply is not valid: {problem}. {schema_instruction(schema)}"},
                ]
                continue
            self.attempts_used.append(attempt)
            return value
        self.attempts_used.append(self.max_attempts + 1)
        raise StructuredOutputError(
            f"no reply validated against {schema.__name__} in {self.max_attempts} attempts: " + " | ".join(errors)
        )


def can_constrain(backend: Backend) -> bool:
    """Whether the backend's `chat` takes `structured=` (grammar-constrained decoding)."""
    return bool(getattr(backend, "supports_structured", False))


class ConstrainedJSON:
    """JSON decoded under the schema's grammar (`StructuredOutput("json_schema", ...)` through the backend's
    `chat(..., structured=)`), then validated with pydantic; a reply cut short or breaking a rule the grammar
    does not encode is retried with the error, and `StructuredOutputError` follows `max_attempts` failures."""

    method = "constrained"

    def __init__(self, backend: Backend, *, max_attempts: int = 2, params: SamplingParams | None = None):
        if not can_constrain(backend):
            raise ContextError(
                f"the {getattr(backend, 'name', '?')} backend cannot constrain decoding (supports_structured is not "
                "True); use PromptedJSON, or json_generator(backend) to pick"
            )
        if max_attempts < 1:
            raise ContextError(f"max_attempts must be at least 1, got {max_attempts}")
        self.backend = backend
        self.max_attempts = max_attempts
        self.params = params or SamplingParams(temperature=0.0, max_tokens=512)
        self.attempts_used: list[int] = []  # per call, as PromptedJSON's

    def generate(self, messages: Sequence[Mapping[str, Any]], schema: type[Model]) -> Model:
        # The instruction stays: the grammar fixes the shape, the schema's descriptions tell the model what to write.
        conversation = with_schema_instruction(messages, schema)
        spec = StructuredOutput("json_schema", schema.model_json_schema())
        errors = []
        for attempt in range(1, self.max_attempts + 1):
            choice = self.backend.chat([conversation], self.params, structured=spec)[0].choices[0]
            try:
                value = schema.model_validate_json(choice.text)
            except ValidationError as err:
                problem = validation_problem(err)
                if choice.finish_reason == "length":
                    problem += f" (the reply reached max_tokens={self.params.max_tokens})"
                errors.append(f"attempt {attempt}: {problem}")
                conversation += [
                    {"role": "assistant", "content": choice.text},
                    {"role": "user", "content": f"That reply is not valid: {problem}. Reply again."},
                ]
                continue
            self.attempts_used.append(attempt)
            return value
        self.attempts_used.append(self.max_attempts + 1)
        raise StructuredOutputError(
            f"no constrained reply validated against {schema.__name__} in {self.max_attempts} attempts: "
            + " | ".join(errors)
        )


class PromptedJSONFallback(UserWarning):
    """`json_generator` fell back to prompted JSON because the backend cannot constrain decoding."""


def json_generator(
    backend: Backend, *, max_attempts: int = 2, params: SamplingParams | None = None
) -> ConstrainedJSON | PromptedJSON:
    """`ConstrainedJSON` where the backend constrains decoding, else `PromptedJSON` with a `PromptedJSONFallback`
    warning; the result's `method` says which ("constrained" or "prompted")."""
    if can_constrain(backend):
        return ConstrainedJSON(backend, max_attempts=max_attempts, params=params)
    warnings.warn(
        f"the {getattr(backend, 'name', '?')} backend cannot constrain decoding; structured replies are prompted "
        "JSON (validated, retried), which small models often fail to write",
        PromptedJSONFallback,
        stacklevel=2,
    )
    return PromptedJSON(backend, max_attempts=max_attempts, params=params)
