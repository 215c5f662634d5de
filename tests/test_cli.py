"""The ``bep-mcu`` command line, end to end.

A few runs go through the installed console script (``subprocess``), so the entry
point and the real exit codes are exercised; the rest use click's ``CliRunner`` on
``bep_mcu.cli.main.cli``. Every bad input must end with a non-zero status and exactly
one line on standard error, ``error: ...`` naming the problem, no traceback, and no
model file written (an existing one at ``--out`` stays byte for byte).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bep_mcu import modelio

from .conftest import assert_ok, assert_one_error_line, assert_user_error, blobs, invoke, last_json

DATASET = "prototypes:classes=3,features=64,samples=600"
# The binary prototypes pass through (the byte counts below are a 64-input network's); under "auto"
# binary rows of fewer than 256 features get copies of each bit (test_learning_defaults.py).
SIZE = ["--hidden", "32", "--epochs", "2"]
FAST = ["--binarize", "passthrough", *SIZE]
TRAIN_KEYS = {"test_accuracy", "train_accuracy", "epochs", "seconds", "samples_per_second", "model"}
BEP_MCU = shutil.which("bep-mcu")


# ---------------------------------------------------------------------- helpers


def train_json(tmp_path: Path, *args: str, out: str = "model.npz") -> tuple[dict, Path]:
    path = tmp_path / out
    result = invoke("train", *args, "--out", path, "--json")
    assert_ok(result)
    return last_json(result.stdout), path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict, Path]:
    """One trained model (read-only for the tests: copy it before changing it)."""
    return train_json(tmp_path_factory.mktemp("trained"), "--dataset", DATASET, *FAST)


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    dst = tmp_path / "copy.npz"
    shutil.copyfile(trained[1], dst)
    return dst


def write_csv(path: Path, rows: list[list], header: list[str]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def series(n: int, length: int, seed: int = 0):
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    X = np.sin(2 * np.pi * np.where(y == 0, 2, 5)[:, None] * t + g.uniform(0, 6.3, (n, 1)))
    return X + 0.3 * g.normal(size=(n, length)), y


def csv_of(path: Path, X: np.ndarray, y) -> Path:
    header = [f"f{j}" for j in range(X.shape[1])] + ["label"]
    return write_csv(path, [[*map(repr, map(float, row)), label] for row, label in zip(X, y)], header)


def rewrite_member(src: Path, dst: Path, member: str, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, edit(data) if info.filename == member else data)


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


# ------------------------------------------------------------- console script


@pytest.mark.skipif(BEP_MCU is None, reason="bep-mcu console script not installed")
def test_console_script_train_eval_info(tmp_path):
    out = tmp_path / "m.npz"
    run = lambda *a: subprocess.run([BEP_MCU, *map(str, a)], capture_output=True, text=True,  # noqa: E731
                                    cwd=tmp_path, timeout=120)
    p = run("train", "--dataset", DATASET, *FAST, "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    result = last_json(p.stdout)
    assert TRAIN_KEYS <= set(result)
    assert len(p.stdout.strip().splitlines()) == 1, "only the JSON object on stdout"
    assert "500 training and 100 test samples" in p.stderr  # progress goes to stderr
    assert out.is_file() and result["model"] == str(out)

    p = run("eval", out, "--dataset", DATASET, "--json")
    assert p.returncode == 0, p.stderr
    ev = last_json(p.stdout)
    assert ev["accuracy"] == result["test_accuracy"] and ev["n"] == 100

    p = run("info", out, "--json")
    assert p.returncode == 0, p.stderr
    assert last_json(p.stdout)["layers"][0]["shape"] == [32, 64]

    p = run("--version")
    assert p.returncode == 0 and "bep-mcu" in p.stdout


@pytest.mark.skipif(BEP_MCU is None, reason="bep-mcu console script not installed")
def test_console_script_user_errors(tmp_path, trained):
    out = tmp_path / "m.npz"
    p = subprocess.run([BEP_MCU, "train", "--data", str(tmp_path / "missing.csv"), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert_one_error_line(p.returncode, p.stderr, ("missing.csv",))
    assert not out.exists()

    bad = tmp_path / "bad.npz"
    raw = bytearray(trained[1].read_bytes())
    bad.write_bytes(bytes(raw[: len(raw) // 2]))
    p = subprocess.run([BEP_MCU, "info", str(bad)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert_one_error_line(p.returncode, p.stderr, ("bad.npz", "not a bep-mcu model file"))


@pytest.mark.skipif(BEP_MCU is None, reason="bep-mcu console script not installed")
def test_console_script_damaged_zip_directory_is_a_user_error(tmp_path, trained):
    """One flipped bit in the zip directory: still a user error, not a traceback."""
    bad = tmp_path / "bad.npz"
    raw = bytearray(trained[1].read_bytes())
    raw[bytes(raw).find(b"PK\x01\x02") + 10] ^= 0x01  # compression method field
    bad.write_bytes(bytes(raw))
    p = subprocess.run([BEP_MCU, "info", str(bad)], capture_output=True, text=True, timeout=120)
    assert_one_error_line(p.returncode, p.stderr, ("bad.npz",))


def test_help_lists_the_commands():
    result = invoke("--help")
    assert_ok(result)
    for command in ("train", "eval", "info"):
        assert command in result.stdout


# ------------------------------------------------------------------------ train


def test_train_json(trained):
    result, path = trained
    assert TRAIN_KEYS <= set(result)
    assert path.is_file() and result["model"] == str(path)
    assert result["epochs"] == 2 and result["hidden"] == [32] and result["network"] == "mlp"
    assert result["n_train"] == 500 and result["n_test"] == 100 and result["inputs"] == 64
    assert 0.0 <= result["test_accuracy"] <= 1.0 and 0.0 <= result["train_accuracy"] <= 1.0
    assert result["seconds"] > 0 and result["samples_per_second"] > 0
    assert result["binarize"] == "passthrough"


def test_train_json_stdout_is_one_object_progress_on_stderr(tmp_path):
    result = invoke("train", "--dataset", DATASET, *FAST, "--out", tmp_path / "m.npz", "--json")
    assert_ok(result)
    assert len(result.stdout.strip().splitlines()) == 1
    assert TRAIN_KEYS <= set(json.loads(result.stdout))
    assert "training and 100 test samples" in result.stderr


def test_train_human_output(tmp_path):
    result = invoke("train", "--dataset", DATASET, *FAST, "--out", tmp_path / "m.npz")
    assert_ok(result)
    assert "test accuracy" in result.stdout and "saved" in result.stdout
    assert "training and 100 test samples" in result.stderr


def test_train_is_reproducible(tmp_path):
    a, pa = train_json(tmp_path, "--dataset", DATASET, *FAST, "--seed", "7", out="a.npz")
    b, pb = train_json(tmp_path, "--dataset", DATASET, *FAST, "--seed", "7", out="b.npz")
    assert a["test_accuracy"] == b["test_accuracy"] and a["train_accuracy"] == b["train_accuracy"]
    np.testing.assert_array_equal(modelio.load(pa).hidden[0], modelio.load(pb).hidden[0])


def test_train_overwrites_existing_model(tmp_path, trained):
    out = tmp_path / "m.npz"
    shutil.copyfile(trained[1], out)
    before = out.read_bytes()
    result, _ = train_json(tmp_path, "--dataset", DATASET, *FAST[:2], "--hidden", "16", "--epochs", "1", out="m.npz")
    assert out.read_bytes() != before
    assert modelio.load(out).hidden[0].shape == (16, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


# ------------------------------------------------------------------------- eval


def test_eval_json_matches_train_test_accuracy(trained):
    result, path = trained
    ev = invoke("eval", path, "--dataset", DATASET, "--json")
    assert_ok(ev)
    d = last_json(ev.stdout)
    assert {"accuracy", "n"} <= set(d)
    assert d["accuracy"] == result["test_accuracy"]
    assert d["n"] == 100


def test_eval_human_output(trained):
    ev = invoke("eval", trained[1], "--dataset", DATASET)
    assert_ok(ev)
    assert "accuracy" in ev.stdout and "100 samples" in ev.stdout


def test_eval_and_info_do_not_change_the_model(trained, model_copy):
    before = model_copy.read_bytes()
    assert_ok(invoke("eval", model_copy, "--dataset", DATASET))
    assert_ok(invoke("info", model_copy))
    assert model_copy.read_bytes() == before


# ------------------------------------------------------------------------- info


def test_info_json(trained):
    info = invoke("info", trained[1], "--json")
    assert_ok(info)
    d = last_json(info.stdout)
    assert d["model"] == "mlp" and d["inputs"] == 64 and d["classes"] == 3 and d["hidden"] == [32]
    (layer,) = d["layers"]
    assert layer["shape"] == [32, 64] and layer["synapses"] == 2048
    assert layer["hidden_weight_bytes"] == 2048  # 8 bits per synapse
    assert layer["packed_weight_bytes"] == 32 * 2 * 4  # ceil(64/32) words per row
    assert layer["transpose_bytes"] == 64 * 1 * 4  # the column form: ceil(32/32) words per input bit
    assert d["classifier_bytes"] == 3 * 1 * 4
    # C state buffer: 60 B header + 44 B schedule state + int16 z (32 x 2) + a, a*, dirty-row and gate words
    # + the transpose's column of zeros (1 word), the rows' +1 counts (32 x 2) and the column list ((32 + 16) x 2)
    assert d["activation_bytes"] == 60 + 44 + 64 + 4 * 4 + 4 + 64 + 96
    assert d["training_state_bytes"] == 2048 + 256 + 256 + 348
    assert d["inference_state_bytes"] == d["inference_flash_bytes"] == 256 + 12
    assert d["inference_ram_bytes"] == 4 * (2 + 2 * 1)  # the packed input and two activation vectors
    assert d["path"] == str(trained[1])


def test_info_human_output(trained):
    info = invoke("info", trained[1])
    assert_ok(info)
    assert "hidden1" in info.stdout and "2048" in info.stdout and "inference state" in info.stdout


def test_info_summarises_the_training_history(trained):
    """What a user checks before deploying a model: epochs, samples, the last epoch's errors,
    the best validation accuracy and its epoch, and the test accuracy train noted."""
    result, path = trained
    model = modelio.load(path)
    d = last_json(invoke("info", path, "--json").stdout)["training"]
    history = model.training.history
    best = max(history, key=lambda r: r["val_accuracy"])
    assert d["epochs"] == result["epochs"] == len(history) and d["samples"] == model.training.counters.samples > 0
    assert d["train_error"] == history[-1]["train_error"] and d["val_accuracy"] == result["val_accuracy"]
    assert (d["best_val_accuracy"], d["best_epoch"]) == (best["val_accuracy"], best["epoch"])
    assert d["test_accuracy"] == result["test_accuracy"] and d["dataset"] == result["dataset"]
    assert d["trained_on"] == "host" and d["gamma"] == list(model.training.gamma)
    human = invoke("info", path).stdout
    assert f"best validation accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}" in human
    assert f"test accuracy {result['test_accuracy']:.4f}" in human


# ------------------------------------------------------------------ progress in logs


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    """A CI log gets progress lines for long work (a terminal gets tqdm's bar): train a
    line at the first epoch and every tenth, verify at each tenth of its batches."""
    result = invoke("train", "--dataset", DATASET, "--hidden", "8", "--epochs", "21", "--out", tmp_path / "m.npz")
    assert_ok(result)
    lines = [line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("epochs: ")]
    assert lines == ["epochs: 1", "epochs: 10", "epochs: 20"], result.stderr
    result = invoke("verify", tmp_path / "m.npz", "--dataset", DATASET, "--epochs", "2", "--batch-size", "50")
    assert_ok(result)
    batches = 2 * 10  # 500 training samples in batches of 50
    lines = [line for line in result.stderr.splitlines() if line.startswith("batches: ")]
    assert lines == [f"batches: {n}/{batches}" for n in range(2, batches + 1, 2)], result.stderr


def test_sweep_and_train_share_the_validation_split_default():
    from bep_mcu import sweep
    from bep_mcu.cli.main import cli
    from bep_mcu.settings import BY_NAME

    defaults = {name: {p.name: p.default for p in cli.commands[name].params} for name in ("train", "sweep")}
    assert defaults["train"]["val_fraction"] == defaults["sweep"]["val_fraction"] == BY_NAME["val_fraction"].default
    assert sweep.SweepSettings(board="microbit").val_fraction == BY_NAME["val_fraction"].default


# ------------------------------------------------------------------ data files


def test_train_and_eval_on_csv(tmp_path):
    X, y = blobs(150)
    data = csv_of(tmp_path / "blobs.csv", X, y)
    result, model = train_json(tmp_path, "--data", data, "--hidden", "32", "--epochs", "3")
    assert result["n_train"] == 120 and result["n_test"] == 30  # stratified 80/20
    assert result["test_accuracy"] > 0.8  # well-separated clusters
    ev = invoke("eval", model, "--data", data, "--json")
    assert_ok(ev)
    assert last_json(ev.stdout)["n"] == 150  # a CSV has no test part: every row


def test_train_on_csv_with_string_labels_and_label_column_first(tmp_path):
    X, y = blobs(90, features=3)
    names = np.array(["cat", "dog", "emu"])[y]
    rows = [[name, *map(float, row)] for row, name in zip(X, names)]
    data = write_csv(tmp_path / "animals.csv", rows, ["label", "a", "b", "c"])
    result, model = train_json(tmp_path, "--data", data, "--hidden", "16", "--epochs", "2")
    assert result["inputs"] == 3 * 64  # three numeric features: thermometer:64 (binarize.tabular_levels)
    info = last_json(invoke("info", model, "--json").stdout)
    assert info["labels"] == ["cat", "dog", "emu"]


def test_train_and_eval_on_npz_with_its_own_test_part(tmp_path):
    X, y = blobs(200, seed=1)
    data = tmp_path / "split.npz"
    np.savez(data, X_train=X[:150], y_train=y[:150], X_test=X[150:], y_test=y[150:])
    result, model = train_json(tmp_path, "--data", data, "--hidden", "32", "--epochs", "2")
    assert result["n_train"] == 150 and result["n_test"] == 50
    ev = invoke("eval", model, "--data", data, "--json")
    assert_ok(ev)
    d = last_json(ev.stdout)
    assert d["n"] == 50 and d["accuracy"] == result["test_accuracy"]


def test_train_says_when_classes_are_too_small_to_split(tmp_path):
    """Five samples a class: no 10 % validation split; the model trains on all the data and says so."""
    X, y = blobs(70, seed=3)
    keep = np.concatenate([np.flatnonzero(y == c)[:5] for c in np.unique(y)])
    data = tmp_path / "small.npz"
    np.savez(data, X_train=X[keep], y_train=y[keep], X_test=X, y_test=y)
    result = invoke("train", "--data", data, *SIZE, "--out", tmp_path / "m.npz", "--json")
    assert_ok(result)
    assert "training on all of the data" in result.stderr
    assert last_json(result.stdout)["val_accuracy"] is None
    assert modelio.load(tmp_path / "m.npz").training.val_fraction == 0.0
    larger = invoke("train", "--data", data, *SIZE, "--val-fraction", "0.2", "--out", tmp_path / "m2.npz", "--json")
    assert_ok(larger)  # 0.2 of five is one a class: the split is made
    assert "training on all" not in larger.stderr and last_json(larger.stdout)["val_accuracy"] is not None


def test_train_with_test_data_file(tmp_path):
    X, y = blobs(160, seed=2)
    train = csv_of(tmp_path / "train.csv", X[:120], y[:120])
    test = csv_of(tmp_path / "test.csv", X[120:], y[120:])
    result, model = train_json(tmp_path, "--data", train, "--test-data", test, "--hidden", "32", "--epochs", "2")
    assert result["n_train"] == 120 and result["n_test"] == 40
    ev = invoke("eval", model, "--data", test, "--json")
    assert_ok(ev)
    assert last_json(ev.stdout)["accuracy"] == result["test_accuracy"]


def test_train_rnn_on_npz_series(tmp_path):
    X, y = series(160, 40)
    data = tmp_path / "series.npz"
    np.savez(data, X=X, y=y)
    result, model = train_json(tmp_path, "--data", data, "--model", "rnn", "--hidden", "32", "--epochs", "2")
    assert result["network"] == "rnn" and result["steps"] == 2  # default window 20 on 40 points
    assert result["inputs"] == 20 * 8 + 8  # thermometer:8 per point, 8 bias bits
    d = last_json(invoke("info", model, "--json").stdout)
    assert d["model"] == "rnn" and d["window"] == 20 and d["steps"] == 2
    assert d["layers"][0]["shape"] == [32, 168 + 32]
    ev = invoke("eval", model, "--data", data, "--json")
    assert_ok(ev)
    assert last_json(ev.stdout)["n"] == 160


def test_train_rnn_with_explicit_window(tmp_path):
    X, y = series(120, 30)
    data = tmp_path / "series.npz"
    np.savez(data, X=X, y=y)
    result, _ = train_json(tmp_path, "--data", data, "--model", "rnn", "--window", "10", "--hidden", "16",
                           "--epochs", "1", "--bias-bits", "3")
    assert result["steps"] == 3 and result["inputs"] == 10 * 8 + 3


def test_eval_rnn_on_series_of_another_length(tmp_path):
    X, y = series(120, 30)
    np.savez(tmp_path / "s30.npz", X=X, y=y)
    _, model = train_json(tmp_path, "--data", tmp_path / "s30.npz", "--model", "rnn", "--hidden", "16",
                          "--epochs", "1")
    X2, y2 = series(20, 25)
    np.savez(tmp_path / "s25.npz", X=X2, y=y2)
    assert_user_error(invoke("eval", model, "--data", tmp_path / "s25.npz"), "length 25", "30")


# ------------------------------------------------------------- bad train inputs


def _write_bad_files(tmp: Path) -> None:
    hdr = ["a", "b", "label"]
    write_csv(tmp / "nonnum.csv", [[1, 2, 0], [3, "x", 1], [1, 2, 0], [3, 4, 1]], hdr)
    write_csv(tmp / "ragged.csv", [[1, 2, 0], [3, 4], [1, 2, 0], [3, 4, 1]], hdr)
    write_csv(tmp / "nan.csv", [[1, 2, 0], [3, "nan", 1], [1, 2, 0], [3, 4, 1]], hdr)
    write_csv(tmp / "inf.csv", [[1, 2, 0], [3, 4, 1], [1, "-inf", 0], [3, 4, 1]], hdr)
    write_csv(tmp / "one.csv", [[1, 2, 0], [3, 4, 0], [5, 6, 0]], hdr)
    write_csv(tmp / "two.csv", [[1, 2, 0], [3, 4, 1]], hdr)  # 2 samples, 2 classes
    write_csv(tmp / "ok.csv", [[1, 2, 0], [3, 4, 1], [1, 3, 0], [3, 5, 1]], hdr)
    write_csv(tmp / "three.csv", [[1, 2, 3, 0], [3, 4, 5, 1]], ["a", "b", "c", "label"])
    write_csv(tmp / "unseen.csv", [[1, 2, 0], [3, 4, 7]], hdr)
    (tmp / "junk.csv").write_bytes(bytes(range(256)) * 3)
    np.savez(tmp / "nan.npz", X_train=np.ones((4, 2)), y_train=[0, 1, 0, 1],
             X_test=np.array([[1.0, np.nan]]), y_test=[0])
    (tmp / "data.txt").write_text("a,b,label\n1,2,0\n3,4,1\n")


BAD_TRAIN = {
    # name: (arguments, words the error line must contain); {d} is the data directory
    "missing file": (["--data", "{d}/missing.csv"], ["missing.csv"]),
    "binary csv": (["--data", "{d}/junk.csv"], ["junk.csv"]),
    "non-numeric": (["--data", "{d}/nonnum.csv"], ["nonnum.csv", "line 3", "'x'", "not a number"]),
    "ragged row": (["--data", "{d}/ragged.csv"], ["ragged.csv", "line 3", "fields"]),
    "nan": (["--data", "{d}/nan.csv"], ["nan.csv", "NaN"]),
    "inf": (["--data", "{d}/inf.csv"], ["inf.csv", "infinite"]),
    "nan in npz test part": (["--data", "{d}/nan.npz"], ["nan.npz", "NaN"]),
    "single class": (["--data", "{d}/one.csv"], ["one.csv", "class"]),
    "two samples of two classes": (["--data", "{d}/two.csv"], ["two.csv"]),
    "test data with other features": (["--data", "{d}/ok.csv", "--test-data", "{d}/three.csv"],
                                      ["three.csv", "features"]),
    "test labels never trained": (["--data", "{d}/ok.csv", "--test-data", "{d}/unseen.csv"],
                                  ["unseen.csv", "7"]),
    "unknown ucr": (["--dataset", "ucr:NoSuchSet"], ["NoSuchSet", "GunPoint"]),
    "unknown dataset": (["--dataset", "mnist"], ["mnist", "prototypes"]),
    "bad prototypes key": (["--dataset", "prototypes:colors=3"], ["colors"]),
    "unsupported extension": (["--data", "{d}/data.txt"], ["data.txt", ".csv"]),
    "hidden 0": (["--dataset", DATASET, "--hidden", "0"], ["--hidden", "'0'"]),
    "hidden -3": (["--dataset", DATASET, "--hidden", "-3"], ["--hidden", "'-3'"]),
    "hidden a,b": (["--dataset", DATASET, "--hidden", "a,b"], ["--hidden", "'a,b'"]),
    "hidden 256,": (["--dataset", DATASET, "--hidden", "256,"], ["--hidden", "'256,'"]),
    "hidden bits 12": (["--dataset", DATASET, "--hidden-bits", "12"], ["hidden-bits", "12"]),
    "neither dataset nor data": ([], ["--dataset", "--data"]),
    "both dataset and data": (["--dataset", DATASET, "--data", "{d}/ok.csv"], ["exactly one"]),
    "test data with dataset": (["--dataset", DATASET, "--test-data", "{d}/ok.csv"], ["--test-data"]),
}


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_data")
    _write_bad_files(d)
    return d


@pytest.mark.parametrize("existing", [False, True], ids=["no-model", "existing-model"])
@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_train_user_errors(case, existing, bad_data, trained, tmp_path):
    args, words = BAD_TRAIN[case]
    args = [a.replace("{d}", str(bad_data)) for a in args]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "model.npz"
    if existing:
        shutil.copyfile(trained[1], out)
    before = sorted(out_dir.iterdir())
    content = out.read_bytes() if existing else None
    args += ["--out", str(out)]
    # The bad value must be the only --hidden given (click keeps the last one).
    extra = ["--epochs", "2"] + ([] if "--hidden" in args else ["--hidden", "32"])
    result = invoke("train", *args, *extra, "--json")
    assert_user_error(result, *words)
    assert sorted(out_dir.iterdir()) == before, "files appeared or vanished beside --out"
    if existing:
        assert out.read_bytes() == content
    else:
        assert not out.exists()


def test_train_out_directory_missing(tmp_path):
    """Caught as one error line, and nothing created on the way (no directories either)."""
    out = tmp_path / "no" / "such" / "m.npz"
    result = invoke("train", "--dataset", DATASET, *FAST, "--out", out, "--json")
    assert_user_error(result, "no/such", "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_train_unreadable_file(tmp_path):
    data = write_csv(tmp_path / "locked.csv", [[1, 2, 0], [3, 4, 1]], ["a", "b", "label"])
    data.chmod(0)
    try:
        result = invoke("train", "--data", data, "--out", tmp_path / "m.npz", *SIZE)
        assert_user_error(result, "locked.csv")
        assert not (tmp_path / "m.npz").exists()
    finally:
        data.chmod(0o644)


# ------------------------------------------------------------ bad model files


def _corrupt_array_data(src: Path, dst: Path) -> None:
    """Change one byte of hidden_0's data; the zip stays valid (CRCs recomputed)."""
    def flip(data: bytes) -> bytes:
        b = bytearray(data)
        b[-3] ^= 0x01
        return bytes(b)
    rewrite_member(src, dst, "hidden_0.npy", flip)


def _flip_raw_byte(src: Path, dst: Path) -> None:
    raw = bytearray(src.read_bytes())
    at = bytes(raw).find(modelio.load(src).hidden[0].tobytes())
    assert at > 0
    raw[at + 100] ^= 0x10
    dst.write_bytes(bytes(raw))


def _truncate(src: Path, dst: Path) -> None:
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) * 2 // 3])


