"""Import hygiene: who may import what (the rules of ``docs/architecture.md``).

Every module under ``src/alliance`` is parsed with :mod:`ast` (nothing is imported), and

1. no module uses another module's private name: neither ``from m import _x`` nor ``m._x``
   on a module it imported (dunder names such as ``__version__`` are not private);
2. a private module (``_x.py``) is imported only within its own package: ``alliance._x``
   from anywhere in ``alliance``, ``alliance.models._x`` only from ``alliance.models.*``;
3. the imports between modules have no cycle, counting module-level imports, and again
   counting function-level (deferred) imports too;
4. each module imports only from its own layer or the layers listed before it in the
   layer table of ``docs/architecture.md``, and every module is in that table.

The checkers are plain functions over ``{module name: source}`` so that the self-tests
at the end can show, on synthetic sources, that each rule fails when it is broken.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Known departures, each to be removed by the change that fixes it; an entry that is no
# longer needed fails the test, so the list cannot silently outlive its reason.
# Keys: (importing module, "module.name" it uses).
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    is_package: bool = False
    path: str = ""


@dataclass(frozen=True)
class Import:
    """One use of another module: ``target`` is a module, or ``module.name`` for a name."""

    importer: str
    target: str
    line: int
    module_level: bool


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def load_package(root: Path = SRC, package: str = "alliance") -> dict[str, Module]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        out[name] = Module(name, path.read_text(encoding="utf-8"), is_package, str(path))
    return out


def _module_level_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes run at import time (not inside a function body)."""
    out: set[int] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if not inside:
                out.add(id(child))
            visit(child, inside)

    visit(tree, False)
    return out


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _longest_module(dotted: list[str], modules: dict[str, Module]) -> tuple[str, list[str]]:
    """Split ``a.b.c.d`` into the longest known module prefix and the rest."""
    for cut in range(len(dotted), 0, -1):
        head = ".".join(dotted[:cut])
        if head in modules:
            return head, dotted[cut:]
    return "", dotted


def collect_imports(modules: dict[str, Module], package: str = "alliance") -> list[Import]:
    """Every use of one package module by another: imports and ``alias._name`` attributes."""
    found: list[Import] = []
    for mod in modules.values():
        tree = ast.parse(mod.source)
        top = _module_level_nodes(tree)
        aliases: dict[str, str] = {}  # local name -> module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(mod, node)
                if source.split(".")[0] != package:
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if full in modules:  # a submodule
                        target = full
                        aliases[alias.asname or alias.name] = full
                    else:
                        target = full if alias.name != "*" else source
                    found.append(Import(mod.name, target, node.lineno, id(node) in top))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != package:
                        continue
                    found.append(Import(mod.name, alias.name, node.lineno, id(node) in top))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain: list[str] = []
            base: ast.AST = node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if not isinstance(base, ast.Name) or base.id not in aliases:
                continue
            dotted = [*aliases[base.id].split("."), *reversed(chain)]
            head, rest = _longest_module(dotted, modules)
            if rest and _private(rest[0]):
                target = f"{head}.{rest[0]}"
            elif head != aliases[base.id] and any(_private(p) for p in head.split(".")):
                target = head  # e.g. alliance.models._prep reached as an attribute
            else:
                continue
            found.append(Import(mod.name, target, node.lineno, id(node) in top))
    # a chain a._b.c is seen at a._b.c and at a._b: the set keeps one
    return sorted(set(found), key=lambda i: (i.importer, i.line, i.target))


def _split(target: str, modules: dict[str, Module]) -> tuple[str, str | None]:
    """(module, name) of a target; name is None when the target is a module."""
    if target in modules:
        return target, None
    head, _, name = target.rpartition(".")
    return head, name


