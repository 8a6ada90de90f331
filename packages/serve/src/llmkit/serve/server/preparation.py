"""Validate OpenAI requests into what the engine runs: prompt token ids and `SamplingParams`."""

from __future__ import annotations

import dataclasses

from pydantic import ValidationError

from llmkit.core.errors import ChatTemplateError
from llmkit.core.sampling import SamplingParams

from .errors import APIError, from_validation_error
from .protocol import ChatCompletionRequest, CompletionRequest
from .state import Server


@dataclasses.dataclass
class ChatJob:
    req: ChatCompletionRequest
    prompt: list[int]
    params: SamplingParams
    with_tools: bool


@dataclasses.dataclass
class CompletionJob:
    req: CompletionRequest
    prompts: list[list[int]]
    params: list[SamplingParams]


def prepare_chat(server: Server, body: dict) -> ChatJob:
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    if req.response_format and req.response_format.get("type") != "text":
        raise APIError(
            400,
            "response_format other than 'text' is not supported by this server yet",
            param="response_format",
            code="unsupported_parameter",
        )
    tools = req.tools if req.tools and req.tool_choice != "none" else None
    if tools and req.tool_choice not in (None, "auto"):
        raise APIError(
            400,
            "tool_choice other than 'auto' or 'none' is not supported yet",
            param="tool_choice",
            code="unsupported_parameter",
        )
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    try:
        prompt = server.engine.pretrained.chat_prompt(messages, tools=tools)
    except ChatTemplateError as err:
        raise APIError(400, str(err), param="messages") from None
    max_tokens = server.max_tokens_for(len(prompt), req.requested_max_tokens)
    top = req.top_logprobs or 0
    return ChatJob(req, prompt, req.sampling_params(max_tokens, req.logprobs or top > 0, top), tools is not None)


def prepare_completion(server: Server, body: dict) -> CompletionJob:
    try:
        req = CompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    if req.echo:
        raise APIError(400, "echo is not supported by this server", param="echo", code="unsupported_parameter")
    if req.best_of not in (None, req.n):
        raise APIError(
            400, "best_of must equal n (llmkit returns every sample)", param="best_of", code="unsupported_parameter"
        )
    tokenizer = server.engine.tokenizer
    prompts = [tokenizer.encode(p, add_special_tokens=True) if isinstance(p, str) else p for p in req.prompts()]
    if not prompts or any(not p for p in prompts):
        raise APIError(400, "prompt must not be empty", param="prompt")
    top = req.logprobs or 0
    params = [
        req.sampling_params(server.max_tokens_for(len(p), req.max_tokens), req.logprobs is not None, top)
        for p in prompts
    ]
    return CompletionJob(req, prompts, params)
