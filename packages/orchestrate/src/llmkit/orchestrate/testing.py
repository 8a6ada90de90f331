"""`ScriptedBackend`: a test double that replays a transcript of model replies, for control-flow tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmkit.core.assistant_output import parse_assistant_output
from llmkit.core.backends import ChatChoice, ChatResult, Loglikelihood
from llmkit.core.generate import Completion, GenerationOutput

from .errors import OrchestrateError

Conversation = Sequence[Mapping[str, Any]]


def hermes_call(name: str, arguments: Mapping[str, Any] | None = None) -> str:
    """A reply text holding one Hermes tool call, as the chatml template teaches it."""
    import json

    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(dict(arguments or {}))}}}\n</tool_call>'


@dataclasses.dataclass
class ScriptedCall:
    """What the agent sent on one call (for assertions)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    structured: Any
    params: Any


class ScriptedBackend:
    """Replies come from `replies` (the reply to a conversation with k assistant messages after its task is
    replies[k], so a resumed run gets the replies the interrupted one would have), or from `respond(messages)`.
    Tokens are counted as whitespace-separated words. Replies are parsed like a model's (Hermes format)."""

    name = "scripted"
    tool_call_format = "hermes"

    def __init__(
        self,
        replies: Sequence[str] = (),
        respond: Callable[[list[dict[str, Any]]], str] | None = None,
        *,
        supports_structured: bool = False,
        context_length: int = 8192,
    ):
        if not replies and respond is None:
            raise OrchestrateError("ScriptedBackend needs replies or a respond function")
        self.replies, self.respond = list(replies), respond
        self.supports_structured = supports_structured
        self._context_length = context_length
        self.calls: list[ScriptedCall] = []

    @property
    def tokenizer(self):
        raise OrchestrateError("ScriptedBackend has no tokenizer; it counts words")

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _reply_to(self, messages: list[dict[str, Any]]) -> str:
        if self.respond is not None:
            return self.respond(messages)
        first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), 0)
        turns = sum(1 for m in messages[first_user:] if m["role"] == "assistant")
        if turns >= len(self.replies):
            raise OrchestrateError(f"the script has {len(self.replies)} replies; reply {turns + 1} was asked for")
        return self.replies[turns]

    def chat(self, conversations, params, tools=None, structured=None) -> list[ChatResult]:
        results = []
        for conversation in conversations:
            messages = [dict(m) for m in conversation]
            self.calls.append(ScriptedCall(messages, list(tools) if tools else None, structured, params))
            text = self._reply_to(messages)
            prompt_tokens = sum(self.count_tokens(str(m.get("content") or "")) for m in messages)
            choice = ChatChoice(
                parse_assistant_output(text, "hermes"), text, "stop", list(range(self.count_tokens(text)))
            )
            results.append(ChatResult([choice], prompt_tokens))
        return results

    def generate(self, prompts, params) -> list[GenerationOutput]:
        return [
            GenerationOutput([], [Completion([], self._reply_to([{"role": "user", "content": p}]), "stop")])
            for p in prompts
        ]

    def loglikelihood(self, requests) -> list[Loglikelihood]:
        raise OrchestrateError("ScriptedBackend does not score continuations")
