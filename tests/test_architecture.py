"""The package's layers (docs/architecture.md): every import points down."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bep_mcu"
# Lower number = lower layer; a module may import from its own layer or below.
LAYERS = {
    "errors": 0, "validate": 0, "memory": 0, "files": 0, "engine": 1, "data": 2, "model": 3, "modelio": 3,
    "training": 4, "estimator": 5, "qat": 5, "cgen": 5, "twin": 6, "device": 7, "demo": 8, "bench": 8, "icount": 8, "sweep": 8, "plots": 8,
    "cli": 9, "__main__": 9,
}


def unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bep_mcu"):
            parts = node.module.split(".")
            if len(parts) > 1:
                yield parts[1], node.lineno
            else:
                for alias in node.names:
                    yield alias.name, node.lineno


def test_every_import_points_down():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        src = unit(path)
        if src == "__init__":
            continue  # the package's lazy BEPClassifier export
        for dst, line in imports(path):
            if dst in LAYERS and LAYERS[dst] > LAYERS[src]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {dst} (layer {LAYERS[dst]} > {LAYERS[src]})")
    assert not wrong, "\n".join(wrong)


def test_every_module_has_a_layer():
    units = {unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))
