"""Model files: exact round trips, atomic writes, and every way a file can be bad.

A model file must come back bit for bit; a save that fails must leave whatever was at
the target untouched (and no temporary files beside it); and a damaged, foreign or
too-new file must be refused with one BEPError line, never read as a model and never
escape as some other exception (the CLI would print a traceback).
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays, scalar_dtypes

from bep_mcu import modelio
from bep_mcu.errors import BEPError
from bep_mcu.modelio import load_model, save_model

# A distinctive byte run so a test can find one array's data inside the raw file.
MARKER = np.random.default_rng(20240611).integers(0, 256, 64, dtype=np.uint8)


def sample_arrays() -> dict[str, np.ndarray]:
    """Arrays of several dtypes and layouts, including 0-d string arrays."""
    fortran = np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4))
    strided = np.arange(20, dtype=np.int16)[::3]  # not contiguous
    return {
        "hidden_0": np.arange(-64, 64, dtype=np.int8).reshape(8, 16),
        "hidden_1": np.array([[-32768, 32767], [0, -1]], dtype=np.int16),
        "words": np.array([0, 1, 0xFFFFFFFF, 0x80000000], dtype=np.uint32),
        "thresholds": np.array([[0.5, -1.25], [np.inf, -0.0]], dtype=np.float64),
        "f32": np.linspace(-1, 1, 5, dtype=np.float32),
        "flags": np.array([True, False, True]),
        "name0d": np.array("thermometer:4"),
        "unicode0d": np.array("dög ✓"),
        "empty0d": np.array(""),
        "int0d": np.array(7, dtype=np.int64),
        "classes": np.array(["cat", "dog", "ünïcode"]),
        "bytes": np.array([b"ab", b"\x00c"]),
        "empty": np.zeros((0, 3), dtype=np.int8),
        "fortran": fortran,
        "strided": strided,
        "marker": MARKER,
    }


SAMPLE_META = {
    "spec": {"model": "mlp", "hidden": [8, 2], "n_inputs": 16},
    "training": {"seed": 3, "history": [{"epoch": 1, "val_accuracy": 0.5}], "note": "ünï"},
    "none": None,
    "ratio": 0.1,
}


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, a in want.items():
        a = np.asarray(a)
        b = got[name]
        assert b.dtype == a.dtype, f"{name}: dtype {b.dtype} != {a.dtype}"
        assert b.shape == a.shape, f"{name}: shape {b.shape} != {a.shape}"
        assert b.tobytes() == np.ascontiguousarray(a).tobytes(), f"{name}: data differs"


def temp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    save_model(path, sample_arrays(), SAMPLE_META)
    return path


def load_error(path: Path) -> str:
    """The BEPError message of loading ``path`` (any other exception fails the test)."""
    with pytest.raises(BEPError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message, f"multi-line error: {message!r}"
    return message


def rewrite_zip(src: Path, dst: Path, edit) -> None:
    """Copy the zip at ``src`` to ``dst``, member by member, through ``edit``.

    ``edit(name, data)`` returns new bytes for the member, or None to drop it. The new
    zip gets correct CRCs, so only the model's own checksum can notice the change.
    """
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def read_member(path: Path, member: str) -> np.ndarray:
    with zipfile.ZipFile(path) as z:
        return np.load(io.BytesIO(z.read(member)), allow_pickle=False)


# ------------------------------------------------------------------ round trips


def test_round_trip_arrays_and_metadata(model_file: Path):
    arrays, meta = load_model(model_file)
    assert_same_arrays(arrays, sample_arrays())
    assert arrays["name0d"].shape == () and str(arrays["name0d"]) == "thermometer:4"
    assert str(arrays["unicode0d"]) == "dög ✓"
    assert arrays["classes"].tolist() == ["cat", "dog", "ünïcode"]
    assert meta["format"] == modelio.FORMAT_NAME
    assert meta["version"] == modelio.FORMAT_VERSION
    assert {k: v for k, v in meta.items() if k not in ("format", "version")} == SAMPLE_META


def test_round_trip_does_not_modify_inputs(tmp_path: Path):
    arrays = sample_arrays()
    before = {k: (v.copy(), v.flags.f_contiguous) for k, v in arrays.items()}
    save_model(tmp_path / "m.npz", arrays, dict(SAMPLE_META))
    for name, (copy, fortran) in before.items():
        np.testing.assert_array_equal(arrays[name], copy)
        assert arrays[name].flags.f_contiguous == fortran


def test_file_is_a_plain_npz_readable_without_pickle(model_file: Path):
    """The documented format: any numpy reads it with allow_pickle=False."""
    with np.load(model_file, allow_pickle=False) as z:
        names = set(z.files)
        meta = json.loads(z["__meta__"].tobytes())
        np.testing.assert_array_equal(z["hidden_0"], sample_arrays()["hidden_0"])
    assert names == set(sample_arrays()) | {"__meta__", "__checksum__"}
    assert meta["format"] == "bep-mcu-model" and meta["version"] == modelio.FORMAT_VERSION
    with zipfile.ZipFile(model_file) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


def test_saving_twice_gives_the_same_checksum(tmp_path: Path):
    """The checksum is a function of the content only (no time, no temp name)."""
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save_model(a, sample_arrays(), SAMPLE_META)
    save_model(b, sample_arrays(), SAMPLE_META)
    assert load_model(a)[0].keys() == load_model(b)[0].keys()
    assert read_member(a, "__checksum__.npy").tobytes() == read_member(b, "__checksum__.npy").tobytes()


def test_overwrite_replaces_previous_model(tmp_path: Path):
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.zeros(3, np.int8)}, {"n": 1})
    save_model(path, {"v": np.ones(2, np.int16)}, {"n": 2})
    arrays, meta = load_model(path)
    assert list(arrays) == ["v"] and meta["n"] == 2
    assert temp_leftovers(tmp_path) == []


def test_save_accepts_str_path_relative_to_cwd(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model("plain.npz", {"w": np.arange(3)}, {})
    np.testing.assert_array_equal(load_model("plain.npz")[0]["w"], np.arange(3))
    assert temp_leftovers(tmp_path) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
        arrays(scalar_dtypes(), array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
        min_size=1, max_size=4,
    ),
    note=st.text(max_size=20),
)
def test_round_trip_property(tmp_path: Path, data, note):
    path = tmp_path / "prop.npz"
    save_model(path, data, {"note": note})
    arrays, meta = load_model(path)
    assert_same_arrays(arrays, data)
    assert meta["note"] == note


# ---------------------------------------------------------------- atomic writes


def test_unstorable_array_leaves_existing_file_intact(model_file: Path):
    before = model_file.read_bytes()
    with pytest.raises((ValueError, BEPError), match="cannot be stored"):
        save_model(model_file, {"bad": np.array([{"a": 1}], dtype=object)}, {})
    assert model_file.read_bytes() == before
    assert temp_leftovers(model_file.parent) == []


def test_reserved_array_name_is_refused(model_file: Path):
    before = model_file.read_bytes()
    with pytest.raises((ValueError, BEPError)):
        save_model(model_file, {"__meta__": np.zeros(2)}, {})
    assert model_file.read_bytes() == before


def test_structured_array_with_objects_is_refused_or_loadable(tmp_path: Path):
    """An array whose dtype merely *contains* objects must not be pickled into the file.

    Either save refuses it (and the old file survives) or the file it wrote loads.
    """
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.arange(3)}, {})
    before = path.read_bytes()
    hidden_objects = np.zeros(2, dtype=[("a", object)])
    try:
        save_model(path, {"s": hidden_objects}, {})
    except (ValueError, BEPError):
        assert path.read_bytes() == before
        return
    load_model(path)  # the model file it wrote must be readable without pickle


def test_missing_directory_is_a_bep_error_and_writes_nothing(tmp_path: Path):
    target = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(BEPError, match="does not exist"):
        save_model(target, {"w": np.zeros(2)}, {})
    assert not target.exists() and not (tmp_path / "no").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_existing_file_intact(model_file: Path, monkeypatch, exc):
    """Half the bytes are written, then the write dies (disk full / Ctrl-C)."""
    before = model_file.read_bytes()
    real_savez = np.savez

    def dying_savez(f, **payload):
        real_savez(f, **payload)
        f.seek(0)
        f.write(b"PK\x03\x04 half-written garbage")
        raise exc

    monkeypatch.setattr(modelio.np, "savez", dying_savez)
    with pytest.raises(type(exc)):
        save_model(model_file, {"w": np.ones(100, dtype=np.int8)}, {"new": True})
    monkeypatch.undo()
    assert model_file.read_bytes() == before
    assert temp_leftovers(model_file.parent) == []
    assert load_model(model_file)[1]["training"]["seed"] == 3


def test_failing_rename_leaves_existing_file_intact(model_file: Path, monkeypatch):
    before = model_file.read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(modelio.os, "replace", refuse)
    with pytest.raises(OSError):
        save_model(model_file, {"w": np.ones(3)}, {})
    monkeypatch.undo()
    assert model_file.read_bytes() == before
    assert temp_leftovers(model_file.parent) == []


def test_target_that_is_a_directory_is_refused_and_left_alone(tmp_path: Path):
    target = tmp_path / "model.npz"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises((BEPError, OSError)):
        save_model(target, {"w": np.zeros(2)}, {})
    assert target.is_dir() and (target / "keep.txt").read_text() == "x"
    assert temp_leftovers(tmp_path) == []


def test_new_file_gets_ordinary_permissions(tmp_path: Path):
    """A saved model is as readable as any file the user creates (umask applies).

    Writing through a temporary file must not leave the model private (0600): a model
    trained in CI or on a shared machine has to be readable by its other users.
    """
    umask = os.umask(0)
    os.umask(umask)
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")
    path = tmp_path / "m.npz"
    save_model(path, {"w": np.zeros(2)}, {})
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ordinary.stat().st_mode) == 0o666 & ~umask


# ------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path):
    message = load_error(tmp_path / "nope.npz")
    assert "cannot read" in message and "nope.npz" in message


def test_directory_instead_of_file(tmp_path: Path):
    message = load_error(tmp_path)
    assert "cannot read" in message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(model_file: Path):
    model_file.chmod(0)
    try:
        assert "cannot read" in load_error(model_file)
    finally:
        model_file.chmod(0o644)


def test_array_data_changed_behind_valid_zip_crcs(model_file: Path, tmp_path: Path):
    """One byte of one array's data changes; the zip itself stays valid."""
    bad = tmp_path / "bad.npz"

    def flip(name, data):
        if name == "hidden_0.npy":
            b = bytearray(data)
            b[-5] ^= 0x01  # inside the data, past the .npy header
            return bytes(b)
        return data

    rewrite_zip(model_file, bad, flip)
    # The edited member is a valid .npy that differs from the original in one value.
    assert not np.array_equal(read_member(bad, "hidden_0.npy"), sample_arrays()["hidden_0"])
    message = load_error(bad)
    assert "corrupted" in message and "checksum" in message and "bad.npz" in message


