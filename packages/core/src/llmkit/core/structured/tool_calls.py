"""Grammars for tool calls in the syntax a chat template teaches its model, with each tool's
parameter schema as the arguments' grammar.

hermes:  <tool_call>\\n{"name": "NAME", "arguments": ARGS}\\n</tool_call>   (several, one per line)
llama3:  {"name": "NAME", "parameters": ARGS}
mistral: [{"name": "NAME", "arguments": ARGS}, ...]
generic: {"tool_calls": [{"name": "NAME", "arguments": ARGS}, ...]}  or free text as  {"response": "TEXT"}
         (for templates with no tool syntax of their own; see docs/serve.md)
With tool_choice "auto" the output is free text (which never starts a tool call) or tool calls.
"""

from __future__ import annotations

import json
from typing import Any

from .ir import EMPTY, Avoid, Expr, Grammar, GrammarError, alt, literal, seq, star
from .json_schema import JsonOptions, SchemaCompiler
from .json_strings import JSON_CHAR
from .json_values import add_any_value_rules, whitespace
from .utf8 import MAX_CODE_POINT, code_point_ranges

FORMATS = ("hermes", "llama3", "mistral", "generic")
ARGUMENT_OPTIONS = JsonOptions(whitespace="flexible", max_whitespace=2)
_ANY_CHAR = code_point_ranges([(0, MAX_CODE_POINT)])


def _functions(tools: Any) -> list[tuple[str, Any]]:
    if not isinstance(tools, list) or not tools:
        raise GrammarError("tools must be a non-empty array")
    found = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise GrammarError(
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}"
            )
        found.append((function["name"], function.get("parameters", {"type": "object"})))
    return found


def _chosen(functions: list[tuple[str, Any]], choice: Any) -> tuple[list[tuple[str, Any]], bool]:
    """(the functions the model may call, whether free text is allowed instead)."""
    if choice in (None, "auto"):
        return functions, True
    if choice == "required":
        return functions, False
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise GrammarError(f"tool_choice must be 'auto', 'required', 'none' or a named function, got {choice!r}")
    picked = [f for f in functions if f[0] == name]
    if not picked:
        raise GrammarError(f"tool_choice names {name!r}, which is not among the tools")
    return picked, False


def tool_call_grammar(source: dict[str, Any]) -> Grammar:
    """source: {"tools": [...], "tool_choice": ..., "format": one of FORMATS, "parallel": bool}."""
    fmt = source.get("format", "hermes")
    if fmt not in FORMATS:
        raise GrammarError(f"tool-call format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    functions, free_text = _chosen(_functions(source.get("tools")), source.get("tool_choice"))
    rules: dict[str, Expr] = {}
    ws = whitespace(ARGUMENT_OPTIONS)
    add_any_value_rules(rules, ws)
    key = "parameters" if fmt == "llama3" else "arguments"
    calls = []
    called: set[str] = set()
    for i, (name, parameters) in enumerate(functions):
        compiler = SchemaCompiler(parameters, ARGUMENT_OPTIONS, rules, prefix=f"tool{i}:")
        arguments = compiler.schema(parameters, f"#/tools/{i}/function/parameters")
        called |= compiler.called
        body = seq(
            literal('{"name": ' + json.dumps(name, ensure_ascii=False) + f', "{key}": '), arguments, literal("}")
        )
        if fmt == "hermes":
            body = seq(literal("<tool_call>\n"), body, literal("\n</tool_call>"))
        calls.append(body)
    one = alt(*calls)
    parallel = bool(source.get("parallel", True))
    if fmt == "hermes":
        many = seq(one, star(seq(literal("\n"), one))) if parallel else one
    elif fmt == "mistral":
        many = seq(literal("["), one, star(seq(literal(", "), one)) if parallel else EMPTY, literal("]"))
    elif fmt == "generic":
        more = star(seq(literal(", "), one)) if parallel else EMPTY
        many = seq(literal('{"tool_calls": ['), one, more, literal("]}"))
    else:
        many = one
    root = many
    if free_text:
        if fmt == "hermes":
            text = Avoid(star(_ANY_CHAR), b"<tool_call>")
        elif fmt == "generic":
            text = seq(literal('{"response": "'), star(JSON_CHAR), literal('"}'))
        else:
            first = code_point_ranges([(0, 0x08), (0x0E, 0x1F), (0x21, 0x5A), (0x5C, 0x7A), (0x7C, MAX_CODE_POINT)])
            text = alt(EMPTY, seq(first, star(_ANY_CHAR)))
        root = alt(many, text)
    rules["root"] = root
    grammar = Grammar(rules, "root")
    grammar.called |= called
    return grammar
