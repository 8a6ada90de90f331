"""`llmkit data ...`: dedup, contamination, manifest/verify/diff, mix, agreement, bradley-terry, critique, label-preferences."""

from __future__ import annotations

from . import annotation_commands, feedback_commands, stage_commands, version_commands


def register(cli) -> None:
    parser = cli.command(
        "data", "the training-data pipeline: dedup, contamination, versions, mixtures, annotation, AI feedback"
    )
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    stage_commands.register(commands)
    version_commands.register(commands)
    annotation_commands.register(commands)
    feedback_commands.register(commands)
    parser.set_defaults(func=lambda args: parser.print_help())