@pytest.mark.parametrize("change", ["dtype", "shape", "rename", "drop", "extra", "meta-value"])
def test_checksum_covers_names_dtypes_shapes_and_metadata(model_file: Path, tmp_path: Path, change):
    """Same bytes, different meaning: each must be caught by the checksum."""
    bad = tmp_path / "bad.npz"
    original = sample_arrays()

    def edit(name, data):
        if change == "dtype" and name == "hidden_0.npy":
            return npy_bytes(original["hidden_0"].view(np.uint8))
        if change == "shape" and name == "hidden_0.npy":
            return npy_bytes(original["hidden_0"].reshape(16, 8))
        if change == "drop" and name == "flags.npy":
            return None
        if change == "meta-value" and name == "__meta__.npy":
            doc = json.loads(np.load(io.BytesIO(data)).tobytes())
            doc["training"]["seed"] = 4
            return npy_bytes(np.frombuffer(json.dumps(doc, sort_keys=True).encode(), np.uint8))
        return data

    rewrite_zip(model_file, bad, edit)
    if change == "rename":
        with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(bad, "w") as zout:
            for info in zin.infolist():
                new = "hidden_9.npy" if info.filename == "hidden_0.npy" else info.filename
                zout.writestr(new, zin.read(info.filename))
    if change == "extra":
        with zipfile.ZipFile(bad, "a") as z:
            z.writestr("injected.npy", npy_bytes(np.zeros(3)))
    assert "corrupted" in load_error(bad)


