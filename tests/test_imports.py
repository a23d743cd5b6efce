"""The package's floors: its import graph, read from the source with ``ast`` (imports at module level
and inside functions alike), has no circle; every error a user can cause shares one base class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdas_utils"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``. ``from .x import y`` counts ``x``, and
    ``x.y`` when ``y`` is a module of its own."""
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_on_a_hand_made_package(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")  # a function-level import counts
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from . import a\n")  # imports into the circle, is not part of it
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.d"] == {"pkg", "pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (package / "c.py").write_text("")
    assert circles(import_graph(package)) == []


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 40 and "kdas_utils.models.pretrained" in graph["kdas_utils.models.builders"]
    assert circles(graph) == []


def test_the_lowest_floors_look_only_down():
    graph = import_graph()
    for low in ("kdas_utils.environment", "kdas_utils.errors", "kdas_utils.files"):
        assert graph[low] <= {"kdas_utils.errors"}, (low, graph[low])
    assert "kdas_utils.checkpoint_file" not in graph  # one checkpoint file module: files.py
    for module in ("kdas_utils.data.download", "kdas_utils.engine.trainer", "kdas_utils.evaluate"):
        assert "kdas_utils.notebook" not in graph[module], module
    assert "kdas_utils.cli" not in graph["kdas_utils.colab"]
    assert not any(name.startswith("kdas_utils.engine") for name in graph["kdas_utils.models.weights"])


def test_the_former_alias_of_runs_is_gone():
    """``kdas_utils.training`` was an alias of ``runs`` that nothing used: one name per module."""
    assert "kdas_utils.training" not in import_graph()
    with pytest.raises(ModuleNotFoundError):
        __import__("kdas_utils.training")


@pytest.mark.parametrize(
    "where, name",
    [
        ("kdas_utils.engine", "RunLockedError"),
        ("kdas_utils.engine", "NonFiniteLossError"),
        ("kdas_utils.engine", "CheckpointError"),
        ("kdas_utils.models", "WeightLoadError"),
        ("kdas_utils.data.pairs", "DatasetError"),
        ("kdas_utils.data.download", "DownloadError"),
        ("kdas_utils.predict", "PredictInputError"),
        ("kdas_utils.errors", "UsageError"),
    ],
)
def test_every_user_facing_error_is_a_kdas_error(where, name):
    import importlib

    from kdas_utils.errors import USER_ERRORS, KDASError

    error = getattr(importlib.import_module(where), name)
    assert issubclass(error, KDASError) and issubclass(error, USER_ERRORS)


# The only imports allowed inside functions: dependencies a user may not have, each named here.
OPTIONAL_DEPENDENCIES = {
    "google.colab": "exists on Colab only",
    "gdown": "the `colab` extra",
    "onnxruntime": "the `export` extra",
}


def function_level_imports(package: Path = PACKAGE) -> list[tuple[str, int, str, str]]:
    """``(file, line, imported module, the line's text)`` for every import inside a function."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        modules = [alias.name for alias in inner.names]
                    elif isinstance(inner, ast.ImportFrom):
                        modules = ["." * inner.level + (inner.module or "")]
                    else:
                        continue
                    for module in modules:
                        found.append(
                            (path.relative_to(package.parent).as_posix(), inner.lineno, module, lines[inner.lineno - 1])
                        )
    return sorted(set(found))


def test_the_import_finder_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("import os\n\ndef f():\n    import gdown  # optional\n    from .b import c\n")
    assert [(line, module) for _, line, module, _ in function_level_imports(package)] == [(4, "gdown"), (5, ".b")]


def test_imports_inside_functions_are_only_optional_dependencies_with_a_comment():
    """Every other import stands at the top of its module, where a reader sees a file's floor."""
    found = function_level_imports()
    assert found, "the package has optional dependencies (gdown, google.colab): the finder must see them"
    for file, line, module, text in found:
        known = next((name for name in OPTIONAL_DEPENDENCIES if module == name or module.startswith(name + ".")), None)
        assert known, f"{file}:{line}: `{text.strip()}` belongs at the top of the module ({module} is not optional)"
        assert "# optional" in text, f"{file}:{line}: say which optional dependency this is in a comment"


METHOD = PACKAGE / "kdas"  # the paper: networks, losses, the distillation step, the arms
METHOD_MAY_IMPORT = {"torch", "timm", "numpy"}  # and the standard library


def outside_imports(folder: Path) -> dict[str, set[str]]:
    """``{file: top-level names of the modules it imports from outside its own folder}`` (a relative
    import that climbs out of ``folder`` counts as ``kdas_utils``)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                depth = len(path.relative_to(folder).parts)  # 1: a file of the folder itself
                if node.level == 0:
                    names.add((node.module or "").split(".")[0])
                elif node.level > depth:
                    names.add("kdas_utils")
        found[path.relative_to(folder.parent).as_posix()] = names
    return found


def test_the_import_reader_tells_the_folder_from_the_package(tmp_path):
    folder = tmp_path / "pkg" / "method"
    folder.mkdir(parents=True)
    (folder / "a.py").write_text("import os.path\nimport torch.nn\nfrom . import b\nfrom ..data import c\n")
    assert outside_imports(folder) == {"method/a.py": {"os", "torch", "kdas_utils"}}


def test_the_method_imports_only_torch_timm_numpy_and_the_standard_library():
    """``kdas_utils.kdas`` is the bottom floor: a reader finds the paper there, whole, and nothing of
    the package's tools or lessons can change what it computes."""
    import sys

    found = outside_imports(METHOD)
    assert "kdas/loss.py" in found and "timm" in found["kdas/polyp_pvt.py"]
    for file, names in found.items():
        foreign = {n for n in names if n not in METHOD_MAY_IMPORT and n not in sys.stdlib_module_names}
        assert not foreign, f"{file} imports {sorted(foreign)}: the method imports torch, timm and numpy only"


def test_the_method_is_short_enough_to_read():
    lines = sum(len(path.read_text().splitlines()) for path in METHOD.rglob("*.py"))
    assert 600 < lines <= 1250, f"kdas_utils/kdas/ holds {lines} lines (the issue: about 1,200 at most)"


def test_the_method_has_one_home():
    """Its modules are imported from ``kdas_utils.kdas``, not re-created beside it (the former homes
    ``losses``, ``models.blocks``, ``models.polyp_pvt``, ``distill.kdas_loss``/``attention``/``sgm``/
    ``pixel`` and ``engine.objectives`` are gone), and the parts that train, distil and load weights
    build on it."""
    graph = import_graph()
    gone = ["losses", "models.blocks", "models.polyp_pvt", "distill.kdas_loss", "distill.attention", "distill.sgm"]
    gone += ["distill.pixel", "engine.objectives"]
    assert not [name for name in gone if f"kdas_utils.{name}" in graph]
    for user in (
        "kdas_utils.engine.trainer",
        "kdas_utils.runs",
        "kdas_utils.models.weights",
        "kdas_utils.models.builders",
    ):
        assert any(name.startswith("kdas_utils.kdas") for name in graph[user]), user


def test_no_module_imports_a_private_name_of_another():
    """A name that starts with ``_`` is its module's own: another module that needs it gets a public one."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("kdas_utils")):
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []


# The tools: what a terminal or a maintainer runs around the lessons. The lessons' own code (the method,
# data, models, engine, evaluation, plots, widgets, runs, the quick story, a prediction of one frame)
# never imports them, so that a reader of a lesson's imports meets no tool.
TOOLS = (
    "kdas_utils.cli",
    "kdas_utils.bench",
    "kdas_utils.bench_predict",
    "kdas_utils.study",
    "kdas_utils.book",
    "kdas_utils.tutorial",
    "kdas_utils.predict.run",
    "kdas_utils.predict.stream",
    "kdas_utils.predict.writers",
)


def is_tool(module: str) -> bool:
    return any(module == tool or module.startswith(tool + ".") for tool in TOOLS)


def test_the_lessons_code_imports_no_tool():
    graph = import_graph()
    lessons = [m for m in graph if not is_tool(m) and m not in ("kdas_utils", "kdas_utils.predict")]
    assert {"kdas_utils.widgets", "kdas_utils.runs.student", "kdas_utils.engine.trainer"} <= set(lessons)
    found = {m: sorted(t for t in graph[m] if is_tool(t)) for m in lessons}
    assert {m: t for m, t in found.items() if t} == {}


def test_no_module_is_longer_than_a_reader_holds():
    """450 lines at most per module: a longer one is split by what its parts do (``plots`` into images and
    curves, ``bench`` and ``cli`` by measurement and by command, ``runs`` into store, recipe, ablation...)."""
    lengths = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(lengths) > 80
    assert {name: n for name, n in lengths.items() if n > 450} == {}
