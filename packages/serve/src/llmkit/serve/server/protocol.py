"""OpenAI request shapes (pydantic), validated into llmkit `SamplingParams`.

Parameters the server does not implement are refused by name rather than ignored. Every number
is bounded and finite here, at the edge, so that nothing a client sends can fail inside a step;
token ids are checked against the model's vocabulary in `preparation` (it knows the model).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmkit.core.sampling import SamplingParams

MAX_INT32 = 2**31 - 1
MAX_PROMPTS = 256  # prompts in one /v1/completions request (each is a request in the engine)


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    user: str | None = None
    # llmkit / vLLM extensions
    top_k: int = Field(default=0, ge=0, le=MAX_INT32)
    min_p: float = Field(default=0.0, ge=0, le=1)
    repetition_penalty: float = Field(default=1.0, gt=0, le=100)
    ignore_eos: bool = False
    llmkit: dict[str, Any] | None = None  # inference-time scaling (server/scaling.py, docs/scaling.md)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return stops

    def sampling_params(self, max_tokens: int, logprobs: bool, top_logprobs: int) -> SamplingParams:
        return SamplingParams(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            max_tokens=max_tokens,
            stop=tuple(self.stop or ()),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            n=self.n,
        )


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None  # an earlier reply's thinking; the template keeps or drops it


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_INT32)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_INT32)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # chat extras as vLLM names them (docs/serve.md, "Chat extras")
    add_generation_prompt: bool = Field(default=True, strict=True)
    continue_final_message: bool = Field(default=False, strict=True)
    chat_template_kwargs: dict[str, Any] | None = None
    max_thinking_tokens: int | None = Field(default=None, ge=0, le=MAX_INT32, strict=True)
    reasoning_effort: Literal["low", "medium", "high"] | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = Field(default=16, ge=0, le=MAX_INT32)  # 0: only with echo, to score the prompt
    logprobs: int | None = Field(default=None, ge=0, le=20, strict=True)  # with echo, over the prompt's tokens too
    echo: bool = Field(default=False, strict=True)  # the prompt precedes the completion in `text` and `logprobs`
    best_of: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        """One clear message for a malformed prompt (pydantic's union errors name every alternative)."""
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not value:
            raise ValueError(
                "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids"
            )
        nested = any(isinstance(v, list) for v in value)
        if nested or all(isinstance(v, str) for v in value):
            if len(value) > MAX_PROMPTS:
                raise ValueError(f"at most {MAX_PROMPTS} prompts per request, got {len(value)}")
            for i, item in enumerate(value):
                if not nested:
                    continue
                if not isinstance(item, list):
                    raise ValueError(f"prompt[{i}] is {_describe(item)}; in a list of lists every item is a list")
                _check_token_ids(item, f"prompt[{i}]")
            return value
        _check_token_ids(value, "prompt")
        return value

    def prompts(self) -> list[str | list[int]]:
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [list(prompt)]
        return list(prompt)


def _check_token_ids(ids: list, where: str) -> None:
    """Each id a JSON integer in [0, 2**31) (bools are not ids); the vocabulary bound is checked later."""
    if not ids:
        raise ValueError(f"{where} is an empty list of token ids")
    for j, token in enumerate(ids):
        if type(token) is not int or not 0 <= token <= MAX_INT32:
            raise ValueError(f"{where}[{j}] is {_describe(token)}, not a token id (an integer >= 0)")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