def test_metadata_that_is_not_json(model_file: Path, tmp_path: Path):
    bad = tmp_path / "bad.npz"
    rewrite_zip(model_file, bad, lambda name, data: npy_bytes(np.frombuffer(b"{not json", np.uint8))
                if name == "__meta__.npy" else data)
    message = load_error(bad)
    assert "corrupted" in message and "JSON" in message


def test_flip_a_byte_of_array_data_in_the_raw_file(model_file: Path):
    raw = bytearray(model_file.read_bytes())
    at = bytes(raw).find(MARKER.tobytes())
    assert at > 0 and bytes(raw).count(MARKER.tobytes()) == 1
    raw[at + 10] ^= 0x40
    model_file.write_bytes(bytes(raw))
    message = load_error(model_file)
    assert "corrupted" in message or "not a bep-mcu model file" in message


def serve_bytes_instead_of_files(monkeypatch) -> dict[str, bytes]:
    """Make load_model read from memory: sweeping thousands of variants through the
    file system costs milliseconds each, parsing them costs a fraction of that."""
    current = {"raw": b""}
    monkeypatch.setattr(modelio, "open", lambda path, mode="r": io.BytesIO(current["raw"]), raising=False)
    return current


def test_every_single_byte_flip_is_refused_or_harmless(tmp_path: Path, monkeypatch):
    """Flip each byte of a small model file in turn (three masks per byte).

    Every result must be a BEPError, or (for zip header fields numpy never relies on,
    like timestamps) a load that returns exactly the original content. Any other
    exception would reach the user as a traceback.
    """
    good = tmp_path / "good.npz"
    arrays = {"w": np.arange(-6, 6, dtype=np.int8).reshape(3, 4), "name": np.array("ab")}
    save_model(good, arrays, {"k": 1})
    raw = good.read_bytes()
    current = serve_bytes_instead_of_files(monkeypatch)
    escaped: dict[str, list[int]] = {}
    silently_changed: list[int] = []
    for i in range(len(raw)):
        for mask in (0x01, 0x80, 0xFF):
            b = bytearray(raw)
            b[i] ^= mask
            current["raw"] = bytes(b)
            try:
                got, meta = load_model(good)
            except BEPError as e:
                assert "\n" not in str(e)
                continue
            except Exception as e:  # noqa: BLE001 - the point is to catch everything else
                escaped.setdefault(f"{type(e).__name__}: {e}", []).append(i)
                continue
            same = meta["k"] == 1 and sorted(got) == sorted(arrays) and all(
                got[k].dtype == arrays[k].dtype and np.array_equal(got[k], arrays[k]) for k in arrays)
            if not same:
                silently_changed.append(i)
    assert silently_changed == [], f"flips at {silently_changed} loaded as a different model"
    assert escaped == {}, "non-BEPError exceptions (byte offsets): " + "; ".join(
        f"{k} at {v[:4]}" for k, v in escaped.items())


