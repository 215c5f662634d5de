"""IDX files (MNIST, FashionMNIST: ``train-images-idx3-ubyte[.gz]``), read as untrusted input.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values, big-endian, in C order. Everything the
header claims is checked before anything is allocated (``files`` does the same for ``.npy``):
the type code and dimensions are bounded, the array's bytes must fit the caller's limit, and
the file must hold exactly those bytes; a gzipped file is decompressed in chunks and never
beyond the bytes its header declares, so a small file cannot unpack into a large allocation.
Every problem is one ``BEPError`` naming the file.

The standard names pair an images file with its labels: ``<part>-images-idx3-ubyte`` and
``<part>-labels-idx1-ubyte``, part ``train`` or ``t10k`` (:func:`labels_beside`).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bep_mcu import files
from bep_mcu.errors import BEPError

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_DIMS = 4  # samples and up to three dimensions each (idx3: images, idx1: labels)
IMAGES, LABELS = "-images-idx3-ubyte", "-labels-idx1-ubyte"
PARTS = ("train", "t10k")  # the standard files' training and test parts
CHUNK = 1 << 20


def is_idx(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as an IDX file (``...-idx<N>-ubyte``, gzipped or not)."""
    name = Path(path).name.lower()
    return name.removesuffix(".gz").endswith("-ubyte") and "-idx" in name


def _read_exact(f: BinaryIO, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BEPError(f"{where}: truncated IDX header")
    return data


def _values(f: BinaryIO, nbytes: int, where: str) -> bytearray:
    """Exactly ``nbytes`` more bytes of ``f``, read in chunks (a gzip stream allocates only
    what it really holds), and nothing after them."""
    data = bytearray()
    while len(data) < nbytes:
        chunk = f.read(min(CHUNK, nbytes - len(data)))
        if not chunk:
            raise BEPError(f"{where}: holds {len(data)} bytes of values, its header declares {nbytes} (truncated)")
        data += chunk
    if f.read(1):
        raise BEPError(f"{where}: holds more values than its header declares ({nbytes} bytes)")
    return data


def read_idx(path: str | os.PathLike, max_file_bytes: int, max_bytes: int) -> np.ndarray:
    """The array of an IDX file (``.gz``: gzipped), of at most ``max_bytes`` bytes."""
    where = f"IDX file '{path}'"
    with files.open_regular(path, "IDX file", max_file_bytes) as raw:
        try:
            f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if str(path).lower().endswith(".gz") else raw
            magic = _read_exact(f, 4, where)
            if magic[0] or magic[1] or magic[2] not in TYPES or not 1 <= magic[3] <= MAX_DIMS:
                raise BEPError(f"{where}: not an IDX file (magic {magic.hex()}; expected 0000, a type code "
                               f"{'/'.join(f'{t:02x}' for t in TYPES)} and 1..{MAX_DIMS} dimensions)")
            dtype = np.dtype(TYPES[magic[2]])
            shape = tuple(int.from_bytes(_read_exact(f, 4, where), "big") for _ in range(magic[3]))
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if nbytes > max_bytes:
                raise BEPError(f"{where}: its header declares {shape} values of {dtype.itemsize} bytes "
                               f"({nbytes} bytes), more than the limit of {max_bytes} bytes")
            data = _values(f, nbytes, where)
        except (OSError, EOFError, zlib.error) as e:  # gzip reports damage in these
            raise BEPError(f"{where}: damaged ({e})"[:400]) from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def labels_beside(images: str | os.PathLike) -> Path:
    """The labels file of an images file: the same name with ``-labels-idx1-ubyte``, in the
    same folder, gzipped or not (whichever exists; the images file's form first)."""
    images = Path(images)
    name = images.name
    if IMAGES not in name.lower():
        raise BEPError(f"'{images}': an IDX data file is named <part>{IMAGES}[.gz] (its labels beside it, "
                       f"<part>{LABELS}[.gz])")
    at = name.lower().index(IMAGES)
    stem = name[:at] + LABELS
    forms = [stem + ".gz", stem] if name.lower().endswith(".gz") else [stem, stem + ".gz"]
    for candidate in forms:
        if (images.parent / candidate).exists():
            return images.parent / candidate
    raise BEPError(f"'{images}': no labels file beside it ({forms[0]} or {forms[1]})")


def part_in(folder: str | os.PathLike, part: str) -> Path | None:
    """The images file of ``part`` (train, t10k) in ``folder``, gzipped or not; None if absent."""
    for name in (part + IMAGES, part + IMAGES + ".gz"):
        if (Path(folder) / name).exists():
            return Path(folder) / name
    return None
