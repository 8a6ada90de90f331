"""Core's subcommands: pull, models, tokenize, generate, chat, plugins, interp (`llmkit.core.interp.cli`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from ..device import add_device_argument, log_device, resolve_device
from ..models import store
from ..models.pretrained import QUANTIZE_FORMATS, WEIGHTS, Pretrained, load_pretrained
from ..sampling import SamplingParams
from .documents import add_file_arguments, file_content, generate_with_pages, text_of

# Piped output keeps whole names and paths instead of rich's 80-column ellipses.
console = Console(width=None if sys.stdout.isatty() else 240)


def register(cli) -> None:
    pull = cli.command("pull", help="fetch a catalog model into the local store")
    pull.add_argument(
        "name", nargs="?", default=store.DEFAULT_MODEL, help=f"catalog name (default {store.DEFAULT_MODEL})"
    )
    pull.add_argument("--force", action="store_true", help="fetch again even if present")
    pull.add_argument("--verify", action="store_true", help="re-hash a present model and fetch again on mismatch")
    pull.set_defaults(func=run_pull)

    models = cli.command("models", help="list local models and the catalog")
    models.set_defaults(func=run_models)

    tokenize = cli.command("tokenize", help="show the tokens of a text")
    tokenize.add_argument("text")
    add_model_arguments(tokenize, with_dtype=False)
    tokenize.set_defaults(func=run_tokenize)

    generate = cli.command("generate", help="generate a completion for one prompt, streamed")
    generate.add_argument("prompt")
    generate.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    generate.add_argument("--system", help="system message (chat mode)")
    add_model_arguments(generate)
    add_device_argument(generate)
    add_sampling_arguments(generate)
    add_file_arguments(generate)
    generate.set_defaults(func=run_generate)

    chat = cli.command("chat", help="talk to a model interactively (/reset clears history, /exit quits)")
    chat.add_argument("--system", help="system message")
    add_model_arguments(chat)
    add_device_argument(chat)
    add_sampling_arguments(chat)
    add_file_arguments(chat, pages=False)
    chat.set_defaults(func=run_chat)

    plugins = cli.command("plugins", help="list installed plugins and what each registered")
    plugins.set_defaults(func=run_plugins)

    from ..interp import cli as interp_cli

    interp_cli.register(cli)


def add_model_arguments(parser: argparse.ArgumentParser, with_dtype: bool = True) -> None:
    parser.add_argument("--model", "-m", default=store.DEFAULT_MODEL, help="catalog name, .gguf file or HF directory")
    parser.add_argument(
        "--chat-template", help="template name (chatml, llama3) or .jinja file instead of the model's own"
    )
    if with_dtype:
        add_weights_arguments(parser)


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights / --quantize / --activations / --dtype: how a model's weights are held and multiplied."""
    group = parser.add_argument_group("weights")
    group.add_argument(
        "--weights",
        choices=WEIGHTS,
        help="as-stored keeps GGUF blocks (memory-mapped) and bf16/fp16 matrices as the file has them; "
        "float32/bfloat16/float16 make a dense copy (default: as-stored for GGUF, float32 otherwise)",
    )
    group.add_argument(
        "--quantize", choices=QUANTIZE_FORMATS, help="quantize float matrices at load (HF safetensors) and keep them"
    )
    group.add_argument(
        "--activations",
        choices=["float32", "int8"],
        help="matmul inputs for stored Q8_0/Q4_0/Q4_1 weights: float32 (exact up to summation order) or int8 "
        "(llama.cpp's Q8 activations); default int8 in the serving engine (measured: docs/benchmarks.md), "
        "float32 in core's reference generate",
    )
    group.add_argument("--dtype", help="shorthand for a dense copy: float32, bfloat16 or float16")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--max-tokens", type=int, default=256)
    group.add_argument("--temperature", type=float, default=0.7, help="0 is greedy (default 0.7)")
    group.add_argument("--top-p", type=float, default=0.9, help="default 0.9")
    group.add_argument("--top-k", type=int, default=0, help="0 disables (default)")
    group.add_argument("--min-p", type=float, default=0.0)
    group.add_argument("--repetition-penalty", type=float, default=1.0)
    group.add_argument("--seed", type=int)
    group.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    group.add_argument(
        "--sampler",
        action="append",
        default=[],
        metavar="NAME[:K=V,...]",
        help="a plugin sampler by name, with arguments, e.g. typical:mass=0.9",
    )


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        stop=tuple(args.stop),
        logits_processors=tuple(parse_sampler_spec(s) for s in args.sampler),
    )


def parse_sampler_spec(spec: str) -> tuple[str, dict]:
    """'name:k=v,k2=v2' -> ('name', {'k': v, ...}) with numbers parsed."""
    name, _, rest = spec.partition(":")
    args: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            args[key] = int(value)
        except ValueError:
            try:
                args[key] = float(value)
            except ValueError:
                args[key] = value
    return name, args


