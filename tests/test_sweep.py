"""bep-mcu sweep (Ray Tune) and bep-mcu plot: the search space, the board plan, the cost
model, the records, and the real command on a real Ray: in this process, on a Ray head
started here, interrupted and resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bep_mcu import files, modelio, sweep, training
from bep_mcu.cgen import cost
from bep_mcu.cgen.layout import plan_model
from bep_mcu.cli.common import load_data
from bep_mcu.device import boards, firmware
from bep_mcu.engine.spec import NetSpec
from bep_mcu.errors import BEPError, DoesNotFit
from .conftest import (HAVE_ARM, assert_error_after_progress, assert_one_error_line, assert_ok, assert_user_error,
                       blobs, fit, invoke, last_json, needs_arm, saved, series)
from .test_hostile_model import peak_rss

ray = pytest.importorskip("ray", reason="the sweep extra is not installed (pip install -e '.[sweep]')")

BOARD = "microbit"
RUN_TIMEOUT = 600


def write_csv(path: Path, n: int = 300, features: int = 8, classes: int = 3, seed: int = 0) -> Path:
    """A small real-valued CSV: overlapping Gaussian clusters, string labels."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = g.normal(0, 2, (classes, features))[y] + g.normal(0, 1.5, (n, features))
    lines = [",".join(f"f{i}" for i in range(features)) + ",label"]
    lines += [",".join(f"{v:.4f}" for v in row) + f",c{label}" for row, label in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def settings(**changes) -> sweep.SweepSettings:
    return sweep.SweepSettings(**{"board": BOARD, "trials": 8, "epochs": 3, **changes})


def run_cli(*args, env: dict | None = None, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """The installed command in its own process (Ray starts and stops inside it)."""
    return subprocess.run([sys.executable, "-m", "bep_mcu", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def ok_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr: {proc.stderr[-3000:]}"
    return last_json(proc.stdout)


# ------------------------------------------------------------------ the cost model


def test_cost_model_reproduces_icounts_published_figures():
    for m in cost.PUBLISHED:
        predicted = cost.instructions_per_sample(m.spec, m.gamma, m.core, m.batch_size, m.error_rate)
        assert abs(predicted / m.instructions - 1) < 0.01, (m, predicted)


def test_cost_model_covers_every_core():
    """Every core a board can have (RV32 too) has an instruction model and a recalibration estimate."""
    from bep_mcu.cgen import toolchain

    spec = NetSpec("mlp", 256, (128,), 10)
    for cpu in toolchain.CORES:
        assert cost.instructions_per_sample(spec, (8,), cpu, 100) > 0, cpu
        assert cost.calibration_instructions_per_sample(10, 6, 1, cpu) > 0, cpu


def test_cost_model_calibrates_from_measurements():
    """calibrate() recovers a core's coefficients from counts such as icount's (here made
    by a known model over several networks, batch sizes and error rates)."""
    truth = cost.Coefficients(sample=1.7, draw=40.0, pack=90.0)
    measured = []
    for spec, gamma in ((NetSpec("mlp", 256, (128,), 10), (8,)), (NetSpec("mlp", 64, (32, 32), 3), (4, 4)),
                        (NetSpec("rnn", 24, (64,), 2, steps=8), (4,))):
        for batch, e in ((1, 1.0), (1, 0.1), (100, 1.0)):
            n = cost.features(spec, gamma, batch, e).instructions(truth)
            measured.append(cost.Measurement("cortex-m3", spec, gamma, batch, e, n))
    fitted = cost.calibrate(measured)["cortex-m3"]
    assert np.allclose(fitted.as_array(), truth.as_array(), rtol=1e-6)
    with pytest.raises(BEPError, match="at least 3"):
        cost.calibrate(measured[:2])


def test_cost_grows_with_the_network_and_the_core():
    small, big = NetSpec("mlp", 64, (32,), 3), NetSpec("mlp", 64, (256,), 3)
    m4 = cost.instructions_per_sample(small, (2,), "cortex-m4", 10)
    # 8x the hidden weights; the per-sample parts that do not grow with them keep it under 4x
    assert cost.instructions_per_sample(big, (16,), "cortex-m4", 10) > 3.5 * m4
    assert cost.instructions_per_sample(small, (2,), "cortex-m0", 10) > 2 * m4
    with pytest.raises(BEPError, match="no instruction model"):
        cost.instructions_per_sample(small, (2,), "cortex-a53", 10)


# ------------------------------------------------------------------ space, plan, records


def test_the_same_seed_samples_the_same_configurations():
    X, _ = blobs(120, 8)
    a = sweep.sample_configs("mlp", 12, 7, X)
    assert a == sweep.sample_configs("mlp", 12, 7, X)
    assert a[:5] == sweep.sample_configs("mlp", 5, 7, X), "trial i depends on (seed, i) only"
    assert a != sweep.sample_configs("mlp", 12, 8, X)
    assert len({json.dumps(c, sort_keys=True) for c in a}) > 6
    for c in a:
        assert set(c["hidden"]) <= set(sweep.WIDTHS) and len(c["hidden"]) in sweep.MLP_LAYERS
        assert any(c["gamma"] == [max(1, w // d) for w in c["hidden"]] for d in sweep.GAMMA_DIVISORS)
        assert c["binarize"] in sweep.BINARIZERS["mlp"] and c["window"] is None
    # binary rows: passed through or copies of each bit
    assert {c["binarize"] for c in sweep.sample_configs("mlp", 12, 0, np.sign(X))} == set(sweep.BINARY_BINARIZERS["mlp"])
    S, _ = series(30, 40)
    for c in sweep.sample_configs("rnn", 6, 0, S[..., None]):
        assert len(c["hidden"]) == 1 and c["window"] in {int(np.ceil(40 / s)) for s in sweep.RNN_STEPS}


def test_the_plan_is_the_trained_models():
    X, y = blobs(200, 8)
    s = settings(trials=12)
    planned = sweep.plan_trials(X, y, s, "id")
    assert [sweep.key(p) for p in planned] == [(i, 0) for i in range(12)]
    p = planned[0]
    model = training.fit(X, y, s.training_settings(p["config"], p["seed"]))
    plan = firmware.plan_memory(plan_model(model), model.spec, boards.board(BOARD))
    assert (p["ram_bytes"], p["state_bytes"], p["tables_bytes"]) == (plan.ram_bytes, plan.state_bytes,
                                                                     plan.tables_bytes)
    assert p["network"] == [model.spec.n_inputs, *model.spec.hidden, model.spec.n_classes]
    assert p["instructions"] == cost.instructions_per_sample(model.spec, model.params.gamma, "cortex-m0",
                                                             model.training.batch_size)


def test_the_space_is_sized_to_the_board_and_every_trial_drawn_to_fit():
    """On the 16 KB micro:bit, data of 200 features: the widths sampled are those a
    one-layer network fits with, and each trial is drawn until its whole network fits, where
    the unsized space would skip most of them; a budget nothing meets is DoesNotFit."""
    X, y = blobs(300, 200)
    s = settings(trials=12)
    widths = sweep.fitting_widths(X, y, s)
    assert widths == sweep.WIDTHS[:len(widths)] and 1 < len(widths) < len(sweep.WIDTHS)
    planned = sweep.plan_trials(X, y, s, "id")
    assert all(p["reason"] is None for p in planned), [p["reason"] for p in planned if p["reason"]]
    assert all(set(p["config"]["hidden"]) <= set(widths) and p["ram_bytes"] <= boards.board(BOARD).ram_bytes
               for p in planned)
    unsized = [sweep.assess(training.initial_model(X, y, s.training_settings(c, 0)), s)[1]
               for c in sweep.sample_configs("mlp", 12, 0, X)]
    assert sum(r is not None for r in unsized) >= 6, "the unsized space would skip half the trials"
    with pytest.raises(DoesNotFit, match="--max-instructions 1"):
        sweep.plan_trials(X, y, settings(trials=12, max_instructions=1), "id")


def test_standalone_requires_the_standalone_image_to_fit():
    """--standalone: the image that learns the data alone (its RAM plan, and flash for the
    tables, the data as device values and the code) fits every trial; some of what fits the
    streaming firmware would not."""
    data = load_data("digits", None, None)
    s = settings(trials=8, standalone=True)
    board = boards.board(BOARD)
    planned = sweep.plan_trials(data.X_train, data.y_train, s, "id", data)
    assert all(p["reason"] is None for p in planned)
    assert all(p["standalone_ram_bytes"] <= board.ram_bytes and p["standalone_flash_bytes"] <= board.flash_bytes
               for p in planned)
    streaming = sweep.plan_trials(data.X_train, data.y_train, settings(trials=8), "id")
    standalone_reasons = [sweep.assess(training.initial_model(data.X_train, data.y_train,
                                                              s.training_settings(p["config"], 0)), s, data)[1]
                          for p in streaming]
    assert any(r is not None and "standalone" in r for r in standalone_reasons), standalone_reasons
    assert sweep.fingerprint("d", data.X_train, data.y_train, s, (data.X_test, data.y_test)) != \
        sweep.fingerprint("d", data.X_train, data.y_train, settings(trials=8), (data.X_test, data.y_test))
    with pytest.raises(BEPError, match="--standalone: nucleo-f401re"):
        settings(board="nucleo-f401re", standalone=True)


def test_rnn_trials_are_planned_as_trained():
    S, y = series(80, 48)
    s = settings(model="rnn", trials=3, seeds=2)
    planned = sweep.plan_trials(S, y, s, "id")
    assert [sweep.key(p) for p in planned] == [(i, k) for i in range(3) for k in range(2)]
    p = planned[1]
    model = training.fit(S, y, s.training_settings(p["config"], p["seed"]))
    assert model.spec.model == "rnn" and model.encoder.window == p["config"]["window"] and p["seed"] == 1
    plan = firmware.plan_memory(plan_model(model), model.spec, boards.board(BOARD))
    assert p["ram_bytes"] == plan.ram_bytes


@needs_arm
def test_flash_prediction_equals_the_built_firmware_on_every_board(tmp_path):
    """CODE_BYTES is measured: a firmware build must agree byte for byte (if the firmware's
    code changes, this names the number to update)."""
    model = fit(*blobs(60, 4), hidden=(16,), epochs=1, binarize="thermometer:4")  # fits the 8 KB stm32vldiscovery
    tables = firmware.plan_memory(plan_model(model), model.spec,
                                  boards.board(BOARD)).tables_bytes
    wrong = {}
    for name in boards.BOARDS:
        built = firmware.build(model, name, tmp_path / name)
        if built.flash_bytes - tables != sweep.CODE_BYTES.get(name):
            wrong[name] = built.flash_bytes - tables
    assert not wrong, f"update sweep.CODE_BYTES: {wrong}"


@needs_arm
def test_standalone_flash_prediction_bounds_the_built_image_on_every_board(tmp_path):
    """STANDALONE_CODE_BYTES + STANDALONE_LAYER_BYTES per layer is measured: the built
    standalone image (1- and 2-layer MLPs, an RNN) needs at most the predicted flash, and
    at most 128 B less (if the firmware's code changes, this names the numbers to update)."""
    from bep_mcu.data import inputformat
    from bep_mcu.data.datasets import Dataset
    from bep_mcu.device.standalone import standalone_data

    X, y = blobs(80, 6)
    S, ys = series(60, 20)
    small = {"binarize": "thermometer:4", "epochs": 1}  # 24 input bits: every case fits the micro:bit
    cases = [(fit(X, y, hidden=(16,), **small), X, y, "tabular"), (fit(X, y, hidden=(24, 12), **small), X, y, "tabular"),
             (fit(S, ys, model="rnn", hidden=(12,), epochs=1), S[..., None], ys, "series")]
    wrong = {}
    for k, (model, Xs, ys_, kind) in enumerate(cases):
        data = Dataset("case", Xs[:48], ys_[:48], Xs[48:], ys_[48:], kind)
        sa = standalone_data(model, data, inputformat.choose(model.encoder, data.X_train))
        for name in sweep.STANDALONE_CODE_BYTES:
            board = boards.board(name)
            built = firmware.build_standalone(model, name, sa, 1, 10, tmp_path / f"{k}-{name}").firmware
            tables = firmware.plan_memory(plan_model(model), model.spec, board).tables_bytes
            code = built.flash_bytes - tables - sa.flash_bytes
            predicted = sweep.standalone_code_bytes(model, plan_model(model), board)
            if not predicted - 128 <= code <= predicted:
                wrong[(k, name)] = code - predicted + sweep.STANDALONE_CODE_BYTES[name]
    assert not wrong, f"update sweep.STANDALONE_CODE_BYTES (base code measured: {wrong})"


def _summary(trial, status, acc=None, ram=0, instr=0):
    s = {"trial": trial, "config": {"hidden": [trial]}, "status": status, "ram_bytes": ram, "instructions": instr}
    return s if acc is None else {**s, "val_accuracy": acc}


def test_pareto_front_and_best():
    summaries = [_summary(0, "done", 0.80, 1000, 50), _summary(1, "done", 0.90, 3000, 40),
                 _summary(2, "done", 0.85, 2000, 90), _summary(3, "done", 0.85, 2500, 10),
                 _summary(4, "stopped", 0.99, 500, 5), _summary(5, "skipped", ram=90000),
                 _summary(6, "done", 0.90, 2800, 45)]
    assert [s["trial"] for s in sweep.pareto(summaries, "ram_bytes")] == [0, 2, 6]
    assert [s["trial"] for s in sweep.pareto(summaries, "instructions")] == [3, 1]
    assert sweep.best(summaries)["trial"] == 6, "most accurate, then least RAM; stopped trials never win"
    assert sweep.best(summaries[4:6]) is None


def test_records_of_another_sweep_are_refused():
    rec = {"sweep": "a", "trial": 0, "repeat": 0, "status": "skipped", "seed": 0, "config": {}}
    records = sweep.Records(settings(), "a", "f")
    records.add(1, json.dumps(rec).encode())
    records.add(2, json.dumps({**rec, "status": "error", "config": "x"}).encode())  # an errored trial runs again
    assert list(records.finished) == [(0, 0)]
    with pytest.raises(BEPError, match="holds another sweep"):
        sweep.Records(settings(), "b", "f").add(1, json.dumps(rec).encode())
    with pytest.raises(BEPError, match="f line 2: field 'sweep' is missing"):
        records.add(2, b'{"trial": 1}')


def test_append_line_writes_whole_lines_to_regular_files_only(tmp_path):
    path = tmp_path / "r.jsonl"
    files.append_line(path, '{"a": 1}')
    files.append_line(path, '{"a": 2}\n')
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    with pytest.raises(BEPError, match="cannot write"):
        files.append_line(tmp_path, "x")


# ------------------------------------------------------------------ bad input (before Ray starts)


def test_sweep_bad_input_is_one_error_line(tmp_path, monkeypatch, capsys):
    from .test_size import _run_main, one_error_line

    data = write_csv(tmp_path / "small.csv")
    code, out, err = _run_main(monkeypatch, capsys, "sweep", "--data", data, "--board", "arduino")
    one_error_line(code, err, "--board", "'arduino' is not one of", "microbit")
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD, "--trials", 0), "--trials", "1..")
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD, "--seeds", 0), "--seeds")
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD, "--results", tmp_path),
                      "results file", "directory")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('not json\n{"sweep": "x"}\n')
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD, "--results", garbage), "line 1 is not JSON")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"sweep": "0123456789abcdef", "trial": 0, "repeat": 0, "status": "skipped", "seed": 0,
                                 "config": {}}) + "\n")
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD, "--results", other), "another sweep")
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(8)))
    result = invoke("sweep", "--data", tiny, "--board", BOARD)
    assert_error_after_progress(result.exit_code, result.stderr, ["too few"])
    fives = tmp_path / "fives.csv"  # five samples a class: fit would make no split, and trials need one
    fives.write_text("a,label\n" + "".join(f"{i},{i % 6}\n" for i in range(30)))
    result = invoke("sweep", "--data", fives, "--board", BOARD)
    assert_error_after_progress(result.exit_code, result.stderr, ["too few", "a class of 6 for --val-fraction 0.1"])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert_user_error(invoke("sweep", "--data", data, "--board", BOARD), "Ray Tune", "pip install 'bep-mcu[sweep]'")


