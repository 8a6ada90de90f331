"""Token counting through a backend's tokenizer (and chat template, when it has one)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.chat_template import ChatTemplate
from llmkit.core.tokenizer import Tokenizer

from .errors import ContextError

# Without a chat template each message costs its content plus this many tokens (ChatML's
# "<|im_start|>role\n" ... "<|im_end|>\n" is 4-5 tokens); the template path counts exactly.
MESSAGE_OVERHEAD_TOKENS = 6
IMAGE_PLACEHOLDER = "<image>"  # an image part is rendered as this, then its count replaced by the image's tokens
_CACHE_LIMIT = 50_000


class TokenCounter:
    """Counts tokens of texts and of whole chat prompts; counts of texts are memoized."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        chat_template: ChatTemplate | None = None,
        context_length: int | None = None,
        image_tokens: Callable[[Any, str], int] | None = None,
    ):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.context_length = context_length
        self.image_tokens = image_tokens  # (image, detail) -> prompt tokens, from the model's image processor
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

    @classmethod
    def for_vision_language(cls, vlm: Any, context_length: int | None = None) -> TokenCounter:
        """A counter of a `VisionLanguagePretrained`: its tokenizer, chat template and image processor's counts."""
        length = context_length or vlm.model.config.text.max_position_embeddings
        return cls(
            vlm.tokenizer, chat_template=vlm.chat_template, context_length=length, image_tokens=vlm.num_image_tokens
        )

    def count_image(self, image: Any, detail: str = "auto") -> int:
        if self.image_tokens is None:
            raise ContextError("this token counter has no image processor (see TokenCounter.for_vision_language)")
        return self.image_tokens(image, detail)

    def count(self, text: str) -> int:
        cached = self._counts.get(text)
        if cached is None:
            cached = len(self.tokenizer.encode(text)) if text else 0
            if len(self._counts) >= _CACHE_LIMIT:
                self._counts.clear()
            self._counts[text] = cached
        return cached

    def count_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        image_tokens: Sequence[int] = (),
    ) -> int:
        """Tokens of the prompt these messages become (exact with a chat template, else estimated from above).
        `image_tokens`: the cost of each `{"type": "image"}` part, in order; each is counted as its tokens."""
        flat, placeholders = _flatten_image_parts(messages)
        if placeholders != len(image_tokens):
            raise ContextError(f"{placeholders} image parts but {len(image_tokens)} image token counts")
        images = sum(image_tokens) - placeholders * self.count(IMAGE_PLACEHOLDER)
        if self.chat_template is not None and placeholders:
            # a vision-language template places `<image>` itself (and may lay out image turns differently);
            # a template that does not (a text model's) gets the parts as text with one placeholder per image
            text = self.chat_template.render(messages, tools=tools, add_generation_prompt=True, image_parts=True)
            if text.count(IMAGE_PLACEHOLDER) == placeholders:
                return images + self.count(text)
        messages = flat
        if self.chat_template is not None:
            return images + self.count(self.chat_template.render(messages, tools=tools, add_generation_prompt=True))
        total = sum(self.count(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        return images + total + (self.count(json.dumps(list(tools))) if tools else 0)

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


def _flatten_image_parts(messages: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Messages whose content lists (text and image parts) became strings with one placeholder per image."""
    flat: list[Mapping[str, Any]] = []
    placeholders = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            pieces = []
            for part in content:
                if part.get("type") == "image":
                    placeholders += 1
                    pieces.append(IMAGE_PLACEHOLDER)
                else:
                    pieces.append(part.get("text", ""))
            message = {**message, "content": "".join(pieces)}
        flat.append(message)
    return flat, placeholders


def counter_from(source: Backend | TokenCounter | Tokenizer) -> TokenCounter:
    """Accept a backend, a tokenizer or an existing counter wherever a counter is needed."""
    if isinstance(source, TokenCounter):
        return source
    if isinstance(source, Tokenizer):
        return TokenCounter(source)
    return TokenCounter.for_backend(source)
