"""The package's layers (docs/architecture.md): every import points down, and the
scikit-learn estimator is a leaf that nothing in the package imports.

``violations`` reads every module under ``bep_mcu/`` with :mod:`ast` and resolves each
import to the unit it loads (a top-level module or a subpackage): ``import bep_mcu.x``,
``import bep_mcu.x as y``, ``from bep_mcu import x``, ``from bep_mcu.x import y``, relative
``from . import x`` and ``from ..x import y``, and ``importlib.import_module("bep_mcu.x")``,
at module level or inside a function. The negative controls below run it on a copy of
the package with one line planted. The same by hand, from the repository root (each run
fails naming the file and line; ``git checkout`` undoes the plant):

    echo 'import bep_mcu.estimator' >> bep_mcu/cgen/cost.py
    PYTHONPATH=$PWD python -m pytest -q tests/test_architecture.py
    #   cgen/cost.py:N imports estimator, a leaf nothing in the package imports
    git checkout bep_mcu/cgen/cost.py

    echo 'import bep_mcu.twin' >> bep_mcu/engine/bits.py
    PYTHONPATH=$PWD python -m pytest -q tests/test_architecture.py
    #   engine/bits.py:N imports twin (layer 6 above engine's 1)
    git checkout bep_mcu/engine/bits.py

tests/test_imports.py checks the other side: what importing a module really loads.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bep_mcu"
# Lower number = lower layer; a module may import from its own layer or below.
LAYERS = {
    "__init__": 0, "errors": 0, "validate": 0, "memory": 0, "files": 0, "engine": 1, "data": 2, "model": 3,
    "modelio": 3, "settings": 3, "training": 4, "estimator": 5, "qat": 5, "cgen": 5, "twin": 6,
    "device": 7, "adapt": 8, "demo": 8, "bench": 8, "bench_adaptation": 8, "icount": 8, "sweep": 8, "plots": 8, "cli": 9, "__main__": 9,
}
LEAVES = {"estimator"}  # nothing in the package imports these
# (importer, imported) pairs the rule lets through: the package root's lazy
# ``bep_mcu.BEPClassifier``, which loads the estimator on first use only (test_imports
# shows that ``import bep_mcu`` does not).
ALLOWED = {("__init__", "estimator")}
# What ``from bep_mcu import name`` loads when ``name`` is an attribute of the root, not a unit.
ROOT_NAMES = {"__version__": "__init__", "BEPClassifier": "estimator"}


def unit(path: Path, root: Path) -> str:
    """The unit a file belongs to: its subpackage, or its own name at the top level."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def package_of(path: Path, root: Path) -> str:
    """The package relative imports in ``path`` start from (``bep_mcu.cgen`` for cgen/x.py)."""
    return ".".join((root.name, *path.relative_to(root).parent.parts))


@functools.cache
def parsed(text: str, filename: str) -> ast.Module:
    """Parsing is most of the time; the controls re-read the same files but one."""
    return ast.parse(text, filename=filename)


