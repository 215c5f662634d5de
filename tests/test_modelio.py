"""Model files: exact round trips, atomic writes, and every way a file can be bad.

A model file must come back bit for bit; a save that fails must leave whatever was at
the target untouched (and no temporary files beside it); and a damaged, foreign,
forged or too-new file must be refused with one BEPError line, never read as a model
and never escape as some other exception (the CLI would print a traceback).
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

from bep_mcu import files, modelio
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.schedule import EPOCH_MAX_SAMPLES, Q_LEVELS, EpochStart
from bep_mcu.errors import BEPError

from .conftest import assert_same_weights, fit, saved

DATA = "prototypes:classes=3,features=40,samples=300"


@pytest.fixture(scope="module")
def tiny():
    d = load_dataset(DATA)
    return fit(d.X_train, d.y_train, hidden=(8,), epochs=1, seed=3)


@pytest.fixture
def model_file(tiny, tmp_path: Path) -> Path:
    return saved(tiny, tmp_path / "model.npz")


def temp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def load_error(path: Path) -> str:
    """The BEPError message of loading ``path`` (any other exception fails the test)."""
    with pytest.raises(BEPError) as info:
        modelio.load(path)
    message = str(info.value)
    assert "\n" not in message, f"multi-line error: {message!r}"
    return message


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def write_members(path: Path, contents: dict[str, bytes], method=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in contents.items():
            z.writestr(name, data)
    return path


def forge(src: Path, dst: Path, meta_edit=None, arrays_edit=None) -> Path:
    """A file with edited metadata/arrays and a *recomputed* checksum: what an attacker
    writes (the checksum detects damage, not tampering)."""
    contents = members(src)
    meta = json.loads(np.load(io.BytesIO(contents["__meta__.npy"])).tobytes())
    arrays = {name[:-4]: np.load(io.BytesIO(data)) for name, data in contents.items()
              if name not in ("__meta__.npy", "__checksum__.npy")}
    if meta_edit:
        meta_edit(meta)
    if arrays_edit:
        arrays_edit(arrays)
    meta_bytes = json.dumps(meta).encode()
    out = {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}
    out["__meta__.npy"] = npy_bytes(np.frombuffer(meta_bytes, np.uint8))
    out["__checksum__.npy"] = npy_bytes(np.frombuffer(modelio._digest(meta_bytes, arrays).encode(), np.uint8))
    return write_members(dst, out)


# ------------------------------------------------------------------ round trips


def test_round_trip_is_exact(tiny, model_file: Path):
    back = modelio.load(model_file)
    assert_same_weights(list(back.hidden), list(tiny.hidden))
    np.testing.assert_array_equal(back.classifier, tiny.classifier)
    np.testing.assert_array_equal(back.labels, tiny.labels)
    np.testing.assert_array_equal(back.encoder.input_keep, tiny.encoder.input_keep)
    assert (back.spec, back.hyper, back.params, back.training) == (tiny.spec, tiny.hyper, tiny.params, tiny.training)


def test_resume_record_round_trips_and_is_checked(tiny, model_file: Path, tmp_path: Path):
    """``training.resume`` (where a stream stopped, from ``pull``): written only when there is
    one, so older files have none and still load; every field type- and range-checked."""
    assert "resume" not in json.loads(np.load(model_file)["__meta__"].tobytes())["training"]
    assert modelio.load(model_file).training.resume is None
    start = EpochStart(tiny.training.epochs, level=3, stalled=0, best_errors=2, best_samples=9, samples=40, errors=5)
    path = saved(tiny.with_training(resume=start), tmp_path / "r.npz")
    assert modelio.load(path).training.resume == start
    assert "epoch" not in json.loads(np.load(path)["__meta__"].tobytes())["training"]["resume"]  # training.epochs
    for field, value in (("level", Q_LEVELS + 1), ("level", -1), ("level", True), ("samples", "40"),
                         ("samples", EPOCH_MAX_SAMPLES), ("errors", 41), ("best_errors", 10), ("best_samples", 2**32),
                         ("stalled", tiny.hyper.patience), ("stalled", 1.0)):
        bad = forge(path, tmp_path / "bad.npz", lambda m: m["training"]["resume"].update({field: value}))
        with pytest.raises(BEPError, match=rf"^'{bad}': .*training\.resume\.{field}\b"):
            modelio.load(bad)
    for broken in ([], None, {"level": 3}):
        bad = forge(path, tmp_path / "bad.npz", lambda m: m["training"].update({"resume": broken}))
        with pytest.raises(BEPError, match=r"training\.resume"):
            modelio.load(bad)


def test_file_is_a_plain_npz_readable_without_pickle(model_file: Path):
    """The documented format: any numpy reads it with allow_pickle=False."""
    with np.load(model_file, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes())
        assert {"hidden_0", "classifier", "classes", "input_keep", "binarizer_spec"} <= set(z.files)
    assert meta["format"] == "bep-mcu-model" and meta["version"] == modelio.FORMAT_VERSION
    with zipfile.ZipFile(model_file) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


def test_saving_twice_gives_the_same_bytes(tiny, tmp_path: Path):
    """The file is a function of the content only (no time, no temp name)."""
    a, b = saved(tiny, tmp_path / "a.npz"), saved(tiny, tmp_path / "b.npz")
    assert members(a) == members(b)


def test_save_accepts_str_path_relative_to_cwd(tiny, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    modelio.save(tiny, "plain.npz")
    assert modelio.load("plain.npz").spec == tiny.spec
    assert temp_leftovers(tmp_path) == []


def test_version_1_files_are_read(tiny, model_file: Path, tmp_path: Path):
    """The first format kept notes and the board's provenance loose in "training"."""
    def to_v1(meta):
        meta["version"] = 1
        t = meta["training"]
        t.update(t.pop("notes"))
        t.pop("origin")
        t.update(pulled_from="socket://127.0.0.1:5", board="mps2-an386", device_counters={"batches": 7})
    back = modelio.load(forge(model_file, tmp_path / "v1.npz", to_v1))
    assert back.training.origin.board == "mps2-an386" and back.training.origin.device_batches == 7


