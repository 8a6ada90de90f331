"""Registers the `http_fetch` toolbox through llmkit's tool hook, as any third-party plugin would."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_tools(register):
    from .fetch import HttpFetchToolbox

    register("http_fetch", HttpFetchToolbox)
