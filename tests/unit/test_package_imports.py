"""The package's import graph, read from the source (nothing is imported): no module imports
itself through others, each sub-package imports only what its ``__init__`` docstring allows
(its ``May import:`` line), and no runtime module imports the tools (benchmark, demo data).

Every import counts, also one inside a function: a cycle hidden in a function body is still a
cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "marketing_warehouse"
SOURCE = Path(__file__).resolve().parents[2] / "src" / PACKAGE
#: Modules that may use the tools: the command line runs the benchmark and writes demo data.
TOOL_USERS = {f"{PACKAGE}.cli"}
#: The top-level modules that tie the stages together and so import sub-packages; every other
#: top-level module (settings, DuckDB connections, the Airflow environment, the layout) sits
#: below all sub-packages and imports only other top-level modules.
ASSEMBLERS = {f"{PACKAGE}.pipeline", f"{PACKAGE}.cli"}


def module_name(path: Path, root: Path = SOURCE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = SOURCE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> dict[str, int]:
    """The package's modules ``path`` imports, each with the line of its first import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import module`` names a module; ``from pkg.module import name`` a name
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        for name in names:
            if name in known and name != PACKAGE:
                found.setdefault(name, node.lineno)
    return found


def import_graph(root: Path = SOURCE) -> dict[str, dict[str, int]]:
    found = modules(root)
    graph = {name: imports_of(path, set(found)) for name, path in found.items()}
    for name, deps in graph.items():
        deps.pop(name, None)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    members = set(component)
    edges = [
        f"{source} -> {target} (line {line})"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in members
    ]
    return "; ".join(edges)


def subpackages(root: Path = SOURCE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.glob("*/__init__.py"))}


def allowed_imports(init: Path) -> set[str]:
    """The ``May import:`` line of a sub-package's docstring, as full module or package names."""
    doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) or ""
    match = re.search(r"^May import: (.+?)\.?$", doc, re.MULTILINE)
    assert match, f"{init}: the docstring has no 'May import: ...' line"
    listed = [n.strip() for n in match.group(1).split(",")]
    return {f"{PACKAGE}.{n}" for n in listed if n and n != "nothing else of the package"}


def owner(module: str) -> str:
    """The top-level module or sub-package ``module`` belongs to."""
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert len(graph) > 20, graph  # the walk found the package
    found = cycles(graph)
    assert found == [], "import cycles: " + " | ".join(describe(graph, c) for c in found)


def test_each_subpackage_imports_only_what_its_docstring_allows():
    graph = import_graph()
    packages = subpackages()
    assert {"ingest", "quality", "serve", "ops", "tools"} <= {p.split(".")[-1] for p in packages}
    wrong = []
    for package, init in packages.items():
        allowed = allowed_imports(init) | {package}
        for module, deps in graph.items():
            if owner(module) != package:
                continue
            for target, line in sorted(deps.items()):
                if owner(target) not in allowed:
                    wrong.append(f"{modules()[module]}:{line} imports {target}")
    assert wrong == [], "\n".join(wrong)


def test_top_level_modules_below_the_subpackages_import_none_of_them():
    graph = import_graph()
    packages = set(subpackages())
    wrong = [
        f"{modules()[module]}:{line} imports {target}"
        for module, deps in graph.items()
        if module.count(".") == 1 and module not in packages | ASSEMBLERS
        for target, line in sorted(deps.items())
        if owner(target) in packages
    ]
    assert wrong == [], "\n".join(wrong)


def test_runtime_modules_never_import_the_tools():
    graph = import_graph()
    tools = f"{PACKAGE}.tools"
    assert any(owner(m) == tools for m in graph), "no tools sub-package"
    wrong = [
        f"{modules()[module]}:{line} imports {target}"
        for module, deps in graph.items()
        if owner(module) != tools and module not in TOOL_USERS
        for target, line in sorted(deps.items())
        if owner(target) == tools
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path):
    root = tmp_path / PACKAGE
    (root / "inner").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "inner" / "__init__.py").write_text("")
    (root / "a.py").write_text("from marketing_warehouse.inner import b\n")
    (root / "inner" / "b.py").write_text("def f():\n    from marketing_warehouse.a import x\n")
    (root / "c.py").write_text("import marketing_warehouse.a\n")
    graph = import_graph(root)
    assert graph[f"{PACKAGE}.c"] == {f"{PACKAGE}.a": 1}
    assert cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.inner.b"]]
