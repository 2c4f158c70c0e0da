"""Code-shape checks the tests share (issue 18, "Small units"): import cycles between a package's
modules, functions over a line limit, and McCabe complexity through ruff's C901.

Read from the source (imports inside functions and under TYPE_CHECKING count too), so a cycle
hidden in a function body fails a test rather than review. Migrations are generated: left out."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

MAX_LINES = 80
MAX_COMPLEXITY = 15


def package_path(package: str) -> Path:
    return Path(importlib.import_module(package).__file__).parent


def _sources(root: Path):
    for path in sorted(root.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def modules(package: str) -> dict[str, tuple[ast.Module, str]]:
    """Module name -> (its syntax tree, the package its relative imports start from)."""
    root = package_path(package)
    found = {}
    for path in _sources(root):
        parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
        name = ".".join([package, *parts])
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found[name] = (ast.parse(path.read_text(), filename=str(path)), base)
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


def import_cycle(package: str) -> list[str] | None:
    """The first import cycle between the package's modules, or None."""
    found = modules(package)
    known = set(found)
    # `from . import x` names the package as well as x: a package is not an edge, its modules are.
    packages = {base for _, base in found.values()}
    graph = {name: _imports(name, tree, base, known) - packages for name, (tree, base) in found.items()}
    return _cycle(graph)


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """`path:line name (n lines)` for every function under `root` longer than `limit` lines."""
    found = []
    for path in _sources(root):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(
                        f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)"
                    )
    return found


def too_complex(root: Path, ceiling: int = MAX_COMPLEXITY) -> str:
    """ruff's C901 report for `root` at `ceiling`: empty when every function meets it."""
    # ruff is a dev dependency (pyproject.toml); C901 is McCabe complexity, the ceiling.
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "C901", "--config",
         f"lint.mccabe.max-complexity={ceiling}", "--output-format", "concise", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    return done.stdout if done.returncode else ""


def private_uses(package: str) -> list[str]:
    """`module:line name` wherever a module of `package` uses a private name (one leading
    underscore) of a module outside it: `from capture.x import _name`, or `x._name` on a name
    imported from elsewhere. What two packages share is their API, so it has a public name."""
    found = []
    for name, (tree, _base) in modules(package).items():
        outside = set()  # the names this module's imports from outside the package bind
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and not node.module.startswith(package):
                outside |= {alias.asname or alias.name for alias in node.names}
                found += [
                    f"{name}:{node.lineno} {node.module}.{a.name}" for a in node.names if _private(a.name)
                ]
            elif isinstance(node, ast.Import):
                outside |= {a.asname or a.name.partition(".")[0] for a in node.names}
        found += [
            f"{name}:{node.lineno} {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in outside
            and _private(node.attr)
        ]
    return sorted(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
