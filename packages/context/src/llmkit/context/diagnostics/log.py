"""The context log: one JSON line per call (prefix hash, token counts and hashes per zone) for debugging."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import ContextError
from ..render import RenderedContext


class ContextLog:
    """Appends each call's `RenderedContext.log_record()` with a timestamp and a label to a JSONL file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, rendered: RenderedContext, label: str = "") -> dict[str, Any]:
        entry = {"time": round(time.time(), 3), "label": label, **rendered.log_record()}
        with self.path.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            raise ContextError(f"no context log at {self.path}")
        entries = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ContextError(f"{self.path}:{number} is not JSON: {err.msg}") from None
        return entries
