"""The `sql` toolbox: read-only queries over one SQLite file (read-only open, query_only, an authorizer)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ..errors import ToolError
from .tool import tool
from .toolbox import Toolbox

# What a read-only query may do; everything else (writes, ATTACH, PRAGMA writes, ...) is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def format_rows(columns: list[str], rows: list[tuple], total_hint: str = "") -> str:
    """Rows as a pipe-separated table with a header line."""
    lines = [" | ".join(columns)] + [" | ".join("NULL" if v is None else str(v) for v in row) for row in rows]
    if not rows:
        lines.append("(no rows)")
    return "\n".join(lines) + total_hint


class SqlToolbox(Toolbox):
    """Read-only SQL over the SQLite file `database`; a query runs at most `timeout_s` seconds."""

    def __init__(self, database: str, max_rows: int = 50, timeout_s: float = 5.0):
        path = Path(database)
        if not path.is_file():
            raise ToolError(f"no SQLite database at {database!r}")
        self.path, self.max_rows, self.timeout_s = path.resolve(), max_rows, timeout_s
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._connection.execute("PRAGMA query_only = ON")
        self._connection.set_authorizer(_authorize)

    def _run(self, query: str, parameters: tuple = ()) -> tuple[list[str], list[tuple], bool]:
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            self._connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                cursor = self._connection.execute(query, parameters)
                rows = cursor.fetchmany(self.max_rows + 1)
            except sqlite3.DatabaseError as err:
                message = str(err)
                if "interrupted" in message:
                    message = f"the query ran longer than {self.timeout_s:g} s"
                elif "not authorized" in message or "readonly" in message:
                    message = f"refused: only reading queries are allowed ({message})"
                raise ToolError(f"SQL error: {message}") from None
            except sqlite3.Warning as err:  # e.g. more than one statement
                raise ToolError(f"SQL error: {err}") from None
            finally:
                self._connection.set_progress_handler(None, 0)
        columns = [d[0] for d in cursor.description or ()]
        return columns, rows[: self.max_rows], len(rows) > self.max_rows

    @tool
    def sql_query(self, query: str) -> str:
        """Run one read-only SQL query (SQLite dialect) on the database and return the rows.

        Args:
            query: a single SELECT statement, e.g. "SELECT name FROM employees WHERE salary > 5000".
        """
        if not query.strip():
            raise ToolError("the query is empty")
        columns, rows, cut = self._run(query)
        return format_rows(columns, rows, f"\n[... only the first {self.max_rows} rows]" if cut else "")

    @tool
    def sql_schema(self) -> str:
        """List the database's tables with their columns and types."""
        with self._lock:
            self._connection.set_authorizer(None)
            try:
                tables = self._connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ).fetchall()
                lines = []
                for (table,) in tables:
                    quoted = table.replace('"', '""')
                    info = self._connection.execute(f'PRAGMA table_info("{quoted}")').fetchall()
                    lines.append(f"{table}(" + ", ".join(f"{c[1]} {c[2]}".strip() for c in info) + ")")
            finally:
                self._connection.set_authorizer(_authorize)
        return "\n".join(lines) or "(no tables)"

    def close(self) -> None:
        self._connection.close()
