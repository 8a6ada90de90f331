"""The `llmkit` command line: subcommands come from every plugin's `llmkit_register_commands`."""

from __future__ import annotations

import argparse
import sys

from ..errors import LlmkitError, PluginError
from ..plugins import plugin_manager, plugin_owner


class CommandRegistrar:
    """What `llmkit_register_commands(cli)` receives: `cli.command(name, help)` -> an argparse parser."""

    def __init__(self, subparsers: argparse._SubParsersAction, owners: dict[str, str]):
        self._subparsers, self._owners = subparsers, owners
        self.owner = ""

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        if name in self._owners:
            raise PluginError(f"command {name!r} is registered twice: by {self._owners[name]} and by {self.owner}")
        self._owners[name] = self.owner
        return self._subparsers.add_parser(name, help=help, description=help)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The full parser and, for each command, the plugin that registered it."""
    parser = argparse.ArgumentParser(prog="llmkit", description="llmkit: the working life of a language model")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    owners: dict[str, str] = {}
    registrar = CommandRegistrar(subparsers, owners)
    for impl in plugin_manager().hook.llmkit_register_commands.get_hookimpls():
        registrar.owner = plugin_owner(impl.plugin_name)
        impl.function(registrar)
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
