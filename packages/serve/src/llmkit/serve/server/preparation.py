"""Validate OpenAI requests into what the engine runs: prompt token ids and `SamplingParams`."""

from __future__ import annotations

import dataclasses

from pydantic import ValidationError

from llmkit.core.errors import ChatTemplateError, InvalidParameterError
from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import GrammarError, StructuredOutput

from ..structured.requests import from_response_format, from_tools
from .errors import APIError, from_validation_error
from .protocol import ChatCompletionRequest, CompletionRequest
from .state import Server


@dataclasses.dataclass
class ChatJob:
    req: ChatCompletionRequest
    prompt: list[int]
    params: SamplingParams
    with_tools: bool
    structured: StructuredOutput | None = None  # the grammar the reply must follow, if any


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
    tools = req.tools if req.tools and req.tool_choice != "none" else None
    try:
        structured = from_response_format(req.response_format)
        if tools and structured is not None:
            raise APIError(
                400,
                "response_format together with tools is not supported; send one of them",
                param="response_format",
                code="unsupported_parameter",
            )
        if tools:
            structured = from_tools(tools, req.tool_choice, req.parallel_tool_calls, server.tool_call_format)
    except GrammarError as err:
        raise APIError(400, str(err), param="tools" if tools else "response_format") from None
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    try:
        prompt = server.engine.pretrained.chat_prompt(messages, tools=tools)
    except ChatTemplateError as err:
        raise APIError(400, str(err), param="messages") from None
    max_tokens = server.max_tokens_for(len(prompt), req.requested_max_tokens)
    top = req.top_logprobs or 0
    params = req.sampling_params(max_tokens, req.logprobs or top > 0, top)
    return ChatJob(req, prompt, params, tools is not None, structured)


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
    for i, prompt in enumerate(prompts):
        try:
            server.engine.check_token_ids(prompt)
        except InvalidParameterError as err:
            where = "prompt" if len(prompts) == 1 else f"prompt[{i}]"
            raise APIError(400, f"{where}: {err}", param="prompt", code="invalid_value") from None
    top = req.logprobs or 0
    params = [
        req.sampling_params(server.max_tokens_for(len(p), req.max_tokens), req.logprobs is not None, top)
        for p in prompts
    ]
    return CompletionJob(req, prompts, params)
