"""`schema` guard: the checked text must be JSON that validates against a JSON schema (jsonschema, draft by `$schema`,
2020-12 by default). Non-JSON or invalid output is blocked with the first validation error as the reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from .base import Stage, Verdict, allow, parse_stages
from .errors import GuardError


class SchemaGuard:
    name = "schema"
    stream_window = None  # a prefix of JSON is not JSON: judged on the whole text

    def __init__(self, schema: Mapping[str, Any], stages: str | None = None):
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as err:
            raise GuardError(f"guard 'schema': the schema is not valid: {err.message}") from None
        self.validator = validator_class(schema)
        self.stages = parse_stages(stages, frozenset({"output"}))

    def check(self, text: str, stage: Stage) -> Verdict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            return Verdict("block", self.name, f"not JSON: {err}", "schema")
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Verdict("block", self.name, f"at {where}: {error.message}", "schema")
        return allow(self.name)


def schema_guard(schema: str | Mapping[str, Any], stages: str | None = None) -> SchemaGuard:
    """`schema` is a schema (a mapping), a JSON string, or the path of a .json file."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema if schema.lstrip().startswith("{") else Path(schema).read_text())
        except (json.JSONDecodeError, OSError) as err:
            raise GuardError(f"guard 'schema': cannot read the schema {schema[:80]!r}: {err}") from None
    if not isinstance(schema, Mapping):
        raise GuardError("guard 'schema': the schema must be a JSON object")
    return SchemaGuard(schema, stages)
