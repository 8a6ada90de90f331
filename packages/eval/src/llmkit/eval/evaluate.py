"""Evaluate one model on a list of tasks into a run directory (what `eval run` does, callable from code)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cache import ResponseCache
from .catalog import load_task
from .cli.models import open_model
from .client import ModelClient
from .runner import RunOptions, run_tasks


def evaluate_model(
    model: str,
    tasks: Sequence[str],
    output: str | Path,
    *,
    backend: str = "reference",
    backend_options: dict[str, Any] | None = None,
    device: str = "auto",
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    cache: str | Path | None = None,
    use_cache: bool = True,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run `tasks` (names or YAML files) against `model`; returns results.json's content."""
    loaded = [load_task(spec) for spec in tasks]
    options = dict(backend_options or {})
    opened, identity = open_model(backend, model, options, device)
    responses = ResponseCache(cache) if use_cache else None
    try:
        client = ModelClient(opened, identity, responses, batch_size=batch_size)
        run_info = {"model": model, "backend": backend, "backend_options": options, "model_identity": identity}
        return run_tasks(loaded, client, Path(output), run_info, RunOptions(limit=limit, seed=seed, quiet=quiet))
    finally:
        if responses is not None:
            responses.close()
