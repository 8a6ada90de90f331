"""Configs from YAML files and command-line flags: the file first, then flags override it, then validation."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .options import TrainConfig


def _kind(field: dataclasses.Field) -> str:
    """The base type of a field from its annotation string: bool, int, float, str, list or dict."""
    annotation = str(field.type).replace(" ", "")
    for kind in ("bool", "int", "float", "list", "dict", "str"):
        if annotation == kind or annotation.startswith(kind + "|"):
            return kind
    raise ConfigError(f"option {field.name} has an unsupported annotation {field.type!r}")


def _optional(field: dataclasses.Field) -> bool:
    return "None" in str(field.type)


def coerce(field: dataclasses.Field, value: Any) -> Any:
    """`value` (from YAML or a flag string) as the field's type, or a ConfigError naming the option."""
    kind, name = _kind(field), field.name
    if value is None:
        if _optional(field):
            return None
        raise ConfigError(f"option {name} cannot be null")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if kind == "list":
            if isinstance(value, str):
                return [item.strip() for item in value.split(",") if item.strip()]
            if isinstance(value, list | tuple):
                return list(value)
            raise ValueError
        if isinstance(value, str):  # dict from a flag: name=weight,name=weight
            return _parse_mapping(value)
        if isinstance(value, dict):
            return dict(value)
        raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"option {name} expects {kind}; got {value!r}") from None


def _parse_mapping(text: str) -> dict[str, float]:
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        mapping[key.strip()] = float(raw) if sep else 1.0
    return mapping


def config_from_file(path: str | Path) -> dict[str, Any]:
    """The options mapping in a YAML file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} does not exist")
    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {file} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {file} must hold a mapping of options, not {type(loaded).__name__}")
    return loaded


def load_config(
    config_class: type[TrainConfig], file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """A validated config: YAML `file` (optional), then `overrides` on top (names with _ or -)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    sources = [(f"config file {file}", config_from_file(file) if file else {}), ("overrides", overrides or {})]
    for source, mapping in sources:
        for raw_key, value in mapping.items():
            key = str(raw_key).replace("-", "_")
            if key not in fields:
                hint = difflib.get_close_matches(key, fields, n=1)
                suggestion = f" (did you mean {hint[0]}?)" if hint else ""
                raise ConfigError(f"{source}: unknown option {raw_key!r} for {config_class.method}{suggestion}")
            values[key] = coerce(fields[key], value)
    return config_class(**values)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain options mapping (for config.yaml beside the run and checkpoint validation)."""
    return dataclasses.asdict(config)


def add_config_flags(parser: argparse.ArgumentParser, config_class: type[TrainConfig]) -> None:
    """One flag per option (`--learning-rate`); unset flags leave the file's value alone."""
    group = parser.add_argument_group(f"{config_class.method} options (each also a key of the YAML file)")
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        kind = _kind(field)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        help_text = f"{field.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        common = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif field.metadata.get("choices"):
            group.add_argument(flag, choices=field.metadata["choices"], **common)
        else:
            metavar = {"list": "A,B", "dict": "NAME=W,..."}.get(kind, kind.upper())
            group.add_argument(flag, metavar=metavar, **common)


def flag_overrides(args: argparse.Namespace, config_class: type[TrainConfig]) -> dict[str, Any]:
    """The options given as flags (only those present on the command line)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return {name: value for name, value in vars(args).items() if name in names}
