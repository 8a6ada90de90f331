"""OpenAI response bodies built from engine outputs: full responses, SSE chunks, logprobs, usage."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import orjson

from llmkit.core.assistant_output import parse_assistant_output
from llmkit.core.tokenizer import Tokenizer

from ..outputs import RequestOutput


@dataclasses.dataclass
class Choice:
    """One sample of a request, accumulated over steps."""

    index: int
    token_ids: list[int] = dataclasses.field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[float] = dataclasses.field(default_factory=list)
    top_logprobs: list[dict[int, float]] = dataclasses.field(default_factory=list)


def accumulate(choices: dict[int, Choice], output: RequestOutput) -> None:
    for delta in output.deltas:
        choice = choices.setdefault(delta.index, Choice(delta.index))
        choice.token_ids += delta.token_ids
        choice.text += delta.text
        choice.finish_reason = delta.finish_reason
        choice.logprobs += delta.logprobs or []
        choice.top_logprobs += delta.top_logprobs or []


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _token_entry(tokenizer: Tokenizer, token_id: int, logprob: float) -> dict[str, Any]:
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def chat_logprobs(
    tokenizer: Tokenizer, token_ids: list[int], logprobs: list[float], top: list[dict[int, float]]
) -> dict[str, Any]:
    content = []
    for i, (token_id, logprob) in enumerate(zip(token_ids, logprobs, strict=False)):
        entry = _token_entry(tokenizer, token_id, logprob)
        entry["top_logprobs"] = [_token_entry(tokenizer, t, lp) for t, lp in (top[i].items() if i < len(top) else [])]
        content.append(entry)
    return {"content": content}


@dataclasses.dataclass
class EchoedPrompt:
    """A prompt repeated before its completions (`echo`): its text, its token ids and, when the request
    asks for logprobs, each token's (None for the first: it has no context) and the top ones."""

    text: str
    token_ids: list[int]
    logprobs: list[float | None] | None = None
    top_logprobs: list[dict[int, float] | None] | None = None


def completion_logprobs(
    tokenizer: Tokenizer,
    token_ids: list[int],
    logprobs: list[float | None],
    top: list[dict[int, float] | None],
    offset: int,
) -> dict[str, Any]:
    """OpenAI's legacy logprobs: tokens, their logprobs, the top ones (token -> logprob, most likely first)
    and where each token's text starts in the decoded text, counted from `offset` (a token that ends
    inside a UTF-8 character starts where that character does)."""
    offsets, position = [], offset
    detokenizer = tokenizer.detokenizer(skip_special_tokens=False)
    for token_id in token_ids:
        offsets.append(position)
        position += len(detokenizer.push(token_id))
    return {
        "tokens": [token_text(tokenizer, t) for t in token_ids],
        "token_logprobs": logprobs[: len(token_ids)],
        "top_logprobs": [
            None if row is None else {token_text(tokenizer, t): lp for t, lp in row.items()} for row in top
        ]
        or None,
        "text_offset": offsets,
    }


