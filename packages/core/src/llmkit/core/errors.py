"""Exceptions llmkit raises on bad input: one clear message, never a deep traceback."""


class LlmkitError(Exception):
    """Base class of every error llmkit raises on purpose."""


class ModelNotFoundError(LlmkitError, LookupError):
    """A model name or path that is neither local nor in the catalog."""


class ModelFormatError(LlmkitError, ValueError):
    """A checkpoint that cannot be read: corrupt file, unknown architecture, tensor type or missing tensor."""


class ContextLengthError(LlmkitError, ValueError):
    """A prompt that does not fit in the model's context window."""


class PluginError(LlmkitError):
    """A plugin that fails to load or registers a name another plugin already owns."""


class ChatTemplateError(LlmkitError, ValueError):
    """A chat template that fails to render, or messages it cannot take."""


class InvalidParameterError(LlmkitError, ValueError):
    """A parameter outside its valid range (sampling values, sizes, ...)."""