def _newer_version(src: Path, dst: Path) -> None:
    def bump(data: bytes) -> bytes:
        doc = json.loads(np.load(io.BytesIO(data)).tobytes())
        doc["version"] = modelio.FORMAT_VERSION + 1
        return npy(np.frombuffer(json.dumps(doc).encode(), np.uint8))
    rewrite_member(src, dst, "__meta__.npy", bump)


def _foreign(src: Path, dst: Path) -> None:
    with open(dst, "wb") as f:
        np.savez(f, X=np.zeros((2, 2)), y=np.arange(2))


def _text(src: Path, dst: Path) -> None:
    dst.write_text("label,a\n1,2\n")


def _zip_method(src: Path, dst: Path) -> None:
    raw = bytearray(src.read_bytes())
    raw[bytes(raw).find(b"PK\x01\x02") + 10] ^= 0x01
    dst.write_bytes(bytes(raw))


def _npy(src: Path, dst: Path) -> None:
    with open(dst, "wb") as f:
        np.save(f, np.arange(3))


def _empty(src: Path, dst: Path) -> None:
    dst.write_bytes(b"")


BAD_MODELS = {
    "corrupted array": (_corrupt_array_data, ["corrupted"]),
    "flipped raw byte": (_flip_raw_byte, []),  # 'corrupted' or 'not a bep-mcu model file'
    "truncated": (_truncate, ["not a bep-mcu model file"]),
    "newer version": (_newer_version, [f"version {modelio.FORMAT_VERSION + 1}", "upgrade"]),
    "foreign npz": (_foreign, ["not a bep-mcu model file"]),
    "text file": (_text, ["not a bep-mcu model file"]),
    "empty file": (_empty, ["not a bep-mcu model file"]),
    "damaged zip directory": (_zip_method, []),
    "single npy": (_npy, ["not a bep-mcu model file"]),
}


