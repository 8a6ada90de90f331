"""Static import graph of one llmkit package, read from its source with ast (nothing is imported)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_modules(package: str) -> dict[str, Path]:
    """Every module of llmkit.<package>, by dotted name, from packages/<package>/src."""
    root = REPO / "packages" / package / "src"
    modules = {}
    for path in sorted((root / "llmkit" / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def native_modules(package: str) -> set[str]:
    """Extension modules CMake installs into llmkit.<package> (built, so absent from the source tree)."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    pattern = rf"install\(TARGETS (\w+) LIBRARY DESTINATION llmkit/{package}\)"
    return {f"llmkit.{package}.{target}" for target in re.findall(pattern, cmake)}


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST):
    """Import statements that run (at module level or inside functions), skipping `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def _resolve_base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    anchor = module.split(".") if is_package else module.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_graph(package: str) -> dict[str, set[str]]:
    """module -> the modules of the same package that importing it (or calling into it) imports.

    Counts imports inside functions too (they run, just later), never `if TYPE_CHECKING:` ones. Importing
    `a.b.c` also runs `a.b`'s `__init__`, except where `a.b` is a package the importer itself lives in
    (Python has already started it); reading a name from such an enclosing `__init__` still counts.
    """
    modules = package_modules(package)
    native = native_modules(package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        enclosing = set(_prefixes(module)[:-1]) | ({module} if is_package else set())
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.update(p for p in _prefixes(alias.name) if p not in enclosing)
                continue
            base = _resolve_base(module, is_package, node)
            targets.update(p for p in _prefixes(base) if p not in enclosing)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules or submodule in native:
                    targets.add(submodule)
                else:
                    targets.add(base)  # a name defined in base's own module (or its __init__)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def import_cycles(package: str) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) for each group of llmkit.<package> modules that import each other."""
    graph = import_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        on_stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = on_stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(graph, set(component), component[0]) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return [*paths[node], start]
                if succ not in paths:
                    paths[succ] = [*paths[node], succ]
                    next_frontier.append(succ)
        frontier = next_frontier
    raise AssertionError(f"{start} is in a cycle but no path returns to it")


def module_level_imports(package: str) -> dict[str, set[str]]:
    """Top-level names of the modules llmkit.<package> imports when its modules load (imports inside
    functions are optional features and left out), by importing module."""
    found: dict[str, set[str]] = {}
    for module, path in package_modules(package).items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(module)
    return found
