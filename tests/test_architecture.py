"""The layers of docs/architecture.md, checked from the source: imports, cycles, sizes.

Everything here reads the package's files with `ast`; nothing is imported, so these run in
the fast lane and fail with the offending module named.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jupyter_complete"
#: The module size budget (docs/architecture.md, "Sizes"): a module past it holds two nouns.
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[tuple[str, bool, bool]]:
    """(imported module, under TYPE_CHECKING, at module level) for each import in ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node: ast.AST, typing_only: bool, top: bool) -> Iterator[tuple[str, bool, bool]]:
        for child in ast.iter_child_nodes(node):
            guarded = typing_only or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                subs = [f"{target}.{a.name}" for a in child.names]
                if all(s in MODULES for s in subs):
                    for sub in subs:
                        yield sub, guarded, top
                else:
                    yield target, guarded, top
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, guarded, top
            yield from walk(child, guarded, inner)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False, True)


def _graph(*, typing_too: bool) -> dict[str, set[str]]:
    return {
        name: {
            target
            for target, typing_only, top in _imports(name)
            if top and target in MODULES and target != name and (typing_too or not typing_only)
        }
        for name in MODULES
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in graph:
        if node not in index:
            visit(node)
    return found


def _packages_imported(name: str) -> set[str]:
    """Top-level distributions ``name`` imports at module level, outside TYPE_CHECKING."""
    return {
        target.split(".")[0]
        for target, typing_only, top in _imports(name)
        if top and not typing_only and not target.startswith("jupyter_complete")
    }


def test_no_module_imports_itself_back_through_others_even_for_type_checking() -> None:
    assert _cycles(_graph(typing_too=True)) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_stays_within_the_size_budget(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (budget {MAX_LINES}): split it by noun"


def test_the_wire_module_depends_on_nothing_but_the_standard_library() -> None:
    imported = {t for t, _, _ in _imports("jupyter_complete.wire")}
    assert not {t for t in imported if t.startswith("jupyter_complete")}
    assert all(t.split(".")[0] in sys.stdlib_module_names or t == "__future__" for t in imported)


def _every_import(name: str) -> set[str]:
    """The package's modules ``name`` imports anywhere: module level, functions, TYPE_CHECKING."""
    found = set()
    for target, _, _ in _imports(name):
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]  # a name imported from a module: that module
        if target in MODULES and target != name:
            found.add(target)
    return found


def test_the_server_never_imports_the_client_side() -> None:
    # Not even inside a function: the one lazy edge is the other way (Client -> local/embedded).
    client_side = {"client", "streaming", "magics", "widgets", "messages", "render", "sse"}
    for name in MODULES:
        if name.startswith("jupyter_complete.local"):
            for target in _every_import(name):
                assert target.split(".")[1] not in client_side, f"{name} imports {target}"


#: docs/architecture.md's layers, bottom up; a module may import its own layer and those below.
PURE = {"wire", "prompt", "settings", "sampling", "goodness_of_fit", "completion", "errors"}
PURE |= {"_constants", "_version"}
CLIENT = {"client", "_completions", "_models", "_retries", "_responses", "_secrets"}
CLIENT |= {"_http_errors", "streaming", "_decoder", "messages", "sse"}


def _layer(name: str) -> str:
    top = name.split(".")[1] if "." in name else ""
    if top in PURE:
        return "pure"
    return "client" if top in CLIENT else "other"


def test_the_pure_modules_import_only_each_other() -> None:
    for name in MODULES:
        if _layer(name) == "pure":
            for target in _every_import(name):
                assert _layer(target) == "pure", f"{name} imports {target}"


def test_the_client_imports_nothing_of_the_notebook_layer_and_the_server_only_lazily() -> None:
    module_level = _graph(typing_too=True)
    for name in MODULES:
        if _layer(name) == "client":
            for target in _every_import(name):
                top_level = target in module_level[name]
                if target.startswith("jupyter_complete.local."):
                    assert not top_level, f"{name} imports {target} at module level"
                else:
                    assert _layer(target) != "other", f"{name} imports {target}"


def test_the_api_layer_of_the_server_sees_no_http_objects() -> None:
    http_stacks = {"starlette", "uvicorn", "h11", "httpx", "requests", "socket", "http"}
    for name in MODULES:
        if name.startswith("jupyter_complete.local.api"):
            assert not _packages_imported(name) & http_stacks, name


def test_magics_and_widgets_build_no_http_requests_themselves() -> None:
    for name in MODULES:
        part = name.split(".")[1] if "." in name else ""
        if part in {"magics", "_magic_line", "_magic_options", "_help_end", "widgets"}:
            # Inside functions too: a request built here would skip the client's rules.
            stacks = {target.split(".")[0] for target, _, _ in _imports(name)}
            assert not stacks & {"requests", "urllib3", "httpx"}, name


def test_heavy_stacks_are_imported_only_inside_functions_outside_local() -> None:
    heavy = {"llama_cpp", "uvicorn", "starlette", "httpx", "matplotlib", "ipywidgets"}
    allowed = {  # (module prefix, stack): where the stack is that module's whole job
        ("jupyter_complete.local", "llama_cpp"),
        ("jupyter_complete.local", "uvicorn"),
        ("jupyter_complete.local", "starlette"),
        ("jupyter_complete.local", "httpx"),
        ("jupyter_complete.widgets", "ipywidgets"),
    }
    for name in MODULES:
        for stack in _packages_imported(name) & heavy:
            assert any(name.startswith(p) and stack == s for p, s in allowed), (
                f"{name} imports {stack} at module level"
            )


def test_the_secrets_module_loads_only_the_standard_library_so_render_can_show_urls() -> None:
    # render imports safe_url from _secrets; %load_ext loads render but must not load requests.
    stacks = _packages_imported("jupyter_complete._secrets") - {"__future__"}
    assert all(s in sys.stdlib_module_names for s in stacks), stacks


def test_every_module_is_named_in_the_layer_diagram() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = doc.split("```")[1]  # the first code block: the layers
    words = {w.strip("/()") for w in diagram.replace(",", " ").split()}
    for name in MODULES:
        if name == "jupyter_complete" or name.startswith("jupyter_complete.widgets.panel."):
            continue  # the package itself; the panel's private modules are drawn as panel/
        assert name.rpartition(".")[2] in words, f"{name} is not in the architecture diagram"
