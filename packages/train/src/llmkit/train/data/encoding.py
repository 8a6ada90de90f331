"""Records to token ids and loss masks, through the model's own chat template.

The assistant mask comes from the rendered text: for assistant message i, the template rendered up to
message i with the generation prompt is a prefix of the text rendered through message i; the characters
between that prefix and the end of the first end-of-sequence token after the content are what the model
must generate (its content and end-of-turn token). Tokens lying wholly inside those spans carry loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from llmkit.core.chat_template import ChatTemplate
from llmkit.core.tokenizer import Tokenizer

from ..errors import DataError
from .records import Prompt


@dataclasses.dataclass(frozen=True)
class TokenizedSequence:
    """Token ids and, per token, whether it is a loss target (predicted from the tokens before it)."""

    ids: list[int]
    targets: list[bool]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_targets(self) -> int:
        return sum(self.targets)


@dataclasses.dataclass(frozen=True)
class PromptCompletion:
    """A prompt and one completion as token ids; the completion is what carries loss."""

    prompt: list[int]
    completion: list[int]

    def joined(self) -> TokenizedSequence:
        return TokenizedSequence(
            self.prompt + self.completion, [False] * len(self.prompt) + [True] * len(self.completion)
        )


class RecordEncoder:
    """Tokenizes prompts, completions and conversations the way generation will see them."""

    def __init__(self, tokenizer: Tokenizer, chat_template: ChatTemplate | None, add_eos: bool = True):
        self.tokenizer, self.chat_template, self.add_eos = tokenizer, chat_template, add_eos
        eos_ids = tokenizer.eos_token_ids
        if not eos_ids:
            raise DataError("the tokenizer has no end-of-sequence token; completions could never end")
        self.eos_id = eos_ids[0]
        self.end_of_turn_texts = [tokenizer.id_to_token(i) for i in eos_ids]

    def _template(self) -> ChatTemplate:
        if self.chat_template is None:
            raise DataError("a record gives messages but the model has no chat template; set chat_template")
        return self.chat_template

    def assistant_spans(self, messages: Sequence[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character span each assistant turn must generate."""
        template = self._template()
        full = template.render(messages, add_generation_prompt=False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prefix = template.render(messages[:i], add_generation_prompt=True)
            through = template.render(messages[: i + 1], add_generation_prompt=False)
            if not (through.startswith(prefix) and full.startswith(through)):
                raise DataError(
                    f"chat template {template.name!r} renders earlier turns differently once later ones follow, "
                    "so assistant tokens cannot be located; use prompt/completion records instead"
                )
            segment = through[len(prefix) :]
            content = message.get("content") or ""
            found = segment.find(content) if content else -1
            search_from = found + len(content) if found >= 0 else 0
            ends = [(segment.find(eot, search_from), eot) for eot in self.end_of_turn_texts]
            ends = [(pos, eot) for pos, eot in ends if pos >= 0]
            if not ends:
                raise DataError(
                    f"chat template {template.name!r} closes assistant turns without an end-of-sequence token "
                    f"({', '.join(self.end_of_turn_texts)}); the model would never learn to stop"
                )
            pos, eot = min(ends)
            spans.append((len(prefix), len(prefix) + pos + len(eot)))
        return full, spans

    def _tokens_with_mask(self, text: str, spans: list[tuple[int, int]], stop: int | None = None) -> TokenizedSequence:
        encoding = self.tokenizer.backend.encode(text, add_special_tokens=False)
        ids, targets = [], []
        for token_id, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
            if stop is not None and start >= stop:
                break
            ids.append(token_id)
            targets.append(any(a <= start and end <= b for a, b in spans))
        return TokenizedSequence(ids, targets)

    def encode_conversation(self, messages: Sequence[dict[str, Any]]) -> TokenizedSequence:
        """The whole conversation; targets are every assistant turn's content and end-of-turn token."""
        text, spans = self.assistant_spans(messages)
        return self._tokens_with_mask(text, spans)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """What generation is fed: raw text as is, messages rendered with the generation prompt."""
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        return self.tokenizer.encode(self._template().render(prompt, add_generation_prompt=True))

    def encode_completion(self, prompt: Prompt, completion: str) -> PromptCompletion:
        """Prompt and completion ids: raw text is tokenized piecewise (plus EOS if add_eos); a messages
        prompt gets the completion as its assistant turn, cut after the end-of-turn token."""
        if isinstance(prompt, str):
            completion_ids = self.tokenizer.encode(completion) + ([self.eos_id] if self.add_eos else [])
            return PromptCompletion(self.tokenizer.encode(prompt), completion_ids)
        messages = [*prompt, {"role": "assistant", "content": completion}]
        text, spans = self.assistant_spans(messages)
        start, end = spans[-1]
        tokens = self._tokens_with_mask(text, [(start, end)], stop=end)
        first = next((i for i, t in enumerate(tokens.targets) if t), len(tokens.ids))
        return PromptCompletion(tokens.ids[:first], tokens.ids[first:])
