"""Guards by name: `open_guard("pii:action=block")` builds one from the `llmkit_register_guards` registry,
`load_guards_config(path)` builds a list from a JSON or TOML file."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plugins import registry
from .base import Guard
from .errors import GuardError

_OPTION_START = re.compile(r"^[A-Za-z_]\w*=")


def parse_guard_spec(spec: str) -> tuple[str, dict[str, str]]:
    """ "NAME" or "NAME:key=value,key=value" -> (name, options). A comma starts a new option only when
    `key=` follows it, so values (regex patterns) may hold commas."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise GuardError(f"guard spec {spec!r} has no name (expected NAME or NAME:key=value,...)")
    options: dict[str, str] = {}
    pieces: list[str] = []
    for piece in rest.split(",") if rest else []:
        if _OPTION_START.match(piece) or not pieces:
            pieces.append(piece)
        else:
            pieces[-1] += "," + piece
    for piece in pieces:
        key, eq, value = piece.partition("=")
        if not eq:
            raise GuardError(f"guard spec {spec!r}: option {piece!r} is not key=value")
        options[key.strip()] = value
    return name, options


def open_guard(spec: str | Mapping[str, Any]) -> Guard:
    """A guard from a spec string or a mapping {"name": ..., option: value, ...}."""
    if isinstance(spec, str):
        name, options = parse_guard_spec(spec)
    else:
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise GuardError(f"guard entry {dict(spec)!r} has no 'name'")
    factory = registry("guards").get(name)
    accepted = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise GuardError(f"guard {name!r} takes no option(s) {unknown}; its options: {', '.join(accepted)}")
    try:
        guard = factory(**options)
    except TypeError as err:
        raise GuardError(f"guard {name!r}: {err}") from None
    if not isinstance(guard, Guard):
        raise GuardError(f"guard factory {name!r} returned {type(guard).__name__}, which is not a Guard")
    return guard


def load_guards_config(path: str | Path) -> list[Guard]:
    """Guards from a file: JSON `{"guards": [{"name": "pii", "action": "block"}, ...]}` (or the bare list), or
    TOML with `[[guards]]` tables. Relative paths in options are read relative to the working directory."""
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise GuardError(f"cannot read the guards config {str(path)!r}: {err}") from None
    entries = data.get("guards") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise GuardError(f"guards config {str(path)!r}: expected a list of guard tables under 'guards'")
    return [open_guard(entry) for entry in entries]