# ------------------------------------------------------------------ the results file: measured results only

SMALL = ("--board", BOARD, "--trials", 6, "--epochs", 2)


def plan_of(data: Path) -> list[dict]:
    """The plan of `sweep --data DATA *SMALL`, as the command makes it."""
    d = load_data(None, str(data), None)
    s = settings(trials=6, epochs=2)
    return sweep.plan_trials(d.X_train, d.y_train, s, sweep.fingerprint(d.name, d.X_train, d.y_train, s))


def finished_records(plan: list[dict]) -> list[dict]:
    """What a run of that sweep appends to its results file: every trial finished (trial i
    at validation accuracy 0.5 + i / 100), so resuming it needs no Ray."""
    recs = []
    for p in plan:
        if p["reason"] is not None:
            recs.append({**p, "status": "skipped", "run": "r"})
        else:
            acc = 0.5 + p["trial"] / 100
            recs.append({**p, "status": "done", "val_accuracy": acc, "train_accuracy": 0.9, "epochs": 2,
                         "val_history": [0.4, acc], "node_id": "ab" * 28, "host": "h", "pid": 1, "seconds": 0.5,
                         "run": "r"})
    assert "done" in {r["status"] for r in recs}
    return recs


def write_records(path: Path, recs: list) -> Path:
    """One line per record: a dict as JSON, bytes as they are."""
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r, sort_keys=True).encode()) + b"\n"
                              for r in recs))
    return path


