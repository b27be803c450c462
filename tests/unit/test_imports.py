"""The shape of the house: every library module imports without Streamlit, reads nothing from
tests/, sits in no import circle, and stays under 500 lines."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import workbench

ROOT = Path(workbench.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="workbench.")
                 if not m.name.endswith(".__main__"))  # entry points run on import


def _source(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    pkg = ROOT / rel / "__init__.py"
    return pkg if pkg.is_file() else (ROOT / rel).with_suffix(".py")


def test_the_walk_finds_every_module():
    files = {p for p in ROOT.rglob("*.py") if p.name != "__main__.py"}
    assert {_source(m) for m in MODULES} | {ROOT / "__init__.py"} == files
    assert len(MODULES) > 40


def test_no_library_module_imports_streamlit():
    code = ("import importlib, sys\n"
            f"for name in {MODULES!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'streamlit' not in sys.modules, name\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_no_library_module_reads_from_tests():
    for name in MODULES:
        text = _source(name).read_text()
        assert '"tests"' not in text and "'tests'" not in text and "tests/fixtures" not in text, name


def _imports(name: str) -> set[str]:
    """Workbench modules imported at module level (imports inside functions are not edges)."""
    tree = ast.parse(_source(name).read_text())
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("workbench.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.add(full if full in MODULES else node.module)
    return {m for m in out if m in MODULES and m != name}


def test_no_import_circles():
    graph = {m: _imports(m) for m in MODULES}
    # a package's __init__ re-exporting its own submodules is not a circle
    graph = {m: {d for d in deps if not (d.startswith(m + ".") and _source(m).name == "__init__.py")}
             for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)


def test_every_file_is_under_500_lines():
    pages = Path(__file__).parents[2] / "pages"
    long = [str(p) for p in [*ROOT.rglob("*.py"), *pages.rglob("*.py")] if len(p.read_text().splitlines()) > 500]
    assert not long, long