def privacy_violations(
    modules: dict[str, Module],
    allowed: dict[tuple[str, str], str] | None = None,
    package: str = "alliance",
) -> tuple[list[str], set[tuple[str, str]]]:
    """Uses of private names or private modules that the rules forbid, and allow-list hits."""
    allowed = allowed or {}
    problems, used = [], set()
    for imp in collect_imports(modules, package):
        module, name = _split(imp.target, modules)
        if module == imp.importer:
            continue
        reason = None
        if name is not None and _private(name):
            reason = f"uses the private name {name!r} of {module}"
        else:
            parts = module.split(".")
            for i, part in enumerate(parts):
                if _private(part):
                    owner = ".".join(parts[:i])  # the package the private module belongs to
                    if not (imp.importer == owner or imp.importer.startswith(owner + ".")):
                        reason = f"imports {'.'.join(parts[: i + 1])}, private to {owner}"
                    break
        if reason is None:
            continue
        key = next(
            (
                k
                for k in allowed
                if k[0] == imp.importer
                and (imp.target == k[1] or imp.target.startswith(k[1] + "."))
            ),
            None,
        )
        if key is not None:
            used.add(key)
            continue
        problems.append(f"{imp.importer} line {imp.line}: {reason}")
    return sorted(problems), used


def import_graph(
    modules: dict[str, Module], *, module_level_only: bool, package: str = "alliance"
) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in collect_imports(modules, package):
        if module_level_only and not imp.module_level:
            continue
        module, _ = _split(imp.target, modules)
        if module in modules and module != imp.importer:
            graph[imp.importer].add(module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def parse_layers(markdown: str, package: str = "alliance") -> list[list[str]]:
    """Modules of each row of the first table whose header starts ``| layer | modules |``.

    A name ending in ``/`` is a subpackage (all its modules); others are modules.
    """
    lines = markdown.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.match(r"^\|\s*layer\s*\|\s*modules\s*\|", line)),
        None,
    )
    if start is None:
        raise AssertionError("docs/architecture.md has no '| layer | modules | job |' table")
    layers = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cells[1])
        layers.append([f"{package}.{n.rstrip('/').replace('/', '.')}" for n in names])
    return layers


def layer_violations(
    modules: dict[str, Module], layers: list[list[str]], package: str = "alliance"
) -> list[str]:
    """Imports that go to a later layer, and modules that no layer lists.

    The package root (``alliance/__init__.py``) is the front door: it is in no layer and
    its imports are not checked; a module that imports it is held to the cycle checks.
    """

    def layer_of(name: str) -> int | None:
        best, best_len = None, -1
        for i, entries in enumerate(layers):
            for entry in entries:
                if (name == entry or name.startswith(entry + ".")) and len(entry) > best_len:
                    best, best_len = i, len(entry)
        return best

    problems = [
        f"{name} is in no layer of docs/architecture.md: add it to the table"
        for name in modules
        if name != package and layer_of(name) is None
    ]
    for imp in collect_imports(modules, package):
        module, _ = _split(imp.target, modules)
        if package in (imp.importer, module) or module not in modules:
            continue
        mine, theirs = layer_of(imp.importer), layer_of(module)
        if mine is not None and theirs is not None and theirs > mine:
            problems.append(
                f"{imp.importer} line {imp.line}: imports {module}, which is in a later "
                f"layer ({theirs + 1} > {mine + 1} in docs/architecture.md)"
            )
    return problems


# --------------------------------------------------------------------------------------
# the package itself
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package() -> dict[str, Module]:
    modules = load_package()
    assert len(modules) > 30, "src/alliance was not found"
    return modules


def test_no_private_names_across_modules(package):
    problems, used = privacy_violations(package, ALLOWED)
    assert not problems, "private names or modules used across modules:\n" + "\n".join(problems)
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"ALLOWED lists fixed departures, remove them: {stale}"


def test_module_level_imports_are_acyclic(package):
    cycles = find_cycles(import_graph(package, module_level_only=True))
    assert not cycles, f"import cycles at module level: {cycles}"


def test_function_level_imports_close_no_cycle(package):
    cycles = find_cycles(import_graph(package, module_level_only=False))
    assert not cycles, f"import cycles through deferred (function-level) imports: {cycles}"


