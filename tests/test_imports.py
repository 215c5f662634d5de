"""What importing a module really loads (after click's tests/test_imports.py): each import
runs in a fresh interpreter and ``sys.modules`` is read afterwards. The heavy optional
dependencies load inside the functions that need them, so the package, the engine and the
training driver stay cheap to import, and the command line loads none of the ML stacks.

tests/test_architecture.py checks the source text; this checks the running result.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_architecture import LAYERS

ROOT = Path(__file__).resolve().parents[1]
# Third-party packages by their import names (pyserial is ``serial``, pyelftools ``elftools``,
# scikit-learn ``sklearn``).
HEAVY = {"torch", "ray", "matplotlib", "sklearn", "jinja2", "cffi", "click", "serial", "elftools", "aeon", "scipy",
         "pandas", "numpy"}
# module → the heavy packages importing it may load.
LIGHT = {
    "bep_mcu": set(),
    "bep_mcu.engine.network": {"numpy"},
    "bep_mcu.training": {"numpy"},
    # click runs the commands; jinja2 comes with cgen (device.firmware renders C), scipy
    # with cgen.cost (its DEFAULT coefficients are fitted at import).
    "bep_mcu.cli.main": {"numpy", "click", "jinja2", "scipy"},
}


@functools.cache
def loaded(module: str) -> set[str]:
    """The top-level names in ``sys.modules`` after ``import module`` in a fresh interpreter
    that imports this checkout's package."""
    code = (f"import json, sys, {module}, bep_mcu; "
            "print(json.dumps([bep_mcu.__file__, sorted({m.split('.')[0] for m in sys.modules} | "
            "{m for m in sys.modules if m.startswith('bep_mcu.')})]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    origin, names = json.loads(out.stdout)
    assert Path(origin).resolve().is_relative_to(ROOT / "bep_mcu"), origin
    return set(names)


@pytest.mark.parametrize("module", list(LIGHT))
def test_import_loads_no_heavy_package(module):
    extra = (HEAVY & loaded(module)) - LIGHT[module]
    assert extra == set(), f"import {module} loads {sorted(extra)}"


@pytest.mark.parametrize("module, layer", [("bep_mcu", "__init__"), ("bep_mcu.engine.network", "engine"),
                                           ("bep_mcu.training", "training")])
def test_import_loads_nothing_from_a_higher_layer(module, layer):
    """The layer rule as it runs: no module of a higher layer, and not the estimator."""
    units = {name.split(".")[1] for name in loaded(module) if name.startswith("bep_mcu.")}
    above = {u for u in units if LAYERS[u] > LAYERS[layer] or u == "estimator"}
    assert above == set(), f"import {module} loads {sorted(above)}"


def test_the_check_sees_a_heavy_import():
    """Negative control: the estimator loads scikit-learn, and ``loaded`` sees it."""
    names = loaded("bep_mcu.estimator")
    assert {"sklearn", "numpy", "bep_mcu.estimator"} <= names
