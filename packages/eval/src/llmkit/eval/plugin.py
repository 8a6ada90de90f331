"""llmkit-eval's registrations: verifiers, the OpenAI-compatible HTTP backend, its datasets and its commands."""

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
    from .redteam import cli as redteam_cli

    eval_commands.register(cli)
    cost_command.register(cli)
    redteam_cli.register(cli)


def _dataset_items(load, text):
    """A loader yielding {"id", "text"} for each sample of a built-in dataset (its text as a model sees it)."""

    def loader():
        for sample in load().samples:
            yield {"id": sample.id, "text": text(sample)}

    return loader


@hookimpl
def llmkit_register_datasets(register):
    from .data import builtin

    register("mmlu", _dataset_items(builtin.mmlu, lambda s: "\n".join([s.fields["question"], *s.fields["options"]])))
    register("hellaswag", _dataset_items(builtin.hellaswag, lambda s: f"{s.fields['ctx']} {s.choices[s.target]}"))
    register("gsm8k", _dataset_items(builtin.gsm8k, lambda s: s.fields["question"]))
    register(
        "humaneval", _dataset_items(builtin.humaneval, lambda s: s.fields["prompt"] + s.fields["canonical_solution"])
    )
    register("truthfulqa_mc1", _dataset_items(builtin.truthfulqa_mc1, lambda s: s.fields["question"]))
