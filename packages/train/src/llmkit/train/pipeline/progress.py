"""Rich progress bars for the long stages (records per second shown; silent when asked)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def record_progress(quiet: bool = False) -> Progress:
    """A progress display on stderr: description, bar, done/total and elapsed time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        disable=quiet,
        transient=False,
    )
