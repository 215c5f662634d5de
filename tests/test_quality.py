"""Learning quality: the study's defaults (docs/accuracy.md §2) as the package runs them.

* The defaults are what ``fit``, the estimator and ``bep-mcu train`` use: γ ×1.5 capped at
  max(γ0, width // 4), patience 3, about 2 RNN steps, 8 bias bits for the RNN (0 for the
  MLP), thermometer:8 for series (an MLP's too), for tabular data a thermometer of about 256
  input bits (4..64 levels a feature; tests/test_learning_defaults.py).
* The stall signal: training counts on a board; on the host, the validation split from
  20 samples on, else validation and training pooled.
* Bias bits reach numpy, the C encoder and the C twin bit for bit, through whole runs in
  which the C schedules itself and γ reaches its cap.
* A model file written before these defaults loads and trains as it did (γ up to the
  full width, its own growth, no bias bits).
* ``restore_best`` keeps the best epoch's weights and says so in the history.
* ``python -m bep_mcu.bench accuracy --baseline qat --json`` runs end to end (slow).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from bep_mcu import modelio, training
from bep_mcu.cgen.codegen import generate, schedule_context
from bep_mcu.cgen.layout import plan_model
from bep_mcu.cli.train import train as train_command
from bep_mcu.data import inputformat
from bep_mcu.engine import bits
from bep_mcu.engine.schedule import MIN_VALIDATION, gamma_caps, grown, stall_counts
from bep_mcu.engine.spec import HyperParams
from bep_mcu.errors import BEPError
from bep_mcu.estimator import BEPClassifier
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, Settings, run_epochs
from bep_mcu.twin.cffi_twin import InferenceTwin, Twin, TwinTrainer

from .conftest import assert_one_error_line, assert_same_weights, blobs, fit, invoke, saved, series
from .test_modelio import forge

# ---------------------------------------------------------------------- the defaults


def test_the_defaults_are_what_fit_uses():
    hyper = Settings().hyper()
    assert (hyper.growth, hyper.gamma_cap_div, hyper.patience, hyper.restore_best) == (Fraction(3, 2), 4, 3, False)
    X, y = series(60, 41)  # (n, T): a univariate series
    rnn = fit(X, y, model="rnn", hidden=(32,), epochs=1)
    assert (rnn.encoder.window, rnn.spec.steps, rnn.encoder.bias_bits) == (21, 2, 8)
    assert rnn.encoder.binarizer.spec().startswith("thermometer:8")
    assert rnn.spec.n_inputs == 21 * rnn.encoder.kept_bits + 8
    mlp_series = fit(X[:, :, None], y, hidden=(32,), epochs=1)  # (n, T, channels): series for an MLP too
    assert mlp_series.encoder.binarizer.spec().startswith("thermometer:8") and mlp_series.encoder.bias_bits == 0
    Xt, yt = blobs(120)
    tabular = fit(Xt, yt, hidden=(32,), epochs=1)
    assert tabular.encoder.binarizer.spec() == "thermometer:43" and tabular.encoder.bias_bits == 0  # 6 features


def test_the_trigger_margin_follows_the_layers_and_the_data():
    """r 0.25 for one hidden layer of at least 128 on tabular data left to "auto"
    (training.TABULAR_ONE_LAYER_R, TABULAR_NARROW_MIN_WIDTH), 0.5 for one layer on anything else
    or narrower, 1.0 for two; R = floor(r · last width) as the C reads it."""
    Xt, yt = blobs(120)
    X, y = series(60, 41)

    def margin(X, y, **settings):
        model = training.initial_model(X, y, Settings(**settings))
        return model.hyper.r, model.params.trigger_margin

    assert training.TABULAR_NARROW_MIN_WIDTH == 128
    assert margin(Xt, yt, hidden=(128,)) == (training.TABULAR_ONE_LAYER_R, 32) == (0.25, 32)
    assert margin(Xt, yt, hidden=(127,)) == (0.5, 63)  # too narrow for a margin of a few votes
    assert margin(Xt, yt, hidden=(128,), binarize="thermometer:8") == (0.5, 64)  # a code of the user's
    assert margin(Xt, yt, hidden=(128,), r=0.75) == (0.75, 96)  # an r of the user's
    assert margin(Xt, yt, hidden=(32, 128)) == (1.0, 128)
    assert margin(X[:, :, None], y, hidden=(128,)) == (0.5, 64)  # a series for an MLP
    assert margin(X, y, model="rnn", hidden=(128,)) == (0.5, 64)
    # What fit returns for tabular data, either candidate, carries its r into the model file.
    trained = fit(Xt, yt, epochs=1)
    assert trained.hyper.r == (0.25 if len(trained.spec.hidden) == 1 else 1.0)
    assert trained.params.trigger_margin == int(trained.hyper.r * trained.spec.hidden[-1])


def test_the_narrow_tabular_margin_trains_bit_exact_in_c(tmp_path):
    """A tabular model as `bep-mcu train` leaves it (one hidden layer of 128: r 0.25, R 32) trains
    in the generated C as in numpy, to the bit (`verify`), on overlapping classes where some
    samples are within the margin and some beyond it; the C reads R from the model."""
    g = np.random.default_rng(4)
    X = g.normal(0, 1, (400, 6))
    y = (X[:, 0] + X[:, 1] + 0.7 * g.normal(0, 1, 400) > 0).astype(int) + (X[:, 2] > 0.5)
    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    result = invoke("train", "--data", tmp_path / "d.npz", "--hidden", 128, "--epochs", 3, "--out", tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    model = modelio.load(tmp_path / "m.npz")
    assert (model.hyper.r, model.params.trigger_margin) == (0.25, 32)
    result = invoke("verify", tmp_path / "m.npz", "--data", tmp_path / "d.npz", "--epochs", 4, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["bit_exact"] is True
    # R decides here: in one step of the engine over the training part, some samples it gets
    # right still trigger (margin below R) and some do not (margin at least R)
    trace: dict = {}
    labels = model.encode_labels(y[:300])
    model.network().train_batch(model.encode(X[:300]), labels, trace=trace)
    triggered = np.zeros(300, dtype=bool)
    triggered[trace["triggered"]] = True
    right = trace["logits"].argmax(axis=1) == labels
    assert (triggered & right).any() and (~triggered).any()
    gen = generate(model, tmp_path / "c", name="net")
    header = next(gen.directory / f for f in gen.files if f.endswith("net.h"))
    assert "#define BEP_NET_TRIGGER_MARGIN 32" in header.read_text()


def test_estimator_cli_and_settings_share_names_and_defaults():
    """BEPClassifier's parameters, bep-mcu train's options and Settings' fields: the same
    names (the CLI's with dashes) and the same defaults."""
    settings = {f.name: f.default for f in dataclasses.fields(Settings)}
    estimator = {k: p.default for k, p in inspect.signature(BEPClassifier.__init__).parameters.items() if k != "self"}
    options = {p.name: p.default for p in train_command.params}
    for name in ("gamma_growth", "gamma_cap_div", "bias_bits", "restore_best", "patience", "window", "binarize"):
        assert settings[name] == estimator[name] == options[name], name
    assert estimator.keys() <= settings.keys()


def test_gamma_cap_is_one_rule_for_host_and_c():
    X, y = blobs(200, features=8)
    model = fit(X, y, hidden=(256, 40), epochs=1)
    assert list(model.params.gamma) == [16, 2]
    caps = gamma_caps(model.spec, model.hyper, model.params.gamma)
    assert caps == [64, 10] == list(Plan.continuing(model, 1).cap)
    assert schedule_context(model, plan_model(model))["cap"] == caps
    # ×1.5 per stall, rounded up, stops at the cap: 16 → 24 → 36 → 54 → 64
    gamma, seen = 16, []
    for _ in range(5):
        gamma = grown(gamma, model.hyper.growth, caps[0])
        seen.append(gamma)
    assert seen == [24, 36, 54, 64, 64]
    # a chosen initial γ above width // 4 is its own cap (never lowered)
    chosen = fit(X, y, hidden=(256,), epochs=1, gamma=(100,))
    assert gamma_caps(chosen.spec, chosen.hyper, chosen.params.gamma) == [100]


def test_default_initial_gamma_per_model():
    """An MLP starts at width/16 and grows to its cap; an RNN starts at its cap, width/4, so
    its γ stays put however many stalls (docs/accuracy.md §2)."""
    X, y = blobs(200, features=8)
    mlp = fit(X, y, hidden=(512,), epochs=1)
    assert list(mlp.params.gamma) == [32] and gamma_caps(mlp.spec, mlp.hyper, mlp.params.gamma) == [128]
    Xs, ys = series(60, 40)
    rnn = fit(Xs, ys, model="rnn", hidden=(256,), epochs=12, patience=1)
    assert list(rnn.params.gamma) == [64] and gamma_caps(rnn.spec, rnn.hyper, rnn.params.gamma) == [64]
    assert {tuple(h["gamma"]) for h in rnn.training.history} == {(64,)}
    # the same run from γ 16 does stall and grow, so the constant γ above is the default's doing
    grows = fit(Xs, ys, model="rnn", hidden=(256,), epochs=12, patience=1, gamma=(16,))
    assert grows.training.history[-1]["gamma"][0] > 16


@pytest.mark.parametrize("value,words", [(1.3, "multiple of 1/16"), (0.5, "1..1024"), (True, "gamma growth")])
def test_growth_must_be_exact(value, words):
    with pytest.raises(BEPError, match=words):
        HyperParams(gamma_growth=value)
    assert HyperParams(gamma_growth=1.0625).growth == Fraction(17, 16)


def test_cli_options_are_checked(tmp_path):
    for args, words in ((["--gamma-growth", "1.1"], ("multiple of 1/16",)),
                        (["--gamma-cap-div", "0"], ("gamma cap divisor",)),
                        (["--bias-bits", "-1"], ("--bias-bits",))):
        result = invoke("train", "--dataset", "prototypes:classes=3,features=20,samples=200", "--epochs", "1",
                        "--out", tmp_path / "m.npz", *args)
        assert_one_error_line(result.exit_code, result.stderr, words, status=2)


# ---------------------------------------------------------------------- the stall signal


def test_auto_signal_switches_at_twenty_validation_samples():
    assert MIN_VALIDATION == 20
    assert stall_counts("auto", (5, 100), (3, 19)) == (8, 119)  # pooled
    assert stall_counts("auto", (5, 100), (3, 20)) == (3, 20)  # validation alone
    assert stall_counts("auto", (5, 100), (0, 0)) == (5, 100)  # no split: training
    assert stall_counts("training", (5, 100), (3, 20)) == (5, 100)  # a board's counters


@pytest.mark.parametrize("n_val", [19, 20])
def test_the_driver_judges_what_auto_chooses(n_val):
    """run_epochs' schedule keeps the judged pair as its best: validation's alone from 20
    samples, the pooled pair below."""
    X, y = blobs(300, features=8)
    model = fit(X, y, hidden=(16,), epochs=1)
    data = training.encoded(model, X, y)
    train_part, val_part = data.take(np.arange(n_val, 300)), data.take(np.arange(n_val))
    report = run_epochs([NumpyTrainer(model)], train_part, Plan.continuing(model, 1), val_part)
    state = report.schedule_states[-1]
    val_errors = round((1 - report.history[0]["val_accuracy"]) * n_val)
    if n_val >= MIN_VALIDATION:
        assert (state["best_errors"], state["best_samples"]) == (val_errors, n_val)
    else:
        train_errors = round(report.history[0]["train_error"] * len(train_part))
        assert (state["best_errors"], state["best_samples"]) == (train_errors + val_errors, 300)
    device = run_epochs([NumpyTrainer(model)], train_part,
                        Plan.continuing(model, 1, stall_signal="training"), val_part)
    assert device.schedule_states[-1]["best_samples"] == len(train_part)


# ---------------------------------------------------------------------- bias bits


def test_bias_bits_are_constant_inputs_of_every_step():
    X, y = series(50, 30, 2)
    model = fit(X, y, model="rnn", hidden=(8,), epochs=1, window=7, bias_bits=5)
    x = model.encode(X)
    assert x.shape == (50, 5, 7 * model.encoder.kept_bits + 5)
    assert (x[:, :, -5:] == 1).all() and not (x[:, :, :-5] == 1).all()
    fmt = inputformat.choose(model.encoder, X)
    assert np.array_equal(inputformat.encode(model.encoder, fmt, fmt.to_device(X)), model.encode(fmt.to_real(
        fmt.to_device(X))))
    Xt, yt = blobs(60)
    mlp = fit(Xt, yt, hidden=(8,), epochs=1, bias_bits=3)
    assert mlp.spec.n_inputs == mlp.encoder.kept_bits + 3 and (mlp.encode(Xt)[:, -3:] == 1).all()


@pytest.mark.parametrize("case", ["rnn", "mlp"])
def test_bias_bits_are_bit_exact_numpy_c_encoder_and_c_twin(tmp_path, case):
    """The C encoder writes the bias bits the Python encoders write; on those inputs the
    C twin, scheduling itself as a board does, trains exactly like numpy for 12 epochs in
    which γ grows ×1.5 to its cap."""
    if case == "rnn":
        X, y = series(160, 37, 2)  # 2 steps of 19 points, the last padded
        model = fit(X, y, model="rnn", hidden=(32,), epochs=1, patience=1, binarize="thermometer:3")
        assert model.encoder.bias_bits == 8 and model.spec.steps == 2
    else:
        X, y = blobs(240, features=9)
        model = fit(X, y, hidden=(32, 16), epochs=1, patience=1, bias_bits=6)
    fmt = inputformat.choose(model.encoder, X)
    twin = Twin(generate(model, tmp_path / "gen", "net", fmt), model.spec)
    V = fmt.to_device(X)
    words = twin.encode(V.reshape(len(V), -1))
    assert np.array_equal(words, bits.pack_inputs(inputformat.encode(model.encoder, fmt, V)))
    assert np.array_equal(words, bits.pack_inputs(model.encode(fmt.to_real(V))))
    data = EncodedData(inputformat.encode(model.encoder, fmt, V), model.encode_labels(y))
    c = TwinTrainer(twin, model.training.seed, model.training.batch_counter, own_schedule=True)
    plan = Plan.continuing(model, 12, 10, stall_signal="training", sample_order="counter")
    report = run_epochs([NumpyTrainer(model), c], data, plan)
    assert report.bit_exact, report.divergence
    host = [(rec["gamma"], rec["reinforce_q"]) for rec in report.history]
    assert [(s["gamma"], s["q"]) for s in c.schedules] == host
    caps = list(plan.cap)
    assert all(g <= k for rec in report.history for g, k in zip(rec["gamma"], caps))
    assert report.history[-1]["gamma"][0] == caps[0] == 8, [rec["gamma"] for rec in report.history]
    # inference-only code reads the same bias bits
    inference = InferenceTwin(generate(model, tmp_path / "inf", "net", fmt, inference_only=True))
    want = model.network().predict(model.encode(fmt.to_real(V)))
    assert np.array_equal(inference.predict_raw(V.reshape(len(V), -1)), want)


# ---------------------------------------------------------------------- model files


@pytest.fixture(scope="module")
def plain_mlp(tmp_path_factory):
    X, y = blobs(300, features=8)
    model = fit(X, y, hidden=(24,), epochs=2, seed=5, patience=1)
    return model, X, y, saved(model, tmp_path_factory.mktemp("quality") / "m.npz")


def test_new_fields_round_trip(tmp_path):
    X, y = blobs(120)
    model = fit(X, y, hidden=(16,), epochs=1, bias_bits=2, gamma_growth=2.5, gamma_cap_div=3, restore_best=True)
    back = modelio.load(saved(model, tmp_path / "m.npz"))
    assert (back.encoder.bias_bits, back.hyper.gamma_growth, back.hyper.gamma_cap_div, back.hyper.restore_best) == \
        (2, 2.5, 3, True)
    clf = BEPClassifier.load(tmp_path / "m.npz")
    assert (clf.bias_bits, clf.gamma_growth, clf.gamma_cap_div, clf.restore_best) == (2, 2.5, 3, True)


def test_an_old_model_file_trains_as_before(plain_mlp, tmp_path):
    """A file without gamma_cap_div, restore_best and bias_bits, growth 2 (as main wrote
    them before the defaults study): γ may grow to the full width, by 2, on the last epoch's weights."""
    model, X, y, path = plain_mlp

    def old(meta):
        for key in ("gamma_cap_div", "restore_best"):
            del meta["hyperparams"][key]
        del meta["input"]["bias_bits"]
        meta["hyperparams"]["gamma_growth"] = 2
        for record in meta["training"]["history"]:
            del record["best"]

    loaded = modelio.load(forge(path, tmp_path / "old.npz", old))
    assert (loaded.hyper.gamma_cap_div, loaded.hyper.growth, loaded.hyper.restore_best, loaded.encoder.bias_bits) \
        == (1, 2, False, 0)
    assert list(Plan.continuing(loaded, 1).cap) == [24]
    assert schedule_context(loaded, plan_model(loaded))["cap"] == [24]
    explicit = model.replace(hyper=dataclasses.replace(model.hyper, gamma_growth=2, gamma_cap_div=1))
    a, b = training.train(loaded, X, y, 12), training.train(explicit, X, y, 12)
    assert_same_weights(list(a.hidden), list(b.hidden))
    gammas = [rec["gamma"][0] for rec in a.training.history]
    assert max(gammas) > 24 // 4 and all(later in (g, min(2 * g, 24)) for g, later in zip(gammas, gammas[1:]))


@pytest.mark.parametrize("where,key,value,words", [
    ("hyperparams", "gamma_growth", 1.3, "multiple of 1/16"),
    ("hyperparams", "gamma_cap_div", 0, "hyperparams.gamma_cap_div"),
    ("hyperparams", "gamma_cap_div", None, "hyperparams.gamma_cap_div"),
    ("hyperparams", "restore_best", 1, "hyperparams.restore_best"),
    ("input", "bias_bits", -1, "input.bias_bits"),
    ("input", "bias_bits", 3, "input encoding gives"),  # more inputs than the network reads
])
def test_bad_new_fields_are_one_line_errors(plain_mlp, tmp_path, where, key, value, words):
    _, _, _, path = plain_mlp
    forged = forge(path, tmp_path / "f.npz", lambda m: m[where].__setitem__(key, value))
    result = invoke("info", forged)
    line = assert_one_error_line(result.exit_code, result.stderr, (words,), status=2)
    assert "f.npz" in line


# ---------------------------------------------------------------------- restore_best


def test_restore_best_keeps_the_best_epochs_weights():
    X, y = series(200, 30, seed=3)
    settings = dict(model="rnn", hidden=(16,), epochs=12, seed=1, val_fraction=0.2)
    snapshots = []
    trained = training.fit(X, y, Settings(restore_best=True, **settings),
                           on_epoch=lambda rec: snapshots.append(rec))
    history = trained.training.history
    best = [rec["epoch"] for rec in history if rec["best"]][-1]
    assert history[-1]["restored_epoch"] == best
    plain = training.fit(X, y, Settings(**settings))
    assert [rec["gamma"] for rec in plain.training.history] == [rec["gamma"] for rec in history]
    # the same run; the restored weights are the best epoch's: retrain to that epoch and compare
    upto = training.fit(X, y, Settings(**{**settings, "epochs": best}))
    assert_same_weights(list(trained.hidden), list(upto.hidden))
    assert trained.training.epochs == 12 and trained.training.batch_counter == plain.training.batch_counter


# ---------------------------------------------------------------------- the benchmark


@pytest.mark.slow
def test_bench_accuracy_against_qat_runs_end_to_end():
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--baseline", "qat", "--json",
                          "--seeds", "1", "--sets", "ItalyPowerDemand:rnn", "--qat-rates", "1e-2",
                          "--qat-decays", "0"], capture_output=True, text=True, check=True, timeout=1800)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["baseline"] == "qat" and len(result["rows"]) == 1
    row = result["rows"][0]
    assert row["config"] == "ItalyPowerDemand:rnn" and row["seeds"] == 1
    for learner in ("bep", "qat", "qat_bn"):
        assert len(row[learner]["scores"]) == 1
        assert all(0.0 <= s <= 1.0 for s in row[learner]["scores"] + row[learner]["train"])
        assert 0.0 <= row[learner]["mean"] <= 1.0
    assert row["bep"]["mean"] > 0.8  # BEP learns this set (about 0.95 over three seeds, docs/accuracy.md)


