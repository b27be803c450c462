"""The shape of the house: every library module imports without Streamlit, reads nothing from tests/,
sits in no import circle (imports inside functions count), respects the declared layer order, and stays
under 500 lines; the CLI's help path loads neither nnsight, peft nor lm_eval."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import workbench

ROOT = Path(workbench.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="workbench.")
                 if not m.name.endswith(".__main__"))  # entry points run on import

#: Packages (and top-level modules) from the bottom of the house up: a module may import
#: its own package and anything in a lower layer, never a higher one.
LAYERS = [
    ("errors", "progress", "plugins"),
    ("paths",),
    ("fileio",),
    ("config",),
    ("presets",),
    ("analysis",),
    ("models",),
    ("corpus",),
    ("store",),
    ("examples",),
    ("latent",),
    ("lenses",),
    ("ranks",),
    ("jobs",),
    ("tracing",),
    ("recordings",),
    ("evaluation",),
    ("interventions",),
    ("finetune",),
    ("viz",),
    ("recipes",),
    ("warm",),
    ("export",),
    ("report",),
    ("cli",),
]

#: Imports inside functions that are allowed, each with its reason (any other is a failure:
#: an import belongs at the top of its module, and one hidden in a function can hide a circle).
FUNCTION_IMPORTS = {
    ("workbench.cli.analyze", "workbench.recipes.build"):
        "start-up time: `workbench analyze --help` lists every analysis from the light registry; the build "
        "(recorder, evaluator) loads when an analysis runs",
}


def _source(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    pkg = ROOT / rel / "__init__.py"
    return pkg if pkg.is_file() else (ROOT / rel).with_suffix(".py")


def _resolve(name: str) -> str | None:
    while name and name not in MODULES and name != "workbench":
        name = name.rpartition(".")[0]
    return name if name in MODULES else None


def _edges(name: str) -> list[tuple[str, bool]]:
    """(imported workbench module, inside a function?) for every import statement of a module."""
    path = _source(name)
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        for t in targets:
            d = _resolve(t) if t.startswith("workbench") else None
            if d and d != name and not (is_pkg and d.startswith(name + ".")):  # a face re-exporting its parts
                out.append((d, id(node) not in top))
    return out


GRAPH = {m: _edges(m) for m in MODULES}


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


def test_no_import_circles_counting_imports_inside_functions():
    graph = {m: {d for d, _ in deps} for m, deps in GRAPH.items()}
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


def _layer(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_package_has_a_layer():
    parts = {m.split(".")[1] for m in MODULES}
    assert parts == {p for names in LAYERS for p in names}, "add new packages to LAYERS (and ARCHITECTURE.md)"


def test_imports_go_down_the_declared_layers():
    bad = [f"{m} -> {d}" for m, deps in GRAPH.items() for d, _ in deps
           if m.split(".")[1] != d.split(".")[1] and _layer(d) >= _layer(m)]
    assert not bad, "imports against the layer order (tests/unit/test_imports.py LAYERS):\n" + "\n".join(bad)


def test_imports_inside_functions_are_the_listed_exceptions():
    found = {(m, d) for m, deps in GRAPH.items() for d, inside in deps if inside}
    assert found == set(FUNCTION_IMPORTS), ("unlisted imports inside functions (move them to the top, or list them "
                                            f"with a reason): {sorted(found - set(FUNCTION_IMPORTS))}; listed but "
                                            f"gone: {sorted(set(FUNCTION_IMPORTS) - found)}")


def test_the_help_path_loads_no_tracer_adapter_or_harness():
    code = ("import sys\n"
            "from workbench.cli.main import build_parser\n"
            "for command in ('', 'analyze'):\n"
            "    build_parser(only=command)\n"
            "    heavy = [m for m in ('nnsight', 'peft', 'lm_eval', 'torch') if m in sys.modules]\n"
            "    assert not heavy, (command, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_every_file_is_under_500_lines():
    pages = Path(__file__).parents[2] / "app_pages"
    long = [str(p) for p in [*ROOT.rglob("*.py"), *pages.rglob("*.py")] if len(p.read_text().splitlines()) > 500]
    assert not long, long