def test_a_resumed_sweep_takes_only_measured_results_from_its_file(tmp_path):
    """Footprints, configurations and networks are the sweep's own plan whatever its file
    says; the file gives the validation accuracies (here: the largest network wins)."""
    data = write_csv(tmp_path / "small.csv")
    plan = plan_of(data)
    recs = finished_records(plan)
    winner = max((r for r in recs if r["status"] == "done"), key=lambda r: r["ram_bytes"])
    for r in recs:
        r.update(ram_bytes=1, flash_bytes=1, state_bytes=1, inference_bytes=1, instructions=1, reason="forged")
    winner["val_accuracy"] = 0.99
    results = write_records(tmp_path / "r.jsonl", recs)
    before = results.read_bytes()
    out = tmp_path / "best.npz"
    result = invoke("sweep", "--data", data, *SMALL, "--results", results, "--out", out, "--json")
    assert_ok(result)
    d = last_json(result.stdout)
    assert d["resumed"] == 6 and d["ran"] + d["skipped"] == 6 and results.read_bytes() == before
    planned = {p["trial"]: p for p in plan}
    best = d["best"]
    assert best["trial"] == winner["trial"] and best["val_accuracy"] == 0.99
    for s in [best, *d["pareto"], *d["pareto_instructions"]]:
        p = planned[s["trial"]]
        assert s["config"] == p["config"] and s["network"] == p["network"]
        for name in ("ram_bytes", "flash_bytes", "state_bytes", "inference_bytes", "instructions"):
            assert s[name] == p[name], (s["trial"], name)
    assert list(modelio.load(out).spec.hidden) == planned[winner["trial"]]["config"]["hidden"]


