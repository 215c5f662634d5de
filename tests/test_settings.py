"""Each setting of a new model is declared once, in bep_mcu/settings.py, and every face of
it is derived from that row: ``training.Settings``, ``bep-mcu train``'s options, the
estimator's parameters, the model file's ``hyperparams`` and ``input`` objects, the sweep's
searched values. These tests check each face against the table, that a new row reaches them
all, and that a setting's name stays in few modules (the count a review measured).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bep_mcu import BEPClassifier, modelio, training
from bep_mcu.cli.train import train as train_command
from bep_mcu.data.encoder import Encoder
from bep_mcu.engine.spec import HyperParams
from bep_mcu.errors import BEPError
from bep_mcu.settings import BY_NAME, REQUIRED, SETTINGS, of_model, stored_in

from .conftest import assert_user_error, blobs, fit, invoke, saved
from .test_modelio import forge

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 4
# Settings whose name is also a word the package uses for something else, with where: the
# count of modules naming them measures that use, not where the setting is declared.
OTHER_USES = {
    "model": "Model values and the network kind, in nearly every module",
    "hidden": "the network's widths (NetSpec.hidden), read by the engine, cgen, twin and device",
    "epochs": "the length of every training run (stream, verify, firmware, the history)",
    "batch_size": "the batches of every training run (stream, pull, golden, verify, cgen.cost)",
    "seed": "every seeded draw (engine.rng, the classifier, data sets, the sweep's sampling)",
    "binarize": "the module data/binarize.py",
    "window": "the fitted encoder's window, read by cgen, inputformat, plots and qat",
    "hidden_bits": "the network's weight width (NetSpec.hidden_bits), read by every code generator",
    "r": "a one-letter word",
    "gamma": "γ per layer in the schedules of the engine, cgen, twin and device",
    "p_r": "the reinforcement a board computes (engine.schedule, cgen, device, twin, icount)",
    "patience": "the schedule a board runs (engine.schedule, cgen.protocol, twin.verify, verify --patience)",
    "val_fraction": "the model's record of its split (model, modelio) and the sweep's scoring split (sweep)",
    "preset": "an option of train, sweep (cli and sweep.SweepSettings) and bench, and the presets command",
    "max_classes": "the classifier's prototypes a network holds (Model, its config hash, the state plan, the "
                   "flash plan and HELLO), so a board built before a class learns it",
}


def modules_naming(name: str, root: Path) -> list[str]:
    """The modules of the package at ``root`` whose source holds ``name`` as a word."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                  if word.search(p.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.name not in OTHER_USES])
def test_a_setting_is_named_in_at_most_four_modules(name):
    """Its row, and the code that uses it (for a hyperparameter: engine.spec.HyperParams,
    the engine code reading it, training)."""
    found = modules_naming(name, ROOT / "bep_mcu")
    assert "settings.py" in found and len(found) <= LIMIT, found


@pytest.mark.parametrize("name", sorted(OTHER_USES))
def test_a_name_is_excused_from_the_count_only_while_it_needs_it(name):
    """An excused name is a setting, and is in more modules than the limit: once it is not,
    the limit applies to it too (remove it from OTHER_USES)."""
    assert name in BY_NAME
    assert len(modules_naming(name, ROOT / "bep_mcu")) > LIMIT


def test_the_count_sees_words_only(tmp_path):
    """Negative control: a name inside a longer word or identifier is not the name."""
    (tmp_path / "a.py").write_text("x = s.nu\n")
    (tmp_path / "b.py").write_text("menu = nu_value = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.py").write_text("f(nu=1)\n")
    assert modules_naming("nu", tmp_path) == ["a.py", "sub/c.py"]


# ---------------------------------------------------------------------- the faces


def test_settings_has_one_field_per_row():
    fields = dataclasses.fields(training.Settings)
    assert [(f.name, f.default) for f in fields] == [(s.name, s.default) for s in SETTINGS]


def test_the_estimator_takes_one_parameter_per_row():
    parameters = list(inspect.signature(BEPClassifier).parameters.values())
    assert [(p.name, p.default) for p in parameters] == [(s.name, s.default) for s in SETTINGS]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters)
    assert BEPClassifier().get_params() == {s.name: s.default for s in SETTINGS}
    clf = BEPClassifier("rnn", (16,), nu=0.1)  # positional in the table's order, as a written-out __init__
    assert (clf.model, clf.hidden, clf.nu) == ("rnn", (16,), 0.1)
    with pytest.raises(TypeError):
        BEPClassifier(nu_typo=0.1)
    with pytest.raises(TypeError):
        BEPClassifier("rnn", model="mlp")


def test_train_has_one_option_per_row():
    params = {p.name: p for p in train_command.params}
    for s in SETTINGS:
        option = params[s.name]
        assert option.opts == [s.option] and option.help == s.help, s.name
        default = ",".join(map(str, s.default)) if s.kind == "ints" and s.default else s.default  # text
        assert option.default == default, s.name
        assert option.secondary_opts == ([f"--no-{s.option[2:]}"] if s.kind == "flag" else []), s.name


