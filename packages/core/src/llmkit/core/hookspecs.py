"""pluggy hook specifications of project `llmkit` (entry-point group `llmkit`).

Every hook receives a `register` callback bound to the calling plugin, so a name
two plugins both claim fails loudly with both plugin names.
"""

import pluggy

hookspec = pluggy.HookspecMarker("llmkit")
hookimpl = pluggy.HookimplMarker("llmkit")


@hookspec
def llmkit_register_samplers(register):
    """register(name, processor): a logits processor usable by name in `SamplingParams.logits_processors`.

    `processor(logits [R, V], args: list[dict]) -> logits` transforms the rows that asked for it;
    an optional `processor.validate(args: dict)` rejects bad arguments when the request is made.
    """


@hookspec
def llmkit_register_verifiers(register):
    """register(name, verifier): `verifier(prompt, completion, reference) -> VerifierResult`."""


@hookspec
def llmkit_register_tools(register):
    """register(name, function): a typed Python callable exposed to models as a tool."""


@hookspec
def llmkit_register_kernels(register):
    """register(op, device, implementation, priority=0): a faster implementation of a core op."""


@hookspec
def llmkit_register_model_loaders(register):
    """register(name, loader): a `ModelLoader` (`can_load(path)`, `load(path) -> Checkpoint`)."""


@hookspec
def llmkit_register_backends(register):
    """register(name, factory): a chat/completion backend (local engine, HTTP, ...)."""


@hookspec
def llmkit_register_chat_templates(register):
    """register(name, source): a Jinja chat template selectable by name (e.g. `--chat-template chatml`)."""


@hookspec
def llmkit_register_datasets(register):
    """register(name, loader): a dataset by name; `loader()` yields dict records with an `id` and a `text`.

    The text is what the item shows a model (question, options, context), so the training-data pipeline
    can check training sets against every installed dataset (contamination) without importing its owner.
    """


@hookspec
def llmkit_register_guards(register):
    """register(name, factory): `factory(**options) -> Guard` (`llmkit.core.guards`), an input/output check that
    serve runs per request and orchestrate runs on tool arguments and results; options arrive as strings from
    `--guard NAME:key=value` or as values from a guards config file."""


@hookspec
def llmkit_register_escalation_rules(register):
    """register(name, factory): `factory(**options) -> rule`, a cascade's escalation rule
    `(prompt, tier_result, reference) -> Escalation` (`llmkit.core.scaling`); options arrive as strings from
    a `NAME:key=value` spec."""


@hookspec
def llmkit_register_fewshot_selectors(register):
    """register(name, factory): `factory(pool: list[str], *, k, seed, labels, **options)` returns a selector whose
    `select_indices(query, exclude) -> list[int]` picks few-shot examples from the pool, in prompt order
    (llmkit-eval's `PromptFormat(fewshot_sampler=name, fewshot_options={...})`)."""


@hookspec
def llmkit_register_agents(register):
    """register(name, run): `run(backend, goal, functions, *, max_steps, params, guards, tool_choice, seed) -> dict`
    runs a tool-using agent over plain Python functions as its tools and returns {"answer", "stop_reason",
    "steps", "tool_log"} (each log entry: name, arguments, status, content). llmkit-orchestrate registers
    "react"; llmkit-eval's agent tasks find it here without importing orchestrate."""


@hookspec
def llmkit_register_commands(cli):
    """cli.command(name, help) -> argparse parser; set `func` with `parser.set_defaults(func=...)`."""
