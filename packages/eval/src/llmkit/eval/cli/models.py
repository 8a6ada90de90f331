"""Opening the backend a command names, and the identity its cached responses are filed under."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmkit.core.backends import Backend, open_backend
from llmkit.core.device import add_device_argument, log_device, resolve_device
from llmkit.core.models.store import DEFAULT_MODEL

from ..errors import EvalError

LOCAL_BACKENDS = ("reference", "engine")  # the backends that load the model into this process


def add_backend_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    dash = f"--{prefix}-" if prefix else "--"
    flags = [f"{dash}model"] if prefix else ["--model", "-m"]
    parser.add_argument(
        *flags,
        default=None if prefix else DEFAULT_MODEL,
        help="model: catalog name, .gguf file, HF directory, or a served model's name",
    )
    parser.add_argument(
        f"{dash}backend", default="reference", help="reference (default), engine, openai, or any registered backend"
    )
    parser.add_argument(
        f"{dash}backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option (repeatable), e.g. base_url=http://127.0.0.1:8000/v1",
    )
    if not prefix:
        add_device_argument(parser)


def parse_options(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EvalError(f"backend options are KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def model_identity(backend: str, model: str, options: dict[str, Any]) -> str:
    """What cached answers are keyed on: backend, model (with the local file's size and mtime) and options."""
    fingerprint = model
    try:
        from llmkit.core.models.store import resolve

        path = resolve(model, pull_missing=False)
        files = (
            [path] if path.is_file() else sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.gguf"))
        )
        fingerprint = f"{path}|" + "|".join(f"{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)
    except Exception:  # a served model's name is not a local path: its name is its identity
        pass
    return json.dumps({"backend": backend, "model": fingerprint, "options": options}, sort_keys=True)


def open_model(backend: str, model: str | None, options: dict[str, Any], device: str = "auto") -> tuple[Backend, str]:
    """(backend, identity) for the command-line choice; a local backend loads the model on `device`.

    The device is left out of the identity: like the batch size, it changes how answers are computed,
    not which question was asked."""
    if "device" in options:
        raise EvalError("give the device with --device, not as a backend option")
    if model is not None:
        options = {"model": model, **options}
    identity = model_identity(backend, model or "", options)
    if backend in LOCAL_BACKENDS:
        resolved = resolve_device(device)
        log_device(resolved, device)
        return open_backend(backend, **options, device=str(resolved)), identity
    if device != "auto":
        raise EvalError(
            f"--device {device} applies to the backends that load the model here ({', '.join(LOCAL_BACKENDS)}); "
            f"the {backend} backend runs it elsewhere"
        )
    return open_backend(backend, **options), identity
