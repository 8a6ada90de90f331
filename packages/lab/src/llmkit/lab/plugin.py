"""llmkit-lab's registrations: the `experiment` and `registry` commands."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_commands(cli):
    from .cli import register_experiment, register_models

    register_experiment(cli)
    register_models(cli)
