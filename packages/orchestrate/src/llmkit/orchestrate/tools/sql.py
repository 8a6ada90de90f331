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


def _cap_allocations(connection: sqlite3.Connection, max_value_bytes: int) -> None:
    """SQLite's own limits, lowered: no string or blob over `max_value_bytes` (randomblob(1e9), zeroblob(1e9),
    printf('%.*c', 1e9, 'x') and group_concat fail at once with "string or blob too big" instead of allocating
    it), at most 500 result columns (so one row stays under 500 * max_value_bytes), a bounded statement
    length; the page cache (and the sorter's memory before it spills to temporary files) stays at 8 MB."""
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
    connection.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, 500)
    connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 100_000)
    connection.execute("PRAGMA cache_size = -8192")


def format_rows(columns: list[str], rows: list[tuple], total_hint: str = "") -> str:
    """Rows as a pipe-separated table with a header line."""
    lines = [" | ".join(columns)] + [" | ".join("NULL" if v is None else str(v) for v in row) for row in rows]
    if not rows:
        lines.append("(no rows)")
    return "\n".join(lines) + total_hint


class SqlToolbox(Toolbox):
    """Read-only SQL over the SQLite file `database`; a query runs at most `timeout_s` seconds, no value it
    makes may exceed `max_value_bytes`, and its rows are read until `max_rows` or `max_result_bytes`."""

    def __init__(
        self,
        database: str,
        max_rows: int = 50,
        timeout_s: float = 5.0,
        max_value_bytes: int = 100_000,
        max_result_bytes: int = 1_000_000,
    ):
        path = Path(database)
        if not path.is_file():
            raise ToolError(f"no SQLite database at {database!r}")
        if max_value_bytes < 1000 or max_result_bytes < 1000:
            raise ToolError("max_value_bytes and max_result_bytes must be at least 1000")
        self.path, self.max_rows, self.timeout_s = path.resolve(), max_rows, timeout_s
        self.max_value_bytes, self.max_result_bytes = max_value_bytes, max_result_bytes
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            _cap_allocations(self._connection, max_value_bytes)
            self._connection.execute("PRAGMA query_only = ON")
            self._connection.set_authorizer(_authorize)
        except BaseException:
            self._connection.close()
            raise

    def _run(self, query: str, parameters: tuple = ()) -> tuple[list[str], list[tuple], str]:
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            self._connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                cursor = self._connection.execute(query, parameters)
                rows, cut = self._fetch(cursor)
            except sqlite3.DatabaseError as err:
                message = str(err)
                if "interrupted" in message:
                    message = f"the query ran longer than {self.timeout_s:g} s"
                elif "too big" in message:
                    message = f"refused: a value over {self.max_value_bytes} bytes ({message})"
                elif "not authorized" in message or "readonly" in message:
                    message = f"refused: only reading queries are allowed ({message})"
                raise ToolError(f"SQL error: {message}") from None
            except sqlite3.Warning as err:  # e.g. more than one statement
                raise ToolError(f"SQL error: {err}") from None
            finally:
                self._connection.set_progress_handler(None, 0)
        columns = [d[0] for d in cursor.description or ()]
        return columns, rows, cut

    def _fetch(self, cursor: sqlite3.Cursor) -> tuple[list[tuple], str]:
        """Rows until `max_rows` or `max_result_bytes` (values sized as text); the second item says why it cut."""
        rows: list[tuple] = []
        size = 0
        for row in cursor:
            if len(rows) == self.max_rows:
                return rows, f"only the first {self.max_rows} rows"
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
            if size > self.max_result_bytes:
                return rows, f"only the first {len(rows)} rows: the next one passes {self.max_result_bytes} bytes"
            rows.append(row)
        return rows, ""

    @tool
    def sql_query(self, query: str) -> str:
        """Run one read-only SQL query (SQLite dialect) on the database and return the rows.

        Args:
            query: a single SELECT statement, e.g. "SELECT name FROM employees WHERE salary > 5000".
        """
        if not query.strip():
            raise ToolError("the query is empty")
        columns, rows, cut = self._run(query)
        return format_rows(columns, rows, f"\n[... {cut}]" if cut else "")

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
