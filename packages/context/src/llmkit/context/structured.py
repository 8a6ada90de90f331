"""Structured output from any backend: prompt for JSON, validate against a pydantic schema, retry with the error.

llmkit has no grammar-constrained decoding yet; `StructuredGenerator` is the seam where a
`response_format`/JSON-schema-constrained backend will plug in (it then returns valid JSON on
the first try, and the validation below still runs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from .errors import ContextError, StructuredOutputError

Model = TypeVar("Model", bound=BaseModel)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class StructuredGenerator(Protocol):
    """Produces an instance of `schema` for a conversation, or raises `StructuredOutputError`."""

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


class PromptedJSON:
    """Ask for JSON, validate with pydantic, feed the validation error back; fail loudly after `max_attempts`."""

    def __init__(self, backend: Backend, *, max_attempts: int = 3, params: SamplingParams | None = None):
        if max_attempts < 1:
            raise ContextError(f"max_attempts must be at least 1, got {max_attempts}")
        self.backend = backend
        self.max_attempts = max_attempts
        self.params = params or SamplingParams(temperature=0.0, max_tokens=512)
        self.attempts_used: list[int] = []  # per call, how many attempts it took (for measuring validity)

    def generate(self, messages: Sequence[Mapping[str, Any]], schema: type[Model]) -> Model:
        conversation = [dict(m) for m in messages]
        conversation[-1] = {
            **conversation[-1],
            "content": f"{conversation[-1]['content']}\n\n{schema_instruction(schema)}",
        }
        errors = []
        for attempt in range(1, self.max_attempts + 1):
            reply = self.backend.chat([conversation], self.params)[0].choices[0].text
            try:
                value = schema.model_validate_json(extract_json(reply))
            except ValidationError as err:
                problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in err.errors())
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
