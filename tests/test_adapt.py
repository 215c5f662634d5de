"""``bep-mcu adapt``: a model meets drifted data in the host's simulation of a board and on an
emulated board (bit for bit the same figures), with labels, without (recalibration), with replayed
source samples; bad inputs are one line; and ``python -m bep_mcu.bench adaptation`` on a small
scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bep_mcu import adapt, modelio, training
from bep_mcu.cgen import cost
from bep_mcu.cgen.layout import plan_model
from bep_mcu.data.datasets import load_dataset, stratified_split
from bep_mcu.data.shift import SensorDrift

from .conftest import assert_ok, assert_user_error, fit, invoke, last_json, needs_arm, needs_qemu, saved


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A digits model pre-trained on a quarter of the training set (as the demo's), the data its
    drifted sensor reads (the target) and the data it came from (the source)."""
    root = tmp_path_factory.mktemp("adapt")
    data = load_dataset("digits")
    pre, _ = stratified_split(data.y_train, 0.75, 0)
    model = fit(data.X_train[pre], data.y_train[pre], hidden=(32,), epochs=10, seed=0)
    drift = SensorDrift()
    np.savez(root / "drifted.npz", X_train=drift.apply(data.X_train, data.X_train, 1), y_train=data.y_train,
             X_test=drift.apply(data.X_test, data.X_train, 2), y_test=data.y_test)
    np.savez(root / "source.npz", X_train=data.X_train[pre], y_train=data.y_train[pre], X_test=data.X_test,
             y_test=data.y_test)
    return {"model": saved(model, root / "m.npz"), "target": root / "drifted.npz", "source": root / "source.npz",
            "n": len(data.y_train), "root": root}


def run(files, *args) -> dict:
    result = invoke("adapt", files["model"], "--data", files["target"], "--source-data", files["source"], *args,
                    "--json")
    assert_ok(result)
    return last_json(result.stdout)


def test_adapt_on_the_host_gains_on_a_drifted_sensor(files):
    r = run(files, "--epochs", 3)
    model = modelio.load(files["model"])
    assert r["after"] > r["before"] + 0.05, r
    assert r["where"] == "host" and r["bit_exact"] is None
    assert r["labels_used"] == files["n"] and r["samples_seen"] == r["samples_trained"] == 3 * files["n"]
    assert 0.0 <= r["source_after"] <= 1.0 and r["source_before"] == pytest.approx(
        model.score(np.load(files["source"])["X_test"], np.load(files["source"])["y_test"]))
    assert r["ram_bytes"] == r["state_bytes"] == plan_model(model).state_bytes
    assert r["instructions_per_sample"] == cost.instructions_per_sample(
        model.spec, model.training.gamma, "cortex-m4", model.training.batch_size)


def test_label_free_recalibration_gains_without_a_label(files):
    frozen = run(files, "--labels", 0)
    free = run(files, "--labels", 0, "--recalibrate")
    assert frozen["after"] == frozen["before"] and frozen["instructions_per_sample"] == 0
    assert free["after"] > free["before"] + 0.05, free
    assert free["labels_used"] == free["samples_trained"] == 0 and free["samples_seen"] == 3 * files["n"]
    assert free["instructions_per_sample"] == free["calibration_instructions_per_sample"] > 0


def test_a_fraction_of_labels(files):
    r = run(files, "--labels", 0.25, "--recalibrate", "--epochs", 2)
    assert r["labels_used"] == round(0.25 * files["n"]) and r["samples_trained"] == 2 * r["labels_used"]
    assert r["samples_seen"] == 2 * files["n"]
    assert r["after"] > r["before"]
    chosen = adapt.labelled(files["n"], 0.25, 0)
    assert np.array_equal(chosen, adapt.labelled(files["n"], 0.25, 0)) and len(np.unique(chosen)) == len(chosen)


def test_replayed_samples_are_trained_and_their_ram_counted(files):
    plain, replayed = run(files, "--epochs", 1), run(files, "--epochs", 1, "--replay", 50)
    model = modelio.load(files["model"])
    assert replayed["replay_bytes"] == 50 * (4 * plan_model(model).input_words + 2)
    assert replayed["ram_bytes"] == plain["ram_bytes"] + replayed["replay_bytes"]
    assert replayed["samples_trained"] == plain["samples_trained"] + 50
    assert replayed["source_after"] != plain["source_after"] or replayed["after"] != plain["after"]


def test_a_separate_test_file_and_the_human_report(files, tmp_path):
    """--test-data gives the target's test part; without --json one report for a person."""
    d = np.load(files["target"])
    np.savez(tmp_path / "train.npz", X=d["X_train"], y=d["y_train"])
    np.savez(tmp_path / "test.npz", X=d["X_test"], y=d["y_test"])
    args = ("--source-data", files["source"], "--labels", 0, "--recalibrate", "--epochs", 1)
    human = invoke("adapt", files["model"], "--data", tmp_path / "train.npz", "--test-data", tmp_path / "test.npz",
                   *args)
    assert_ok(human)
    r = run(files, *args[2:])  # the same data, one file
    assert f"target test accuracy  {r['before']:.4f} before, {r['after']:.4f} after" in human.stdout
    assert f"source test accuracy  {r['source_before']:.4f} before" in human.stdout
    assert "recalibration" in human.stdout and "bit-exact" not in human.stdout  # no board: nothing compared