def _huge(r: dict) -> None:
    """The attack: a finished record of a 4 x 4000 network that claims 1 byte of RAM."""
    r["config"] = {**r["config"], "hidden": [4000] * 4, "gamma": [250] * 4}
    r.update(network=[r["network"][0], 4000, 4000, 4000, 4000, r["network"][-1]], ram_bytes=1, flash_bytes=1,
             instructions=1, val_accuracy=1.0)


@pytest.mark.parametrize("edit, status, field", [
    (_huge, "done", "config"),
    (lambda r: r.update(seed=7), "done", "seed"),
    (lambda r: r.update(network=[8, 16, 3]), "done", "network"),
    (lambda r: r.update(status="skipped"), "done", "status"),
    (lambda r: r.update(status="done", val_accuracy=1.0, epochs=2, node_id="n", ram_bytes=1), "skipped", "status"),
], ids=["huge-network-tiny-ram", "seed", "network", "skips-a-network-that-fits", "trains-one-that-does-not"])
def test_a_record_that_disagrees_with_the_plan_is_refused(tmp_path, monkeypatch, edit, status, field):
    if status == "skipped":  # one draw a trial: the small sweep then plans networks the micro:bit cannot hold
        monkeypatch.setattr(sweep, "MAX_DRAWS", 1)
    data = write_csv(tmp_path / "small.csv")
    recs = finished_records(plan_of(data))
    n = next(i for i, r in enumerate(recs) if r["status"] == status)
    edit(recs[n])
    results = write_records(tmp_path / "r.jsonl", recs)
    before = results.read_bytes()
    out = tmp_path / "best.npz"
    result = invoke("sweep", "--data", data, *SMALL, "--results", results, "--out", out, "--json")
    assert_error_after_progress(result.exit_code, result.stderr,
                                [f"results file '{results}' line {n + 1}: field '{field}'", "give another --results"])
    assert not out.exists() and results.read_bytes() == before


