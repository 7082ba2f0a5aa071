# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
"""The shape of `trl_mos/rest_em`: parts of the method readable alone — no import cycle between its modules, and no
module too long to read."""

import ast
from pathlib import Path

import trl_mos.rest_em


PACKAGE = Path(trl_mos.rest_em.__file__).parent
MAX_LINES = 450


def _internal_imports(path: Path) -> set[str]:
    """The `trl_mos.rest_em` modules `path` imports, anywhere in the file (inside functions too)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y / from . import x
            if node.module:
                imported.add(node.module.split(".")[0])
            else:
                imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trl_mos.rest_em."):
            imported.add(node.module.split(".")[2])
    return imported


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _internal_imports(path) & set(modules) for name, path in modules.items()}


def test_no_import_cycle_inside_rest_em():
    graph = _graph()
    assert graph["trainer"] >= {"e_step", "state", "m_step", "validation"}  # the graph is really read
    assert "trainer" not in set().union(*(deps for name, deps in graph.items() if name != "demo"))
    visiting, done = [], set()

    def visit(name):
        if name in visiting:
            raise AssertionError(f"import cycle: {' -> '.join([*visiting[visiting.index(name) :], name])}")
        if name in done:
            return
        visiting.append(name)
        for dependency in sorted(graph[name]):
            visit(dependency)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_imports_inside_functions_count(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n    from trl_mos.rest_em.c import z\n")
    assert _internal_imports(tmp_path / "a.py") == {"b"}
    assert _internal_imports(tmp_path / "b.py") == {"a", "c"}


def test_generation_backends_do_not_know_the_trainer():
    for name in ("generation", "vllm_backend", "sharding", "e_step", "validation", "weights", "state", "m_step"):
        assert "trainer" not in _internal_imports(PACKAGE / f"{name}.py"), name


def test_no_module_is_too_long():
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_one_cut_at_eos():
    definitions = [
        p.name
        for p in [*PACKAGE.glob("*.py"), PACKAGE.parent / "generation.py"]
        if any(isinstance(n, ast.FunctionDef) and n.name == "_cut_at_eos" for n in ast.walk(ast.parse(p.read_text())))
    ]
    assert definitions == ["generation.py"]
