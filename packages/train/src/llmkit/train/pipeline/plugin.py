"""The data pipeline's registration: the `llmkit data` command (entry point `data` of llmkit-train)."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_commands(cli):
    from .cli import register

    register(cli)