DEEP = b'{"sweep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("edit, words", [
    (lambda r: r.update(trial=[0]), ["field 'trial' must be an integer", "[0]"]),
    (lambda r: r.update(trial=True), ["field 'trial' must be an integer"]),
    (lambda r: r.update(val_accuracy="x"), ["field 'val_accuracy' must be a number in 0..1", "'x'"]),
    (lambda r: r.update(val_accuracy=float("nan")), ["field 'val_accuracy' must be a number"]),
    (lambda r: r.update(val_accuracy=1.5), ["field 'val_accuracy' must be a number in 0..1, got 1.5"]),
    (lambda r: r.__delitem__("node_id"), ["field 'node_id' is missing"]),
    (lambda r: r.update(node_id={"a": 1}), ["field 'node_id' must be a string"]),
    (lambda r: r.update(config="x"), ["field 'config' must be an object"]),
    (lambda r: r.update(config={**r["config"], "hidden": [[[16]]]}), ["field 'config' must map names to numbers"]),
    (lambda r: r.update(network="x"), ["field 'network' must be a list"]),
    (lambda r: r.update(epochs=-1), ["field 'epochs' must be an integer in 1..2, got -1"]),
    (lambda r: r.update(epochs=10**6), ["field 'epochs' must be an integer in 1..2"]),
    (lambda r: r.update(epochs=1), ["field 'epochs' of a done trial must be 2, got 1"]),
    (lambda r: r.update(status="won"), ["field 'status' must be one of"]),
    (lambda r: r.update(seed=-1), ["field 'seed' must be an integer"]),
    (lambda r: DEEP, ["is not JSON"]),
    (lambda r: b"[1, 2]", ["is not a bep-mcu sweep record"]),
    (lambda r: b'{"sweep": "\xff"}', ["is not JSON"]),
], ids=["trial-list", "trial-bool", "accuracy-text", "accuracy-nan", "accuracy-above-1", "no-node-id",
        "node-id-object", "config-text", "config-nested", "network-text", "epochs-negative",
        "epochs-beyond-the-budget", "done-too-early", "status", "seed", "nested-100000-deep", "not-an-object",
        "not-utf8"])
