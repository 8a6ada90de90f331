"""Validate OpenAI requests into what the engine runs: prompt token ids and `SamplingParams`."""

from __future__ import annotations

import dataclasses

from pydantic import ValidationError

from llmkit.core.errors import ChatTemplateError, InvalidParameterError
from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import GrammarError, StructuredOutput

from ..reasoning import ReplyReasoning
from ..structured.generic_tools import GENERIC, generic_messages, uses_generic_format
from ..structured.requests import from_response_format, from_tools
from ..vision import ImagePrompt
from .chat_extras import check_chat_extras, reply_reasoning
from .errors import APIError, from_validation_error
from .image_parts import image_chat_prompt
from .protocol import ChatCompletionRequest, CompletionRequest
from .state import Server
from .tool_params import check_tool_choice, check_tools


@dataclasses.dataclass
class ChatJob:
    req: ChatCompletionRequest
    prompt: list[int] | ImagePrompt  # len(): prompt tokens, image tokens included
    params: SamplingParams
    with_tools: bool
    structured: StructuredOutput | None = None  # the grammar the reply must follow, if any
    tool_call_format: str = "hermes"  # how the reply's tool calls are written (generic_tools.GENERIC, ...)
    reasoning: ReplyReasoning | None = None  # the template has a thinking section: replies split around it


@dataclasses.dataclass
class CompletionJob:
    req: CompletionRequest
    prompts: list[list[int]]
    params: list[SamplingParams]
    prompt_texts: list[str]  # with echo, each prompt as text: as sent, or its token ids decoded
    echo_only: bool = False  # echo with max_tokens 0: the prompt is scored, the one token generated is dropped


def prepare_chat(server: Server, body: dict, images: list | tuple = ()) -> ChatJob:
    """`images`: (image, detail) for each `{"type": "image"}` part of the body, in order (see image_parts)."""
    try:
        req = ChatCompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    check_tool_choice(req.tool_choice, check_tools(req.tools))
    check_chat_extras(req)
    tools = req.tools if req.tools and req.tool_choice != "none" else None
    generic = uses_generic_format(server.engine.pretrained.chat_template)
    tool_call_format = GENERIC if generic else server.tool_call_format
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
            structured = from_tools(tools, req.tool_choice, req.parallel_tool_calls, tool_call_format)
    except GrammarError as err:
        raise APIError(400, str(err), param="tools" if tools else "response_format") from None
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    try:
        if generic:  # the template has no tool slot: tools and tool turns in the generic format
            messages = generic_messages(messages, tools, req.tool_choice, req.parallel_tool_calls is not False)
        prompt = (
            image_chat_prompt(server, messages, images, req, tools)
            if images
            else server.engine.pretrained.chat_prompt(
                messages,
                tools=None if generic else tools,
                add_generation_prompt=req.add_generation_prompt,
                continue_final_message=req.continue_final_message,
                template_kwargs=req.chat_template_kwargs,
            )
        )
    except ChatTemplateError as err:
        raise APIError(400, str(err), param="messages") from None
    max_tokens = server.max_tokens_for(len(prompt), req.requested_max_tokens)
    top = req.top_logprobs or 0
    params = req.sampling_params(max_tokens, req.logprobs or top > 0, top)
    pretrained = server.engine.pretrained
    ids = prompt.token_ids if isinstance(prompt, ImagePrompt) else prompt
    reasoning, params = reply_reasoning(
        req, pretrained.chat_template, pretrained.tokenizer, ids, params, structured is not None
    )
    return ChatJob(req, prompt, params, tools is not None, structured, tool_call_format, reasoning)


def prepare_completion(server: Server, body: dict) -> CompletionJob:
    try:
        req = CompletionRequest.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    server.check_model(req.model)
    if req.max_tokens == 0 and not req.echo:
        raise APIError(
            400,
            "max_tokens 0 asks for no completion; it is allowed only with echo=true (to score the prompt)",
            param="max_tokens",
            code="invalid_value",
        )
    if req.best_of not in (None, req.n):
        raise APIError(
            400, "best_of must equal n (llmkit returns every sample)", param="best_of", code="unsupported_parameter"
        )
    tokenizer = server.engine.tokenizer
    sent = req.prompts()
    prompts = [tokenizer.encode(p, add_special_tokens=True) if isinstance(p, str) else p for p in sent]
    if not prompts or any(not p for p in prompts):
        raise APIError(400, "prompt must not be empty", param="prompt")
    for i, prompt in enumerate(prompts):
        try:
            server.engine.check_token_ids(prompt)
        except InvalidParameterError as err:
            where = "prompt" if len(prompts) == 1 else f"prompt[{i}]"
            raise APIError(400, f"{where}: {err}", param="prompt", code="invalid_value") from None
    top = req.logprobs or 0
    # The engine generates at least one token; for max_tokens 0 it generates one and the response drops it.
    requested = max(req.max_tokens, 1)
    params = [
        req.sampling_params(server.max_tokens_for(len(p), requested), req.logprobs is not None, top).replace(
            prompt_logprobs=req.echo and req.logprobs is not None
        )
        for p in prompts
    ]
    texts = (
        [p if isinstance(p, str) else tokenizer.decode(p, skip_special_tokens=False) for p in sent] if req.echo else []
    )
    return CompletionJob(req, prompts, params, texts, echo_only=req.max_tokens == 0)
