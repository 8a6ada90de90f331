"""Chat/completion backends: one interface over a model, whatever runs it.

Packages that need a model (eval, context, orchestrate) take a `Backend`; they find
implementations by name through `llmkit_register_backends` (core ships `reference`, the
textbook `generate()`; llmkit-serve registers its engine). `open_backend(name, **options)`
builds one.
Backends whose `supports_structured` is True (the engine) also take `structured=` (a
`llmkit.core.structured.StructuredOutput`) in `generate` and `chat`: grammar-constrained decoding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from .assistant_output import AssistantMessage, detect_tool_call_format, parse_assistant_output
from .chat_template import ChatTemplate
from .errors import ContextLengthError, InvalidParameterError
from .generate import GenerationOutput, generate
from .models.attention import DenseCausalAttention
from .models.pretrained import Pretrained, load_pretrained
from .models.store import DEFAULT_MODEL
from .sampling import SamplingParams
from .tokenizer import Tokenizer

Message = Mapping[str, Any]


@dataclasses.dataclass
class ChatChoice:
    message: AssistantMessage
    text: str  # the raw generated text the message was parsed from
    finish_reason: str
    token_ids: list[int]
    cached_prompt_tokens: int = 0  # prompt tokens read from a prefix cache (the engine) instead of computed
    top_logprobs: list[dict[int, float]] | None = None  # per token, when SamplingParams.top_logprobs asked


@dataclasses.dataclass
class ChatResult:
    choices: list[ChatChoice]  # n per conversation
    prompt_tokens: int

    @property
    def message(self) -> AssistantMessage:
        return self.choices[0].message

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices)


@dataclasses.dataclass(frozen=True)
class Loglikelihood:
    """log P(continuation | context), summed over the continuation's tokens."""

    logprob: float
    is_greedy: bool  # every continuation token was the argmax
    num_tokens: int


@runtime_checkable
class Backend(Protocol):
    """What llmkit packages need from a model."""

    name: str

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def context_length(self) -> int: ...

    def generate(
        self, prompts: Sequence[str | Sequence[int]], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[GenerationOutput]:
        """Raw completion of text (tokenized as is) or token-id prompts, in input order."""
        ...

    def chat(
        self,
        conversations: Sequence[Sequence[Message]],
        params: SamplingParams | Sequence[SamplingParams],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[ChatResult]:
        """Chat completion of each conversation through the model's chat template; replies parsed."""
        ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        """Score continuations: for each (context, continuation) the summed logprob and greediness."""
        ...

    def count_tokens(self, text: str) -> int: ...


class ModelBackend:
    """A backend over a loaded `Pretrained` model; subclasses change how generation runs."""

    name = "reference"
    supports_structured = False  # True where generate/chat take `structured=` (grammar-constrained decoding)

    def __init__(self, pretrained: Pretrained, tool_call_format: str | None = None):
        self.pretrained = pretrained
        template = pretrained.chat_template
        self.tool_call_format = tool_call_format or (detect_tool_call_format(template.source) if template else "hermes")

    @property
    def tokenizer(self) -> Tokenizer:
        return self.pretrained.tokenizer

    @property
    def chat_template(self) -> ChatTemplate | None:
        return self.pretrained.chat_template

    @property
    def context_length(self) -> int:
        return self.pretrained.config.max_position_embeddings

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def generate(self, prompts, params, structured=None):
        if structured is not None:
            raise InvalidParameterError(
                f"the {self.name} backend cannot constrain decoding (structured=...); use the engine backend"
            )
        return generate(self.pretrained.model, self.tokenizer, prompts, params)

    def chat(self, conversations, params, tools=None, structured=None, prefill: str | None = None):
        """`structured` (a StructuredOutput, or one per conversation) constrains the replies where supported.
        `prefill` starts every reply for the model: it becomes a final assistant message that the model continues
        (the template's `continue_final_message`, as the server's); `text` is what the model added, `message` is
        parsed from prefill + text."""
        if prefill is not None:
            conversations = [[*messages, {"role": "assistant", "content": prefill}] for messages in conversations]
        prompts = [
            self.pretrained.chat_prompt(
                messages, tools=tools, add_generation_prompt=prefill is None, continue_final_message=prefill is not None
            )
            for messages in conversations
        ]
        outputs = self.generate(prompts, params) if structured is None else self.generate(prompts, params, structured)
        start = prefill or ""
        return [
            ChatResult(
                [
                    ChatChoice(
                        parse_assistant_output(start + c.text, self.tool_call_format),
                        c.text,
                        c.finish_reason,
                        c.token_ids,
                        c.cached_prompt_tokens,
                        c.top_logprobs,
                    )
                    for c in output.completions
                ],
                len(output.prompt_token_ids),
            )
            for output in outputs
        ]

    @torch.inference_mode()
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        """lm-evaluation-harness semantics: context and continuation are tokenized together and
        the continuation's tokens are the ones past the context's (so a leading space stays with
        the continuation); one forward per request."""
        model = self.pretrained.model
        results = []
        for context, continuation in requests:
            context_ids = self.tokenizer.encode(context, add_special_tokens=True) if context else []
            whole = self.tokenizer.encode(context + continuation, add_special_tokens=True)
            if whole[: len(context_ids)] != context_ids:  # the join merged a token across the boundary
                whole = context_ids + self.tokenizer.encode(continuation)
            continuation_ids = whole[len(context_ids) :]
            if not continuation_ids:
                raise InvalidParameterError(f"continuation {continuation!r} has no tokens")
            if not context_ids:  # score from the BOS (or end-of-text) token
                start = (
                    self.tokenizer.bos_token_id
                    if self.tokenizer.bos_token_id is not None
                    else self.tokenizer.eos_token_ids[0]
                )
                whole, context_ids = [start, *whole], [start]
            if len(whole) > self.context_length:
                raise ContextLengthError(
                    f"context + continuation has {len(whole)} tokens; the model holds {self.context_length}"
                )
            ids = torch.tensor(whole, device=model.device)
            hidden = model(
                ids,
                torch.arange(len(whole), device=model.device),
                DenseCausalAttention(1, len(whole), device=model.device),
            )
            logprobs = model.compute_logits(hidden[len(context_ids) - 1 : -1]).log_softmax(-1)
            targets = torch.tensor(continuation_ids, device=model.device)
            chosen = logprobs.gather(1, targets[:, None]).squeeze(1)
            results.append(
                Loglikelihood(float(chosen.sum()), bool((logprobs.argmax(-1) == targets).all()), len(continuation_ids))
            )
        return results


def reference_backend(
    model: str = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    device: str = "cpu",
    chat_template: str | None = None,
    **options: Any,
) -> ModelBackend:
    """Core's textbook backend: `load_pretrained` + the reference `generate()` (weights as stored for GGUF
    unless `dtype` asks for a dense copy)."""
    pretrained = load_pretrained(model, dtype=dtype, device=device, chat_template=chat_template, quiet=True)
    return ModelBackend(pretrained, **options)


def open_backend(name: str = "reference", **options: Any) -> Backend:
    """Build the backend registered as `name` ("reference", "engine", ...) with its options."""
    from .plugins import registry

    return registry("backends").get(name)(**options)
