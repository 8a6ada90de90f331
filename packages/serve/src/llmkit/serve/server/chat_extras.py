"""The chat extras of a request (vLLM's names): generation prompt, continuing the final message, template
variables, and the thinking budget — checked up front into OpenAI-shaped 400s, then applied."""

from __future__ import annotations

from llmkit.core.chat_template import RESERVED_VARIABLES, ChatTemplate
from llmkit.core.sampling import SamplingParams
from llmkit.core.tokenizer import Tokenizer

from ..reasoning import EFFORT_BUDGETS, ReplyReasoning, ends_inside_section, reasoning_tags, thinking_budget
from .errors import APIError
from .protocol import ChatCompletionRequest


def check_chat_extras(req: ChatCompletionRequest) -> None:
    if req.continue_final_message and req.add_generation_prompt:
        raise APIError(
            400,
            "continue_final_message and add_generation_prompt cannot both be true; "
            "send add_generation_prompt=false to continue the final message",
            param="continue_final_message",
            code="invalid_value",
        )
    if req.continue_final_message and req.messages[-1].role != "assistant":
        raise APIError(
            400,
            f"continue_final_message needs an assistant message last; the last message is {req.messages[-1].role!r}",
            param="continue_final_message",
            code="invalid_value",
        )
    reserved = sorted(RESERVED_VARIABLES & (req.chat_template_kwargs or {}).keys())
    if reserved:
        raise APIError(
            400,
            f"chat_template_kwargs may not set {', '.join(reserved)}: the server sets these template variables "
            "(use the request's own parameters)",
            param="chat_template_kwargs",
            code="invalid_value",
        )
    if req.max_thinking_tokens is not None and req.reasoning_effort is not None:
        raise APIError(
            400,
            "send one of max_thinking_tokens and reasoning_effort, not both",
            param="max_thinking_tokens",
            code="invalid_value",
        )


def requested_thinking_tokens(req: ChatCompletionRequest) -> int | None:
    if req.reasoning_effort is not None:
        return EFFORT_BUDGETS[req.reasoning_effort]
    return req.max_thinking_tokens


def reply_reasoning(
    req: ChatCompletionRequest,
    template: ChatTemplate | None,
    tokenizer: Tokenizer,
    prompt: list[int],
    params: SamplingParams,
    constrained: bool,
) -> tuple[ReplyReasoning | None, SamplingParams]:
    """How the replies split into reasoning and content (None: the template has no thinking section, or a
    grammar holds the reply), and `params` with the thinking budget the request asked for."""
    tags = reasoning_tags(template.source) if template is not None else None
    budget = requested_thinking_tokens(req)
    param = "reasoning_effort" if req.reasoning_effort is not None else "max_thinking_tokens"
    if budget is not None and tags is None:
        raise APIError(
            400,
            f"{param} needs a chat template with a thinking section (<think>...</think>); this model's has none",
            param=param,
            code="unsupported_parameter",
        )
    if budget is not None and constrained:
        raise APIError(
            400,
            f"{param} cannot be combined with response_format or tools: their grammar governs the whole reply",
            param=param,
            code="unsupported_parameter",
        )
    if tags is None or constrained:  # a grammar governs the whole reply: there is no section to split off
        return None, params
    prompt_text = tokenizer.decode(prompt, skip_special_tokens=False)
    reasoning = ReplyReasoning(tags, ends_inside_section(prompt_text, tags))
    if budget is not None:
        params = params.replace(thinking_budget=thinking_budget(budget, tags, tokenizer, reasoning.starts_open))
    return reasoning, params