def test_imports_follow_the_layers_of_the_architecture_page(package):
    layers = parse_layers(ARCHITECTURE.read_text(encoding="utf-8"))
    listed = [m for layer in layers for m in layer]
    unknown = [m for m in listed if m not in package]
    assert not unknown, f"docs/architecture.md lists modules that do not exist: {unknown}"
    problems = layer_violations(package, layers)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# self-tests: each checker fails on a synthetic package that breaks its rule
# --------------------------------------------------------------------------------------


def _fake(**sources: str) -> dict[str, Module]:
    out = {"pkg": Module("pkg", "", True)}
    for name, source in sources.items():
        dotted = "pkg." + name.replace("__", ".")
        is_package = name.endswith("__init")
        if is_package:
            dotted = dotted.removesuffix(".init")
        out[dotted] = Module(dotted, source, is_package)
    return out


def test_selftest_private_names_are_caught():
    fake = _fake(
        a="def _helper(): pass\ndef public(): pass\n",
        b="from pkg.a import _helper, public\n",
        c="from pkg import a as core\nx = core._helper()\ny = core.public()\n",
        d="def f():\n    from .a import _helper\n",
        e="import pkg.a\nz = pkg.a._helper\n",
        f="from pkg.a import __doc__\n",
    )
    problems, _ = privacy_violations(fake, package="pkg")
    assert problems == [
        "pkg.b line 1: uses the private name '_helper' of pkg.a",
        "pkg.c line 2: uses the private name '_helper' of pkg.a",
        "pkg.d line 2: uses the private name '_helper' of pkg.a",
        "pkg.e line 2: uses the private name '_helper' of pkg.a",
    ]


def test_selftest_private_modules_stay_in_their_package():
    fake = _fake(
        _core="def helper(): pass\n",
        sub__init="",
        sub___engine="def solve(): pass\n",
        sub__model="from pkg.sub import _engine\nfrom pkg import _core\n",
        other="from pkg.sub._engine import solve\n",
        third="from pkg.sub import _engine as e\n",
        fourth="import pkg.sub\nv = pkg.sub._engine.solve\n",
    )
    problems, _ = privacy_violations(fake, package="pkg")
    assert problems == [
        "pkg.fourth line 2: imports pkg.sub._engine, private to pkg.sub",
        "pkg.other line 1: imports pkg.sub._engine, private to pkg.sub",
        "pkg.third line 1: imports pkg.sub._engine, private to pkg.sub",
    ]
    allowed = {("pkg.other", "pkg.sub._engine.solve"): "test"}
    problems, used = privacy_violations(fake, allowed, package="pkg")
    assert len(problems) == 2 and used == set(allowed)


def test_selftest_cycles_are_caught():
    fake = _fake(
        a="from pkg import b\n",
        b="def f():\n    from pkg import a\n",
        c="import pkg.d\n",
        d="from pkg.c import thing\n",
        e="from pkg import a\n",
    )
    graph = import_graph(fake, module_level_only=True, package="pkg")
    assert find_cycles(graph) == [["pkg.c", "pkg.d"]]
    everything = import_graph(fake, module_level_only=False, package="pkg")
    assert find_cycles(everything) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]


def test_selftest_layers_are_checked():
    page = (
        "| layer | modules | job |\n|---|---|---|\n"
        "| low | `_util`, `io` | x |\n| high | `models/` | y |\n"
    )
    layers = parse_layers(page, package="pkg")
    assert layers == [["pkg._util", "pkg.io"], ["pkg.models"]]
    fake = _fake(
        _util="",
        io="from pkg import _util\ndef f():\n    from pkg.models import fit\n",
        models__init="from pkg.models.fit import fit\n",
        models__fit="from pkg import io\n",
        stray="",
    )
    assert layer_violations(fake, layers, package="pkg") == [
        "pkg.stray is in no layer of docs/architecture.md: add it to the table",
        "pkg.io line 3: imports pkg.models.fit, which is in a later layer (2 > 1 in "
        "docs/architecture.md)",
    ]


