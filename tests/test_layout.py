"""The package's import graph has no cycle (docs/layout.md: each module imports only the ones
below it in the pipeline), counting imports inside functions too and leaving out those under
``if TYPE_CHECKING:`` (annotations only). Reads the source; imports nothing."""
import ast
import graphlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nested_ae_jax"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(module: str, is_package: bool, node: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules one import statement depends on: ``from PKG import sub`` on the
    submodule; ``from PKG import name`` on PKG's ``__init__``, where the name lives."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & modules
    base = module if is_package else module.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        base = base.rsplit(".", 1)[0]
    source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
    subs = {f"{source}.{a.name}" for a in node.names} & modules
    return (subs if len(subs) == len(node.names) else subs | {source}) & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                n.body = []
        graph[name] = set().union(*[
            imported(name, path.name == "__init__.py", n, set(paths)) for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))]) - {name}
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "nested_ae_jax.chain" in graph["nested_ae_jax.runner"]
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_a_cycle_would_be_found(tmp_path, monkeypatch):
    """The check itself: a submodule importing a name from its package's __init__, which
    imports the submodule, is a cycle."""
    pkg = tmp_path / "nested_ae_jax" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "nested_ae_jax" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .a import f\nX = 1\n")
    (pkg / "a.py").write_text("from . import X\ndef f():\n    return X\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "nested_ae_jax")
    graph = import_graph()
    assert graph["nested_ae_jax.sub.a"] == {"nested_ae_jax.sub"}
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())
