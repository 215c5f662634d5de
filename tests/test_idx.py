"""The paper's other data formats as untrusted input: IDX files (MNIST's, gzipped or not) and
NumPy arrays (.npy, one file per NPZ key), read by ``--data`` as a file or a folder: they train,
and a damaged or forged file is one line naming it, exit 2, with nothing allocated beyond
the bytes it holds."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from bep_mcu.data.datasets import load_files
from bep_mcu.errors import BEPError

from .conftest import assert_ok, assert_user_error, invoke, last_json


def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape) + a.tobytes()


def write(path, data: bytes):
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture(scope="module")
def digits():
    d = load_digits()  # the bundled set, as MNIST's files hold it: uint8 images, uint8 labels
    return np.clip(d.images, 0, 255).astype(np.uint8), d.target.astype(np.uint8)


@pytest.fixture
def idx_folder(tmp_path, digits):
    X, y = digits
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(X[:1500]))
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(y[:1500]))
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(X[1500:]))  # one part gzipped, one not
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(y[1500:]))
    return tmp_path


def test_a_folder_of_idx_files_trains(idx_folder, digits, tmp_path):
    result = invoke("train", "--data", idx_folder, "--hidden", "32", "--epochs", "2", "--json",
                    "--out", tmp_path / "m.npz")
    assert_ok(result)
    out = last_json(result.stdout)
    assert (out["n_train"], out["n_test"]) == (1500, len(digits[1]) - 1500)
    assert out["test_accuracy"] > 0.5
    data = load_files(str(idx_folder))
    assert data.X_train.shape == (1500, 64) and data.kind == "tabular"  # images flattened to features
    assert np.array_equal(data.X_test, digits[0][1500:].reshape(-1, 64))
    assert np.array_equal(data.y_train, digits[1][:1500])
    result = invoke("eval", tmp_path / "m.npz", "--data", idx_folder, "--json")
    assert_ok(result)
    assert last_json(result.stdout)["n"] == len(digits[1]) - 1500
    # every command that reads --data takes the folder: golden's vectors, adapt's source data
    assert_ok(invoke("golden", tmp_path / "m.npz", "--data", idx_folder, "--batches", "2", "--out", tmp_path / "g.bin"))
    result = invoke("adapt", tmp_path / "m.npz", "--data", idx_folder, "--source-data", idx_folder,
                    "--epochs", "1", "--json")
    assert_ok(result)
    assert last_json(result.stdout)["source_before"] == pytest.approx(out["test_accuracy"])


def test_an_images_file_reads_its_labels_beside_it(idx_folder, digits):
    data = load_files(str(idx_folder / "train-images-idx3-ubyte.gz"))  # no test part: the 80/20 split
    assert len(data.y_train) + len(data.y_test) == 1500
    (idx_folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(BEPError, match="no labels file beside it"):
        load_files(str(idx_folder / "train-images-idx3-ubyte.gz"))


def test_other_value_types_are_read_big_endian(tmp_path):
    X = (np.arange(24).reshape(6, 2, 2) - 7).astype(">i2")
    write(tmp_path / "a-images-idx3-ubyte", idx_bytes(X, 0x0B))
    write(tmp_path / "a-labels-idx1-ubyte", idx_bytes(np.array([0, 1] * 3, dtype=">i4"), 0x0C))
    data = load_files(str(tmp_path / "a-images-idx3-ubyte"), split_seed=0)
    assert sorted(np.concatenate([data.X_train, data.X_test]).ravel().tolist()) == list(range(-7, 17))


def header(code: int, *dims: int) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("images, words", [
    (b"\x00\x00\x08", ["truncated IDX header"]),
    (header(0x08, 10, 8)[:9], ["truncated IDX header"]),
    (b"PK\x03\x04" + bytes(20), ["not an IDX file", "magic 504b0304"]),
    (header(0x07, 10, 8, 8), ["not an IDX file"]),
    (bytes([0, 0, 8, 9]) + bytes(36), ["not an IDX file", "1..4 dimensions"]),
    (header(0x08, 2**32 - 1, 2**32 - 1, 2**32 - 1), ["its header declares", "more than the limit"]),
    (header(0x08, 100, 8, 8) + bytes(64), ["holds 64 bytes of values", "declares 6400", "truncated"]),
    (header(0x08, 1, 8, 8) + bytes(65), ["more values than its header declares"]),
])
@pytest.mark.parametrize("gz", [False, True])
def test_a_damaged_or_forged_idx_file_is_one_line(tmp_path, digits, images, words, gz):
    suffix = ".gz" if gz else ""
    path = write(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    write(tmp_path / f"train-labels-idx1-ubyte{suffix}", idx_bytes(digits[1][:1]))
    line = assert_user_error(invoke("train", "--data", path, "--out", tmp_path / "m.npz"), f"IDX file '{path}'",
                             *words)
    assert len(line) < 400
    assert not (tmp_path / "m.npz").exists()


def test_a_damaged_gzip_stream_is_one_line(tmp_path, digits):
    data = gzip.compress(idx_bytes(digits[0][:50]))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data[:len(data) // 2] + bytes(10))
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(digits[1][:50]))
    assert_user_error(invoke("train", "--data", path, "--out", tmp_path / "m.npz"), f"IDX file '{path}'")


# A gzipped header that claims 400 MB, within the memory limit, over 1 KB of values: reading it
# must fail without allocating what the header claims (the values are read in chunks).
FORGED = """
import resource, sys
from bep_mcu.data import idx
from bep_mcu.errors import BEPError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    idx.read_idx(sys.argv[1], 1 << 30, 1 << 40)
except BEPError as e:
    print(str(e))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)  # MiB
