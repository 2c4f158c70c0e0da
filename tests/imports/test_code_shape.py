"""The import code stays readable: no function over 80 lines, none more complex than C901 15, and
no import cycle between its modules (plan → compare → rows, never back).

Read from the source (imports inside functions and under TYPE_CHECKING count too), as
tests/exports/test_code_shape.py does for the exports, so a unit that grows back into a
345-line build_plan fails here rather than in review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import capture.imports

PACKAGE = Path(capture.imports.__file__).parent
MAX_LINES = 80
MAX_COMPLEXITY = 15


def _modules() -> dict[str, tuple[ast.Module, str]]:
    """Module name -> (its syntax tree, the package its relative imports start from)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        name = ".".join(["capture.imports", *parts])
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found[name] = (ast.parse(path.read_text(), filename=str(path)), package)
    return found


def _imports(name: str, tree: ast.Module, package: str, known: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        out |= {c for c in candidates if c in known and c != name}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_modules_do_not_import_each_other_in_a_cycle():
    modules = _modules()
    known = set(modules)
    # `from . import x` names the package as well as x: a package is not an edge, its modules are.
    packages = {package for _, package in modules.values()}
    graph = {
        name: _imports(name, tree, package, known) - packages for name, (tree, package) in modules.items()
    }
    cycle = _cycle(graph)
    assert cycle is None, (
        f"Import cycle: {' -> '.join(cycle or [])}. Move what both need into a module of its own "
        "(as RowPlan went to rows.py, used by both plan.py and compare.py)."
    )


def test_no_import_function_is_longer_than_80_lines():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, (tree, _) in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, f"Split these into named steps (≤ {MAX_LINES} lines each): {long}"


def test_no_import_function_is_more_complex_than_15():
    # ruff is a dev dependency (pyproject.toml); C901 is McCabe complexity, the ceiling.
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--select",
            "C901",
            "--config",
            f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            "--output-format",
            "concise",
            str(PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        f"Split these into named steps (complexity ≤ {MAX_COMPLEXITY}):\n{done.stdout}"
    )
