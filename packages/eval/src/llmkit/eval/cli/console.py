"""The rich console every `llmkit eval` command prints to (wide when stdout is not a terminal)."""

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 200)