def test_flipped_compression_method_in_zip_directory_is_a_bep_error(model_file: Path):
    """Regression for the sweep above: one bit in the central directory's method field."""
    raw = bytearray(model_file.read_bytes())
    central = bytes(raw).find(b"PK\x01\x02")
    raw[central + 10] ^= 0x01  # compression method 0 (stored) -> 1 (shrunk)
    model_file.write_bytes(bytes(raw))
    load_error(model_file)


def test_flipped_encryption_flag_in_zip_directory_is_a_bep_error(model_file: Path):
    raw = bytearray(model_file.read_bytes())
    central = bytes(raw).find(b"PK\x01\x02")
    raw[central + 8] ^= 0x01  # general purpose flag bit 0: "encrypted"
    model_file.write_bytes(bytes(raw))
    load_error(model_file)


@pytest.mark.parametrize("keep", [0, 1, 4, 30, 0.25, 0.5, 0.9, -22, -1])
def test_truncated_file(model_file: Path, keep):
    raw = model_file.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    model_file.write_bytes(raw[:n])
    message = load_error(model_file)
    assert "not a bep-mcu model file" in message or "corrupted" in message
    assert "model.npz" in message


def test_every_truncation_is_refused(tmp_path: Path, monkeypatch):
    good = tmp_path / "good.npz"
    save_model(good, {"w": np.arange(6, dtype=np.int8)}, {})
    raw = good.read_bytes()
    current = serve_bytes_instead_of_files(monkeypatch)
    for n in range(len(raw)):
        current["raw"] = raw[:n]
        with pytest.raises(BEPError):
            load_model(good)