def test_a_malformed_record_is_one_line_naming_file_line_and_field(tmp_path, edit, words):
    data = write_csv(tmp_path / "small.csv")
    recs = finished_records(plan_of(data))
    n = next(i for i, r in enumerate(recs) if r["status"] == "done")
    recs[n] = edit(recs[n]) or recs[n]
    results = write_records(tmp_path / "r.jsonl", recs)
    before = results.read_bytes()
    result = invoke("sweep", "--data", data, *SMALL, "--results", results, "--out", tmp_path / "best.npz")
    assert_user_error(result, f"results file '{results}' line {n + 1}", *words)
    assert results.read_bytes() == before and not (tmp_path / "best.npz").exists()


def test_a_file_that_is_refused_keeps_its_last_line(tmp_path):
    """An incomplete last line is cut off only from a file known to be this sweep's."""
    data = write_csv(tmp_path / "small.csv")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nno newline at the end")
    assert_user_error(invoke("sweep", "--data", data, *SMALL, "--results", notes), "line 1 is not JSON")
    assert notes.read_text() == "my notes\nno newline at the end"


def test_an_oversized_line_is_refused_in_bounded_memory(tmp_path):
    """One 256 MB line: refused after reading at most a megabyte of it."""
    data = write_csv(tmp_path / "small.csv")
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        f.write(b'{"sweep": "')
        block = b"a" * (1 << 20)
        for _ in range(256):
            f.write(block)
        f.write(b'"}\n')
    status, stderr, rss = peak_rss(["sweep", "--data", str(data), *map(str, SMALL), "--results", str(big)], tmp_path)
    assert_one_error_line(status, stderr, (f"results file '{big}' line 1 is longer than 1048576 bytes",), status=2)
    assert rss < 300 << 20, f"peak RSS {rss >> 20} MiB"


@needs_arm
def test_every_footprint_sweep_prints_is_what_the_measuring_commands_report(tmp_path):
    """For the saved winner: RAM and flash are what `firmware` builds, the training state
    is `size`'s buffer, the inference bytes are `info`'s (instructions: the cost model's
    tests above)."""
    data = write_csv(tmp_path / "small.csv")
    results = write_records(tmp_path / "r.jsonl", finished_records(plan_of(data)))
    out = tmp_path / "best.npz"
    result = invoke("sweep", "--data", data, *SMALL, "--results", results, "--out", out, "--json")
    assert_ok(result)
    best = last_json(result.stdout)["best"]
    built = ok_json(run_cli("firmware", out, "--board", BOARD, "--out", tmp_path / "fw", "--json"))
    assert (built["ram_bytes"], built["flash_bytes"]) == (best["ram_bytes"], best["flash_bytes"])
    sized = ok_json(run_cli("size", out, "--board", BOARD, "--json"))
    assert sized["state_bytes"] == sized["parts"]["training"]["buffer_bytes"] == best["state_bytes"]
    info = ok_json(run_cli("info", out, "--json"))
    assert info["inference_state_bytes"] == best["inference_bytes"]
    assert info["training_state_bytes"] == best["state_bytes"]