def test_qat_chooses_among_the_inputs_fit_chooses_among():
    """Where fit trains a second candidate (a tabular MLP with bias bits, as two layers of 256
    where its widths are left to their default) and keeps what validation prefers, QAT gets both
    candidates (inputs and widths) as one more dimension of its grid."""
    pytest.importorskip("torch")
    from bep_mcu import qat
    from bep_mcu.data.datasets import load_dataset
    data = load_dataset("iris")
    kwargs = {"hidden": (32,), "epochs": 4}
    default, second = qat.input_settings(kwargs, 0, data.X_train, data.y_train)
    assert default.bias_bits is None and second.bias_bits == training.TABULAR_BIAS_BITS
    widths = [qat.encoded_data(s, data.X_train, data.y_train, data.X_test, data.y_test)[0].shape[1]
              for s in (default, second)]
    assert widths[1] == widths[0] + training.TABULAR_BIAS_BITS
    res = qat.tuned_qat(kwargs, data, 1, batch_norm=False, learning_rates=(1e-2,), weight_decays=(0.0,))
    assert sorted({g["inputs"] for g in res["grid"]}) == [0, 1] and res["chosen"]["inputs"] in (0, 1)
    best = max(g["val"] for g in res["grid"])
    assert res["chosen"]["val"] == best
    assert res["chosen"]["hidden"] == [32]
    # widths left to their default: the bias-bit candidate is two layers of 256, for QAT too
    default, deep = qat.input_settings({"epochs": 2}, 0, data.X_train, data.y_train)
    assert default.widths() == (512,) and deep.widths() == training.TABULAR_DEEP_HIDDEN and deep.bias_bits == 64
    res = qat.tuned_qat({"epochs": 2}, data, 1, batch_norm=False, learning_rates=(1e-2,), weight_decays=(0.0,))
    assert res["chosen"]["hidden"] == ([512] if res["chosen"]["inputs"] == 0 else [256, 256])
    series = load_dataset("ucr:GunPoint")  # no second candidate: the default's inputs only
    assert len(qat.input_settings({"hidden": (32,)}, 0, series.X_train, series.y_train)) == 1


