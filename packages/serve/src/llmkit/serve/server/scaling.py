"""The `"llmkit": {...}` request extension: core's inference-time scaling strategies on chat and completions.

The strategy (core's `run_strategy`) runs in a worker thread; each of its sampling rounds is one engine request
with `n` samples (so they share the prompt's blocks), run on the event loop like any other request.
The reply is the chosen sample; `usage` counts every generated token of every sample and round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from llmkit.core.errors import InvalidParameterError, PluginError
from llmkit.core.sampling import SamplingParams
from llmkit.core.scaling import ANSWER_KINDS, STRATEGIES, Prompt, SampleBatch, ScalingResult, run_strategy
from llmkit.core.verifiers import verifier_names

from . import responses as R
from .errors import APIError
from .guards import guard_choices
from .state import Server

MAX_SAMPLES = 64


class ScalingExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str
    n: int = Field(default=8, strict=True)  # samples; attempts for verify_and_retry
    answer: str | None = None  # answer kind: number, choice, code, exact
    verifier: str | None = None  # a registered verifier (llmkit plugins)
    reference: Any = None  # what the verifier checks against
    include_samples: bool = Field(default=True, strict=True)


def _bad(message: str, param: str) -> APIError:
    return APIError(400, message, param=f"llmkit.{param}", code="invalid_value")


def parse_extension(body: dict[str, Any] | None, req: Any, kind: Literal["chat", "completion"]) -> ScalingExtension:
    """The extension checked into clear 400s (unknown strategy, n out of range, unknown verifier, ...)."""
    try:
        ext = ScalingExtension.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "llmkit"
        raise _bad(f"llmkit.{where}: {first['msg']}", where) from None
    if ext.strategy not in STRATEGIES:
        raise _bad(f"unknown strategy {ext.strategy!r}; known: {', '.join(STRATEGIES)}", "strategy")
    if not 1 <= ext.n <= MAX_SAMPLES:
        raise _bad(f"llmkit.n must be in [1, {MAX_SAMPLES}], got {ext.n}", "n")
    if ext.answer is not None and ext.answer not in ANSWER_KINDS:
        raise _bad(f"unknown answer kind {ext.answer!r}; known: {', '.join(ANSWER_KINDS)}", "answer")
    if ext.verifier is not None and ext.verifier not in verifier_names():
        known = ", ".join(verifier_names()) or "none installed"
        raise _bad(f"unknown verifier {ext.verifier!r}; installed: {known}", "verifier")
    if ext.strategy in ("best_of_n", "weighted_vote", "verify_and_retry") and ext.verifier is None:
        raise _bad(f"strategy {ext.strategy} needs llmkit.verifier (the server takes no scorer callable)", "verifier")
    if ext.strategy == "verify_and_retry" and kind == "completion":
        raise _bad(
            "verify_and_retry needs a conversation (the verifier's error goes back as a turn): use chat", "strategy"
        )
    if req.stream:
        raise APIError(400, "stream cannot be combined with llmkit.strategy (the reply is chosen after all samples)",
                       param="stream", code="unsupported_parameter")  # fmt: skip
    if req.n != 1:
        raise APIError(400, "with llmkit.strategy the number of samples is llmkit.n; leave n at 1",
                       param="n", code="unsupported_parameter")  # fmt: skip
    return ext


class EngineSampler:
    """core's `Sampler` over the server's engine, called from the strategy's worker thread."""

    def __init__(self, server: Server, request: Request, params: SamplingParams, collect: Callable, loop) -> None:
        self.server, self.request, self.params, self.collect, self.loop = server, request, params, collect, loop
        self.original: tuple[Prompt, list[int]] | None = None  # the request's prompt and its ids as prepared

    def _ids(self, prompt: Prompt) -> list[int]:
        if self.original is not None and prompt is self.original[0]:
            return self.original[1]  # as the request prepared it (chat extras, token-id prompts)
        if isinstance(prompt, str):
            return self.server.engine.tokenizer.encode(prompt, add_special_tokens=True)
        return self.server.engine.pretrained.chat_prompt(list(prompt))  # a retry: the conversation grew

    def sample(self, prompt: Prompt, n: int) -> SampleBatch:
        ids = self._ids(prompt)
        params = self.params.replace(n=n, max_tokens=self.server.max_tokens_for(len(ids), self.params.max_tokens))
        run = self.server.run(self.request, ids, params, R.new_id("scaling"))
        outputs = asyncio.run_coroutine_threadsafe(self._collect(run), self.loop).result()
        choices, cached = outputs
        ordered = [choices[i] for i in sorted(choices)]
        self.finish_reasons = [c.finish_reason or "length" for c in ordered]
        return SampleBatch([c.text for c in ordered], [len(c.token_ids) for c in ordered], len(ids), sum(cached))

    async def _collect(self, run) -> tuple[dict, list[int]]:
        cached: list[int] = []

        async def tracked():
            nonlocal cached
            async for output in run:
                cached = output.samples_cached_tokens
                yield output

        ((choices, _),) = await self.collect(self.request, [tracked()])
        return choices, cached


