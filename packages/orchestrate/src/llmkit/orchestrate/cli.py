"""`llmkit agent run|tools|runs|mcp-serve`: run an agent on a task with live progress, list tools and runs,
serve tools over MCP."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from llmkit.core.device import add_device_argument, log_device, resolve_device

from .errors import OrchestrateError

LOCAL_BACKENDS = ("engine", "reference")  # the backends that load the model into this process


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OrchestrateError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def tool_options(pairs: list[str]) -> dict[str, dict[str, str]]:
    """`--tool-option sql.database=x.db` -> {"sql": {"database": "x.db"}}."""
    options: dict[str, dict[str, str]] = {}
    for key, value in _key_values(pairs, "--tool-option").items():
        tool, dot, option = key.partition(".")
        if not dot or not option:
            raise OrchestrateError(f"--tool-option takes TOOL.OPTION=VALUE, got {key}={value}")
        options.setdefault(tool, {})[option] = value
    return options


def _names(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def add_tool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools", action="append", default=[], help="installed tools, comma-separated (see `llmkit agent tools`)"
    )
    parser.add_argument(
        "--tool-option",
        action="append",
        default=[],
        metavar="TOOL.OPTION=VALUE",
        help="configure a toolbox, e.g. sql.database=shop.db (repeatable)",
    )
    parser.add_argument("--mcp", action="append", default=[], metavar="COMMAND", help="also use the tools of this MCP server (stdio), e.g. \"npx server-x\" (repeatable)")  # fmt: skip


def register(cli) -> None:
    agent = cli.command("agent", help="agents: run a task with tools, list tools and saved runs, serve tools over MCP")
    sub = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser("run", help="run an agent on TASK with live progress; the answer goes to stdout")
    run.add_argument("task")
    add_tool_arguments(run)
    run.add_argument("--mode", choices=("react", "plan", "hierarchical"), default="react", help="ReAct loop, plan-and-execute, or strategic -> tactical -> operational")  # fmt: skip
    run.add_argument("--backend", default=None, help="engine, reference, openai, or a plugin's backend (default: engine where llmkit-serve is installed, else reference)")  # fmt: skip
    run.add_argument("--model", "-m", default=None, help="model name or path (default: the backend's default)")
    run.add_argument("--chat-template", default="chatml", help="chat template with tool support (default chatml; 'model' keeps the model's own)")  # fmt: skip
    run.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE", help="backend option, e.g. base_url=http://host/v1 (repeatable)")  # fmt: skip
    add_device_argument(run)
    run.add_argument("--system", default=None, help="the system prompt (default: a ReAct instruction)")
    run.add_argument("--max-steps", type=int, default=10)
    run.add_argument("--max-tokens", type=int, default=None, help="prompt + completion tokens over the whole run")
    run.add_argument("--max-cost", type=float, default=None, help="stop when the priced usage reaches this")
    run.add_argument("--price-prompt", type=float, default=0.0, help="price per million prompt tokens")
    run.add_argument("--price-completion", type=float, default=0.0, help="price per million completion tokens")
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument("--max-new-tokens", type=int, default=512, help="tokens per model reply")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--tool-choice", choices=("auto", "required"), default="auto", help="required: every reply is a tool call and the answer comes through final_answer")  # fmt: skip
    run.add_argument("--no-parallel", action="store_true", help="one tool call per reply")
    run.add_argument(
        "--no-constrain", action="store_true", help="do not constrain tool calls even where the backend can"
    )
    run.add_argument("--allow", action="append", default=[], help="tools that run without asking (comma-separated), e.g. run_python")  # fmt: skip
    run.add_argument("--require-approval", action="append", default=[], help="tools that ask before running")
    run.add_argument("--forbid", action="append", default=[], help="tools the agent may never run")
    run.add_argument("--approve-all", "--yes", dest="approve_all", action="store_true", help="approve every approval-required tool (run_python, MCP tools, ...) without asking")  # fmt: skip
    run.add_argument("--checkpoint", default=None, metavar="PATH", help="SQLite file: state saved after every step")
    run.add_argument("--run-id", default=None, help="the id of a new run (default: random)")
    run.add_argument("--resume", default=None, metavar="RUN_ID", help="continue this run from --checkpoint")
    run.add_argument("--trace", default=None, metavar="PATH", help="append JSONL spans here")
    run.add_argument(
        "--otel", choices=("auto", "on", "off"), default="auto", help="OpenTelemetry export (auto: when installed)"
    )
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.set_defaults(func=run_agent)
    tools = sub.add_parser("tools", help="installed tools: who registered them, what they provide, their options")
    tools.add_argument("--schemas", action="store_true", help="print each tool's JSON Schema (needs --tool-option for toolboxes that require options)")  # fmt: skip
    tools.add_argument("--tool-option", action="append", default=[], metavar="TOOL.OPTION=VALUE")
    tools.set_defaults(func=list_tools)
    runs = sub.add_parser("runs", help="runs saved in a checkpoint file")
    runs.add_argument("checkpoint", metavar="PATH")
    runs.set_defaults(func=list_runs)
    serve = sub.add_parser("mcp-serve", help="serve installed tools to MCP clients over stdio")
    add_tool_arguments(serve)
    serve.add_argument("--name", default="llmkit", help="the server's name")
    serve.set_defaults(func=serve_mcp)


def _tool_set(args: argparse.Namespace):
    from .mcp import MCPToolbox
    from .tools import build_tool_set

    tools = build_tool_set(_names(args.tools), tool_options(args.tool_option))
    try:
        for command in args.mcp:
            tools.add(MCPToolbox(command))
    except Exception:
        tools.close()
        raise
    return tools


def _backend(args: argparse.Namespace, name: str):
    from llmkit.core.backends import open_backend

    options: dict[str, Any] = _key_values(args.backend_option, "--backend-option")
    if "device" in options:
        raise OrchestrateError("give the device with --device, not as a backend option")
    if args.model:
        options["model"] = args.model
    if name in LOCAL_BACKENDS:
        if args.chat_template != "model":
            options["chat_template"] = args.chat_template
        device = resolve_device(args.device)
        log_device(device, args.device)
        options["device"] = str(device)
    elif args.device != "auto":
        raise OrchestrateError(
            f"--device {args.device} applies to the backends that load the model here "
            f"({', '.join(LOCAL_BACKENDS)}); the {name} backend runs it elsewhere"
        )
    return open_backend(name, **options)


def _policy(args: argparse.Namespace, tools):
    from .gates import ToolPolicy

    overrides = {name: "allowed" for name in _names(args.allow)}
    overrides |= {name: "requires_approval" for name in _names(args.require_approval)}
    overrides |= {name: "forbidden" for name in _names(args.forbid)}
    return ToolPolicy.from_tools(tools, overrides)


def _warn_unapprovable(console: Console, policy, approve_all: bool) -> None:
    """Say before the run that approval-required tools will be refused when nobody can approve them."""
    waiting = sorted(policy.requires_approval)
    if waiting and not approve_all and not sys.stdin.isatty():
        names = ", ".join(waiting)
        console.print(
            f"llmkit: {names} {'needs' if len(waiting) == 1 else 'need'} approval and stdin is not a terminal, "
            "so calls to them will be refused; "
            f"to let them run unattended use --allow {waiting[0]} (per tool) or --approve-all",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _settings(args: argparse.Namespace, policy, progress):
    from llmkit.core.sampling import SamplingParams

    from .checkpoints import CheckpointStore
    from .gates import approve_all, cli_approver
    from .limits import Limits, Pricing
    from .settings import DEFAULT_SYSTEM_PROMPT, AgentSettings
    from .tracing import Tracer

    tracer = None
    if args.trace or args.otel == "on":
        tracer = Tracer(args.trace, opentelemetry={"auto": None, "on": True, "off": False}[args.otel])
    return AgentSettings(
        system_prompt=args.system or DEFAULT_SYSTEM_PROMPT,
        params=SamplingParams(temperature=args.temperature, max_tokens=args.max_new_tokens),
        constrain=False if args.no_constrain else None,
        pricing=Pricing(args.price_prompt, args.price_completion),
        seed=args.seed,
        tool_choice=args.tool_choice,
        parallel_tool_calls=not args.no_parallel,
        limits=Limits(max_steps=args.max_steps, max_tokens=args.max_tokens, max_cost=args.max_cost),
        policy=policy,
        approver=approve_all if args.approve_all else cli_approver(),
        checkpoints=CheckpointStore(args.checkpoint) if args.checkpoint else None,
        tracer=tracer,
        on_event=progress,
    )


def run_agent(args: argparse.Namespace) -> int:
    from .backend_choice import choose_backend
    from .hierarchy import HierarchicalAgent
    from .plan import PlanAndExecuteAgent
    from .progress import LiveProgress
    from .react import ReActAgent

    if args.resume and not args.checkpoint:
        raise OrchestrateError("--resume needs --checkpoint PATH (the file the run was saved in)")
    console = Console(stderr=True)
    backend_name, note = choose_backend(args.backend)
    progress = LiveProgress(console)
    tools = _tool_set(args)
    settings = None
    try:
        policy = _policy(args, tools)
        _warn_unapprovable(console, policy, args.approve_all)
        if note:
            console.print(note, markup=False, highlight=False, soft_wrap=True)
        with console.status(f"loading the {backend_name} backend", spinner="dots"):
            backend = _backend(args, backend_name)
        settings = _settings(args, policy, progress)
        kind = {"react": ReActAgent, "plan": PlanAndExecuteAgent, "hierarchical": HierarchicalAgent}[args.mode]
        agent = kind(backend, tools, settings=settings)
        result = agent.resume(args.resume) if args.resume else agent.run(args.task, run_id=args.run_id)
    finally:
        tools.close()
        if settings is not None and settings.checkpoints is not None:
            settings.checkpoints.close()
    if args.json:
        payload = {
            "run_id": result.run_id,
            "answer": result.answer,
            "stop_reason": result.stop_reason,
            "detail": result.detail,
            "steps": result.steps,
            "usage": result.usage.to_dict(),
            "tool_calls": result.tool_log,
        }
        print(json.dumps(payload, ensure_ascii=False, indent=1, default=str))
    elif result.ok:
        answer = result.answer
        print(answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, indent=1))
    return 0 if result.ok else 1


def list_tools(args: argparse.Namespace) -> int:
    from .tools import build_tool_set, describe_installed

    rows = describe_installed()
    if args.schemas:
        options = tool_options(args.tool_option)
        schemas, skipped = [], []
        for row in rows:
            try:
                tools = build_tool_set([row["name"]], {k: v for k, v in options.items() if k == row["name"]})
            except OrchestrateError as err:
                skipped.append(f"{row['name']}: {err}")
                continue
            schemas += [t.schema() for t in tools]
            tools.close()
        print(json.dumps(schemas, ensure_ascii=False, indent=1))
        for line in skipped:
            print(f"llmkit: skipped {line}", file=sys.stderr)
        return 0
    table = Table(title="installed tools")
    for column in ("name", "provides", "options", "registered by"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], ", ".join(row["tools"]), ", ".join(row["options"]) or "-", row["owner"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def list_runs(args: argparse.Namespace) -> int:
    import datetime

    from .checkpoints import CheckpointStore

    store = CheckpointStore(args.checkpoint)
    table = Table(title=f"runs in {args.checkpoint}")
    for column in ("run id", "kind", "status", "steps saved", "updated", "task"):
        table.add_column(column)
    for run in store.runs():
        updated = datetime.datetime.fromtimestamp(run.updated).isoformat(timespec="seconds")
        table.add_row(run.run_id, run.kind, run.status, str(run.steps), updated, run.task[:80])
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def serve_mcp(args: argparse.Namespace) -> int:
    from .mcp import serve_stdio

    tools = _tool_set(args)
    if not len(tools):
        tools.close()
        raise OrchestrateError("name the tools to serve: --tools calculator,files")
    try:
        serve_stdio(tools, args.name)
    finally:
        tools.close()
    return 0
