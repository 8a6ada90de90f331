"""Fixtures for llmkit-orchestrate's tests: a small SQLite database and scripted replies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest


@pytest.fixture
def company_db(tmp_path: Path) -> Path:
    path = tmp_path / "company.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE employees (name TEXT, department TEXT, salary INTEGER)")
        db.executemany(
            "INSERT INTO employees VALUES (?, ?, ?)",
            [("Maria", "Sales", 5200), ("John", "Engineering", 7400), ("Aiko", "Engineering", 8100)],
        )
    return path