def test_qat_trains_with_the_loss_it_is_given():
    """``train_qat(loss=)`` (results/qat-bisection.py): cross-entropy given explicitly trains the
    same network as the default, to the last checkpoint; a loss that moves nothing leaves every
    checkpoint at the untrained network's accuracy."""
    torch = pytest.importorskip("torch")
    from bep_mcu import qat
    from bep_mcu.data.datasets import load_dataset
    data = load_dataset("iris")
    settings = qat.input_settings({"hidden": (32,), "epochs": 8}, 0, data.X_train, data.y_train)[0]
    Xt, yt, Xv, yv, Xs, ys, C, epochs, batch = qat.encoded_data(settings, data.X_train, data.y_train,
                                                                  data.X_test, data.y_test)
    args = ("mlp", (32,), C, Xt, yt, Xv, yv, Xs, ys)
    kw = dict(epochs=epochs, batch_size=batch, lr=1e-2, weight_decay=0.0, batch_norm=False, seed=0)
    ce = torch.nn.CrossEntropyLoss()
    default = qat.train_qat(*args, **kw).checkpoints
    assert qat.train_qat(*args, **kw, loss=lambda net, x, y: ce(net(x), y)).checkpoints == default
    still = qat.train_qat(*args, **kw, loss=lambda net, x, y: net(x).sum() * 0).checkpoints
    assert len({rec["train"] for rec in still.values()}) == 1  # nothing moved between checkpoints
    assert still[epochs]["train"] != default[epochs]["train"]