# ---------------------------------------------------------------- atomic writes


def test_missing_directory_is_a_bep_error_and_writes_nothing(tiny, tmp_path: Path):
    target = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(BEPError, match="does not exist"):
        modelio.save(tiny, target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_existing_file_intact(tiny, model_file: Path, monkeypatch, exc):
    """Half the bytes are written, then the write dies (disk full / Ctrl-C)."""
    before = model_file.read_bytes()
    real_savez = np.savez

    def dying_savez(f, **payload):
        real_savez(f, **payload)
        f.seek(0)
        f.write(b"PK\x03\x04 half-written garbage")
        raise exc

    monkeypatch.setattr(modelio.np, "savez", dying_savez)
    with pytest.raises(BEPError if isinstance(exc, OSError) else KeyboardInterrupt):
        modelio.save(tiny.with_training(seed=4), model_file)
    monkeypatch.undo()
    assert model_file.read_bytes() == before
    assert temp_leftovers(model_file.parent) == []
    assert modelio.load(model_file).training.seed == 3


def test_failing_rename_leaves_existing_file_intact(tiny, model_file: Path, monkeypatch):
    before = model_file.read_bytes()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(BEPError, match="Permission denied"):
        modelio.save(tiny, model_file)
    monkeypatch.undo()
    assert model_file.read_bytes() == before
    assert temp_leftovers(model_file.parent) == []


def test_target_that_is_a_directory_is_refused_and_left_alone(tiny, tmp_path: Path):
    target = tmp_path / "model.npz"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(BEPError, match="directory"):
        modelio.save(tiny, target)
    assert target.is_dir() and (target / "keep.txt").read_text() == "x"
    assert temp_leftovers(tmp_path) == []


def test_a_fifo_is_never_replaced(tiny, tmp_path: Path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(BEPError, match="not a regular file"):
        modelio.save(tiny, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert "not a regular file" in load_error(fifo)  # and reading one does not block


def test_a_symlink_is_followed_and_stays_a_link(tiny, model_file: Path, tmp_path: Path):
    link = tmp_path / "link.npz"
    link.symlink_to(model_file)
    modelio.save(tiny.with_training(seed=9), link)
    assert link.is_symlink() and os.readlink(link) == str(model_file)
    assert modelio.load(model_file).training.seed == 9


def test_new_file_gets_ordinary_permissions(tiny, tmp_path: Path):
    """A saved model is as readable as any file the user creates (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")
    path = saved(tiny, tmp_path / "m.npz")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ordinary.stat().st_mode) == 0o666 & ~umask


# ------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path):
    message = load_error(tmp_path / "nope.npz")
    assert "cannot read" in message and "nope.npz" in message


def test_directory_instead_of_file(tmp_path: Path):
    assert "directory" in load_error(tmp_path)


def test_device_node_is_not_read():
    assert "not a regular file" in load_error(Path("/dev/zero"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(model_file: Path):
    model_file.chmod(0)
    try:
        assert "cannot read" in load_error(model_file)
    finally:
        model_file.chmod(0o644)


def test_array_data_changed_behind_valid_zip_crcs(model_file: Path, tmp_path: Path):
    """One byte of one array's data changes; the zip itself stays valid."""
    contents = members(model_file)
    data = bytearray(contents["hidden_0.npy"])
    data[-5] ^= 0x01
    contents["hidden_0.npy"] = bytes(data)
    message = load_error(write_members(tmp_path / "bad.npz", contents))
    assert "corrupted" in message and "checksum" in message and "bad.npz" in message


@pytest.mark.parametrize("change", ["dtype", "shape", "rename", "drop", "extra", "meta-value"])
def test_damage_to_names_dtypes_shapes_and_metadata_is_caught(model_file: Path, tmp_path: Path, change):
    """Same bytes, different meaning: the schema or the checksum catches each."""
    contents = members(model_file)
    hidden = np.load(io.BytesIO(contents["hidden_0.npy"]))
    if change == "dtype":
        contents["hidden_0.npy"] = npy_bytes(hidden.view(np.uint8))
    elif change == "shape":
        contents["hidden_0.npy"] = npy_bytes(hidden.reshape(-1, 4))
    elif change == "rename":
        contents["hidden_9.npy"] = contents.pop("hidden_0.npy")
    elif change == "drop":
        del contents["input_keep.npy"]
    elif change == "extra":
        contents["injected.npy"] = npy_bytes(np.zeros(3))
    else:
        doc = json.loads(np.load(io.BytesIO(contents["__meta__.npy"])).tobytes())
        doc["training"]["seed"] = 4
        contents["__meta__.npy"] = npy_bytes(np.frombuffer(json.dumps(doc).encode(), np.uint8))
    message = load_error(write_members(tmp_path / "bad.npz", contents))
    assert any(word in message for word in ("corrupted", "hidden_0", "input_keep", "does not belong"))


def test_metadata_that_is_not_json(model_file: Path, tmp_path: Path):
    contents = members(model_file)
    contents["__meta__.npy"] = npy_bytes(np.frombuffer(b"{not json", np.uint8))
    message = load_error(write_members(tmp_path / "bad.npz", contents))
    assert "corrupted" in message and "JSON" in message


def test_deeply_nested_json_is_one_line(model_file: Path, tmp_path: Path):
    contents = members(model_file)
    contents["__meta__.npy"] = npy_bytes(np.frombuffer(b"[" * 200_000 + b"]" * 200_000, np.uint8))
    assert "JSON" in load_error(write_members(tmp_path / "deep.npz", contents))


def test_every_single_byte_flip_is_refused_or_harmless(tiny, model_file: Path, monkeypatch):
    """Flip each byte of a small model file in turn (two masks a byte).

    Every result must be a BEPError, or (for zip header fields numpy never relies on,
    like timestamps) a load that returns exactly the original model."""
    raw = model_file.read_bytes()
    current = {"raw": raw}
    monkeypatch.setattr(files, "open_regular", lambda path, what, limit: io.BytesIO(current["raw"]))
    escaped: dict[str, list[int]] = {}
    silently_changed: list[int] = []
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            b = bytearray(raw)
            b[i] ^= mask
            current["raw"] = bytes(b)
            try:
                got = modelio.load(model_file)
            except BEPError as e:
                assert "\n" not in str(e)
                continue
            except Exception as e:  # noqa: BLE001 - the point is to catch everything else
                escaped.setdefault(f"{type(e).__name__}: {e}", []).append(i)
                continue
            same = all(np.array_equal(a, b) for a, b in zip(got.hidden, tiny.hidden)) and \
                got.training == tiny.training and got.spec == tiny.spec
            if not same:
                silently_changed.append(i)
    assert silently_changed == [], f"flips at {silently_changed} loaded as a different model"
    assert escaped == {}, "non-BEPError exceptions (byte offsets): " + "; ".join(
        f"{k} at {v[:4]}" for k, v in escaped.items())


def test_flipped_compression_method_in_zip_directory_is_a_bep_error(model_file: Path):
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
    assert "model.npz" in message


def test_every_truncation_is_refused(model_file: Path, monkeypatch):
    raw = model_file.read_bytes()
    current = {"raw": raw}
    monkeypatch.setattr(files, "open_regular", lambda path, what, limit: io.BytesIO(current["raw"]))
    for n in range(0, len(raw), 7):
        current["raw"] = raw[:n]
        with pytest.raises(BEPError):
            modelio.load(model_file)


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


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n", b"label,x\n1,2\n", bytes(range(256)) * 4])
def test_non_zip_file(tmp_path: Path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    assert "junk.npz" in load_error(path)


def test_newer_format_version(model_file: Path, tmp_path: Path):
    message = load_error(forge(model_file, tmp_path / "future.npz", lambda m: m.update(version=99)))
    # The version is the reason given: the file may be fine.
    assert "version 99" in message and "upgrade" in message


@pytest.mark.parametrize("version", ["1", 1.0, None, [1], True, 0, -3])
def test_version_of_the_wrong_type(model_file: Path, tmp_path: Path, version):
    assert "version" in load_error(forge(model_file, tmp_path / "odd.npz", lambda m: m.update(version=version)))


def test_compressed_members_are_refused(model_file: Path, tmp_path: Path):
    path = write_members(tmp_path / "deflated.npz", members(model_file), zipfile.ZIP_DEFLATED)
    assert "compressed" in load_error(path)
