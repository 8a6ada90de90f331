"""llmkit-orchestrate's registrations: the built-in tools, the "react" agent and the `llmkit agent` commands."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_tools(register):
    from .tools import FilesToolbox, PythonToolbox, SqlToolbox, calculator

    register("calculator", calculator)
    register("python", PythonToolbox)
    register("sql", SqlToolbox)
    register("files", FilesToolbox)


@hookimpl
def llmkit_register_agents(register):
    from .agent_runner import run_react

    register("react", run_react)


@hookimpl
def llmkit_register_commands(cli):
    from . import cli as agent_cli

    agent_cli.register(cli)
