"""The `engine` backend: core's `Backend` interface served by the continuous-batching engine."""

from __future__ import annotations

from typing import Any

from llmkit.core.backends import ModelBackend
from llmkit.core.models.store import DEFAULT_MODEL

from .engine import Engine


class EngineBackend(ModelBackend):
    """Generation (and chat) runs through the engine; scoring uses the shared model directly."""

    name = "engine"
    supports_structured = True

    def __init__(self, engine: Engine, tool_call_format: str | None = None):
        super().__init__(engine.pretrained, tool_call_format)
        self.engine = engine

    def generate(self, prompts, params, structured=None):
        """`structured`: a StructuredOutput for every prompt, or one (or None) per prompt."""
        return self.engine.generate(prompts, params, progress=False, structured=structured)


def engine_backend(
    model: str = DEFAULT_MODEL,
    *,
    dtype: str | None = None,
    chat_template: str | None = None,
    tool_call_format: str | None = None,
    **engine_options: Any,
) -> EngineBackend:
    """Build an engine over `model` (EngineConfig fields as keyword options) and wrap it as a backend."""
    return EngineBackend(Engine(model, dtype=dtype, chat_template=chat_template, **engine_options), tool_call_format)
