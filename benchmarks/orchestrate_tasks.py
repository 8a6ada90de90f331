"""Tool use end to end on a real model: questions that need the calculator or the SQL tool.

    python benchmarks/orchestrate_tasks.py [--model smollm2] [--backend engine] [--limit N] [--no-constrain]
        [--only-needed-tool]

24 fixed tasks (12 arithmetic, 12 over a small SQLite database built here). Each runs a ReActAgent
with the calculator and the read-only SQL tool on the llmkit-serve engine with the built-in chatml
template (Hermes tool calls), greedy, tool calls constrained by the tools' schemas, `tool_choice`
"required" (the answer comes through `final_answer`), one call per step, two worked examples.
A task succeeds when a tool call parsed and executed without error, its result holds the expected
value, and the final answer states that value. Reported: the success rate and its parts.
`--only-needed-tool` offers each task only the tool it needs (per-phase exposure done by hand), which
separates choosing the tool from calling it well.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmkit.core.assistant_output import ToolCall
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams
from llmkit.orchestrate import Limits, ReActAgent, SqlToolbox, calculator
from llmkit.orchestrate.memory import assistant_message

EMPLOYEES = [
    ("Maria Lopez", "Sales", 5200, 2018), ("John Smith", "Engineering", 7400, 2016),
    ("Aiko Tanaka", "Engineering", 8100, 2019), ("Peter Brown", "Sales", 4800, 2020),
    ("Fatima Khan", "Marketing", 5600, 2019), ("Luca Rossi", "Engineering", 6900, 2021),
    ("Emma Wilson", "Sales", 5100, 2019), ("Omar Haddad", "Support", 3900, 2022),
    ("Sofia Novak", "Marketing", 6100, 2017), ("David Chen", "Engineering", 9300, 2015),
    ("Nina Petrova", "Support", 4100, 2020), ("Carlos Diaz", "Sales", 4950, 2021),
]  # fmt: skip
PRODUCTS = [
    ("hammer", "Tools", 25, 140), ("drill", "Tools", 89, 35), ("saw", "Tools", 42, 60),
    ("rake", "Garden", 31, 80), ("hose", "Garden", 55, 45), ("shovel", "Garden", 38, 95),
    ("lamp", "Home", 64, 30), ("chair", "Home", 120, 18), ("wrench", "Tools", 19, 210),
    ("mower", "Garden", 310, 7),
]  # fmt: skip
SCHEMA = "employees(name, department, salary, start_year) and products(name, category, price, stock)"

ARITHMETIC = [
    ("What is 1234 * 5678?", "7006652"),
    ("What is 98765 + 43210?", "141975"),
    ("What is 7 to the power of 8?", "5764801"),
    ("What is 123456 - 98765?", "24691"),
    ("What is 7854 divided by 34?", "231"),
    ("What is the square root of 1764?", "42"),
    ("What is 15 percent of 2480?", "372"),
    ("How many minutes are in 365 days? Compute 365 * 24 * 60.", "525600"),
    ("What is (48 + 52) * 37?", "3700"),
    ("What is 999 * 999?", "998001"),
    ("What is 2 to the power of 20?", "1048576"),
    ("What is 81234 divided by 6?", "13539"),
]
DATABASE = [
    ("How many employees are there?", "12"),
    ("How many employees work in the Sales department?", "4"),
    ("What is the highest salary of any employee?", "9300"),
    ("What is the total salary of the Engineering department?", "31700"),
    ("Which employee has the highest salary?", "David Chen"),
    ("How many products cost more than 50?", "5"),
    ("What is the average price of the products in the Tools category?", "43.75"),
    ("Which product has the largest stock?", "wrench"),
    ("How many employees started in 2019?", "3"),
    ("What is the salary of Maria Lopez?", "5200"),
    ("How many products are in the Garden category?", "4"),
    ("What is the lowest price of any product?", "19"),
]

SYSTEM = (
    "You answer questions with tools. Use calculator for arithmetic and sql_query for questions about the "
    f"database. The database has the tables {SCHEMA}. After the tool result, call final_answer with the "
    "value from the result."
)


def build_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE employees (name TEXT, department TEXT, salary INTEGER, start_year INTEGER)")
        db.execute("CREATE TABLE products (name TEXT, category TEXT, price INTEGER, stock INTEGER)")
        db.executemany("INSERT INTO employees VALUES (?, ?, ?, ?)", EMPLOYEES)
        db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", PRODUCTS)


def worked_example(question: str, name: str, arguments: dict, result: str, answer: str) -> list[dict]:
    """One demonstration: question, tool call, tool result (delimited as the agent delimits it), answer."""
    call, final = (
        ToolCall(name, arguments, f"call_ex_{name}"),
        ToolCall("final_answer", {"answer": answer}, "call_ex_f"),
    )
    return [
        {"role": "user", "content": question},
        assistant_message("", [call]),
        {"role": "tool", "tool_call_id": call.id, "name": name, "content": f'<data source="tool:{name}">\n{result}\n</data>'},
        assistant_message("", [final]),
        {"role": "tool", "tool_call_id": final.id, "name": "final_answer", "content": "accepted"},
    ]  # fmt: skip


EXAMPLES = worked_example("What is 12 * 34?", "calculator", {"expression": "12 * 34"}, "408", "408") + worked_example(
    "How many products cost less than 30?",
    "sql_query",
    {"query": "SELECT COUNT(*) FROM products WHERE price < 30"},
    "COUNT(*)\n2",
    "2",
)


def mentions(text: str, expected: str) -> bool:
    """The expected value in the text: numbers compared as numbers (commas ignored), names case-insensitively."""
    if re.fullmatch(r"-?\d+(\.\d+)?", expected):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", str(text).replace(",", ""))
        return any(abs(float(n) - float(expected)) < 1e-6 for n in numbers)
    return expected.casefold() in str(text).casefold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--backend", default="engine")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N tasks of each kind")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument(
        "--no-constrain", action="store_true", help="free generation: tool calls are parsed, not constrained"
    )
    parser.add_argument("--no-examples", action="store_true", help="leave out the two worked examples")
    parser.add_argument("--only-needed-tool", action="store_true", help="offer each task only the tool it needs")
    parser.add_argument("--json", type=Path, default=None, help="write per-task records here")
    args = parser.parse_args()
    console = Console()
    tasks = [(q, a, "calculator") for q, a in ARITHMETIC[: args.limit]] + [
        (q, a, "sql_query") for q, a in DATABASE[: args.limit]
    ]
    workdir = Path(tempfile.mkdtemp(prefix="llmkit-orchestrate-bench-"))
    build_database(workdir / "company.db")
    with console.status(f"loading {args.model} on the {args.backend} backend"):
        backend = open_backend(args.backend, model=args.model, chat_template="chatml")
    records = []
    started = time.time()
    for index, (question, expected, wanted_tool) in enumerate(tasks, 1):
        with SqlToolbox(str(workdir / "company.db")) as sql:
            agent = ReActAgent(
                backend,
                [calculator if wanted_tool == "calculator" else sql.sql_query]
                if args.only_needed_tool
                else [calculator, sql.sql_query],
                system_prompt=SYSTEM,
                params=SamplingParams(temperature=0.0, max_tokens=128),
                constrain=False if args.no_constrain else None,
                tool_choice="required",
                parallel_tool_calls=False,
                examples=[] if args.no_examples else EXAMPLES,
                limits=Limits(max_steps=args.max_steps),
            )
            task_started = time.time()
            result = agent.run(question)
        executed = [r for r in result.tool_log if r["name"] not in ("final_answer",) and r["status"] == "ok"]
        used = [r for r in executed if mentions(r["content"], expected)]
        answered = result.ok and mentions(result.answer, expected)
        record = {
            "question": question,
            "expected": expected,
            "wanted_tool": wanted_tool,
            "calls": [(r["name"], r["arguments"], r["status"], r["content"][:200]) for r in result.tool_log],
            "answer": result.answer,
            "stop_reason": result.stop_reason,
            "executed": bool(executed),
            "right_tool": any(r["name"] == wanted_tool for r in executed),
            "result_has_value": bool(used),
            "answer_correct": answered,
            "success": bool(executed) and bool(used) and answered,
            "steps": result.steps,
            "tokens": result.usage.total_tokens,
            "seconds": round(time.time() - task_started, 1),
        }
        records.append(record)
        mark = "[green]ok[/green]" if record["success"] else "[red]fail[/red]"
        console.print(f"{index:2d}/{len(tasks)} {mark} {question} -> {result.answer!r} ({record['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    table = Table(
        title=f"{len(tasks)} tasks on {args.model} ({'free' if args.no_constrain else 'constrained'} tool calls"
        + (", only the needed tool)" if args.only_needed_tool else ", both tools offered)")
    )
    for column in ("measure", "calculator", "sql", "all"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    for key, label in (
        ("executed", "a tool call parsed and executed"),
        ("right_tool", "... with the tool the task needs"),
        ("result_has_value", "a result holds the expected value"),
        ("answer_correct", "final answer states it"),
        ("success", "success (all of the above)"),
    ):
        cells = []
        for kind in ("calculator", "sql_query", None):
            chosen = [r for r in records if kind is None or r["wanted_tool"] == kind]
            cells.append(f"{sum(r[key] for r in chosen)}/{len(chosen)}")
        table.add_row(label, *cells)
    console.print(table)
    console.print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
