"""Red-team seeds: one objective each (a goal in the user's words, an optional system prompt the attack pushes
against, and the check that says whether the model gave in). The built-in seeds are written for llmkit."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import EvalError

CHECK_TYPES = ("secret", "canary", "not_refused")
BUILTIN_SOURCE = (
    "llmkit-eval red-team seeds (written for llmkit; packages/eval/src/llmkit/eval/redteam/data/seeds.jsonl)"
)


@dataclasses.dataclass(frozen=True)
class Seed:
    """An attack objective: `goal` is what the attacker wants, `check` how a reply is judged a success."""

    id: str
    category: str
    goal: str
    check: dict[str, Any]
    system: str | None = None
    source: str = BUILTIN_SOURCE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _seed(row: dict[str, Any], where: str, source: str) -> Seed:
    missing = [key for key in ("id", "category", "goal", "check") if key not in row]
    if missing:
        raise EvalError(f"{where}: seed lacks {', '.join(missing)}")
    check = row["check"]
    if not isinstance(check, dict) or check.get("type") not in CHECK_TYPES:
        raise EvalError(f"{where}: seed {row['id']!r} check type must be one of {CHECK_TYPES}, got {check!r}")
    needed = {"secret": "secret", "canary": "canary"}.get(check["type"])
    if needed and not str(check.get(needed, "")).strip():
        raise EvalError(f"{where}: seed {row['id']!r} check {check['type']!r} needs a non-empty {needed!r}")
    return Seed(row["id"], row["category"], row["goal"], check, row.get("system"), row.get("source", source))


def load_seeds(path: str | Path | None = None) -> list[Seed]:
    """The seeds of a JSONL file (default: the built-in ones); ids must be unique."""
    if path is None:
        text, where, source = resources.files(__package__).joinpath("data/seeds.jsonl").read_text(), "seeds.jsonl", BUILTIN_SOURCE  # fmt: skip
    else:
        path = Path(path)
        if not path.is_file():
            raise EvalError(f"seed file {path} does not exist")
        text, where, source = path.read_text(), str(path), f"user seeds ({path.name})"
    seeds = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise EvalError(f"{where}:{number}: not JSON ({err.msg})") from None
            seeds.append(_seed(row, f"{where}:{number}", source))
    ids = [s.id for s in seeds]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise EvalError(f"{where} repeats seed id(s) {', '.join(repeated)}")
    if not seeds:
        raise EvalError(f"{where} holds no seeds")
    return seeds