@needs_arm
@needs_qemu
def test_adapt_on_an_emulated_board_is_the_host_simulation_bit_for_bit(files, no_stray_qemu, monkeypatch):
    compared, compare = [], training.compare_states
    monkeypatch.setattr(training, "compare_states", lambda *a: compared.append(a) or compare(*a))
    args = ("--labels", 0.5, "--recalibrate", "--epochs", 1)
    board, host = run(files, *args, "--board", "mps2-an386"), run(files, *args)
    assert board["where"] == "board" and board["board"] == "mps2-an386" and board["cpu"] == "cortex-m4"
    assert board["bit_exact"] is True and board["first_divergence"] is None
    batch = modelio.load(files["model"]).training.batch_size
    assert len(compared) == -(-board["samples_trained"] // batch)  # board and host compared after every batch
    assert board["after"] > board["before"]
    for key in ("before", "after", "source_before", "source_after", "labels_used", "samples_trained",
                "instructions_per_sample", "ram_bytes"):
        assert board[key] == host[key], key


@pytest.fixture(scope="module")
def deep(files) -> Path:
    """A model of two hidden layers (…-32-16-10), pre-trained as the one of ``files``."""
    data = load_dataset("digits")
    pre, _ = stratified_split(data.y_train, 0.75, 0)
    return saved(fit(data.X_train[pre], data.y_train[pre], hidden=(32, 16), epochs=10, seed=0),
                 files["root"] / "deep.npz")


def adapted(files, model, out, *args) -> dict:
    result = invoke("adapt", model, "--data", files["target"], "--epochs", 1, "--out", out, *args, "--json")
    assert_ok(result)
    return last_json(result.stdout)


def test_the_last_hidden_layer_alone_learns_for_fewer_instructions(files, deep, tmp_path):
    every, last = adapted(files, deep, tmp_path / "all.npz"), adapted(files, deep, tmp_path / "last.npz",
                                                                       "--layers", "last")
    model, trained = modelio.load(deep), modelio.load(tmp_path / "last.npz")
    assert every["layers"] == "all" and last["layers"] == "last" and last["after"] > last["before"] + 0.05, last
    assert np.array_equal(trained.hidden[0], model.hidden[0]) and not np.array_equal(trained.hidden[1], model.hidden[1])
    assert not np.array_equal(modelio.load(tmp_path / "all.npz").hidden[0], model.hidden[0])
    assert last["instructions_per_sample"] == cost.instructions_per_sample(
        model.spec, (0, model.training.gamma[1]), "cortex-m4", model.training.batch_size)
    assert 0 < last["instructions_per_sample"] < every["instructions_per_sample"]
    # one hidden layer: the last is every layer
    one = [adapted(files, files["model"], tmp_path / f"{k}.npz", "--layers", k) for k in ("all", "last")]
    assert one[0]["after"] == one[1]["after"] and one[0]["instructions_per_sample"] == one[1]["instructions_per_sample"]


@needs_arm
@needs_qemu
def test_the_last_hidden_layer_alone_on_an_emulated_board_is_the_host_bit_for_bit(files, deep, tmp_path,
                                                                                   no_stray_qemu):
    board = adapted(files, deep, tmp_path / "board.npz", "--layers", "last", "--board", "mps2-an386")
    host = adapted(files, deep, tmp_path / "host.npz", "--layers", "last")
    assert board["bit_exact"] is True and board["first_divergence"] is None, board
    assert board["before"] == host["before"] and board["after"] == host["after"] > board["before"]
    on_board, on_host = modelio.load(tmp_path / "board.npz"), modelio.load(tmp_path / "host.npz")
    assert all(np.array_equal(a, b) for a, b in zip(on_board.hidden, on_host.hidden))
    assert np.array_equal(on_board.hidden[0], modelio.load(deep).hidden[0])


@pytest.mark.parametrize("case, words", [
    ("layers", ("--layers", "first")),
    ("features", ("target", "10 features", "expects 64")),
    ("class", ("target training data", "label 11")),
    ("labels-high", ("--labels", "0..1")),
    ("labels-low", ("--labels", "0..1")),
    ("labels-nan", ("--labels",)),
    ("board-and-port", ("--board", "--port")),
    ("replay-without-source", ("--replay", "--source-data")),
    ("source-features", ("source data", "10 features")),
])
def test_bad_input_is_one_line_and_writes_nothing(files, case, words, tmp_path, monkeypatch):
    d = np.load(files["target"])
    y = d["y_train"].copy()
    y[0] = 11
    np.savez(tmp_path / "class.npz", X_train=d["X_train"], y_train=y, X_test=d["X_test"], y_test=d["y_test"])
    np.savez(tmp_path / "narrow.npz", X_train=d["X_train"][:, :10], y_train=d["y_train"], X_test=d["X_test"][:, :10],
             y_test=d["y_test"])
    target, extra = files["target"], []
    if case == "features":
        target = tmp_path / "narrow.npz"
    elif case == "class":
        target = tmp_path / "class.npz"
    elif case.startswith("labels-"):
        extra = ["--labels", {"labels-high": "1.5", "labels-low": "-0.1", "labels-nan": "nan"}[case]]
    elif case == "board-and-port":
        extra = ["--board", "mps2-an386", "--port", "socket://127.0.0.1:9"]
    elif case == "layers":
        extra = ["--layers", "first"]
    elif case == "replay-without-source":
        extra = ["--replay", "5"]
    elif case == "source-features":
        extra = ["--source-data", tmp_path / "narrow.npz"]
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for json_flag in ((), ("--json",)):
        assert_user_error(invoke("adapt", files["model"], "--data", target, *extra, *json_flag), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def bench(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bep_mcu.bench", "adaptation", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_bench_adaptation_on_a_small_scenario():
    out = bench("--scenarios", "condition:breast_cancer", "--seeds", "1", "--hidden", "16", "--json")
    assert out.returncode == 0, out.stderr
    from bep_mcu import bench_adaptation as b

    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == list(b.METHODS) and result["hidden"] == 16
    for method, r in rows.items():
        assert 0 <= r["before"] <= 1 and 0 <= r["after"] <= 1 and 0 <= r["source_after"] <= 1, method
        assert r["ram_bytes"] > 0 and set(r["instructions"]) == {"cortex-m4", "cortex-m0"}, method
    assert rows["frozen"]["after"] == rows["frozen"]["before"] and rows["frozen"]["instructions"]["cortex-m4"] == 0
    for method in ("recalibration", "bep", "bep+recalibration", "float-last-layer", "float-mlp"):
        assert 0 < rows[method]["instructions"]["cortex-m4"] < rows[method]["instructions"]["cortex-m0"], method
    assert rows["bep+replay"]["ram_bytes"] > rows["bep"]["ram_bytes"]
    # one hidden layer: BEP on the last hidden layer is BEP
    assert {k: v for k, v in rows["bep-last-layer"].items() if k != "method"} == \
        {k: v for k, v in rows["bep"].items() if k != "method"}


def test_bench_adaptation_last_layer_on_two_hidden_layers():
    out = bench("--scenarios", "drift:digits-deep", "--seeds", "1", "--hidden", "16", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["method"]: r for r in json.loads(out.stdout.strip().splitlines()[-1])["rows"]}
    bep, last = rows["bep"], rows["bep-last-layer"]
    assert bep["network"] == last["network"] and bep["network"].endswith("-16-8-10")
    assert last["after"] > last["before"] and last["ram_bytes"] == bep["ram_bytes"]
    for cpu in ("cortex-m4", "cortex-m0"):
        assert 0 < last["instructions"][cpu] < bep["instructions"][cpu], cpu


def test_bench_adaptation_refuses_an_unknown_scenario():
    out = bench("--scenarios", "drift:nope", "--seeds", "1")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        out.stderr.strip()] and "drift:nope" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
@needs_arm
def test_the_float_step_estimate_is_near_icount(tmp_path):
    """The bench's float instructions are icount's 256-128-10 count scaled by multiply-accumulates:
    within 20 % of a count of another shape (smaller layers have more loop overhead per MAC)."""
    pytest.importorskip("unicorn")
    from bep_mcu import bench_adaptation as b
    from bep_mcu import icount
    from bep_mcu.icount.report import FLOAT_LR, float_params

    shape = (64, 64, 10)
    g = np.random.default_rng(0)
    X = np.where(g.random((20, shape[0])) < 0.5, -1.0, 1.0)
    counted = icount.run_float(icount.build_float_image("cortex-m4", shape, tuned=True), X, g.integers(0, 10, 20),
                               float_params(shape, 0), FLOAT_LR)["instructions_per_sample"]
    assert b.float_instructions(b.float_macs(*shape), "cortex-m4") == pytest.approx(counted, rel=0.2)


def test_the_float_step_count_is_icounts_stored_tuned_count():
    """The bench's float costs scale icount's stored count of the tuned float step (the one
    README and docs/performance.md set BEP against), not a count of another build."""
    from bep_mcu import bench_adaptation as b

    stored = json.loads((Path(__file__).resolve().parents[1] / "results" / "instructions-per-sample.json").read_text())
    assert b.FLOAT_SGD_COUNT == {cpu: stored[cpu]["float_sgd_tuned"] for cpu in b.FLOAT_SGD_COUNT}