@pytest.mark.parametrize("command", ["eval", "info"])
@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_file(case, command, trained, tmp_path):
    make, words = BAD_MODELS[case]
    bad = tmp_path / "bad.npz"
    make(trained[1], bad)
    args = [command, bad, "--json"] + (["--dataset", DATASET] if command == "eval" else [])
    line = assert_user_error(invoke(*args), "bad.npz", *words)
    if case == "flipped raw byte":
        assert "corrupted" in line or "not a bep-mcu model file" in line


def test_newer_version_written_by_a_newer_bep_mcu(trained, tmp_path, monkeypatch):
    """A model saved by a (simulated) newer release, through the ordinary save path."""
    from bep_mcu.estimator import BEPClassifier

    clf = BEPClassifier.load(trained[1])
    monkeypatch.setattr(modelio, "FORMAT_VERSION", modelio.FORMAT_VERSION + 1)
    clf.save(tmp_path / "future.npz")
    monkeypatch.undo()
    for args in (["info", tmp_path / "future.npz"], ["eval", tmp_path / "future.npz", "--dataset", DATASET]):
        assert_user_error(invoke(*args), "future.npz", "version", "upgrade")


@pytest.mark.parametrize("command", ["eval", "info"])
def test_missing_model_file(command, tmp_path):
    args = [command, tmp_path / "nope.npz"] + (["--dataset", DATASET] if command == "eval" else [])
    assert_user_error(invoke(*args), "nope.npz", "cannot read")