def test_the_model_keeps_what_the_engine_and_encoder_hold():
    """The rows a model file keeps are the fields of the objects that hold them."""
    hyper = {f.name for f in dataclasses.fields(HyperParams)}
    assert {s.name for s in stored_in("hyperparams")} == hyper - {"alpha"}
    assert {s.name for s in stored_in("input")} <= {f.name for f in dataclasses.fields(Encoder)}


def test_the_table_s_ranges_are_the_engine_s():
    """The engine checks its hyperparameters itself (it is below the table): both accept the
    ends of each range and refuse what lies past them."""
    for s in stored_in("hyperparams"):
        if s.kind not in ("int", "number"):
            continue
        step = 1 if s.kind == "int" else 1e-9
        for value in (s.lo, s.hi):
            value = int(value) if s.kind == "int" else value
            assert HyperParams(**{s.name: value}) and training.Settings(**{s.name: value}), (s.name, value)
        for value in (s.lo - step, s.hi + step):
            value = int(value) if s.kind == "int" else value
            for make in (HyperParams, training.Settings):
                with pytest.raises(BEPError):
                    make(**{s.name: value})


def test_a_model_gives_back_its_settings(tmp_path):
    """from_model (through of_model) reads every kept setting, and a loaded file the same."""
    X, y = blobs(120)
    chosen = dict(hidden=(16, 8), epochs=1, batch_size=7, seed=3, binarize="median", bias_bits=2, r=0.75,
                  nu=0.1, gamma=(3, 2), p_r=0.25, sigma=8.0, patience=2, gamma_growth=2, gamma_cap_div=2,
                  restore_best=True, val_fraction=0.2)
    model = fit(X, y, **chosen)
    kept = {k: v for k, v in chosen.items() if k != "epochs"}
    assert {k: of_model(model)[k] for k in kept} == kept
    loaded = modelio.load(saved(model, tmp_path / "m.npz"))
    assert of_model(loaded) == of_model(model)
    clf = BEPClassifier.from_model(loaded)
    assert clf.get_params() == {**of_model(model), "epochs": None, "preset": None}  # its values, not a preset


# ---------------------------------------------------------------------- the model file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    X, y = blobs(90)
    path = tmp_path_factory.mktemp("settings") / "m.npz"
    return saved(fit(X, y, hidden=(8,), epochs=1), path)


KEPT = [s for s in SETTINGS if s.stored in ("hyperparams", "input")]


@pytest.mark.parametrize("setting", KEPT, ids=[s.name for s in KEPT])
def test_a_model_file_checks_each_kept_setting_by_its_row(model_file, tmp_path, setting):
    """A value of the wrong type is refused naming the field; one the file leaves out is the
    row's file_default, or refused as missing."""
    field = f"{setting.stored}.{setting.name}"

    def put(value):
        return lambda meta: meta[setting.stored].__setitem__(setting.name, value)

    with pytest.raises(BEPError, match=re.escape(f"field '{field}'")):
        modelio.load(forge(model_file, tmp_path / "bad.npz", put("x")))
    absent = forge(model_file, tmp_path / "absent.npz", lambda meta: meta[setting.stored].pop(setting.name))
    if setting.file_default is REQUIRED:
        with pytest.raises(BEPError, match=re.escape(f"field '{field}' is missing")):
            modelio.load(absent)
    else:
        holder = {"hyperparams": "hyper", "input": "encoder"}[setting.stored]
        assert getattr(getattr(modelio.load(absent), holder), setting.name) == setting.file_default


# ---------------------------------------------------------------------- the command line


def test_init_from_refuses_the_settings_the_model_keeps(model_file, tmp_path):
    result = invoke("train", "--dataset", "prototypes:classes=3,features=20,samples=60", "--init-from", model_file,
                    "--nu", "0.1", "--restore-best", "--epochs", "1", "--out", tmp_path / "n.npz")
    assert_user_error(result, "--nu, --restore-best: the network and its settings come from --init-from")
    assert not (tmp_path / "n.npz").exists()


NEW_ROW = """
import json, sys
from bep_mcu import settings
settings.SETTINGS += (settings.Setting("foo", 3, "A new knob.", "int", 1, 9),)
from click.testing import CliRunner
from bep_mcu import BEPClassifier, training
from bep_mcu.cli.main import cli
out = {"field": training.Settings().foo, "param": BEPClassifier().get_params()["foo"],
       "help": "--foo INTEGER A new knob. [default: 3]" in " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())}
try:
    training.Settings(foo=0)
except Exception as e:
    out["error"] = str(e)
run = CliRunner().invoke(cli, ["train", "--dataset", "prototypes", "--foo", "10", "--out", sys.argv[1]])
out["cli"] = [run.exit_code, run.stderr]
print(json.dumps(out))
"""


def test_a_new_setting_is_one_row(tmp_path):
    """A row added to the table (nothing else) is a field of Settings, a parameter of the
    estimator and an option of train, checked with a one-line error naming the option."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", NEW_ROW, str(tmp_path / "m.npz")], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120, check=True)
    out = json.loads(run.stdout.splitlines()[-1])
    assert (out["field"], out["param"], out["help"]) == (3, 3, True)
    assert out["error"] == "--foo must be an integer in 1..9, got 0"
    assert out["cli"] == [2, "error: --foo must be an integer in 1..9, got 10\n"]
    assert not (tmp_path / "m.npz").exists()
