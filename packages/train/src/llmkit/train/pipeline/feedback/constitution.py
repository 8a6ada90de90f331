"""A constitution: principles, each with a critique request, a revision request and a preference question.

File format (YAML or JSON):

    principles:
      - name: harmless
        critique: "Identify ways in which the assistant's last response is harmful ..."
        revision: "Rewrite the assistant's response to remove anything harmful ..."
        preference: "Which response is less harmful?"      # RLAIF; optional

`default_constitution()` is a small built-in one in the spirit of Bai et al. (2022), in our own words.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ...errors import DataError


@dataclasses.dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    revision: str
    preference: str | None = None


@dataclasses.dataclass(frozen=True)
class Constitution:
    principles: tuple[Principle, ...]

    def for_preferences(self) -> tuple[Principle, ...]:
        chosen = tuple(p for p in self.principles if p.preference)
        if not chosen:
            raise DataError("the constitution has no principle with a 'preference' question (needed for RLAIF)")
        return chosen


def parse_constitution(data: Any, where: str) -> Constitution:
    rows = data.get("principles") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{where}: a constitution needs a non-empty 'principles' list")
    principles = []
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}: principles[{number}] must be a mapping")
        missing = [key for key in ("critique", "revision") if not isinstance(row.get(key), str) or not row[key]]
        if missing:
            raise DataError(f"{where}: principles[{number}] needs text for {', '.join(missing)}")
        extra = sorted(set(row) - {"name", "critique", "revision", "preference"})
        if extra:
            raise DataError(f"{where}: principles[{number}] has unknown keys {extra}")
        principles.append(
            Principle(
                str(row.get("name", f"principle-{number}")), row["critique"], row["revision"], row.get("preference")
            )
        )
    return Constitution(tuple(principles))


def load_constitution(path: str | Path) -> Constitution:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"constitution file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise DataError(f"{file}: cannot parse the constitution: {err}") from None
    return parse_constitution(data, str(file))


def default_constitution() -> Constitution:
    text = resources.files(__package__).joinpath("default_constitution.yaml").read_text(encoding="utf-8")
    return parse_constitution(yaml.safe_load(text), "default_constitution.yaml")