"""


def test_a_forged_size_allocates_only_the_bytes_present(tmp_path):
    path = write(tmp_path / "train-images-idx3-ubyte.gz", header(0x08, 500_000, 28, 28) + bytes(1024))
    run = subprocess.run([sys.executable, "-c", FORGED, str(path)], capture_output=True, text=True, timeout=120,
                         check=True)
    message, grown = run.stdout.splitlines()
    assert "holds 1024 bytes of values, its header declares 392000000" in message
    assert int(grown) < 50, f"{grown} MiB for a file of 1 KiB"


# ---------------------------------------------------------------------- .npy


def test_a_folder_of_npy_arrays_trains(tmp_path, digits):
    X, y = digits
    for name, a in (("X_train", X[:1500].reshape(1500, -1).astype(np.float32)), ("y_train", y[:1500]),
                    ("X_test", X[1500:].reshape(-1, 64)), ("y_test", y[1500:])):
        np.save(tmp_path / f"{name}.npy", a)
    for data in (tmp_path, tmp_path / "X_train.npy"):
        result = invoke("train", "--data", data, "--hidden", "32", "--epochs", "1", "--json",
                        "--out", tmp_path / "m.npz")
        assert_ok(result)
        assert last_json(result.stdout)["n_train"] == 1500


@pytest.mark.parametrize("case, words", [
    ("object", ["holds object (pickled) arrays"]),
    ("forged", ["declares (1000000, 64) float64", "holds 512 bytes", "damaged or forged"]),
    ("huge", ["more than the limit"]),
    ("not npy", ["not an .npy array"]),
    ("no labels", ["missing key 'y'"]),
])
def test_a_damaged_or_forged_npy_file_is_one_line(tmp_path, case, words):
    x = tmp_path / "X.npy"
    np.save(tmp_path / "y.npy", np.arange(8) % 2)
    if case == "object":
        np.save(x, np.array([{}] * 8, dtype=object), allow_pickle=True)
    elif case in ("forged", "huge"):
        with open(x, "wb") as f:  # a header claiming more than the 512 bytes that follow it
            shape = (1000000, 64) if case == "forged" else (10**12, 10**6)
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
            f.write(bytes(512))
    elif case == "not npy":
        x.write_bytes(b"x,y\n1,0\n")
    else:
        np.save(x, np.zeros((8, 8)))
        (tmp_path / "y.npy").unlink()
    assert_user_error(invoke("train", "--data", x, "--out", tmp_path / "m.npz"), *words)
    assert not (tmp_path / "m.npz").exists()


def test_npy_files_are_named_as_the_npz_keys(tmp_path):
    np.save(tmp_path / "features.npy", np.zeros((8, 8)))
    assert_user_error(invoke("train", "--data", tmp_path / "features.npy", "--out", tmp_path / "m.npz"),
                      "X.npy or X_train.npy")
    (tmp_path / "features.npy").unlink()
    assert_user_error(invoke("train", "--data", tmp_path, "--out", tmp_path / "m.npz"), "a data folder holds",
                      "train-images-idx3-ubyte")


def test_a_missing_npy_file_is_named(tmp_path):
    assert_user_error(invoke("train", "--data", tmp_path / "X_train.npy", "--out", tmp_path / "m.npz"),
                      f"cannot read data file '{tmp_path / 'X_train.npy'}'", "No such file")