def test_plot_bad_input_is_one_error_line(tmp_path, monkeypatch):
    untrained = saved(training.new_model(*blobs(40, 4), training.Settings(hidden=(8,))), tmp_path / "new.npz")
    assert_user_error(invoke("plot", untrained, "--out", tmp_path / "c.png"), "no training history")
    assert_user_error(invoke("plot", tmp_path / "missing.npz", "--out", tmp_path / "c.png"), "missing.npz")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):  # as if not installed
        monkeypatch.setitem(sys.modules, name, None)
    assert_user_error(invoke("plot", untrained, "--out", tmp_path / "c.png"), "matplotlib", "bep-mcu[sweep]")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_the_learning_curve(tmp_path):
    X, y = blobs(300, 6)
    model = saved(fit(X, y, hidden=(64, 32), epochs=12, patience=1), tmp_path / "m.npz")
    result = invoke("plot", model, "--out", tmp_path / "curve.png", "--json")
    assert_ok(result)
    d = last_json(result.stdout)
    assert d["epochs"] == 12 and d["plot"] == str(tmp_path / "curve.png")
    width, height = png_size(tmp_path / "curve.png")
    assert 600 <= width <= 1200 and 300 <= height <= 800
    assert (tmp_path / "curve.png").stat().st_size == d["bytes"] > 20_000


# ------------------------------------------------------------------ the real thing, on Ray


@pytest.mark.slow
def test_sweep_on_ray_in_process_finds_a_network_that_fits(tmp_path):
    data = write_csv(tmp_path / "small.csv")
    out, plot = tmp_path / "best.npz", tmp_path / "pareto.png"
    proc = run_cli("sweep", "--data", data, "--board", BOARD, "--trials", 8, "--results", tmp_path / "a.jsonl",
                   "--out", out, "--plot", plot, "--json")
    d = ok_json(proc)
    assert "Token authentication" not in proc.stderr, "Ray's notice: the local instance asks for token auth"
    assert d["engine"] == "ray" and d["trials"] == 8 and d["address"] is None
    assert d["ray_address"].startswith("127.0.0.1:"), "a local sweep stays on the loopback address"
    # the space is sized to the board, and without --early-stop every trial trains every epoch
    assert d["skipped"] == 0 and d["ran"] == 8 and d["stopped"] == 0 and len(d["nodes"]) == 1
    assert d["early_stop"] is False
    board = boards.board(BOARD)
    best = d["best"]
    assert set(best) >= {"config", "val_accuracy", "test_accuracy", "ram_bytes", "flash_bytes"}
    assert best["ram_bytes"] <= board.ram_bytes and best["flash_bytes"] <= board.flash_bytes
    assert best["val_accuracy"] > 0.8 and best["test_accuracy"] > 0.8
    assert best["retrained_val_accuracy"] == best["val_accuracy"], "the retrained winner is the trial's model"
    assert d["pareto"] and d["pareto"][-1]["val_accuracy"] == best["val_accuracy"]
    assert all(a["ram_bytes"] < b["ram_bytes"] and a["val_accuracy"] < b["val_accuracy"]
               for a, b in zip(d["pareto"], d["pareto"][1:]))
    recs = records(tmp_path / "a.jsonl")
    assert sorted(r["trial"] for r in recs) == list(range(8))
    assert {r["status"] for r in recs} == {"done"}
    for r in recs:
        assert (r["status"] == "skipped") == (r["ram_bytes"] > board.ram_bytes), r
    assert all(len(r["val_history"]) == r["epochs"] for r in recs if r["status"] != "skipped")
    model = modelio.load(out)
    plan = firmware.plan_memory(plan_model(model), model.spec, board)
    assert plan.ram_bytes == best["ram_bytes"] and list(model.spec.hidden) == best["config"]["hidden"]
    assert model.training.notes["sweep_board"] == BOARD
    width, height = png_size(plot)
    assert width > 800 and height > 300

    again = ok_json(run_cli("sweep", "--data", data, "--board", BOARD, "--trials", 8, "--results",
                            tmp_path / "b.jsonl", "--early-stop", "--json"))
    assert again["early_stop"] is True
    first = {r["trial"]: r for r in recs}
    second = {r["trial"]: r for r in records(tmp_path / "b.jsonl")}
    assert [first[i]["config"] for i in range(8)] == [second[i]["config"] for i in range(8)]
    for i in range(8):  # ASHA's stops depend on timing; what trained to the end trained the same
        if first[i]["status"] == second[i]["status"] == "done":
            assert first[i]["val_history"] == second[i]["val_history"]
    assert again["sweep"] == d["sweep"] and again["skipped"] == d["skipped"]

    if HAVE_ARM:  # `bep-mcu firmware` takes the winner as it is, and builds what the sweep planned
        built = ok_json(run_cli("firmware", out, "--board", BOARD, "--out", tmp_path / "fw", "--json"))
        assert built["ram_bytes"] == best["ram_bytes"] and built["flash_bytes"] == best["flash_bytes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_runs_its_trials_on_a_ray_cluster(tmp_path):
    """A Ray head on 127.0.0.1 (its own process, token authentication): the sweep joins it
    with --address, and every trial reports the head's node id."""
    import secrets

    port = free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        head_node = _head_node_id(address, env, head)
        data = write_csv(tmp_path / "small.csv")
        d = ok_json(run_cli("sweep", "--data", data, "--board", BOARD, "--trials", 3, "--seeds", 2, "--epochs", 2,
                            "--address", address, "--results", tmp_path / "c.jsonl", "--json", env=env))
        assert d["address"] == address and d["ray_address"] == address
        assert d["nodes"] == [head_node]
        ran = [r for r in records(tmp_path / "c.jsonl") if r["status"] != "skipped"]
        assert ran and {r["node_id"] for r in ran} == {head_node}
        assert sorted({r["seed"] for r in ran}) == [0, 1]
        best = [r for r in ran if r["trial"] == d["best"]["trial"]]
        assert d["best"]["val_accuracy"] == pytest.approx(np.mean([r["val_accuracy"] for r in best]))
    finally:
        _stop(head)


@pytest.mark.slow
@pytest.mark.parametrize("listening", [False, True], ids=["nothing-listens", "a-port-that-never-answers"])
def test_an_address_where_no_ray_head_answers_is_one_line(tmp_path, listening):
    """Ray alone retries for about 15 minutes, printing warnings; the sweep gives up after
    about CONNECT_TIMEOUT s with one line (the subprocess timeout bounds the test)."""
    data = write_csv(tmp_path / "small.csv")
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1] if listening else 1}"
        proc = run_cli("sweep", "--data", data, "--board", BOARD, "--trials", 2, "--epochs", 1, "--address", address,
                       env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, timeout=4 * sweep.CONNECT_TIMEOUT)
    assert_error_after_progress(proc.returncode, proc.stderr,
                                [f"cannot reach a Ray cluster at {address} within {sweep.CONNECT_TIMEOUT} s"])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and lines[1] == f"training 2 trial(s) on Ray Tune at {address}", lines  # no Ray noise