def test_foreign_npz_without_metadata(tmp_path: Path):
    path = tmp_path / "foreign.npz"
    np.savez(path, X=np.zeros((3, 2)), y=np.arange(3))
    message = load_error(path)
    assert "not a bep-mcu model file" in message and "metadata" in message


def test_npz_with_metadata_of_another_format(tmp_path: Path):
    path = tmp_path / "other.npz"
    np.savez(path, __meta__=np.frombuffer(b'{"format": "other-tool", "version": 1}', np.uint8),
             __checksum__=np.frombuffer(b"0" * 64, np.uint8))
    message = load_error(path)
    assert "not a bep-mcu model file" in message and "other-tool" in message


def test_metadata_that_is_json_but_not_an_object(model_file: Path, tmp_path: Path):
    bad = tmp_path / "bad.npz"
    rewrite_zip(model_file, bad, lambda name, data: npy_bytes(np.frombuffer(b"[1, 2]", np.uint8))
                if name == "__meta__.npy" else data)
    assert "not a bep-mcu model file" in load_error(bad)


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n", b"label,x\n1,2\n", bytes(range(256)) * 4])
def test_non_zip_file(tmp_path: Path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    message = load_error(path)
    assert "not a bep-mcu model file" in message and "junk.npz" in message


def test_single_npy_file_is_not_a_model(tmp_path: Path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(4))
    assert "not a bep-mcu model file" in load_error(path)


def test_newer_format_version_via_save_model(tmp_path: Path, monkeypatch):
    path = tmp_path / "future.npz"
    monkeypatch.setattr(modelio, "FORMAT_VERSION", modelio.FORMAT_VERSION + 1)
    save_model(path, {"w": np.zeros(2)}, {})
    assert load_model(path)[1]["version"] == modelio.FORMAT_VERSION  # the newer reader is fine
    monkeypatch.undo()
    message = load_error(path)
    assert f"version {modelio.FORMAT_VERSION + 1}" in message and "upgrade" in message


def test_newer_format_version_via_edited_metadata(model_file: Path, tmp_path: Path):
    bad = tmp_path / "future.npz"

    def bump(name, data):
        if name != "__meta__.npy":
            return data
        doc = json.loads(np.load(io.BytesIO(data)).tobytes())
        doc["version"] = 99
        return npy_bytes(np.frombuffer(json.dumps(doc).encode(), np.uint8))

    rewrite_zip(model_file, bad, bump)
    message = load_error(bad)
    # The version is the reason given, not a checksum mismatch: the file may be fine.
    assert "version 99" in message and "upgrade" in message


@pytest.mark.parametrize("version", ["1", 1.0, None, [1]])
def test_version_of_the_wrong_type(model_file: Path, tmp_path: Path, version):
    bad = tmp_path / "odd.npz"

    def edit(name, data):
        if name != "__meta__.npy":
            return data
        doc = json.loads(np.load(io.BytesIO(data)).tobytes())
        doc["version"] = version
        return npy_bytes(np.frombuffer(json.dumps(doc).encode(), np.uint8))

    rewrite_zip(model_file, bad, edit)
    load_error(bad)