def load(args: argparse.Namespace) -> Pretrained:
    device = resolve_device(args.device)  # a device this machine cannot give fails here, before loading
    log_device(device, args.device)
    with console.status(f"loading {args.model}", spinner="dots"):
        return load_pretrained(
            args.model,
            dtype=getattr(args, "dtype", None),
            weights=getattr(args, "weights", None),
            quantize=getattr(args, "quantize", None),
            activations=getattr(args, "activations", None),
            device=device,
            chat_template=args.chat_template,
        )


def run_pull(args: argparse.Namespace) -> int:
    name = store.canonical_name(args.name)
    before = store.find_local(name)
    model = store.pull(name, force=args.force, verify=args.verify)
    verb = "already present" if before is not None and before.manifest == model.manifest else "pulled"
    console.print(f"{name}: {verb} at {model.path} (sha256 {model.manifest['sha256'][:16]}…)")
    return 0


def run_models(args: argparse.Namespace) -> int:
    table = Table("name", "state", "format", "size", "sha256", "path")
    local = {m.name: m for m in store.local_models()}
    for name, entry in store.CATALOG.items():
        model = local.get(name)
        if model is None:
            table.add_row(name, "not pulled", "", "", entry.sha256[:12], f"llmkit pull {name}")
        else:
            m = model.manifest
            table.add_row(name, "local", m["format"], f"{m['size'] / 2**20:.1f} MiB", m["sha256"][:12], str(model.path))
    console.print(table)
    return 0


def run_tokenize(args: argparse.Namespace) -> int:
    from ..models.pretrained import find_loader

    path = store.resolve(args.model)
    tokenizer = find_loader(path)[1].load(path).tokenizer
    table = Table("#", "id", "token", "text")
    pieces = tokenizer.pieces(args.text)
    for i, (token_id, token, text) in enumerate(pieces):
        table.add_row(str(i), str(token_id), repr(token), repr(text))
    console.print(table)
    console.print(f"{len(pieces)} tokens: {[p[0] for p in pieces]}")
    return 0


def _stream(pretrained: Pretrained, prompt_ids: list[int], params: SamplingParams) -> str:
    from ..generate import stream_generate

    text = []
    for event in stream_generate(pretrained.model, pretrained.tokenizer, [prompt_ids], params):
        sys.stdout.write(event.text)
        sys.stdout.flush()
        text.append(event.text)
    sys.stdout.write("\n")
    return "".join(text)


def run_generate(args: argparse.Namespace) -> int:
    params = sampling_params(args)
    parts, pages = file_content(args)  # --file: PDFs before the prompt
    if pages:
        return generate_with_pages(args, parts, pages)
    pretrained = load(args)
    prompt = text_of(parts) + args.prompt
    if args.raw or pretrained.chat_template is None:
        prompt_ids = pretrained.tokenizer.encode(prompt, add_special_tokens=True)
    else:
        messages = [{"role": "system", "content": args.system}] if args.system else []
        prompt_ids = pretrained.chat_prompt([*messages, {"role": "user", "content": prompt}])
    _stream(pretrained, prompt_ids, params)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    params = sampling_params(args)
    documents = text_of(file_content(args)[0])  # --file: the PDFs' text opens the first user message
    pretrained = load(args)
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict] = []
    console.print(f"[bold]{args.model}[/bold] — /reset clears the conversation, /exit or Ctrl-D quits")
    while True:
        try:
            line = input("> ")
        except EOFError:
            print()
            return 0
        if line.strip() in ("/exit", "/quit"):
            return 0
        if line.strip() == "/reset":
            history.clear()
            console.print("[dim](conversation cleared)[/dim]")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": (documents if not history else "") + line})
        reply = _stream(pretrained, pretrained.chat_prompt(system + history), params)
        history.append({"role": "assistant", "content": reply})


def run_plugins(args: argparse.Namespace) -> int:
    from ..plugins import HOOKS, failed_plugins, registrations
    from . import build_parser

    for kind in HOOKS:  # a first pass disables every plugin whose hook raises, whichever kind it fails in
        registrations(kind)
    _, command_owners = build_parser()
    table = Table("plugin", "kind", "registered")
    rows: dict[tuple[str, str], list[str]] = {}
    for kind in HOOKS:
        for call in registrations(kind):
            label = str(call.args[0]) if kind != "kernels" else f"{call.args[0]}@{call.args[1]}"
            rows.setdefault((call.owner, kind), []).append(label)
    for (owner, kind), names in sorted(rows.items()):
        table.add_row(owner, kind, ", ".join(names))
    for owner in dict.fromkeys(command_owners.values()):
        table.add_row(owner, "commands", ", ".join(c for c, o in command_owners.items() if o == owner))
    for name, why in failed_plugins.items():
        table.add_row(f"[red]{name}[/red]", "failed, disabled", why)
    console.print(table)
    return 0
