"""llmkit-context's registrations: the `llmkit context` command."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_commands(cli):
    from . import cli as context_cli

    context_cli.register(cli)
