"""llmkit-lab's registrations: the `experiment`, `registry` and `diagnose` commands."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_commands(cli):
    from .cli import register_experiment, register_models
    from .diagnose.command import register_diagnose

    register_experiment(cli)
    register_models(cli)
    register_diagnose(cli)
