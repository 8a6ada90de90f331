"""llmkit-train's registrations: the `llmkit train` command and the built-in RL verifiers."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_verifiers(register):
    from .verifiers import BUILTIN_VERIFIERS

    for name, verifier in BUILTIN_VERIFIERS.items():
        register(name, verifier)


@hookimpl
def llmkit_register_commands(cli):
    from .cli import register

    register(cli)
