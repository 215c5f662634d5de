"""Presets (bep_mcu/settings.py: PRESETS, the ``preset`` row) and docs/algorithm.md's opening
table of the paper's values against the project's: ``train --preset paper`` trains with the
preset's values and names it, an option given wins, ``bep-mcu presets`` lists every value, the
estimator and ``training.Settings`` read the preset the same way, and the table's project and
preset columns are the code's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bep_mcu import BEPClassifier, modelio, training
from bep_mcu.errors import BEPError
from bep_mcu.settings import BY_NAME, PRESETS, SETTINGS, show

from .conftest import assert_ok, assert_one_error_line, blobs, invoke, last_json

ROOT = Path(__file__).resolve().parents[1]
PAPER = PRESETS["paper"].values
SMALL = "prototypes:flip=0.46,classes=3,features=40,samples=300"


def test_train_with_the_paper_preset_uses_its_values_and_names_it(tmp_path):
    result = invoke("train", "--preset", "paper", "--dataset", SMALL, "--epochs", "2", "--hidden", "16",
                    "--json", "--out", tmp_path / "m.npz")
    assert_ok(result)
    out = last_json(result.stdout)
    assert out["preset"] == "paper" and out["batch_size"] == 100
    model = modelio.load(tmp_path / "m.npz")
    assert model.spec.hidden_bits == PAPER["hidden_bits"][0] == 16
    assert (model.hyper.gamma_growth, model.hyper.gamma_cap_div, model.hyper.r) == (2, 1, 0.5)
    plain = last_json(invoke("train", "--dataset", SMALL, "--epochs", "2", "--hidden", "16", "--json",
                             "--out", tmp_path / "d.npz").stdout)
    assert plain["preset"] is None and plain["batch_size"] == 10  # the project's default for 250 samples
    assert modelio.load(tmp_path / "d.npz").spec.hidden_bits == 8


def test_an_option_given_keeps_its_value_under_a_preset(tmp_path):
    result = invoke("train", "--preset", "paper", "--dataset", SMALL, "--epochs", "1", "--hidden", "16",
                    "--gamma-growth", "1.75", "--hidden-bits", "8", "--out", tmp_path / "m.npz")
    assert_ok(result)
    model = modelio.load(tmp_path / "m.npz")
    assert (model.hyper.gamma_growth, model.spec.hidden_bits, model.hyper.gamma_cap_div) == (1.75, 8, 1)


def test_an_unknown_preset_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bep_mcu", "train", "--preset", "papers", "--dataset", SMALL,
                           "--out", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=120)
    assert_one_error_line(proc.returncode, proc.stderr, ("--preset", "'papers' is not 'paper'"), status=2)
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(BEPError, match="--preset must be one of paper, got 'x'"):
        training.Settings(preset="x")


def test_presets_lists_every_value_of_every_preset():
    result = invoke("presets", "--json")
    assert_ok(result)
    listed = {p["name"]: p for p in last_json(result.stdout)["presets"]}
    assert set(listed) == set(PRESETS)
    paper = listed["paper"]
    settings = training.Settings(preset="paper")
    assert set(paper["values"]) == {s.name for s in SETTINGS} - {"preset"}
    for name, value in paper["values"].items():
        expected = getattr(settings, name)
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name
    assert set(paper["reasons"]) == set(PAPER) | set(PRESETS["paper"].unstated)
    human = invoke("presets")
    assert_ok(human)
    assert "--gamma-growth     2" in human.stdout and "the paper doubles γ on a stall" in human.stdout


def test_the_estimator_reads_the_preset_as_train_does():
    X, y = blobs(60)
    clf = BEPClassifier(hidden=(8,), epochs=1, preset="paper").fit(X, y)
    assert clf.get_params()["preset"] == "paper" and clf.get_params()["batch_size"] is None  # stored as given
    assert clf.model_.spec.hidden_bits == 16 and clf.model_.training.batch_size == 100


# ---------------------------------------------------------------------- docs/algorithm.md's table


def table_rows() -> dict[str, list[str]]:
    """The rows of docs/algorithm.md's paper table whose first cell is an option, by setting name."""
    text = (ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8")
    block = text.split("<!-- paper-table -->")[1].split("<!-- /paper-table -->")[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        option = re.fullmatch(r"`(--[a-z-]+)`", cells[0])
        if option:
            rows[option.group(1)[2:].replace("-", "_")] = cells
    return rows


def first_code(cell: str) -> str | None:
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else None


def test_the_docs_table_opens_the_algorithm_and_has_a_row_per_setting():
    text = (ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8")
    assert text.index("<!-- paper-table -->") < text.index("## In one paragraph")
    assert set(table_rows()) == {s.name for s in SETTINGS} - {"preset"}


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.name != "preset"])
def test_the_docs_table_gives_the_code_s_default_and_preset_value(name):
    _, paper, project, preset, why = table_rows()[name]
    assert paper and why
    default = BY_NAME[name].default
    if default is None:  # decided from the data: the cell says how
        assert project.startswith("from the data"), project
    else:
        assert first_code(project) == show(default), project
    if name in PAPER:
        assert first_code(preset) == show(PAPER[name][0]), preset
    else:
        assert preset == "as the project", preset


def test_the_sweep_and_the_bench_take_the_preset():
    from bep_mcu import bench, sweep

    config = {"model": "mlp", "hidden": [32], "r": 0.75, "nu": 0.05, "gamma": [2], "binarize": "median",
              "window": None}
    trial = sweep.SweepSettings(board="microbit", preset="paper").training_settings(config, seed=1)
    assert (trial.hidden_bits, trial.gamma_growth, trial.batch_size, trial.r) == (16, 2, 100, 0.75)  # r: searched
    assert sweep.SweepSettings(board="microbit").training_settings(config, seed=1).hidden_bits == 8
    with pytest.raises(BEPError, match="--preset must be one of paper"):
        sweep.SweepSettings(board="microbit", preset="x")
    row, = bench.accuracy_vs_baseline(["iris:8"], 1, baseline=False, preset="paper")
    assert row["kwargs"] == {"hidden": [8], "preset": "paper"}