def imports(path: Path, root: Path, units: set[str]) -> Iterator[tuple[int, str]]:
    """(line, unit) for every import of the package in ``path``, wherever it stands."""
    name = root.name

    def unit_of(module: str) -> str | None:
        if module == name:
            return "__init__"
        return module.split(".")[1] if module.startswith(name + ".") else None

    for node in ast.walk(parsed(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found = [unit_of(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            try:
                module = importlib.util.resolve_name("." * node.level + (node.module or ""), package_of(path, root))
            except ImportError:  # from .. import x at the top: no unit, so no layer
                found = [f"'{'.' * node.level}' beyond {name}"]
            else:
                if module == name:  # from bep_mcu import x: x is a unit or an attribute of the root
                    found = [a.name if a.name in units else ROOT_NAMES.get(a.name, f"{name}.{a.name}")
                             for a in node.names]
                else:
                    found = [unit_of(module)]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in ("import_module", "__import__")):
            found = [unit_of(node.args[0].value)]
        else:
            continue
        yield from ((node.lineno, dst) for dst in found if dst is not None)


def problem(src: str, dst: str) -> str | None:
    if src not in LAYERS:
        return f"is in {src}, which has no layer in LAYERS"
    if dst not in LAYERS:
        return f"imports {dst}, which has no layer in LAYERS"
    if src == dst or (src, dst) in ALLOWED:
        return None
    if dst in LEAVES:
        return f"imports {dst}, a leaf nothing in the package imports"
    if LAYERS[dst] > LAYERS[src]:
        return f"imports {dst} (layer {LAYERS[dst]} above {src}'s {LAYERS[src]})"
    return None


def violations(root: Path = PACKAGE) -> list[str]:
    """One line ``file:line what`` for each import in the package tree at ``root`` that
    breaks the rule."""
    paths = sorted(root.rglob("*.py"))
    units = {unit(p, root) for p in paths}
    wrong = []
    for path in paths:
        src = unit(path, root)
        for line, dst in imports(path, root, units):
            if (why := problem(src, dst)) is not None:
                wrong.append(f"{path.relative_to(root).as_posix()}:{line} {why}")
    return wrong


def test_every_import_points_down():
    wrong = violations()
    assert not wrong, "\n".join(wrong)


def test_every_module_has_a_layer():
    units = {unit(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert units == set(LAYERS), f"without a layer: {sorted(units - set(LAYERS))}, gone: {sorted(set(LAYERS) - units)}"


def test_the_estimator_is_imported_nowhere_but_the_lazy_export():
    """The resolver sees the one import of the estimator there is, the root's lazy export
    inside ``__getattr__`` (a function), and nothing else: ALLOWED lets through only that."""
    units = {unit(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    found = [(path.relative_to(PACKAGE).as_posix(), line) for path in sorted(PACKAGE.rglob("*.py"))
             for line, dst in imports(path, PACKAGE, units) if dst == "estimator"]
    assert [f for f, _ in found] == ["__init__.py"], found


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    """The package's Python files, copied once; each control plants into its own file."""
    root = tmp_path_factory.mktemp("tree") / PACKAGE.name
    shutil.copytree(PACKAGE, root, ignore=lambda d, names: [
        n for n in names if n == "__pycache__" or not (n.endswith(".py") or (Path(d) / n).is_dir())])
    return root


# One plant per import form, each in a different file so the copies stay independent.
PLANTS = [
    ("cgen/cost.py", "import bep_mcu.estimator", "imports estimator, a leaf nothing in the package imports"),
    ("engine/bits.py", "import bep_mcu.twin", "imports twin (layer 6 above engine's 1)"),
    ("model.py", "import bep_mcu.device.link as link", "imports device (layer 7 above model's 3)"),
    ("data/encoder.py", "from bep_mcu import training", "imports training (layer 4 above data's 2)"),
    ("engine/spec.py", "from bep_mcu.cgen.abi import MAX_LAYERS", "imports cgen (layer 5 above engine's 1)"),
    ("qat.py", "from . import estimator", "imports estimator, a leaf nothing in the package imports"),
    ("data/binarize.py", "from ..model import Model", "imports model (layer 3 above data's 2)"),
    ("cgen/abi.py", "from .. import twin", "imports twin (layer 6 above cgen's 5)"),
    ("engine/rng.py", "def late():\n    import bep_mcu.sweep", "imports sweep (layer 8 above engine's 1)"),
    ("twin/golden.py", "def late():\n    from bep_mcu.estimator import BEPClassifier",
     "imports estimator, a leaf nothing in the package imports"),
    ("cli/main.py", "from bep_mcu import BEPClassifier", "imports estimator, a leaf nothing in the package imports"),
    ("files.py", "import importlib\nimportlib.import_module('bep_mcu.training')",
     "imports training (layer 4 above files's 0)"),
    ("errors.py", "from .. import cli", "imports '..' beyond bep_mcu, which has no layer in LAYERS"),
    ("validate.py", "from bep_mcu import nothing", "imports bep_mcu.nothing, which has no layer in LAYERS"),
]


@pytest.mark.parametrize("file, plant, why", PLANTS, ids=[p[1].split("\n")[-1].strip() for p in PLANTS])
def test_a_planted_import_is_reported_with_file_and_line(package_copy, file, plant, why):
    """Negative control: the rule reports exactly the planted line, in whichever form."""
    path = package_copy / file
    text = path.read_text(encoding="utf-8")
    path.write_text(text + ("" if text.endswith("\n") else "\n") + plant + "\n", encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())  # the plant's last line is the import
    try:
        assert violations(package_copy) == [f"{file}:{line} {why}"]
    finally:
        path.write_text(text, encoding="utf-8")


def test_the_copy_without_plants_passes(package_copy):
    """The controls' tree is the package as it is: only the plant can make them fail."""
    assert violations(package_copy) == []
