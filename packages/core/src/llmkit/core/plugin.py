"""llmkit-core's own registrations, made through the same entry points as any plugin."""

from .backends import reference_backend
from .chat_template import BUILTIN_TEMPLATES, builtin_template_source
from .hookspecs import hookimpl
from .models.gguf_loader import GGUFLoader
from .models.hf_loader import HFLoader
from .models.vision.llava_loader import LlavaLoader
from .models.vision.loader import Idefics3Loader


@hookimpl
def llmkit_register_model_loaders(register):
    register("gguf", GGUFLoader())
    register("idefics3", Idefics3Loader())  # before "hf", which takes any directory with a config.json
    register("llava", LlavaLoader())  # before "hf" too
    register("hf", HFLoader())


@hookimpl
def llmkit_register_chat_templates(register):
    for name in BUILTIN_TEMPLATES:
        register(name, builtin_template_source(name))


@hookimpl
def llmkit_register_commands(cli):
    from .cli import commands

    commands.register(cli)


@hookimpl
def llmkit_register_backends(register):
    register("reference", reference_backend)


@hookimpl
def llmkit_register_guards(register):
    from .guards.injection import PromptInjectionGuard
    from .guards.lm_policy import lm_policy_guard
    from .guards.pii import pii_guard, regex_guard
    from .guards.schema import schema_guard

    register("schema", schema_guard)
    register("regex", regex_guard)
    register("pii", pii_guard)
    register("prompt_injection", PromptInjectionGuard)
    register("lm_policy", lm_policy_guard)


@hookimpl
def llmkit_register_escalation_rules(register):
    from .scaling.escalation import BUILTIN_RULES

    for name, factory in BUILTIN_RULES.items():
        register(name, factory)
