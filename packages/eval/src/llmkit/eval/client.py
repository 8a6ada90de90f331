"""`ModelClient`: a backend plus the response cache, batching and usage counts every solver talks to."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.backends import Backend, Loglikelihood, ModelBackend
from llmkit.core.sampling import SamplingParams

from .cache import ResponseCache, request_hash
from .errors import EvalError
from .local_scoring import local_loglikelihood


@dataclasses.dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass(frozen=True)
class ChatReply:
    content: str
    text: str  # raw generated text
    tool_calls: tuple[tuple[str, dict[str, Any]], ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass
class Usage:
    """What a run asked of the model: requests, tokens and how many answers came from the cache."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def _completion_tokens(completion: Any) -> int:
    """Generated-token count: HTTP backends report it, local ones return the ids."""
    return getattr(completion, "completion_tokens", None) or len(completion.token_ids)


def params_payload(params: SamplingParams) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(params).items() if k not in ("logprobs", "top_logprobs")}


class ModelClient:
    """Answers solver requests from the cache when it can and from the backend in batches otherwise."""

    def __init__(self, backend: Backend, identity: str, cache: ResponseCache | None = None, batch_size: int = 8):
        self.backend, self.identity, self.cache, self.batch_size = backend, identity, cache, batch_size
        self.usage = Usage()
        self._lock = threading.Lock()

    def _cached_call(self, kind: str, payloads: list[Any], compute, batch_size: int | None = None) -> list[Any]:
        keys = [request_hash(self.identity, kind, p) for p in payloads]
        found = self.cache.get_many(list(dict.fromkeys(keys))) if self.cache is not None else {}
        missing = [i for i, k in enumerate(keys) if k not in found]
        fresh: dict[str, Any] = {}
        step = batch_size or self.batch_size
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            answers = compute([payloads[i] for i in chunk])
            batch = {keys[i]: a for i, a in zip(chunk, answers, strict=True)}
            if self.cache is not None:
                self.cache.put_many(batch)
            fresh.update(batch)
        with self._lock:
            self.usage.requests += len(keys)
            self.usage.cached += len(keys) - len(missing)
        return [found.get(k, fresh.get(k)) for k in keys]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        """Summed log-probability of each continuation given its context."""

        def compute(payloads):
            pairs = [tuple(p) for p in payloads]
            if isinstance(self.backend, ModelBackend):
                scored = local_loglikelihood(self.backend.pretrained, pairs)
            else:
                scored = self.backend.loglikelihood(pairs)
            return [[s.logprob, s.is_greedy, s.num_tokens] for s in scored]

        # One backend call per solver call, so every choice of a question shares one forward.
        answers = self._cached_call(
            "loglikelihood", [list(r) for r in requests], compute, batch_size=len(requests) or 1
        )
        return [Loglikelihood(a[0], a[1], a[2]) for a in answers]

    def complete(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[list[Completion]]:
        """Raw completions: `params[i].n` of them for prompt i."""

        def compute(payloads):
            outputs = self.backend.generate(
                [p["prompt"] for p in payloads], [SamplingParams(**p["params"]) for p in payloads]
            )
            return [
                [
                    [
                        c.text,
                        c.finish_reason,
                        getattr(o, "prompt_tokens", len(o.prompt_token_ids)),
                        _completion_tokens(c),
                    ]
                    for c in o.completions
                ]
                for o in outputs
            ]

        answers = self._call_in_prompt_batches(
            "complete",
            [{"prompt": p, "params": params_payload(s)} for p, s in zip(prompts, params, strict=True)],
            compute,
        )
        results = [[Completion(*c) for c in answer] for answer in answers]
        self._count_tokens(results)
        return results

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: Sequence[SamplingParams],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[list[ChatReply]]:
        """Chat completions through the model's chat template; tool calls parsed."""

        def compute(payloads):
            results = self.backend.chat(
                [p["messages"] for p in payloads], [SamplingParams(**p["params"]) for p in payloads], tools=tools
            )
            return [
                [
                    [
                        c.message.content,
                        c.text,
                        [[call.name, call.arguments] for call in c.message.tool_calls],
                        c.finish_reason,
                        r.prompt_tokens,
                        _completion_tokens(c),
                    ]
                    for c in r.choices
                ]
                for r in results
            ]

        payloads = [
            {"messages": [dict(m) for m in conv], "params": params_payload(s), "tools": list(tools or [])}
            for conv, s in zip(conversations, params, strict=True)
        ]
        answers = self._call_in_prompt_batches("chat", payloads, compute)
        results = [
            [ChatReply(c[0], c[1], tuple((n, a) for n, a in c[2]), c[3], c[4], c[5]) for c in answer]
            for answer in answers
        ]
        self._count_tokens(results)
        return results

    def _call_in_prompt_batches(self, kind: str, payloads: list[dict], compute) -> list[Any]:
        """Generation batches hold about `batch_size` sequences: fewer prompts when each asks for n samples."""
        samples = max((p["params"]["n"] for p in payloads), default=1)
        return self._cached_call(kind, payloads, compute, batch_size=max(1, self.batch_size // samples))

    def _count_tokens(self, results: list[list[Any]]) -> None:
        with self._lock:
            for answer in results:
                if answer:
                    self.usage.prompt_tokens += answer[0].prompt_tokens
                self.usage.completion_tokens += sum(c.completion_tokens for c in answer)

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The chat template's text for `messages` (multiple choice over chat prompts needs it)."""
        template = getattr(self.backend, "chat_template", None)
        if template is None:
            raise EvalError(f"backend {self.backend.name!r} exposes no chat template; use a raw prompt format")
        return template.render(messages, add_generation_prompt=True)
