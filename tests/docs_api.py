"""What the docs show of one llmkit package, read from docs/*.md, so a test can import each name.

Three kinds of mention count, each with the rule it has to meet:
- `from llmkit.<package> import A, B` (code blocks and prose): A and B are in the package's `__all__`;
  `from llmkit.<package>.<module> import A`: the module has A.
- a dotted `llmkit.<package>.x.y`: it resolves; when `x` is not a module, `x` is in `__all__`.
- on the package's own page, a class name in backticks (`Name` or `Name(...)`) that the package's source
  defines at module level, and a capitalized name a Python code block uses without defining or
  importing it: the package's `__init__` exports it, unless the page names the module that defines it.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_CLASS_IN_SPAN = re.compile(r"([A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*)(?:\.\w+)*(?:\(.*\))?")


@dataclasses.dataclass(frozen=True)
class Mention:
    """One name a docs page shows: where, how it is written, and what must hold for it."""

    page: str
    text: str  # as written, e.g. "from llmkit.eval import load_task" or "llmkit.train.loop.Trainer"
    module: str  # the module it is read from
    name: str | None  # the name read from that module (None: `module` itself is the mention)
    must_be_exported: bool  # the name must be in the package's __all__

    def __str__(self) -> str:
        return f"{self.page}: {self.text}"


def mentions(package: str) -> list[Mention]:
    """Every mention of llmkit.<package> on any docs page, plus the class names its own page shows."""
    found: list[Mention] = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        found += _import_mentions(package, page.name, text)
        found += _dotted_mentions(package, page.name, text)
    own_page = DOCS / f"{package}.md"
    found += _class_mentions(package, own_page.name, own_page.read_text())
    return found


def problem(mention: Mention) -> str | None:
    """Why the mention fails (None when it holds), found by importing it."""
    package = ".".join(mention.module.split(".")[:2])
    try:
        module = importlib.import_module(mention.module)
    except ImportError as err:
        return f"{mention}: cannot import {mention.module}: {err}"
    if mention.name is None:
        return None
    if not hasattr(module, mention.name):
        return f"{mention}: {mention.module} has no {mention.name}"
    exported = getattr(importlib.import_module(package), "__all__", ())
    if mention.must_be_exported and mention.name not in exported:
        return f"{mention}: {mention.name} is not in {package}.__all__"
    return None


def _import_mentions(package: str, page: str, text: str) -> list[Mention]:
    found = []
    pattern = rf"from (llmkit\.{package}(?:\.\w+)*) import (\([\w,\s]*\)|[\w, ]+)"
    for match in re.finditer(pattern, text):
        module = match.group(1)
        for name in re.split(r"[,\s]+", match.group(2).strip("() \n")):
            if name:
                written = f"from {module} import {name}"
                found.append(Mention(page, written, module, name, module == f"llmkit.{package}"))
    return found


def _dotted_mentions(package: str, page: str, text: str) -> list[Mention]:
    found = []
    for dotted in sorted(set(re.findall(rf"\bllmkit\.{package}(?:\.\w+)+", text))):
        parts = dotted.split(".")
        module_end = 2
        while module_end < len(parts) and _is_module(".".join(parts[: module_end + 1])):
            module_end += 1
        module, rest = ".".join(parts[:module_end]), parts[module_end:]
        if not rest:
            found.append(Mention(page, dotted, module, None, False))
        elif len(rest) == 1:
            found.append(Mention(page, dotted, module, rest[0], module_end == 2))
        else:  # an attribute of a class (`llmkit.train.loop.Trainer.fit`): the class is the mention
            found.append(Mention(page, dotted, module, rest[0], module_end == 2))
    return found


def _class_mentions(package: str, page: str, text: str) -> list[Mention]:
    defined = _classes_defined(package)
    shown = {m.group(1) for span in _CODE_SPAN.findall(text) if (m := _CLASS_IN_SPAN.fullmatch(span))}
    shown |= _free_capitalized_names(text)
    found = []
    for name in sorted(shown & defined.keys()):
        if any(f"`{module}`" in text or f"{module}." in text for module in defined[name]):
            continue  # the page names the module it lives in
        found.append(Mention(page, f"`{name}`", f"llmkit.{package}", name, True))
    return found


def _classes_defined(package: str) -> dict[str, set[str]]:
    """Public module-level classes in llmkit.<package>'s source, by name -> the modules defining them."""
    root = REPO / "packages" / package / "src"
    defined: dict[str, set[str]] = {}
    for path in (root / "llmkit" / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if any(part.startswith("_") and part != "__init__" for part in parts):
            continue
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                defined.setdefault(node.name, set()).add(module)
    return defined


def _free_capitalized_names(text: str) -> set[str]:
    """Capitalized names the page's Python code blocks use but never define or import."""
    tree = ast.parse("\n".join(_PYTHON_BLOCK.findall(text)))
    bound, used = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return {name for name in used - bound if name[0].isupper()}


def _is_module(dotted: str) -> bool:
    try:
        importlib.import_module(dotted)
    except ModuleNotFoundError as err:
        if err.name is not None and dotted.startswith(err.name):
            return False  # that module (or a parent) does not exist; a dependency missing is an error
        raise
    return True
