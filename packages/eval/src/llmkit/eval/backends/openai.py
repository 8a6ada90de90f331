"""An OpenAI-compatible HTTP backend (standard library only): completions, chat, and log-likelihoods via echo.

Works against llmkit-serve, vLLM, llama.cpp's server and other servers of the OpenAI API.
Log-likelihoods need a server that honours `echo` with `logprobs` on /completions (vLLM,
llmkit-serve); OpenAI's own API no longer does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmkit.core.assistant_output import AssistantMessage, ToolCall
from llmkit.core.backends import ChatChoice, ChatResult, Loglikelihood
from llmkit.core.generate import Completion, GenerationOutput
from llmkit.core.sampling import SamplingParams
from llmkit.core.tokenizer import Tokenizer

from ..errors import EvalError


@dataclasses.dataclass
class HTTPCompletion(Completion):
    completion_tokens: int = 0  # the server's count (token ids are not returned over HTTP)
    # When SamplingParams asked for logprobs: each generated token's text as the server names it; then
    # `logprobs` holds each token's logprob and `top_logprobs` its position's top ones, keyed by token text.
    token_texts: list[str] | None = None


@dataclasses.dataclass
class HTTPGenerationOutput(GenerationOutput):
    prompt_tokens: int = 0


@dataclasses.dataclass
class HTTPChatChoice(ChatChoice):
    completion_tokens: int = 0
    token_texts: list[str] | None = None  # as HTTPCompletion's
    logprobs: list[float] | None = None


def _wants_logprobs(params: SamplingParams) -> bool:
    return bool(params.logprobs or params.top_logprobs)


def _logprob_fields(params: SamplingParams, chat: bool) -> dict[str, Any]:
    """Ask for logprobs only when the sampling params do: chat takes `logprobs: true` + `top_logprobs: k`,
    the legacy completions endpoint `logprobs: k` (k top entries per position)."""
    if not _wants_logprobs(params):
        return {}
    if chat:
        return {"logprobs": True, "top_logprobs": params.top_logprobs}
    return {"logprobs": params.top_logprobs}


def _completion_logprobs(choice: Mapping[str, Any], params: SamplingParams) -> dict[str, Any]:
    """The legacy `logprobs` object as HTTPCompletion fields (token texts, logprobs, top logprobs)."""
    if not _wants_logprobs(params):
        return {}
    found = choice.get("logprobs")
    if not found or "tokens" not in found or "token_logprobs" not in found:
        raise EvalError("the server returned no logprobs although the request asked for them")
    tokens = list(found["tokens"])
    top = found.get("top_logprobs") or [None] * len(tokens)
    return {
        "token_texts": tokens,
        "logprobs": [float(v) for v in found["token_logprobs"]],
        "top_logprobs": [{t: float(v) for t, v in (row or {}).items()} for row in top],
    }


def _chat_logprobs(choice: Mapping[str, Any], params: SamplingParams) -> dict[str, Any]:
    """The chat `logprobs.content` list as HTTPChatChoice fields."""
    if not _wants_logprobs(params):
        return {}
    content = (choice.get("logprobs") or {}).get("content")
    if content is None:
        raise EvalError("the server returned no logprobs although the request asked for them")
    return {
        "token_texts": [entry["token"] for entry in content],
        "logprobs": [float(entry["logprob"]) for entry in content],
        "top_logprobs": [_distinct_names(entry.get("top_logprobs") or []) for entry in content],
    }


def _distinct_names(top: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Chat's top logprobs (a list) as token text -> logprob; distinct tokens that decode alike (bytes of one
    character) keep their own entries under `text#k` instead of overwriting each other."""
    out: dict[str, float] = {}
    for entry in top:
        name, k = entry["token"], 1
        while name in out:
            name, k = f"{entry['token']}#{k}", k + 1
        out[name] = float(entry["logprob"])
    return out


def _sampling_fields(params: SamplingParams) -> dict[str, Any]:
    body: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "n": params.n,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    return body


