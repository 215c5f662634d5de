"""Dataset loaders: built-in sets on real data, user files, and every bad input."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bep_mcu.data.datasets import (
    Dataset,
    available_ucr,
    check_xy,
    load_dataset,
    load_files,
    stratified_split,
)
from bep_mcu.errors import BEPError

SMALL_PROTOTYPES = "prototypes:classes=5,features=200,flip=0.3,samples=3000,seed=7"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def csv_rows(n: int, label=lambda i: i % 2) -> str:
    """A valid CSV body with two features; row i has x1 = i, x2 = 2 i."""
    return "".join(f"{i},{2 * i},{label(i)}\n" for i in range(n))


# ----------------------------------------------------------------------- prototypes


def test_prototypes_defaults_shape_and_values():
    ds = load_dataset("prototypes")
    assert ds.name == "prototypes" and ds.kind == "tabular"
    assert ds.X_train.shape == (10000, 1000) and ds.X_test.shape == (2000, 1000)
    assert ds.X_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.X_train)) == {-1.0, 1.0}
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_prototypes_overrides_and_last_sixth_is_test():
    ds = load_dataset(SMALL_PROTOTYPES)
    assert ds.X_train.shape == (2500, 200) and ds.X_test.shape == (500, 200)
    assert set(np.unique(np.concatenate([ds.y_train, ds.y_test]))) == set(range(5))


def test_prototypes_deterministic_and_seeded():
    a, b = load_dataset(SMALL_PROTOTYPES), load_dataset(SMALL_PROTOTYPES)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load_dataset(SMALL_PROTOTYPES.replace("seed=7", "seed=8"))
    assert not np.array_equal(a.X_train, c.X_train)


def test_prototypes_flip_rate_matches_p():
    # The prototype of a class is recovered by a per-class majority vote (p < 0.5);
    # the fraction of bits that disagree with it estimates p.
    p = 0.3
    ds = load_dataset(f"prototypes:classes=4,features=500,flip={p},samples=6000,seed=1")
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    rates = []
    for c in range(4):
        prototype = np.where(X[y == c].mean(axis=0) >= 0, 1.0, -1.0)
        rates.append(np.mean(X[y == c] != prototype))
    # 750 000 bits per estimate: the standard error is about 0.0005.
    np.testing.assert_allclose(rates, p, atol=0.005)
    # Classes are drawn uniformly: each about 1/4 of 6000 (sd ~ 34).
    assert np.all(np.abs(np.bincount(y) - 1500) < 150)


def test_prototypes_flip_zero_gives_exact_prototypes():
    ds = load_dataset("prototypes:classes=3,features=64,flip=0,samples=600")
    for c in range(3):
        rows = ds.X_train[ds.y_train == c]
        assert np.all(rows == rows[0])


@pytest.mark.parametrize("params, text", [
    ("colour=3", "unknown parameter 'colour'"),
    ("classes=abc", "classes='abc' is not an integer"),
    ("flip=x", "flip='x' is not a number"),
    ("flip=1.5", "flip=1.5 must be between 0 and 1"),
    ("classes=1", "classes=1 must be at least 2"),
    ("samples=10", "samples=10 is too small"),
    ("features=0", "features=0 must be at least 1"),
    ("seed", "parameter 'seed' needs a value"),
])
def test_prototypes_bad_parameters(params, text):
    with pytest.raises(BEPError, match=re.escape(text)):
        load_dataset(f"prototypes:{params}")


# --------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_stratification():
    ds = load_dataset("digits")
    assert ds.kind == "tabular" and ds.X_train.shape[1] == 64
    assert len(ds.X_train) + len(ds.X_test) == 1797
    assert abs(len(ds.X_test) - 0.2 * 1797) <= 10
    train_counts = np.bincount(ds.y_train, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(test_counts > 0)
    fraction = test_counts / (train_counts + test_counts)
    np.testing.assert_allclose(fraction, 0.2, atol=0.01)


def test_digits_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)


# ------------------------------------------------------------------------------ UCR


def test_ucr_gunpoint_official_split():
    ds = load_dataset("ucr:GunPoint")
    assert ds.name == "ucr:GunPoint" and ds.kind == "series"
    assert ds.X_train.shape == (50, 150, 1) and ds.X_test.shape == (150, 150, 1)
    assert ds.X_train.dtype == np.float64
    assert ds.y_train.dtype.kind == "U" and set(ds.y_train) == {"1", "2"}


def test_ucr_italy_power_demand():
    ds = load_dataset("ucr:ItalyPowerDemand")
    assert ds.X_train.shape == (67, 24, 1) and ds.X_test.shape == (1029, 24, 1)
    assert set(ds.y_test) == {"1", "2"}


def test_ucr_multivariate_is_time_major():
    from aeon.datasets import load_from_ts_file

    from bep_mcu.data.datasets import _aeon_data_dir

    ds = load_dataset("ucr:BasicMotions")
    assert ds.X_train.shape == (40, 100, 6)
    raw, _ = load_from_ts_file(str(_aeon_data_dir() / "BasicMotions/BasicMotions_TRAIN.ts"))
    np.testing.assert_array_equal(ds.X_train[3, :, 2], raw[3, 2, :])


def test_ucr_unequal_length_padded_with_last_value():
    from aeon.datasets import load_from_ts_file

    from bep_mcu.data.datasets import _aeon_data_dir

    ds = load_dataset("ucr:JapaneseVowels")
    raw, _ = load_from_ts_file(str(_aeon_data_dir() / "JapaneseVowels/JapaneseVowels_TRAIN.ts"))
    assert isinstance(raw, list)
    T = ds.X_train.shape[1]
    assert ds.X_train.shape == (270, T, 12) and ds.X_test.shape[1:] == (T, 12)
    i = int(np.argmin([s.shape[1] for s in raw]))
    n = raw[i].shape[1]
    assert n < T
    np.testing.assert_array_equal(ds.X_train[i, :n, :], raw[i].T)
    np.testing.assert_array_equal(ds.X_train[i, n:, :], np.repeat(raw[i][:, -1:].T, T - n, 0))


def test_ucr_unknown_name_lists_available():
    with pytest.raises(BEPError, match=r"unknown UCR dataset 'Foo'; available: .*ArrowHead, "
                                       r"BasicMotions.*GunPoint"):
        load_dataset("ucr:Foo")


def test_available_ucr_only_classification_sets():
    names = available_ucr()
    assert {"GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "OSULeaf"} <= set(names)
    assert "Covid3Month" not in names  # a regression set (@targetLabel)
    assert "Airline" not in names  # no .ts files
    assert names == sorted(names)


def test_unknown_dataset_lists_forms():
    with pytest.raises(BEPError, match=r"unknown dataset 'mnist'.*prototypes.*digits.*ucr:"):
        load_dataset("mnist")


# ---------------------------------------------------------------------- stratified


def test_stratified_split_every_class_both_sides_and_deterministic():
    y = np.array(["a"] * 2 + ["b"] * 3 + ["c"] * 50 + ["d"])
    tr, te = stratified_split(y, 0.2, seed=3)
    assert sorted(np.concatenate([tr, te])) == list(range(len(y)))
    for c in "abc":
        assert c in set(y[tr]) and c in set(y[te])
    assert "d" not in set(y[te])  # a single sample stays in training
    assert np.sum(y[te] == "c") == 10
    tr2, te2 = stratified_split(y, 0.2, seed=3)
    np.testing.assert_array_equal(te, te2)
    _, te3 = stratified_split(y, 0.2, seed=4)
    assert not np.array_equal(te, te3)


def test_stratified_split_bad_fraction():
    with pytest.raises(BEPError, match="test fraction"):
        stratified_split(np.array([0, 1]), 1.0, 0)


# ------------------------------------------------------------------------------ CSV


def test_csv_label_last_column_int_labels(tmp_path):
    path = write(tmp_path / "d.csv", "x1,x2,cls\n" + csv_rows(20))
    ds = load_files(path)
    assert ds.name == path and ds.kind == "tabular"
    assert ds.y_train.dtype == np.int64
    assert len(ds.X_train) == 16 and len(ds.X_test) == 4
    # Rows stay intact: x2 = 2 x1 and the label is x1 % 2.
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_array_equal(X[:, 1], 2 * X[:, 0])
    np.testing.assert_array_equal(y, X[:, 0].astype(int) % 2)


def test_csv_named_label_column_and_str_labels(tmp_path):
    body = "".join(f"{'cat' if i % 2 else 'dog'}, {i}.5 ,{-i}\n" for i in range(10))
    path = write(tmp_path / "d.csv", "label,a,b\n" + body)
    ds = load_files(path)
    assert ds.y_train.dtype.kind == "U" and set(ds.y_train) == {"cat", "dog"}
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_array_equal(X[:, 1], -(X[:, 0] - 0.5))
    np.testing.assert_array_equal(y == "cat", (X[:, 0] - 0.5) % 2 == 1)


def test_csv_labels_in_other_scripts_digits_are_names_not_integers(tmp_path):
    """'٣' (Arabic-Indic three) is another class than '3': numpy and int() would read both as 3."""
    path = write(tmp_path / "d.csv", "x1,x2,y\n" + csv_rows(20, label=lambda i: "3" if i % 2 else "٣"))
    ds = load_files(path)
    assert ds.y_train.dtype.kind == "U" and set(ds.y_train) == {"3", "٣"}


def test_csv_split_seed_changes_split(tmp_path):
    path = write(tmp_path / "d.csv", "x1,x2,y\n" + csv_rows(40))
    a, b = load_files(path, split_seed=0), load_files(path, split_seed=1)
    assert not np.array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.X_test, load_files(path, split_seed=0).X_test)


def test_csv_with_test_file(tmp_path):
    train = write(tmp_path / "train.csv", "x1,x2,y\n" + csv_rows(10))
    test = write(tmp_path / "test.csv", "x1,x2,y\n" + csv_rows(4))
    ds = load_files(train, test_path=test)
    assert len(ds.X_train) == 10 and len(ds.X_test) == 4
    np.testing.assert_array_equal(ds.X_test[:, 0], [0, 1, 2, 3])


def test_test_file_feature_count_mismatch(tmp_path):
    train = write(tmp_path / "train.csv", "x1,x2,y\n" + csv_rows(10))
    test = write(tmp_path / "test.csv", "x1,y\n1,0\n2,1\n")
    with pytest.raises(BEPError, match="test data has 1 features, training data has 2"):
        load_files(train, test_path=test)


def test_test_file_with_unseen_label(tmp_path):
    train = write(tmp_path / "train.csv", "x1,x2,y\n" + csv_rows(10))
    test = write(tmp_path / "test.csv", "x1,x2,y\n1,2,0\n3,4,cat\n")
    with pytest.raises(BEPError, match="never seen in training: 'cat'"):
        load_files(train, test_path=test)


@pytest.mark.parametrize("text, message", [
    ("x1,x2,y\n1,2,0\n3,4,1\n5,6,0\n7,abc,1\n", "line 5, column 'x2': 'abc' is not a number"),
    ("x1,x2,y\n1,2,0\n3,4,1\n5,,0\n", "line 4, column 'x2': '' is not a number"),
    ("a,b,c,y\n" + "1,2,3,0\n" * 5 + "1,2,1\n", "line 7 has 3 fields, expected 4"),
    ("", "empty file"),
    ("x1,x2,y\n", "header only"),
    ("1,2,0\n3,4,1\n", "line 1 looks like data; a header row"),
    ("x1,x2,y\n1,2,0\n3,4,\n", "line 3, column 'y': empty label"),
    ("x1,x2,y\n1,2,a\n3,4,a\n", "only one class ('a') in"),
    ("x1,x2,y\n1,nan,0\n3,4,1\n", "NaN value at sample 0, feature 1"),
    ("x1,x2,y\n1,2,0\n3,inf,1\n", "infinite value at sample 1, feature 1"),
    ("y\n0\n1\n", "at least one feature column"),
])
def test_csv_bad_inputs(tmp_path, text, message):
    path = write(tmp_path / "data.csv", text)
    with pytest.raises(BEPError, match=re.escape(message)) as info:
        load_files(path)
    assert "\n" not in str(info.value)
    if "line" in message:
        assert str(info.value).startswith(path)


def test_missing_file_names_path(tmp_path):
    path = str(tmp_path / "x.csv")
    message = f"cannot read data file '{path}': No such file or directory"
    with pytest.raises(BEPError, match=re.escape(message)):
        load_files(path)
    with pytest.raises(BEPError, match="cannot read .*x.npz"):
        load_files(str(tmp_path / "x.npz"))


def test_unsupported_extension(tmp_path):
    with pytest.raises(BEPError, match=r"unsupported file type '.txt'; use .csv, .npz, .npy, an IDX file"):
        load_files(write(tmp_path / "d.txt", "x,y\n1,0\n"))


def test_load_dataset_forwards_file_paths(tmp_path):
    path = write(tmp_path / "d.csv", "x1,x2,y\n" + csv_rows(10))
    assert isinstance(load_dataset(path), Dataset)


# ------------------------------------------------------------------------------ NPZ


def test_npz_split_layout(tmp_path):
    rng = np.random.default_rng(0)
    X_tr, X_te = rng.normal(size=(12, 5)), rng.normal(size=(6, 5))
    y_tr, y_te = np.arange(12) % 3, np.arange(6) % 3
    path = str(tmp_path / "d.npz")
    np.savez(path, X_train=X_tr, y_train=y_tr, X_test=X_te, y_test=y_te)
    ds = load_files(path)
    assert ds.kind == "tabular" and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.X_train, X_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)


def test_npz_xy_layout_3d_is_series_and_split(tmp_path):
    X = np.arange(20 * 7 * 2, dtype=np.float32).reshape(20, 7, 2)
    y = np.array(["up", "down"] * 10)
    path = str(tmp_path / "d.npz")
    np.savez(path, X=X, y=y)
    ds = load_files(path)
    assert ds.kind == "series" and ds.X_train.dtype == np.float64
    assert ds.X_train.shape == (16, 7, 2) and ds.X_test.shape == (4, 7, 2)
    assert ds.y_train.dtype.kind == "U"
    # Each row keeps its label: even sample index <-> "up".
    idx = (ds.X_test[:, 0, 0] // 14).astype(int)
    np.testing.assert_array_equal(ds.y_test, y[idx])


def test_npz_xy_with_test_file(tmp_path):
    train, test = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    np.savez(train, X=np.arange(8.0).reshape(4, 2), y=[0, 1, 0, 1])
    np.savez(test, X=np.ones((2, 2)), y=[1, 0])
    ds = load_files(train, test_path=test)
    assert len(ds.X_train) == 4 and len(ds.X_test) == 2


def test_npz_missing_key_names_key_and_present_keys(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, X_train=np.zeros((4, 2)), y_train=[0, 1, 0, 1], X_test=np.zeros((2, 2)))
    present = "keys present: X_train, y_train, X_test"
    with pytest.raises(BEPError, match=rf"missing key 'y_test'.*{present}"):
        load_files(path)
    np.savez(path, features=np.zeros((4, 2)))
    with pytest.raises(BEPError, match=r"missing key 'X'.*keys present: features"):
        load_files(path)


def test_npz_object_array_refused(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, X=np.array([[1, "a"]], dtype=object), y=np.array([0]))
    with pytest.raises(BEPError, match="object"):
        load_files(path)


@pytest.mark.parametrize("content", [b"not a zip at all", b"", b"PK\x03\x04broken"])
def test_npz_corrupt_file(tmp_path, content):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(BEPError, match="damaged archive|not an .npz archive"):
        load_files(str(path))


def test_npz_corrupt_member(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((50, 4)), y=np.arange(50) % 2)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("X.npy")
    raw[info.header_offset + 200] ^= 0xFF  # inside X's data: CRC check fails
    path.write_bytes(bytes(raw))
    with pytest.raises(BEPError, match="damaged archive|not an .npz archive"):
        load_files(str(path))


def test_npz_test_part_and_test_file_conflict(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, X_train=np.zeros((4, 2)), y_train=[0, 1, 0, 1],
             X_test=np.zeros((2, 2)), y_test=[0, 1])
    with pytest.raises(BEPError, match="already holds a test part"):
        load_files(path, test_path=path)


def test_npz_non_numeric_x(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, X=np.array([["a", "b"], ["c", "d"]]), y=[0, 1])
    with pytest.raises(BEPError, match="X must be numeric"):
        load_files(path)


# ------------------------------------------------------------------------- check_xy


@pytest.mark.parametrize("X, y, message", [
    (np.array([["a"], ["b"]]), [0, 1], "src: X must be numeric"),
    (np.array([[0.0, 1.0], [np.inf, 0.0]]), [0, 1], "src: infinite value at sample 1, feature 0"),
    (np.array([[0.0, 1.0], [2.0, np.nan]]), [0, 1], "src: NaN value at sample 1, feature 1"),
    (np.zeros((3, 2)), [0, 1], "src: X has 3 samples but y has 2 labels"),
    (np.zeros((2, 2)), ["a", "a"], "only one class ('a') in src"),
    (np.zeros((2, 2)), [4, 4], "only one class (4) in src"),
    (np.zeros((0, 2)), np.zeros(0), "src: no samples"),
    (np.zeros(4), [0, 1, 0, 1], "src: X must be (samples, features)"),
    (np.zeros((2, 2)), [[0], [1]], "src: y must be 1-D"),
])
def test_check_xy_rejects(X, y, message):
    with pytest.raises(BEPError, match=re.escape(message)):
        check_xy(X, np.asarray(y), "src")


def test_check_xy_series_nan_position():
    X = np.zeros((3, 5, 2))
    X[2, 4, 1] = np.nan
    with pytest.raises(BEPError, match="sample 2, time step 4, channel 1"):
        check_xy(X, np.array([0, 1, 0]), "s")


def test_check_xy_accepts_valid():
    check_xy(np.zeros((2, 3), dtype=np.int8), np.array(["a", "b"]), "ok")
