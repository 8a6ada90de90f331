"""`math_equivalence`: the reply's final answer equals the reference as a mathematical expression (sympy).

Equality is decided numerically first (both sides evaluated at fixed random points, or as numbers), then
confirmed symbolically with `simplify(a - b) == 0` for small expressions; inputs that sympy cannot parse
fail the check with the reason in `detail`. Model output is untrusted: only letters, digits, operators
and brackets reach sympy's parser, which runs without builtins and with a whitelist of names.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pluggy
import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from llmkit.core.verifiers import VerifierResult

hookimpl = pluggy.HookimplMarker("llmkit")

MAX_LENGTH = 200  # longer answers are refused rather than handed to sympy
TRANSFORMATIONS = (*standard_transformations, implicit_multiplication_application, convert_xor)
ALLOWED_NAMES = {
    name: getattr(sympy, name) for name in ("sqrt", "pi", "E", "I", "sin", "cos", "tan", "log", "exp", "Abs")
}
# What sympy's parser itself inserts (Symbol for unknown names, number constructors); no builtins at all.
PARSER_GLOBALS = {
    "__builtins__": {},
    **{name: getattr(sympy, name) for name in ("Symbol", "Integer", "Float", "Rational", "Mul", "Pow", "Add")},
}
SAFE_TEXT = re.compile(r"[A-Za-z0-9+\-*/^().\s]*")
_LATEX = [
    (re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\sqrt\[([^\]]*)\]\{([^{}]*)\}"), r"((\2)**(1/(\1)))"),
    (re.compile(r"\\sqrt\{([^{}]*)\}"), r"sqrt(\1)"),
    (re.compile(r"\\(?:left|right|,|!|;|displaystyle)"), ""),
    (re.compile(r"\\(?:cdot|times)"), "*"),
    (re.compile(r"\\pi"), "pi"),
    (re.compile(r"\\(sin|cos|tan|log|ln|exp)"), r"\1"),
    (re.compile(r"\\text\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\{([^{}]*)\}"), r"**(\1)"),
]


def final_answer(text: str) -> str | None:
    """The last \\boxed{...} (balanced braces), else the text after the last '####', else None."""
    start = text.rfind("\\boxed{")
    if start >= 0:
        depth, index = 1, start + len("\\boxed{")
        begin = index
        while index < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        return text[begin : index - 1] if depth == 0 else None
    marked = re.findall(r"####\s*([^\n]*)", text)
    return marked[-1] if marked else None


def to_sympy(text: str) -> sympy.Expr:
    """A LaTeX-ish or plain answer as a sympy expression (ValueError when it is not one)."""
    text = text.strip().strip("$").rstrip(".").replace(",", "")
    if not text or len(text) > MAX_LENGTH:
        raise ValueError("empty or too long")
    for _ in range(3):  # nested fractions and roots unwrap from the inside out
        for pattern, replacement in _LATEX:
            text = pattern.sub(replacement, text)
    text = text.replace("{", "(").replace("}", ")").replace("ln(", "log(")
    if "=" in text:  # "x = 3" -> the right-hand side
        text = text.split("=")[-1]
    if "\\" in text:
        raise ValueError(f"unsupported LaTeX in {text!r}")
    if not SAFE_TEXT.fullmatch(text) or "__" in text:
        raise ValueError(f"{text!r} holds characters that are not part of a math expression")
    try:
        expr = parse_expr(
            text,
            local_dict=dict(ALLOWED_NAMES),
            global_dict=dict(PARSER_GLOBALS),
            transformations=TRANSFORMATIONS,
            evaluate=True,
        )
    except Exception as err:  # sympy raises many kinds of errors on bad input
        raise ValueError(f"cannot parse {text!r}: {type(err).__name__}") from None
    if not isinstance(expr, sympy.Expr):
        raise ValueError(f"{text!r} is not an expression")
    return expr


def equivalent(a: sympy.Expr, b: sympy.Expr, tolerance: float = 1e-9) -> bool:
    """Numerically equal at fixed random points (or as numbers); small expressions are confirmed symbolically."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    generator = random.Random(0)
    for _ in range(5 if symbols else 1):
        point = {s: sympy.Float(generator.uniform(0.5, 2.5)) for s in symbols}
        try:
            left, right = complex(a.evalf(subs=point)), complex(b.evalf(subs=point))
        except (TypeError, ValueError):
            return False
        if abs(left - right) > tolerance * max(1.0, abs(left), abs(right)):
            return False
    if symbols and sympy.count_ops(a) + sympy.count_ops(b) <= 40:
        return sympy.simplify(a - b) == 0
    return True


def math_equivalence_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Passes when the completion's final answer (\\boxed{} or ####) equals the reference expression."""
    answer = final_answer(completion)
    if answer is None:
        return VerifierResult.from_bool(False, "no final answer (\\boxed{...} or #### ...)")
    want = final_answer(str(reference)) or str(reference)
    try:
        same = equivalent(to_sympy(answer), to_sympy(want))
    except ValueError as err:
        return VerifierResult.from_bool(False, str(err), answer=answer)
    return VerifierResult.from_bool(same, f"{answer!r} vs {want!r}", answer=answer)


@hookimpl
def llmkit_register_verifiers(register):
    register("math_equivalence", math_equivalence_verifier)