def token_text(tokenizer: Tokenizer, token_id: int) -> str:
    """How a token is named in legacy logprobs: its decoded text, or, when that is not whole text on its own
    (one byte of a longer UTF-8 character) or is empty, its vocabulary piece, so distinct tokens keep
    distinct names in `top_logprobs`; ids the tokenizer does not know are `token_id:N`."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if text and "\ufffd" not in text:
        return text
    try:
        return tokenizer.id_to_token(token_id)
    except ValueError:
        return f"token_id:{token_id}"


def echoed_logprobs(
    tokenizer: Tokenizer,
    prompt: EchoedPrompt,
    token_ids: list[int],
    logprobs: list[float],
    top: list[dict[int, float]],
) -> dict[str, Any]:
    """Logprobs over the prompt's tokens, then the completion's (whose offsets start after the prompt text)."""
    head = completion_logprobs(tokenizer, prompt.token_ids, prompt.logprobs or [], prompt.top_logprobs or [], 0)
    tail = completion_logprobs(tokenizer, token_ids, logprobs, top, len(prompt.text))
    return {
        "tokens": head["tokens"] + tail["tokens"],
        "token_logprobs": head["token_logprobs"] + tail["token_logprobs"],
        "top_logprobs": (head["top_logprobs"] or []) + (tail["top_logprobs"] or []) or None,
        "text_offset": head["text_offset"] + tail["text_offset"],
    }


def completion_choice(
    tokenizer: Tokenizer, choice: Choice, logprobs: int | None, echo: EchoedPrompt | None, echo_only: bool
) -> dict[str, Any]:
    """`text`, `logprobs` and `finish_reason` of one completion choice; with `echo_only` (max_tokens 0) the
    token the engine generated is dropped, so the choice is the prompt alone."""
    token_ids, text = ([], "") if echo_only else (choice.token_ids, choice.text)
    body: dict[str, Any] = {"text": text if echo is None else echo.text + text, "logprobs": None}
    if logprobs is not None:
        values, top = choice.logprobs[: len(token_ids)], choice.top_logprobs[: len(token_ids)]
        body["logprobs"] = (
            completion_logprobs(tokenizer, token_ids, values, top, 0)
            if echo is None
            else echoed_logprobs(tokenizer, echo, token_ids, values, top)
        )
    body["finish_reason"] = "length" if echo_only else choice.finish_reason
    return body


def chat_message(choice: Choice, with_tools: bool, tool_call_format: str) -> tuple[dict[str, Any], str | None]:
    """The assistant message of a finished choice, and its finish reason (tool calls when any parsed)."""
    if not with_tools:
        return {"role": "assistant", "content": choice.text}, choice.finish_reason
    message = parse_assistant_output(choice.text, tool_call_format).to_openai()
    finish = "tool_calls" if message.get("tool_calls") else choice.finish_reason
    return message, finish


def chat_response(
    request_id: str,
    model: str,
    choices: dict[int, Choice],
    prompt_tokens: int,
    cached: int,
    tokenizer: Tokenizer,
    with_logprobs: bool,
    with_tools: bool,
    tool_call_format: str,
) -> dict[str, Any]:
    body_choices = []
    for index in sorted(choices):
        choice = choices[index]
        message, finish = chat_message(choice, with_tools, tool_call_format)
        body_choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": chat_logprobs(tokenizer, choice.token_ids, choice.logprobs, choice.top_logprobs)
                if with_logprobs
                else None,
                "finish_reason": finish,
            }
        )
    completion_tokens = sum(len(c.token_ids) for c in choices.values())
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": body_choices,
        "usage": usage(prompt_tokens, completion_tokens, cached),
    }


def chat_chunk(
    request_id: str, model: str, created: int, choices: list[dict[str, Any]], usage_body: dict | None = None
) -> dict[str, Any]:
    chunk = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage_body is not None:
        chunk["usage"] = usage_body
    return chunk


def completion_response(
    request_id: str,
    model: str,
    per_prompt: list[tuple[dict[int, Choice], int, int]],
    tokenizer: Tokenizer,
    logprobs: int | None,
    n: int,
    echoes: list[EchoedPrompt] | None = None,
    echo_only: bool = False,
) -> dict[str, Any]:
    """`echoes` (one per prompt) when the request asked for echo; `echo_only` for max_tokens 0."""
    body_choices, prompt_total, completion_total, cached_total = [], 0, 0, 0
    for p, (choices, prompt_tokens, cached) in enumerate(per_prompt):
        prompt_total += prompt_tokens
        cached_total += cached
        echo = echoes[p] if echoes else None
        for index in sorted(choices):
            choice = choices[index]
            completion_total += 0 if echo_only else len(choice.token_ids)
            body_choices.append(
                {"index": p * n + index, **completion_choice(tokenizer, choice, logprobs, echo, echo_only)}
            )
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": body_choices,
        "usage": usage(prompt_total, completion_total, cached_total),
    }