def test_bench_network_keys():
    from bep_mcu.bench import parse_config
    assert parse_config("ArrowHead:rnn") == ("ucr:ArrowHead", {"model": "rnn", "hidden": (256,)})
    assert parse_config("ArrowHead:rnn-512") == ("ucr:ArrowHead", {"model": "rnn", "hidden": (512,)})
    assert parse_config("OSULeaf:mlp") == ("ucr:OSULeaf", {})  # the CLI's default widths
    assert parse_config("OSULeaf:512") == ("ucr:OSULeaf", {"hidden": (512,)})
    assert parse_config("prototypes-p46:512-512") == ("prototypes:flip=0.46", {"hidden": (512, 512)})
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--sets", "ArrowHead:rnn-x"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--sets: 'ArrowHead:rnn-x'" in out.stderr.strip().splitlines()[-1]
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--sets", "ArrowHead:rnn",
                          "--baseline", "qat", "--qat-rates", "fast"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--qat-rates: 'fast'" in out.stderr.strip().splitlines()[-1]
    # hostile keys are refused by name before any data set loads or network trains
    for key, words in (("ArrowHead:rnn-99999999", "1..32767"), ("ArrowHead:" + "-".join(["8"] * 9), "1..4"),
                       ("GunPoint:512-0", "1..32767"), ("Nope:mlp", "names no UCR set"),
                       ("prototypes-p1e9:512", "prototypes-p<digits")):
        out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--sets", key],
                             capture_output=True, text=True, timeout=120)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and "Traceback" not in out.stderr and f"'{key}'" in last and words in last, last
        assert not out.stdout  # refused before the table's header


