"""The terminal approver: shows a tool call's full, validated arguments page by page, then asks y/N.

Model-written text can carry terminal control sequences (a carriage return or an ANSI escape that
hides a line, a bidi override that reorders it), so every control or format character is shown
escaped, never sent to the terminal as is.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from pydantic_core import to_jsonable_python

from .errors import ApprovalUnavailable

if TYPE_CHECKING:  # gates imports this module
    from .gates import ApprovalRequest

PAGE_LINES = 40
MAX_LINES = 2000
LINE_WIDTH = 160


def visible(text: str) -> str:
    """`text` with control and format characters (except newline and tab) written as escapes."""
    out = []
    for char in text:
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _wrapped(prefix: str, text: str, width: int) -> list[str]:
    """Each line of `text` under `prefix`; a line longer than `width` continues on lines marked '┆'."""
    lines = []
    for line in visible(text).split("\n"):
        pieces = [line[i : i + width] for i in range(0, len(line), width)] or [""]
        lines.append(prefix + pieces[0])
        lines += ["  ┆ " + piece for piece in pieces[1:]]
    return lines


def argument_lines(arguments: dict[str, Any], width: int = LINE_WIDTH) -> list[str]:
    """Every argument in full: strings verbatim under a bar, other values as indented JSON."""
    lines = []
    for name, value in arguments.items():
        if isinstance(value, str):
            lines.append(f"  {visible(name)} (text, {len(value)} characters):")
            lines += _wrapped("  │ ", value, width)
        else:
            rendered = json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False, indent=2)
            lines.append(f"  {visible(name)} =")
            lines += _wrapped("  │ ", rendered, width)
    return lines or ["  (no arguments)"]


def cli_approver(
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    page_lines: int = PAGE_LINES,
    max_lines: int = MAX_LINES,
) -> Callable[[ApprovalRequest], bool]:
    """Ask on the terminal, showing the full validated arguments `page_lines` at a time; anything but y/yes,
    end of input or 'q' while paging is a no. Arguments over `max_lines` lines are refused without asking,
    and a stdin that is not a terminal cannot approve (ApprovalUnavailable)."""

    def ask(request: ApprovalRequest) -> bool:
        source, sink = stdin or sys.stdin, stdout or sys.stderr
        if stdin is None and not source.isatty():
            print(f"llmkit: refused {request.tool} (it needs approval and stdin is not a terminal)", file=sink)
            raise ApprovalUnavailable("stdin is not a terminal, so nobody can approve it")
        lines = argument_lines(dict(request.arguments))
        if len(lines) > max_lines:
            reason = f"its arguments are {len(lines)} lines, more than the {max_lines} the approval prompt shows"
            print(f"llmkit: refused {request.tool}: {reason}", file=sink)
            raise ApprovalUnavailable(reason)
        print(f"\n{request.agent} wants to run {request.tool} (step {request.step}) with:", file=sink)
        for start in range(0, len(lines), page_lines):
            print("\n".join(lines[start : start + page_lines]), file=sink)
            end = min(start + page_lines, len(lines))
            if end < len(lines):
                print(
                    f"-- lines 1-{end} of {len(lines)}: Enter shows more, q refuses -- ", end="", file=sink, flush=True
                )
                answer = source.readline()
                if not answer or answer.strip().lower() == "q":
                    return False
        print(f"Allow {request.tool}? [y/N] ", end="", file=sink, flush=True)
        return source.readline().strip().lower() in ("y", "yes")

    return ask
