"""Thinking sections in chat replies: which templates have one, the reply split into `reasoning_content`
and `content` (whole or as stream deltas, the same split either way), and the thinking budget a request asks
for (`max_thinking_tokens`, or `reasoning_effort` mapped to `EFFORT_BUDGETS`) as the engine's `ThinkingBudget`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmkit.core.sampling import ThinkingBudget
from llmkit.core.tokenizer import Tokenizer

# Thinking tokens each `reasoning_effort` allows (documented in docs/serve.md).
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


@dataclasses.dataclass(frozen=True)
class ReasoningTags:
    open: str = "<think>"
    close: str = "</think>"


THINK = ReasoningTags()


def reasoning_tags(template_source: str) -> ReasoningTags | None:
    """The thinking tags a chat template uses (`<think>`), or None when it has no thinking section."""
    return THINK if THINK.open in template_source and THINK.close in template_source else None


def ends_inside_section(prompt_text: str, tags: ReasoningTags) -> bool:
    """Whether the prompt leaves a thinking section open (a generation prompt that opens `<think>`, or a
    continued final message inside one): the reply then starts as reasoning."""
    at = prompt_text.rfind(tags.open)
    return at >= 0 and tags.close not in prompt_text[at:]


def thinking_budget(tokens: int, tags: ReasoningTags, tokenizer: Tokenizer, starts_open: bool) -> ThinkingBudget:
    """The engine's budget of `tokens` thinking tokens: the tags as token ids (one or several each)."""
    return ThinkingBudget(
        tokens,
        open_ids=tuple(tokenizer.encode(tags.open)),
        close_ids=tuple(tokenizer.encode(tags.close)),
        starts_open=starts_open,
    )


@dataclasses.dataclass
class Split:
    reasoning: str | None  # None: the reply has no thinking section
    content: str


def split_reply(text: str, tags: ReasoningTags, starts_open: bool, final: bool = True) -> Split:
    """The reply's reasoning (inside its leading thinking section) and content (the rest). Not `final`: only
    what later text cannot change, so each partial split is a prefix of the final one (for streaming)."""
    if not starts_open:
        head = text.lstrip()
        if not final and tags.open.startswith(head):
            return Split(None, "")  # whitespace or part of the opening tag: not decided yet
        if not head.startswith(tags.open):
            return Split(None, text)
        text = head[len(tags.open) :]
    at = text.find(tags.close)
    if at >= 0:
        return Split(text[:at], text[at + len(tags.close) :])
    if not final:
        text = text[: len(text) - _partial_tag_suffix(text, tags.close)]
    return Split(text, "")


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def reasoning_message(text: str, tags: ReasoningTags, starts_open: bool) -> dict[str, Any]:
    """The assistant message of a finished reply (content None when the section is all there is)."""
    split = split_reply(text, tags, starts_open)
    if split.reasoning is None:
        return {"role": "assistant", "content": split.content}
    return {"role": "assistant", "content": split.content or None, "reasoning_content": split.reasoning}


class ReasoningStream:
    """Turns one choice's text deltas into `reasoning_content` then `content` delta payloads."""

    def __init__(self, tags: ReasoningTags, starts_open: bool) -> None:
        self.tags, self.starts_open = tags, starts_open
        self.text = ""
        self.sent_reasoning = self.sent_content = 0

    def push(self, delta: str, final: bool) -> list[dict[str, str]]:
        self.text += delta
        split = split_reply(self.text, self.tags, self.starts_open, final)
        payloads = []
        reasoning = split.reasoning or ""
        if len(reasoning) > self.sent_reasoning:
            payloads.append({"reasoning_content": reasoning[self.sent_reasoning :]})
            self.sent_reasoning = len(reasoning)
        if len(split.content) > self.sent_content:
            payloads.append({"content": split.content[self.sent_content :]})
            self.sent_content = len(split.content)
        return payloads


@dataclasses.dataclass(frozen=True)
class ReplyReasoning:
    """How to read one request's replies: the template's tags, and whether the prompt left a section open."""

    tags: ReasoningTags
    starts_open: bool

    def message(self, text: str) -> dict[str, Any]:
        return reasoning_message(text, self.tags, self.starts_open)

    def stream(self) -> ReasoningStream:
        return ReasoningStream(self.tags, self.starts_open)
