"""Versioned model files.

A model file is an uncompressed ``.npz`` (a zip of ``.npy`` arrays, readable by any
numpy with ``allow_pickle=False``) holding:
- ``__meta__``: a JSON document (format name and version, network spec, hyperparameters,
  training metadata, label kind) stored as a uint8 array;
- the arrays (hidden weights, classifier, binariser thresholds, label names, …);
- ``__checksum__``: SHA-256 over the metadata and every array's name, dtype, shape and
  bytes, so a flipped bit anywhere is caught on load.

Files are written to a temporary name beside the target and renamed into place, so an
interrupted save never leaves a half-written model where a good one was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from bep_mcu.errors import BEPError

FORMAT_NAME = "bep-mcu-model"
FORMAT_VERSION = 1
_META = "__meta__"
_CHECKSUM = "__checksum__"


def _contiguous(a) -> np.ndarray:
    """C-contiguous without promoting 0-d arrays to 1-d (np.ascontiguousarray does)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _digest(meta_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_bytes)
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_model(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays + metadata atomically to ``path``."""
    path = Path(path)
    for name, a in arrays.items():
        if name.startswith("__") or np.asarray(a).dtype.hasobject:
            raise ValueError(f"array '{name}' cannot be stored in a model file")
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **meta}
    meta_bytes = json.dumps(doc, sort_keys=True).encode()
    payload = {name: _contiguous(a) for name, a in arrays.items()}
    payload[_META] = np.frombuffer(meta_bytes, dtype=np.uint8)
    payload[_CHECKSUM] = np.frombuffer(_digest(meta_bytes, arrays).encode(), dtype=np.uint8)
    check_writable(path)
    write_atomic(path, lambda f: np.savez(f, **payload))


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(f)`` to a temporary name beside ``path``, then rename
    it into place: an interrupted write never leaves a half-written file at ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before any training) when ``path`` cannot receive a model file."""
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise BEPError(f"cannot write '{path}': directory '{directory}' does not exist")
    if path.is_dir():
        raise BEPError(f"cannot write '{path}': it is a directory")
    if not os.access(directory, os.W_OK):
        raise BEPError(f"cannot write '{path}': directory '{directory}' is not writable")


def load_model(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read and check a model file; returns (arrays, metadata).

    Raises BEPError for a missing, unreadable, corrupted, truncated or foreign file and
    for a file written by a newer format version.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BEPError(f"cannot read model '{path}': {e.strerror or e}") from None
    if not raw.startswith(b"PK"):
        raise BEPError(f"'{path}' is not a bep-mcu model file (not an npz archive)")
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an npz archive")
        with loaded as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError, RuntimeError,
            TypeError) as e:
        # zipfile reports damaged archives in many ways (bad CRC, "encrypted", unknown
        # compression); all of them mean the file cannot be trusted.
        raise BEPError(f"'{path}' is corrupted or not a bep-mcu model file (damaged or truncated archive: {e})") from None
    if _META not in arrays or _CHECKSUM not in arrays:
        raise BEPError(f"'{path}' is not a bep-mcu model file (no metadata)")
    meta_bytes = arrays.pop(_META).tobytes()
    checksum = arrays.pop(_CHECKSUM).tobytes().decode("ascii", "replace")
    try:
        meta = json.loads(meta_bytes)
    except ValueError:
        raise BEPError(f"'{path}' is corrupted: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BEPError(f"'{path}' is not a bep-mcu model file (format {meta.get('format')!r})"
                       if isinstance(meta, dict) else f"'{path}' is not a bep-mcu model file")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BEPError(
            f"'{path}' has model format version {version}; this bep-mcu reads up to "
            f"{FORMAT_VERSION}: upgrade bep-mcu"
        )
    if _digest(meta_bytes, arrays) != checksum:
        raise BEPError(f"'{path}' is corrupted: checksum mismatch")
    return arrays, meta
