"""The eval's `ModelClient` as a backend an orchestrate agent can drive: each chat call (tools and grammar
included) goes through the run's response cache and is counted in the client's usage. Replies are rebuilt from
the stored message either way, so a cached run and a fresh one read the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.assistant_output import AssistantMessage, ToolCall
from llmkit.core.backends import ChatChoice, ChatResult
from llmkit.core.sampling import SamplingParams

from ..cache import request_hash
from ..client import ModelClient, Usage, params_payload


@dataclasses.dataclass
class StoredChoice(ChatChoice):
    """A choice rebuilt from the cache: the token count without the ids."""

    completion_tokens: int = 0


def _structured_payload(structured: Any) -> Any:
    if structured is None:
        return None
    return {"kind": structured.kind, "source": structured.source, "options": dataclasses.asdict(structured.options)}


def canonical_call_ids(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with tool-call ids renamed call_0, call_1, ... in order of appearance: the ids are random per
    parse, and a cache key must not depend on them (the call and its result stay linked)."""
    names: dict[str, str] = {}

    def rename(call_id: Any) -> Any:
        if not isinstance(call_id, str):
            return call_id
        return names.setdefault(call_id, f"call_{len(names)}")

    out = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [{**c, "id": rename(c.get("id"))} for c in message["tool_calls"]]
        if "tool_call_id" in message:
            message["tool_call_id"] = rename(message["tool_call_id"])
        out.append(message)
    return out


class CachedAgentBackend:
    """Delegates to `client.backend`; `chat` answers from the client's cache when it can."""

    def __init__(self, client: ModelClient):
        self.client, self.backend = client, client.backend

    def __getattr__(self, name: str) -> Any:  # tokenizer, context_length, count_tokens, supports_structured, ...
        return getattr(self.backend, name)

    def chat(self, conversations, params, tools=None, structured=None) -> list[ChatResult]:
        params = [params] * len(conversations) if isinstance(params, SamplingParams) else list(params)
        if structured is not None and not hasattr(structured, "kind"):
            raise TypeError("the cached agent backend takes one StructuredOutput for every conversation")
        payloads = [
            {
                "messages": canonical_call_ids(conversation),
                "params": params_payload(p),
                "tools": list(tools) if tools else None,
                "structured": _structured_payload(structured),
            }
            for conversation, p in zip(conversations, params, strict=True)
        ]
        cache = self.client.cache
        keys = [request_hash(self.client.identity, "agent_message", p) for p in payloads]
        found = cache.get_many(list(dict.fromkeys(keys))) if cache is not None else {}
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            extra = {"structured": structured} if structured is not None else {}
            fresh = self.backend.chat(
                [conversations[i] for i in missing], [params[i] for i in missing], tools=tools, **extra
            )
            stored = {keys[i]: _to_stored(result) for i, result in zip(missing, fresh, strict=True)}
            if cache is not None:
                cache.put_many(stored)
            found = {**found, **stored}
        answers = [found[key] for key in keys]
        self.client.usage.add(
            Usage(
                requests=len(keys),
                cached=len(keys) - len(missing),
                prompt_tokens=sum(a["prompt_tokens"] for i, a in enumerate(answers) if i in missing),
                completion_tokens=sum(c[4] for i, a in enumerate(answers) if i in missing for c in a["choices"]),
            )
        )
        return [self._rebuild(answer) for answer in answers]

    @staticmethod
    def _rebuild(answer: dict[str, Any]) -> ChatResult:
        choices = [
            StoredChoice(
                AssistantMessage(
                    message["content"],
                    message["reasoning"],
                    [ToolCall(name, arguments) for name, arguments in message["tool_calls"]],
                    list(message["errors"]),
                ),
                text,
                finish,
                [],
                cached,
                completion_tokens=tokens,
            )
            for message, text, finish, cached, tokens in answer["choices"]
        ]
        return ChatResult(choices, answer["prompt_tokens"])


def _completion_tokens(choice: Any) -> int:
    return int(getattr(choice, "completion_tokens", 0) or len(choice.token_ids))


def _to_stored(result: ChatResult) -> dict[str, Any]:
    """The parsed message is kept, not only the text: an HTTP backend's tool calls are not in its text."""
    choices: Sequence[Any] = result.choices

    def message(m: AssistantMessage) -> dict[str, Any]:
        calls = [[c.name, c.arguments] for c in m.tool_calls]
        return {"content": m.content, "reasoning": m.reasoning, "tool_calls": calls, "errors": list(m.errors)}

    return {
        "prompt_tokens": result.prompt_tokens,
        "choices": [
            [message(c.message), c.text, c.finish_reason, c.cached_prompt_tokens, _completion_tokens(c)]
            for c in choices
        ],
    }