def _head_node_id(address: str, env: dict, head: subprocess.Popen) -> str:
    """The head's node id, from its GCS (no dashboard): retried while the head starts."""
    probe = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
             "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))" % address)
    deadline = time.monotonic() + 120
    while True:
        assert head.poll() is None, f"the Ray head exited: {head.stderr.read()[-2000:]}"
        proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        if proc.returncode == 0:
            nodes = json.loads(proc.stdout.strip().splitlines()[-1])
            assert len(nodes) == 1
            return nodes[0]
        assert time.monotonic() < deadline, proc.stderr[-2000:]
        time.sleep(2)


def _stop(head: subprocess.Popen) -> None:
    """Stop the head we started, by its process id (SIGTERM: it stops its own children);
    its process group only if it does not."""
    head.terminate()
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    data = write_csv(tmp_path / "small.csv", n=600)
    results = tmp_path / "r.jsonl"
    args = ["sweep", "--data", data, "--board", BOARD, "--trials", 16, "--epochs", 20, "--results", results, "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "bep_mcu", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (results.exists() and sum(r["status"] != "skipped" for r in records(results)) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune stops the trials still running
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "interrupted" in last
    assert json.loads(out) == {"error": last[len("error: "):], "exit_status": 2}  # --json: the error as JSON
    before = records(results)
    assert len(before) < 16
    with results.open("a") as f:
        f.write('{"sweep": "cut short by a kill')  # a record whose write was interrupted

    d = ok_json(run_cli(*args))
    after = records(results)
    assert after[:len(before)] == before, "finished records are kept as they were"
    assert d["resumed"] == len(before) and d["trials"] == 16
    keys = [(r["trial"], r["repeat"]) for r in after]
    assert sorted(keys) == [(i, 0) for i in range(16)], "each trial exactly once: nothing ran twice"
    assert len({r["run"] for r in after[len(before):]}) == 1 and after[-1]["run"] != before[-1]["run"]
