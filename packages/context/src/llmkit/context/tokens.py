"""Token counting through a backend's tokenizer (and chat template, when it has one)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.chat_template import ChatTemplate
from llmkit.core.tokenizer import Tokenizer

from .errors import ContextError

# Without a chat template each message costs its content plus this many tokens (ChatML's
# "<|im_start|>role\n" ... "<|im_end|>\n" is 4-5 tokens); the template path counts exactly.
MESSAGE_OVERHEAD_TOKENS = 6
_CACHE_LIMIT = 50_000


class TokenCounter:
    """Counts tokens of texts and of whole chat prompts; counts of texts are memoized."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        chat_template: ChatTemplate | None = None,
        context_length: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.context_length = context_length
        self._counts: dict[str, int] = {}

    @classmethod
    def for_backend(cls, backend: Backend) -> TokenCounter:
        """The backend's tokenizer and context length; its chat template when it exposes one."""
        if not isinstance(backend, Backend):
            raise ContextError(f"{type(backend).__name__} is not an llmkit Backend (see llmkit.core.backends)")
        return cls(
            backend.tokenizer,
            chat_template=getattr(backend, "chat_template", None),
            context_length=backend.context_length,
        )

    def count(self, text: str) -> int:
        cached = self._counts.get(text)
        if cached is None:
            cached = len(self.tokenizer.encode(text)) if text else 0
            if len(self._counts) >= _CACHE_LIMIT:
                self._counts.clear()
            self._counts[text] = cached
        return cached

    def count_messages(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Tokens of the prompt these messages become (exact with a chat template, else estimated from above)."""
        if self.chat_template is not None:
            return self.count(self.chat_template.render(messages, tools=tools, add_generation_prompt=True))
        total = sum(self.count(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        return total + (self.count(json.dumps(list(tools))) if tools else 0)

    def truncate(self, text: str, max_tokens: int, marker: str = " [truncated]") -> str:
        """The longest token prefix of `text` that, with `marker`, fits in `max_tokens`."""
        if self.count(text) <= max_tokens:
            return text
        room = max_tokens - self.count(marker)
        if room <= 0:
            return ""
        ids = self.tokenizer.encode(text)
        while room > 0:
            candidate = self.tokenizer.decode(ids[:room]) + marker
            if self.count(candidate) <= max_tokens:
                return candidate
            room -= 1
        return ""


def counter_from(source: Backend | TokenCounter | Tokenizer) -> TokenCounter:
    """Accept a backend, a tokenizer or an existing counter wherever a counter is needed."""
    if isinstance(source, TokenCounter):
        return source
    if isinstance(source, Tokenizer):
        return TokenCounter(source)
    return TokenCounter.for_backend(source)
