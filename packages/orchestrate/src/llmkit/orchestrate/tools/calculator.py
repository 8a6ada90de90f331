"""The `calculator` tool: arithmetic on a parsed expression tree, never `eval`."""

from __future__ import annotations

import ast
import math
import operator
import re

from ..errors import ToolError
from .tool import tool

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
    "factorial": math.factorial,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
MAX_MAGNITUDE = 10**100
MAX_RESULT_BITS = 4096
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and _power_too_large(left, right):
            raise ToolError("the power is too large (more than 4096 bits)")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise ToolError("functions take positional arguments only")
        args = [_evaluate(a) for a in node.args]
        if node.func.id == "factorial" and (not args or args[0] > 1000):
            raise ToolError("factorial takes one integer of at most 1000")
        return _FUNCTIONS[node.func.id](*args)
    if isinstance(node, ast.Name):
        raise ToolError(f"unknown name {node.id!r}; known: {', '.join(sorted(_CONSTANTS | _FUNCTIONS))}")
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:60]}")


def _power_too_large(base: int | float, exponent: int | float) -> bool:
    if abs(exponent) > MAX_EXPONENT:
        return True
    size = base.bit_length() if isinstance(base, int) else math.log2(abs(base)) if base else 0.0
    return abs(base) > 1 and exponent > 0 and exponent * size > MAX_RESULT_BITS


def format_number(value: int | float) -> str:
    """Integers exactly; floats to 12 significant digits, integral floats without a fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"the result is not a number: {value!r}")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ToolError(f"the result is {value}")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".12g")
    return str(value)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: arithmetic such as "1234 * 5678" or "sqrt(2) / 3"; + - * / // % ** and parentheses,
            functions sqrt log exp sin cos tan abs round floor ceil min max factorial, constants pi e.
    """
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    text = _THOUSANDS.sub("", text)
    if not text:
        raise ToolError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    try:
        value = _evaluate(tree)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (ValueError, OverflowError, TypeError) as err:
        raise ToolError(f"cannot evaluate {expression!r}: {err}") from None
    if abs(value) > MAX_MAGNITUDE:
        raise ToolError("the result is too large (more than 100 digits)")
    return format_number(value)
