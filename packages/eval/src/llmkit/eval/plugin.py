"""llmkit-eval's registrations: verifiers, the OpenAI-compatible HTTP backend, and its commands."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_verifiers(register):
    from .scoring.code import python_tests_verifier
    from .verifiers import exact_match_verifier, numeric_match_verifier

    register("exact_match", exact_match_verifier)
    register("numeric_match", numeric_match_verifier)
    register("python_tests", python_tests_verifier)


@hookimpl
def llmkit_register_backends(register):
    from .backends.openai import openai_backend

    register("openai", openai_backend)


@hookimpl
def llmkit_register_commands(cli):
    from .cli import cost_command, eval_commands

    eval_commands.register(cli)
    cost_command.register(cli)