@pytest.mark.parametrize("args,words", [
    (["--sets", ""], ("--sets", "empty key")),  # was: the whole default table
    (["--sets", ",,,"], ("--sets", "empty key")),  # was: exit 0, nothing measured
    (["--sets", "GunPoint:mlp,,ArrowHead:rnn"], ("--sets", "empty key")),
    (["--baseline", "qat", "--sets", ""], ("--sets", "empty key")),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-rates", ""], ("--qat-rates", "positive")),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-rates", ",,"], ("--qat-rates",)),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-rates", "nan"], ("--qat-rates",)),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-rates", "٣"], ("--qat-rates",)),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-decays", ""], ("--qat-decays", "non-negative")),
    (["--baseline", "qat", "--sets", "GunPoint:mlp", "--qat-decays", "-1e-4"], ("--qat-decays",)),
    (["--sets", "GunPoint:mlp", "--seeds", "0"], ("--seeds",)),
    (["--sets", "GunPoint:mlp", "--seeds", "３"], ("--seeds",)),
])
def test_bench_refuses_empty_and_bad_lists_before_any_training(args, words):
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", *args], capture_output=True, text=True,
                         timeout=120)
    assert_one_error_line(out.returncode, out.stderr, words, status=2)
    assert not out.stdout  # refused before the table's header