# -------------------------------------------------------------- bad eval inputs


def test_eval_feature_count_mismatch(trained):
    other = "prototypes:classes=3,features=40,samples=600"
    assert_user_error(invoke("eval", trained[1], "--dataset", other), "40", "64")


def test_eval_feature_count_mismatch_in_file(trained, tmp_path):
    X, y = blobs(30, features=5)
    data = csv_of(tmp_path / "five.csv", X, y)
    assert_user_error(invoke("eval", trained[1], "--data", data), "5", "64")


@pytest.mark.parametrize("args", [[], ["--dataset", DATASET, "--data", "x.csv"]], ids=["neither", "both"])
def test_eval_needs_exactly_one_data_source(trained, args):
    assert_user_error(invoke("eval", trained[1], *args), "--dataset", "--data")


def test_eval_missing_and_bad_data_files(trained, tmp_path, bad_data):
    assert_user_error(invoke("eval", trained[1], "--data", tmp_path / "gone.csv"), "gone.csv")
    assert_user_error(invoke("eval", trained[1], "--data", bad_data / "nan.csv"), "nan.csv", "NaN")
    assert_user_error(invoke("eval", trained[1], "--data", bad_data / "ragged.csv"), "ragged.csv", "line 3")


def test_eval_unknown_ucr_lists_available(trained):
    line = assert_user_error(invoke("eval", trained[1], "--dataset", "ucr:Nope"), "Nope")
    assert "GunPoint" in line


def test_train_warns_when_the_model_predicts_one_class(tmp_path):
    """Indicators set in 5 % of the rows, read as they are (--centre off): BEP's collapse (docs/accuracy.md,
    "Sparse features"). ``train`` still saves the model, and says what happened on standard error and in
    --json."""
    g = np.random.default_rng(0)
    X = (g.random((1600, 300)) < 0.05).astype(np.int8)
    score = (X - 0.05) @ g.standard_normal(300)
    y = (score > np.median(score)).astype(np.int64)
    data = tmp_path / "sparse.npz"
    np.savez(data, X_train=X[:1500], y_train=y[:1500], X_test=X[1500:], y_test=y[1500:])
    result = invoke("train", "--data", data, "--epochs", "5", "--batch-size", "100", "--centre", "off", "--out",
                    tmp_path / "m.npz", "--json")
    assert_ok(result)
    warning = last_json(result.stdout)["warning"]
    assert warning.startswith("the model predicts one class") and "(sparse features)" in warning
    assert f"warning: {warning}" in result.stderr and (tmp_path / "m.npz").is_file()
    healthy, _ = train_json(tmp_path, "--dataset", DATASET, *FAST, out="m2.npz")
    assert healthy["warning"] is None