# --------------------------------------------------------------------------------------
# tests that can fail: no silent skips of the package or its dependencies
# --------------------------------------------------------------------------------------

TESTS = ROOT / "tests"
PYPROJECT = ROOT / "pyproject.toml"
_IMPORT_NAMES = {"pyyaml": "yaml", "pyreadstat": "pyreadstat", "typer": "typer"}
_LOADERS = {"load_dataset", "load_study", "read_study"}


def _dependencies() -> set[str]:
    import tomllib

    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in deps}
    return {_IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names}


def silent_skips(source: str, required: set[str], package: str = "alliance") -> list[str]:
    """Lines of a test module that skip or pass whatever the code under test does."""
    problems = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("importorskip"):
            arg = node.args[0] if node.args else None
            name = arg.value if isinstance(arg, ast.Constant) else ""
            root = str(name).split(".")[0]
            if root == package or root in required:
                problems.append(
                    f"line {node.lineno}: importorskip({name!r}) of a module the package "
                    "needs; import it (a missing module must fail, not skip)"
                )
        elif isinstance(node, ast.Try):
            calls = {
                ast.unparse(c.func).rsplit(".", 1)[-1]
                for stmt in node.body
                for c in ast.walk(stmt)
                if isinstance(c, ast.Call)
            }
            for handler in node.handlers:
                broad = handler.type is None or ast.unparse(handler.type) in (
                    "Exception",
                    "BaseException",
                )
                skips = any(
                    isinstance(c, ast.Call) and ast.unparse(c.func).endswith("skip")
                    for stmt in handler.body
                    for c in ast.walk(stmt)
                )
                if broad and (skips or calls & _LOADERS):
                    problems.append(
                        f"line {handler.lineno}: a blanket except around "
                        f"{', '.join(sorted(calls & _LOADERS)) or 'the code under test'}"
                        f"{' that skips' if skips else ''}; let the error fail the test"
                    )
        elif isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant):
            if node.test.value:
                problems.append(f"line {node.lineno}: assert {node.test.value!r} cannot fail")
    return sorted(problems, key=lambda p: int(p.split(":")[0].split()[1]))


def test_tests_do_not_skip_silently():
    required = _dependencies()
    assert {"statsmodels", "yaml", "pandas"} <= required
    problems = [
        f"{path.name} {problem}"
        for path in sorted(TESTS.glob("test_*.py"))
        for problem in silent_skips(path.read_text(encoding="utf-8"), required)
    ]
    assert not problems, "\n".join(problems)


def test_selftest_silent_skips_are_caught():
    source = (
        "import pytest\n"
        "def test_a():\n"
        "    sem = pytest.importorskip('alliance.models.sem')\n"
        "    yaml = pytest.importorskip('yaml')\n"
        "    rare = pytest.importorskip('a_rare_optional_extra')\n"
        "def test_b():\n"
        "    try:\n"
        "        study = datasets.load_dataset('demo')\n"
        "    except Exception as err:\n"
        "        pytest.skip(str(err))\n"
        "    try:\n"
        "        run()\n"
        "    except:\n"
        "        pytest.skip('no')\n"
        "    try:\n"
        "        run()\n"
        "    except ValueError:\n"
        "        pass\n"
        "    assert True\n"
        "    assert 0 or x\n"
    )
    assert silent_skips(source, {"yaml"}) == [
        "line 3: importorskip('alliance.models.sem') of a module the package needs; "
        "import it (a missing module must fail, not skip)",
        "line 4: importorskip('yaml') of a module the package needs; import it (a missing "
        "module must fail, not skip)",
        "line 9: a blanket except around load_dataset that skips; let the error fail the test",
        "line 13: a blanket except around the code under test that skips; let the error fail "
        "the test",
        "line 19: assert True cannot fail",
    ]
