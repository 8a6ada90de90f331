"""llmkit.core: models, tokenizers, chat templates, sampling, reference generation and plugins."""

from .assistant_output import AssistantMessage, ToolCall, parse_assistant_output
from .chat_template import ChatTemplate
from .errors import (
    ChatTemplateError,
    ContextLengthError,
    InvalidParameterError,
    LlmkitError,
    ModelFormatError,
    ModelNotFoundError,
    PluginError,
)
from .generate import Completion, GenerationOutput, StreamEvent, generate, stream_generate
from .models.attention import DenseCausalAttention, KVCache
from .models.config import ModelConfig
from .models.llama import LlamaModel
from .models.pretrained import Pretrained, load_pretrained
from .models.store import DEFAULT_MODEL, pull
from .sampling import SamplingParams
from .tokenizer import IncrementalDetokenizer, Tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "AssistantMessage",
    "ChatTemplate",
    "ChatTemplateError",
    "Completion",
    "ContextLengthError",
    "DenseCausalAttention",
    "GenerationOutput",
    "IncrementalDetokenizer",
    "InvalidParameterError",
    "KVCache",
    "LlamaModel",
    "LlmkitError",
    "ModelConfig",
    "ModelFormatError",
    "ModelNotFoundError",
    "PluginError",
    "Pretrained",
    "SamplingParams",
    "StreamEvent",
    "Tokenizer",
    "ToolCall",
    "generate",
    "load_pretrained",
    "parse_assistant_output",
    "pull",
    "stream_generate",
]
