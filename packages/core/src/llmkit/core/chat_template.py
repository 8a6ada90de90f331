"""Chat templates: the model's own Jinja template (or a built-in) rendered in a sandbox."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import ChatTemplateError

BUILTIN_TEMPLATES = ("chatml", "llama3")
ROLES = ("system", "user", "assistant", "tool", "developer")
# Variables the renderer itself sets: extra template variables may not replace them.
RESERVED_VARIABLES = frozenset(
    {"messages", "tools", "add_generation_prompt", "continue_final_message", "bos_token", "eos_token"}
    | {"raise_exception", "strftime_now"}
)


def builtin_template_source(name: str) -> str:
    return resources.files("llmkit.core").joinpath(f"templates/{name}.jinja").read_text()


def _tojson(
    value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False, ensure_ascii: bool = False
) -> str:
    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(f"the chat template refused the messages: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


class ChatTemplate:
    """A compiled Jinja chat template (HF semantics: sandboxed, trim_blocks, lstrip_blocks)."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "", name: str = "model"):
        self.source, self.name = source, name
        self.bos_token, self.eos_token = bos_token, eos_token
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateSyntaxError as err:
            raise ChatTemplateError(
                f"chat template {name!r} does not parse: {err.message} (line {err.lineno})"
            ) from None

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.source

    @classmethod
    def named(cls, name: str, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """A template registered through `llmkit_register_chat_templates` (built-ins: chatml, llama3)."""
        from .plugins import registry

        return cls(registry("chat_templates").get(name), bos_token=bos_token, eos_token=eos_token, name=name)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        continue_final_message: bool = False,
        extra_variables: Mapping[str, Any] | None = None,
        image_parts: bool = False,
        **variables: Any,
    ) -> str:
        """The prompt text for `messages` (OpenAI-style dicts), ending with the assistant header if asked.

        `continue_final_message` ends the text inside the final (assistant) message, right after its content,
        so the reply continues it (HF transformers' rule: render, then cut after the message's content).
        `extra_variables` and `variables` are extra template variables (e.g. `enable_thinking`, a request's
        `chat_template_kwargs`); they may not replace the renderer's own. `image_parts` (vision-language models)
        keeps content lists holding `{"type": "image"}` parts as lists, for templates that place image tokens.
        """
        if tools and not self.supports_tools:
            raise ChatTemplateError(
                f"chat template {self.name!r} has no place for tool definitions; "
                "choose one that does (e.g. the built-in 'chatml')"
            )
        variables = {**(extra_variables or {}), **variables}
        reserved = sorted(RESERVED_VARIABLES & variables.keys())
        if reserved:
            raise ChatTemplateError(f"template variables {', '.join(reserved)} are set by the renderer itself")
        if continue_final_message and add_generation_prompt:
            raise ChatTemplateError(
                "continue_final_message and add_generation_prompt cannot both be set: "
                "the reply either continues the final message or starts a new one"
            )
        normalized = [normalize_message(m, i, image_parts) for i, m in enumerate(messages)]
        if continue_final_message and (not normalized or normalized[-1]["role"] != "assistant"):
            raise ChatTemplateError("continue_final_message needs an assistant message last, to continue")
        try:
            text = self._template.render(
                messages=normalized,
                tools=list(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **variables,
            )
        except ChatTemplateError:
            raise
        except SecurityError as err:
            raise ChatTemplateError(f"chat template {self.name!r} attempted an unsafe operation: {err}") from None
        except jinja2.TemplateError as err:
            raise ChatTemplateError(f"chat template {self.name!r} failed to render: {err}") from None
        return self._cut_after_final_message(text, normalized[-1]) if continue_final_message else text

    def _cut_after_final_message(self, text: str, final: Mapping[str, Any]) -> str:
        """The rendered text up to the end of the final message's content (HF's `continue_final_message`)."""
        content = final["content"] or ""
        if not content.strip() or content.strip() not in text:
            raise ChatTemplateError(
                f"chat template {self.name!r} does not write the final message's content into the prompt, "
                "so the reply cannot continue it"
            )
        at = text.rindex(content.strip())
        if text[at : at + len(content.lstrip())] == content:  # the template kept the content's trailing spaces
            return text[: at + len(content.lstrip())]
        return text[: at + len(content.strip())]


def normalize_message(message: Mapping[str, Any], index: int, image_parts: bool = False) -> dict[str, Any]:
    """Check one message and flatten text-part lists into a string (lists with image parts stay lists when
    `image_parts`)."""
    if not isinstance(message, Mapping):
        raise ChatTemplateError(f"message {index} is a {type(message).__name__}, not a mapping")
    role = message.get("role")
    if role not in ROLES:
        raise ChatTemplateError(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}")
    content = message.get("content")
    if image_parts and isinstance(content, list) and _has_image_part(content):
        for part in content:
            if not (isinstance(part, Mapping) and (part.get("type") == "image" or _is_text_part(part))):
                raise ChatTemplateError(f"message {index} has a content part llmkit cannot render: {part!r}")
        content = [dict(part) for part in content]
    elif isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ChatTemplateError(f"message {index} has a content part llmkit cannot render: {part!r}")
            texts.append(part["text"])
        content = "".join(texts)
    elif content is not None and not isinstance(content, str):
        raise ChatTemplateError(f"message {index} content must be a string, a list of text parts or null")
    if content is None and not message.get("tool_calls"):
        raise ChatTemplateError(f"message {index} ({role}) has no content")
    return {**message, "content": content}


def _has_image_part(content: list) -> bool:
    return any(isinstance(part, Mapping) and part.get("type") == "image" for part in content)


def _is_text_part(part: Mapping[str, Any]) -> bool:
    return part.get("type") == "text" and isinstance(part.get("text"), str)