class OpenAIBackend:
    """The `Backend` protocol over HTTP; requests of one call run `max_concurrency` at a time."""

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        timeout: float = 300.0,
        max_concurrency: int = 8,
        tokenizer: str | None = None,
        context_length: int = 8192,
    ):
        self.model, self.base_url, self.timeout = model, base_url.rstrip("/"), float(timeout)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.max_concurrency = int(max_concurrency)
        self._tokenizer_path, self._tokenizer = tokenizer, None
        self._context_length = int(context_length)

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            if not self._tokenizer_path:
                raise EvalError(
                    "the openai backend counts tokens only with a local tokenizer: pass tokenizer=PATH/tokenizer.json"
                )
            self._tokenizer = Tokenizer.from_file(self._tokenizer_path)
        return self._tokenizer

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps({"model": self.model, **body}).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise EvalError(f"{self.base_url}{path} answered HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise EvalError(f"cannot reach {self.base_url}{path}: {getattr(err, 'reason', err)}") from None
        except json.JSONDecodeError:
            raise EvalError(f"{self.base_url}{path} did not answer JSON") from None

    def _map(self, function, items: Sequence[Any]) -> list[Any]:
        with ThreadPoolExecutor(max(1, self.max_concurrency)) as pool:
            return list(pool.map(function, items))

    @staticmethod
    def _per_params(params, count: int) -> list[SamplingParams]:
        return [params] * count if isinstance(params, SamplingParams) else list(params)

    def generate(self, prompts, params) -> list[GenerationOutput]:
        if any(not isinstance(p, str) for p in prompts):
            raise EvalError("the openai backend takes text prompts, not token ids")

        def one(job: tuple[str, SamplingParams]) -> GenerationOutput:
            prompt, p = job
            body = {"prompt": prompt, **_sampling_fields(p), **_logprob_fields(p, chat=False)}
            answer = self._post("/completions", body)
            usage = answer.get("usage") or {}
            choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
            per_choice = usage.get("completion_tokens", 0) // max(len(choices), 1)
            completions = [
                HTTPCompletion(
                    [], c.get("text", ""), c.get("finish_reason") or "stop", completion_tokens=per_choice,
                    **_completion_logprobs(c, p),
                )
                for c in choices
            ]  # fmt: skip
            return HTTPGenerationOutput([], completions, prompt_tokens=usage.get("prompt_tokens", 0))

        return self._map(one, list(zip(prompts, self._per_params(params, len(prompts)), strict=True)))

    def chat(self, conversations, params, tools=None) -> list[ChatResult]:
        def one(job) -> ChatResult:
            messages, p = job
            body = {"messages": [dict(m) for m in messages], **_sampling_fields(p), **_logprob_fields(p, chat=True)}
            if tools:
                body["tools"] = list(tools)
            answer = self._post("/chat/completions", body)
            usage = answer.get("usage") or {}
            choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
            per_choice = usage.get("completion_tokens", 0) // max(len(choices), 1)
            return ChatResult([_chat_choice(c, per_choice, p) for c in choices], usage.get("prompt_tokens", 0))

        return self._map(one, list(zip(conversations, self._per_params(params, len(conversations)), strict=True)))

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        def one(pair: tuple[str, str]) -> Loglikelihood:
            context, continuation = pair
            body = {"prompt": context + continuation, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
            logprobs = self._post("/completions", body)["choices"][0].get("logprobs")
            if not logprobs or "text_offset" not in logprobs:
                raise EvalError(f"{self.base_url} does not return echoed prompt logprobs; log-likelihood tasks need it")
            total, greedy, count = 0.0, True, 0
            prompt_tokens = len(logprobs["tokens"]) - 1  # the last entry is the generated token
            for i in range(prompt_tokens):
                if logprobs["text_offset"][i] < len(context) or logprobs["token_logprobs"][i] is None:
                    continue
                token, value = logprobs["tokens"][i], logprobs["token_logprobs"][i]
                top = (logprobs.get("top_logprobs") or [None] * prompt_tokens)[i] or {token: value}
                total += value
                greedy &= max(top, key=top.get) == token
                count += 1
            if count == 0:
                raise EvalError(f"continuation {continuation!r} got no tokens from {self.base_url}")
            return Loglikelihood(total, greedy, count)

        return self._map(one, list(requests))


def _chat_choice(choice: Mapping[str, Any], completion_tokens: int, params: SamplingParams) -> HTTPChatChoice:
    message = choice.get("message") or {}
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            arguments = {"_unparsed": function.get("arguments")}
        calls.append(ToolCall(function.get("name", ""), arguments, call.get("id") or "call_0"))
    content = message.get("content") or ""
    return HTTPChatChoice(
        AssistantMessage(content, message.get("reasoning_content"), calls), content, choice.get("finish_reason") or "stop", [],
        completion_tokens=completion_tokens, **_chat_logprobs(choice, params),
    )  # fmt: skip


def openai_backend(model: str, **options: Any) -> OpenAIBackend:
    """Factory registered as backend `openai`: options base_url, api_key, timeout, max_concurrency, tokenizer, context_length."""
    return OpenAIBackend(model, **options)