async def run_scaled(
    server: Server, request: Request, ext: ScalingExtension, prompt: Prompt, ids: list[int], params, collect
):
    sampler = EngineSampler(server, request, params, collect, asyncio.get_running_loop())
    sampler.original = (prompt, ids)

    def work() -> ScalingResult:
        return run_strategy(
            ext.strategy, sampler, prompt, ext.n, answer=ext.answer, verifier=ext.verifier, reference=ext.reference
        )

    try:
        result = await anyio.to_thread.run_sync(work)
    except (InvalidParameterError, PluginError) as err:
        raise APIError(400, str(err), param="llmkit", code="invalid_value") from None
    return result, sampler


def scaling_report(ext: ScalingExtension, result: ScalingResult) -> dict[str, Any]:
    cost = result.cost
    report = {
        "strategy": result.strategy,
        "n": ext.n,
        "chosen": result.index,
        "answer": result.answer,
        "votes": result.votes,
        "scores": result.scores,
        "passed": result.passed,
        "rounds": cost.rounds,
        "samples_drawn": cost.samples,
        "prompt_tokens_computed": cost.prompt_tokens_computed,
        "prompt_tokens_reused": cost.prompt_tokens_reused,
        "wall_seconds": round(cost.wall_seconds, 4),
    }
    if ext.include_samples:
        report["samples"] = [
            {"text": t, "answer": a, "completion_tokens": k}
            for t, a, k in zip(result.samples, result.answers, result.completion_tokens, strict=True)
        ]
    return report


def _guarded(server: Server, text: str, finish_reason: str) -> R.Choice:
    """The chosen reply through the server's output guards, as any reply goes."""
    choices = {0: R.Choice(0, text=text, finish_reason=finish_reason)}
    guard_choices(server, choices)
    return choices[0]


def _usage(result: ScalingResult) -> dict[str, Any]:
    cost = result.cost
    return R.usage(cost.prompt_tokens, cost.generated_tokens, cost.prompt_tokens_reused)


async def scaled_chat(server: Server, request: Request, job, collect) -> JSONResponse:
    """A chat completion whose reply the strategy chose among `llmkit.n` samples."""
    req = job.req
    ext = parse_extension(req.llmkit, req, "chat")
    if job.structured is not None:
        raise APIError(400, "llmkit.strategy cannot be combined with tools or response_format",
                       param="llmkit", code="unsupported_parameter")  # fmt: skip
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    result, sampler = await run_scaled(server, request, ext, messages, job.prompt, job.params, collect)
    finish = sampler.finish_reasons[-1 if ext.strategy == "verify_and_retry" else result.index]
    chosen = _guarded(server, result.text, finish)
    body = {
        "id": R.new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": chosen.text},
                "logprobs": None,
                "finish_reason": chosen.finish_reason,
            }
        ],
        "usage": _usage(result),
        "llmkit": scaling_report(ext, result),
    }
    return JSONResponse(body)


async def scaled_completion(server: Server, request: Request, job, collect) -> JSONResponse:
    """A text completion whose text the strategy chose among `llmkit.n` samples (one prompt per request)."""
    req = job.req
    ext = parse_extension(req.llmkit, req, "completion")
    if len(job.prompts) != 1 or req.echo or req.logprobs is not None:
        raise APIError(400, "llmkit.strategy takes one prompt, without echo or logprobs",
                       param="llmkit", code="unsupported_parameter")  # fmt: skip
    sent = req.prompts()[0]
    text = sent if isinstance(sent, str) else server.engine.tokenizer.decode(sent)
    result, sampler = await run_scaled(server, request, ext, text, job.prompts[0], job.params[0], collect)
    chosen = _guarded(server, result.text, sampler.finish_reasons[result.index])
    body = {
        "id": R.new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [{"index": 0, "text": chosen.text, "logprobs": None, "finish_reason": chosen.finish_reason}],
        "usage": _usage(result),
        "llmkit": scaling_report(ext, result),
    }
    return JSONResponse(body)
