"""The agent's view of a backend: chat with tools (constrained to the tools' schemas where the backend
supports structured outputs), structured JSON replies, and token accounting."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from llmkit.context import PromptedJSON, StructuredOutputError
from llmkit.context.structured import schema_instruction
from llmkit.core.assistant_output import ToolCall
from llmkit.core.backends import Backend, ChatResult
from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import StructuredOutput

from .errors import OrchestrateError
from .limits import Pricing, Usage

Model = TypeVar("Model", bound=BaseModel)
DEFAULT_PARAMS = SamplingParams(temperature=0.0, max_tokens=512)


@dataclasses.dataclass
class ModelReply:
    """One reply: its text, the parsed tool calls, blocks that did not parse, and its token counts."""

    content: str
    tool_calls: list[ToolCall]
    text: str
    errors: list[str]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    constrained: bool


def completion_tokens_of(choice: Any) -> int:
    """Token ids for local backends; the server's count for HTTP ones."""
    return int(getattr(choice, "completion_tokens", 0) or len(choice.token_ids))


class AgentModel:
    """Wraps a `Backend`; every call through it is counted in `usage` (and priced with `pricing`)."""

    def __init__(
        self,
        backend: Backend,
        params: SamplingParams | None = None,
        *,
        constrain: bool | None = None,
        pricing: Pricing | None = None,
    ):
        supported = bool(getattr(backend, "supports_structured", False))
        if constrain and not supported:
            raise OrchestrateError(
                f"the {getattr(backend, 'name', '?')} backend cannot constrain tool calls; use the engine backend"
            )
        self.backend = backend
        self.params = params or DEFAULT_PARAMS
        self.constrain = supported if constrain is None else constrain
        self.pricing = pricing or Pricing()
        self.usage = Usage()
        self.tool_call_format = getattr(backend, "tool_call_format", "hermes")

    # A Backend-shaped `chat`, so context's helpers (PromptedJSON) are counted too.
    def chat(self, conversations, params, tools=None, structured=None) -> list[ChatResult]:
        extra = {"structured": structured} if structured is not None else {}
        results = self.backend.chat(conversations, params, tools=tools, **extra)
        for result in results:
            completion = sum(completion_tokens_of(c) for c in result.choices)
            self.usage.add_call(result.prompt_tokens, completion, self.pricing)
        return results

    def _params(self, seed: int | None) -> SamplingParams:
        return self.params if seed is None else dataclasses.replace(self.params, seed=seed)

    def reply(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = True,
        seed: int | None = None,
    ) -> ModelReply:
        """One assistant turn; with tools on a constraining backend every tool call is well-formed."""
        structured = None
        if tools and self.constrain:
            source = {
                "tools": [dict(t) for t in tools],
                "tool_choice": tool_choice,
                "format": self.tool_call_format,
                "parallel": parallel_tool_calls,
            }
            structured = StructuredOutput("tool_calls", source)
        before = dataclasses.replace(self.usage)
        result = self.chat(
            [list(messages)], self._params(seed), tools=list(tools) if tools else None, structured=structured
        )
        choice = result[0].choices[0]
        message = choice.message
        return ModelReply(
            content=message.content or "",
            tool_calls=list(message.tool_calls),
            text=choice.text,
            errors=list(message.errors),
            prompt_tokens=self.usage.prompt_tokens - before.prompt_tokens,
            completion_tokens=self.usage.completion_tokens - before.completion_tokens,
            finish_reason=choice.finish_reason,
            constrained=structured is not None,
        )

    def structured(self, messages: Sequence[Mapping[str, Any]], schema: type[Model], *, max_attempts: int = 3) -> Model:
        """An instance of `schema`: grammar-constrained JSON where supported, else prompted JSON with retries;
        validated by pydantic either way (StructuredOutputError after `max_attempts`)."""
        if not self.constrain:
            return PromptedJSON(self, max_attempts=max_attempts, params=self.params).generate(messages, schema)
        conversation = [dict(m) for m in messages]
        conversation[-1] = {
            **conversation[-1],
            "content": f"{conversation[-1]['content']}\n\n{schema_instruction(schema)}",
        }
        spec = StructuredOutput("json_schema", decoding_schema(schema.model_json_schema()))
        problems = []
        for attempt in range(1, max_attempts + 1):
            text = self.chat([conversation], self.params, structured=spec)[0].choices[0].text
            try:
                return schema.model_validate_json(text)
            except ValueError as err:
                problems.append(f"attempt {attempt}: {str(err).splitlines()[0]}")
                conversation += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"That reply is not valid: {err}. Reply again."},
                ]
        raise StructuredOutputError(f"no reply validated against {schema.__name__}: " + " | ".join(problems))


MAX_DECODED_LENGTH = 64


def decoding_schema(schema: Any) -> Any:
    """The schema the grammar is built from: long `maxLength` bounds dropped (a string of at most 400
    characters is a 400-state chain per place it occurs, and plan schemas blow the compiler's state limit);
    pydantic still enforces them on the reply, and a violation is retried with the error."""
    if isinstance(schema, list):
        return [decoding_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: decoding_schema(value) for key, value in schema.items()}
    if isinstance(out.get("maxLength"), int) and out["maxLength"] > MAX_DECODED_LENGTH:
        del out["maxLength"]
    return out


def arguments_text(arguments: Mapping[str, Any]) -> str:
    return json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True, default=str)
