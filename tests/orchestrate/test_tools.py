"""Tools: schemas from type hints, validation before execution, toolboxes, the registry and the built-ins."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmkit.core.assistant_output import ToolCall
from llmkit.orchestrate import (
    FilesToolbox,
    OrchestrateError,
    SqlToolbox,
    Tool,
    ToolArgumentError,
    Toolbox,
    ToolDefinitionError,
    ToolError,
    ToolSet,
    build_tool_set,
    calculator,
    tool,
)
from llmkit.orchestrate.gates import Gate, ToolPolicy
from llmkit.orchestrate.tools.executor import ToolExecutor


def test_schema_and_description_come_from_hints_and_docstring():
    @tool
    def lookup(city: str, days: int = 3, units: str | None = None) -> str:
        """Look up the weather.

        Args:
            city: the city's name.
            days: how many days ahead.
        """
        return city

    assert lookup.name == "lookup" and lookup.description == "Look up the weather."
    params = lookup.parameters
    assert params["required"] == ["city"] and params["additionalProperties"] is False
    assert params["properties"]["city"] == {"type": "string", "description": "the city's name."}
    assert params["properties"]["days"]["type"] == "integer" and params["properties"]["days"]["default"] == 3
    assert lookup.schema()["function"]["name"] == "lookup"


def test_bad_definitions_are_refused_with_a_reason():
    def no_hint(x):
        """Doc."""

    def no_doc(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="no type hint"):
        Tool.from_function(no_hint)
    with pytest.raises(ToolDefinitionError, match="needs a description"):
        Tool.from_function(no_doc)
    with pytest.raises(ToolDefinitionError, match="must be 1-64"):
        Tool.from_function(calculator.function, name="bad name!")
    with pytest.raises(ToolDefinitionError, match="two tools are named"):
        ToolSet([calculator, calculator])


def test_arguments_are_validated_before_the_tool_runs():
    ran = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        ran.append((a, b))
        return a + b

    assert add.invoke({"a": 2, "b": "3"}) == 5  # pydantic's lax mode: "3" is an int
    with pytest.raises(ToolArgumentError, match="missing required argument 'b'"):
        add.invoke({"a": 1})
    with pytest.raises(ToolArgumentError, match="unexpected argument 'c'"):
        add.invoke({"a": 1, "b": 2, "c": 3})
    with pytest.raises(ToolArgumentError, match="argument 'a'"):
        add.invoke({"a": "one", "b": 2})
    assert ran == [(2, 3)]


def test_invalid_arguments_and_failures_become_tool_results_not_exceptions():
    @tool
    def boom(x: int) -> int:
        """Always fails."""
        raise RuntimeError("disk on fire")

    executor = ToolExecutor(ToolSet([calculator, boom]), Gate("a", ToolPolicy(allowed={"calculator", "boom"})))
    calls = [
        ToolCall("calculator", {"expresion": "1+1"}, "c1"),
        ToolCall("boom", {"x": 1}, "c2"),
        ToolCall("calculator", {"expression": "6*7"}, "c3"),
        ToolCall("nope", {}, "c4"),
    ]
    results = executor.run(calls, ["calculator", "boom"], step=1)
    assert [r.call_id for r in results] == ["c1", "c2", "c3", "c4"]
    assert results[0].status == "invalid_arguments" and "unexpected argument 'expresion'" in results[0].content
    assert "Fix the arguments" in results[0].content
    assert results[1].status == "error" and "RuntimeError: disk on fire" in results[1].content
    assert results[2].ok and results[2].content == "42"
    assert results[3].status == "not_available" and "no tool named 'nope'" in results[3].content


def test_results_are_size_limited():
    @tool(max_result_chars=100)
    def long_text() -> str:
        """A long text."""
        return "x" * 5000

    executor = ToolExecutor(ToolSet([long_text]), Gate("a", ToolPolicy(allowed={"long_text"})))
    (result,) = executor.run([ToolCall("long_text", {}, "c")], ["long_text"], step=1)
    assert (
        result.truncated and result.content.startswith("x" * 100) and "4900 more characters of 5000" in result.content
    )


class Counter(Toolbox):
    def __init__(self, start: int = 0):
        self.value = start

    @tool
    def increment(self, by: int = 1) -> int:
        """Add to the counter."""
        self.value += by
        return self.value

    @tool
    def read(self) -> int:
        """Read the counter."""
        return self.value


def test_toolbox_tools_share_state_and_options_are_validated():
    box = Counter.create({"start": "5"})
    tools = ToolSet([box])
    assert tools.names == ["increment", "read"]
    tools.get("increment").invoke({"by": 2})
    assert tools.get("read").invoke({}) == 7
    with pytest.raises(OrchestrateError, match="options of tools 'Counter'.*'start'"):
        Counter.create({"start": "many"})
    with pytest.raises(ToolDefinitionError, match="add the Toolbox instance"):
        ToolSet([Counter.increment])


def test_registry_builds_installed_tools_with_options(company_db):
    tools = build_tool_set(["calculator", "sql"], {"sql": {"database": str(company_db), "max_rows": "2"}})
    assert tools.names == ["calculator", "sql_query", "sql_schema"]
    assert "only the first 2 rows" in tools.get("sql_query").invoke({"query": "SELECT name FROM employees"})
    tools.close()
    with pytest.raises(OrchestrateError, match="no tool named 'nope' is installed"):
        build_tool_set(["nope"])
    with pytest.raises(OrchestrateError, match="not asked for"):
        build_tool_set(["calculator"], {"sql": {"database": "x"}})
    with pytest.raises(OrchestrateError, match="takes no options"):
        build_tool_set(["calculator"], {"calculator": {"x": "1"}})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("1234 * 5678", "7006652"), ("2^10", "1024"), ("sqrt(1764)", "42"), ("1,000 + 1", "1001"), ("7/2", "3.5")],
)
def test_calculator(expression, expected):
    assert calculator.invoke({"expression": expression}) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "unsupported syntax|unknown name"),
        ("9 ** 9 ** 9", "too large"),
        ("1 / 0", "division by zero"),
        ("x + 1", "unknown name 'x'"),
        ("", "empty"),
    ],
)
def test_calculator_refuses(expression, message):
    with pytest.raises(ToolError, match=message):
        calculator.invoke({"expression": expression})


def test_sql_is_read_only(company_db):
    with SqlToolbox(str(company_db), max_rows=2) as sql:
        out = sql.sql_query.invoke({"query": "SELECT name, salary FROM employees ORDER BY salary DESC"})
        assert out.splitlines()[:3] == ["name | salary", "Aiko | 8100", "John | 7400"]
        assert "only the first 2 rows" in out
        assert "employees(name TEXT, department TEXT, salary INTEGER)" in sql.sql_schema.invoke({})
        for query in (
            "INSERT INTO employees VALUES ('x', 'y', 1)",
            "DELETE FROM employees",
            "DROP TABLE employees",
            f"ATTACH DATABASE '{company_db.parent / 'other.db'}' AS other",
            "PRAGMA query_only = OFF",
        ):
            with pytest.raises(ToolError, match="SQL error"):
                sql.sql_query.invoke({"query": query})
        with pytest.raises(ToolError, match="SQL error"):
            sql.sql_query.invoke({"query": "SELECT 1; DELETE FROM employees"})
    with sqlite3.connect(company_db) as db:
        assert db.execute("SELECT COUNT(*) FROM employees").fetchone() == (3,)
    assert not (company_db.parent / "other.db").exists()


def test_sql_query_time_limit(company_db):
    with SqlToolbox(str(company_db), timeout_s=0.2) as sql:
        endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
        with pytest.raises(ToolError, match="longer than 0.2 s"):
            sql.sql_query.invoke({"query": endless})


def _peak_rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


@pytest.mark.parametrize(
    "query",
    [
        "SELECT zeroblob(1000000000)",
        "SELECT randomblob(1000000000)",
        "SELECT zeroblob(99999) || zeroblob(99999)",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 1000000) "
        "SELECT group_concat('abcdef') FROM r",
    ],
)
def test_sql_refuses_huge_values_at_once_without_allocating_them(company_db, query):
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size (VmHWM) of this process
    before = _peak_rss_kb()
    with SqlToolbox(str(company_db)) as sql:
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"refused: a value over 100000 bytes \(string or blob too big\)"):
            sql.sql_query.invoke({"query": query})
        elapsed = time.monotonic() - started
    assert elapsed < 3.0 and _peak_rss_kb() - before < 50_000, (elapsed, _peak_rss_kb() - before)


def test_sql_reads_rows_up_to_a_byte_budget(company_db):
    query = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 40) SELECT i, zeroblob(90000) FROM r"
    with SqlToolbox(str(company_db), max_rows=100, max_result_bytes=200_000) as sql:
        out = sql.sql_query.invoke({"query": query})
    assert out.endswith("[... only the first 2 rows: the next one passes 200000 bytes]") and len(out.splitlines()) == 4


def test_file_reading_is_confined_to_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "notes.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "linked_dir")
    os.symlink(root / "docs", root / "inner_link")  # links are refused even when they stay inside
    with FilesToolbox(str(root)) as files:
        assert files.read_file.invoke({"path": "docs/notes.txt"}) == "inside"
        assert files.read_file.invoke({"path": "docs/../docs/notes.txt"}) == "inside"
        assert files.read_file.invoke({"path": str(root / "docs" / "notes.txt")}) == "inside"
        assert files.list_files.invoke({}).splitlines() == [
            "docs/",
            "inner_link (symbolic link, not followed)",
            "link.txt (symbolic link, not followed)",
            "linked_dir (symbolic link, not followed)",
        ]
        for path in ("../secret.txt", "docs/../../secret.txt", str(tmp_path / "secret.txt"), "/etc/passwd"):
            with pytest.raises(ToolError, match="outside the readable root"):
                files.read_file.invoke({"path": path})
        for path, link in [("link.txt", "link.txt"), ("linked_dir/secret.txt", "linked_dir"), ("inner_link/notes.txt", "inner_link")]:  # fmt: skip
            with pytest.raises(ToolError, match=f"'{link}' is a symbolic link"):
                files.read_file.invoke({"path": path})
        with pytest.raises(ToolError, match="'linked_dir' is a symbolic link"):
            files.list_files.invoke({"directory": "linked_dir"})
        with pytest.raises(ToolError, match="outside the readable root"):
            files.list_files.invoke({"directory": ".."})
        with pytest.raises(ToolError, match="NUL"):
            files.read_file.invoke({"path": "docs/notes.txt\x00"})
        with pytest.raises(ToolError, match="no file 'docs/missing.txt'"):
            files.read_file.invoke({"path": "docs/missing.txt"})
        with pytest.raises(ToolError, match="not a regular file"):
            files.read_file.invoke({"path": "docs"})


# Swaps `name` between a real entry and a symbolic link to the same name outside the root, as fast as it can.
SWAPPER = """
import os, sys
root, outside, name, kind = sys.argv[1:]
real, link = os.path.join(root, name), os.path.join(root, ".swap-link")
spare = os.path.join(root, ".swap-real")
while True:
    os.symlink(os.path.join(outside, name), link)
    os.rename(real, spare)
    os.rename(link, real)   # now a link pointing outside
    os.rename(real, link)
    os.rename(spare, real)  # the real entry again
    os.unlink(link)
"""


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_symbolic_link_swapped_in_between_check_and_open_is_never_followed(tmp_path, kind):
    root, outside = tmp_path / "root", tmp_path / "outside"
    for base, text in ((root, "public"), (outside, "SECRET")):
        if kind == "file":
            base.mkdir()
            (base / "data.txt").write_text(text)
        else:
            (base / "data").mkdir(parents=True)
            (base / "data" / "notes.txt").write_text(text)
    name, path = ("data.txt", "data.txt") if kind == "file" else ("data", "data/notes.txt")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(root), str(outside), name, kind])
    seen, refused, reads, deadline = set(), 0, 0, time.monotonic() + 30
    try:
        with FilesToolbox(str(root)) as files:
            # At least 10,000 reads (the old resolve-then-open code read the secret about once per 1000) and
            # at least 10 of them meeting the swap: on a loaded machine the swapper may start late.
            while (reads < 10_000 or refused < 10) and time.monotonic() < deadline:
                reads += 1
                try:
                    seen.add(files.read_file.invoke({"path": path}))
                except ToolError as err:
                    assert re.search("symbolic link|no file|no directory|outside", str(err)), err
                    refused += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert "SECRET" not in seen and seen == {"public"} and refused >= 10  # the swap did happen
