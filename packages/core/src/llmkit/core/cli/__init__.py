"""The `llmkit` command line: subcommands come from every plugin's `llmkit_register_commands`."""

from __future__ import annotations

import argparse
import sys

from ..errors import LlmkitError, PluginError
from ..plugins import disable_plugin, plugin_manager, plugin_owner


class CommandRegistrar:
    """What `llmkit_register_commands(cli)` receives: `cli.command(name, help)` -> an argparse parser."""

    def __init__(self, subparsers: argparse._SubParsersAction, owners: dict[str, str]):
        self._subparsers, self._owners = subparsers, owners
        self.owner = ""
        self.collision: PluginError | None = None  # raised through the plugin's hook: must stay loud

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        if name in self._owners:
            self.collision = PluginError(
                f"command {name!r} is registered twice: by {self._owners[name]} and by {self.owner}"
            )
            raise self.collision
        self._owners[name] = self.owner
        return self._subparsers.add_parser(name, help=help, description=help)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The full parser and, for each command, the plugin that registered it.

    A plugin whose `llmkit_register_commands` raises is disabled (named on stderr, listed by `llmkit
    plugins`) and the parser is built again without it; a command name claimed twice stays an error.
    """
    while True:
        parser = argparse.ArgumentParser(prog="llmkit", description="llmkit: the working life of a language model")
        subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
        owners: dict[str, str] = {}
        registrar = CommandRegistrar(subparsers, owners)
        for impl in plugin_manager().hook.llmkit_register_commands.get_hookimpls():
            registrar.owner = plugin_owner(impl.plugin_name)
            try:
                impl.function(registrar)
            except Exception as err:
                if err is registrar.collision:
                    raise
                disable_plugin(impl.plugin_name, "llmkit_register_commands", err)
                break  # its commands may be half-added: start over without it
        else:
            return parser, owners


def main(argv: list[str] | None = None) -> int:
    try:
        parser, _ = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 0
        return args.func(args) or 0
    except LlmkitError as err:
        print(f"llmkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
