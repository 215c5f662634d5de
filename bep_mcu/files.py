"""Reading and writing files that come from, or go to, places the user names.

Everything a user points bep-mcu at is untrusted: it may be a FIFO, a device node, a
symlink, a zip bomb or an ``.npy`` header that claims 10^12 elements. This module is
the one place that opens such paths:

- only regular files are read (``/dev/zero`` or a FIFO would be read forever), and a
  file larger than the caller's limit is refused before it is read;
- ``.npz`` members are checked before their data is read: the zip directory's size
  of each member, then the ``.npy`` header (dtype, shape), against what the caller
  expects and against the member's real size, so no allocation is ever larger than
  the bytes actually present (and no larger than the caller's limit);
- files are written atomically (a temporary file beside the target, fsync, rename),
  only over a regular file or nothing; a symlink is followed and its target replaced,
  so the link stays a link. Any failure is one ``BEPError`` line and leaves the old
  file as it was, with no temporary file left behind.
"""

from __future__ import annotations

import ast
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bep_mcu.errors import BEPError

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 64 * 1024  # numpy writes headers of at most 64 KiB (format 1.0)


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def open_regular(path: str | os.PathLike, what: str, max_bytes: int) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file of at most ``max_bytes`` bytes.

    O_NONBLOCK keeps the open itself from waiting on a FIFO; the type check then
    refuses it (and devices, directories, sockets) before a byte is read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise BEPError(f"cannot read {what} '{path}': {_why(e)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BEPError(f"cannot read {what} '{path}': it is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise BEPError(f"cannot read {what} '{path}': not a regular file")
        if info.st_size > max_bytes:
            raise BEPError(f"{what} '{path}' is {info.st_size} bytes, more than the limit of {max_bytes} bytes")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` bytes."""
    with open_regular(path, what, max_bytes) as f:
        try:
            return f.read(max_bytes + 1)[:max_bytes]
        except OSError as e:
            raise BEPError(f"cannot read {what} '{path}': {_why(e)}") from None


# ------------------------------------------------------------------------- npz


class NpyHeader:
    """What an ``.npy`` member declares: dtype and shape (C order; Fortran is refused)."""

    def __init__(self, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.dtype, self.shape = dtype, shape

    @property
    def nbytes(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count * self.dtype.itemsize


def parse_npy_header(f: BinaryIO, where: str) -> NpyHeader:
    """Parse the header without numpy's reader, so that no dtype or size it names can
    make anything allocate: only plain (non-object, non-structured) dtypes pass."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != NPY_MAGIC or magic[6] not in (1, 2, 3):
        raise BEPError(f"{where}: not an .npy array")
    size_bytes = 2 if magic[6] == 1 else 4
    raw = f.read(size_bytes)
    if len(raw) != size_bytes:
        raise BEPError(f"{where}: truncated .npy header")
    length = int.from_bytes(raw, "little")
    if length > MAX_NPY_HEADER:
        raise BEPError(f"{where}: .npy header of {length} bytes is too long")
    text = f.read(length)
    if len(text) != length:
        raise BEPError(f"{where}: truncated .npy header")
    try:
        # A Python literal dict; ast.literal_eval evaluates no code.
        header = ast.literal_eval(text.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BEPError(f"{where}: damaged .npy header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise BEPError(f"{where}: damaged .npy header")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if fortran is not False:
        raise BEPError(f"{where}: Fortran-ordered arrays are not accepted")
    if not isinstance(shape, tuple) or not all(type(n) is int and 0 <= n < 2**62 for n in shape) or len(shape) > 8:
        raise BEPError(f"{where}: damaged .npy header (shape {shape!r:.60})")
    if not isinstance(descr, str):
        raise BEPError(f"{where}: dtype {descr!r:.60} is not a plain numeric, boolean or text dtype")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise BEPError(f"{where}: unknown dtype {descr!r:.60}") from None
    if dtype.hasobject:
        raise BEPError(f"{where}: holds object (pickled) arrays; save plain numeric or text arrays")
    if dtype.kind not in "biufUS" or dtype.fields is not None or dtype.subdtype is not None:
        raise BEPError(f"{where}: dtype {descr!r:.60} is not a plain numeric, boolean or text dtype")
    return NpyHeader(dtype, shape)


def read_npz(
    path: str | os.PathLike,
    what: str,
    max_file_bytes: int,
    check: Callable[[str, NpyHeader], None],
    max_total_bytes: int,
) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file, each checked before its data is read (see
    :func:`read_members`)."""
    with open_regular(path, what, max_file_bytes) as f:
        with open_zip(f, f"{what} '{path}'") as z:
            return read_members(z, f"{what} '{path}'", check, max_total_bytes)


def open_zip(f: BinaryIO, where: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError) as e:
        raise BEPError(f"{where}: not an .npz archive ({e})"[:400]) from None


def read_members(z: zipfile.ZipFile, where: str, check: Callable[[str, NpyHeader], None],
                 max_total_bytes: int, only: set[str] | None = None) -> dict[str, np.ndarray]:
    """Every member of an open ``.npz`` archive as an array.

    ``check(name, header)`` raises ``BEPError`` for a member that is not wanted or
    whose dtype/shape is wrong; it runs before the member's data is read. A header may
    not claim more data than the member holds, and the members' data may not exceed
    ``max_total_bytes`` (checked on the zip directory first, then on the headers), so
    nothing is allocated beyond what the caller allows. ``only`` restricts the read to
    some members (names without ``.npy``). Any damage is one ``BEPError``."""
    try:
        infos = z.infolist()
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                raise BEPError(f"{where}: member '{info.filename:.60}' is not an .npy array")
        if only is not None:
            infos = [i for i in infos if i.filename[: -len(".npy")] in only]
        declared = sum(info.file_size for info in infos)
        if declared > max_total_bytes + MAX_NPY_HEADER * len(infos):
            raise BEPError(f"{where}: its arrays unpack to {declared} bytes, more than the limit of "
                           f"{max_total_bytes} bytes")
        arrays: dict[str, np.ndarray] = {}
        total = 0
        for info in infos:
            name = info.filename[: -len(".npy")]
            at = f"{where}, array '{name:.60}'"
            if name in arrays:
                raise BEPError(f"{at}: stored twice")
            with z.open(info) as member:
                header = parse_npy_header(member, at)
                check(name, header)
                nbytes = header.nbytes
                total += nbytes
                if total > max_total_bytes:
                    raise BEPError(f"{where}: its arrays need more than the limit of {max_total_bytes} bytes")
                if nbytes > info.file_size:
                    raise BEPError(f"{at}: declares {header.shape} {header.dtype} ({nbytes} bytes) but holds "
                                   f"{info.file_size} bytes (damaged or forged)")
                data = bytearray(nbytes)  # writable, so the array needs no copy
                if member.readinto(data) != nbytes or member.read(1):
                    raise BEPError(f"{at}: the data does not match its header (damaged)")
            arrays[name] = np.frombuffer(data, dtype=header.dtype).reshape(header.shape)
        return arrays
    except BEPError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError,
            RuntimeError, OSError, KeyError, OverflowError) as e:
        # zipfile reports damage in many ways (bad CRC, "encrypted", unknown
        # compression, a short read); all mean the file cannot be trusted.
        raise BEPError(f"{where}: damaged archive ({e})"[:400]) from None


# ---------------------------------------------------------------------- writing


def _target(path: Path) -> Path:
    """The file a write to ``path`` replaces: a symlink's target (the link stays a link)."""
    if path.is_symlink():
        try:
            return path.resolve(strict=False)
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise BEPError(f"cannot write '{path}': {e}") from None
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before any work) when ``path`` cannot receive a file; returns the
    path that will really be written (a symlink's target)."""
    path = Path(path)
    target = _target(path)
    directory = target.parent
    if target.exists() or target.is_symlink():
        try:
            mode = os.stat(target).st_mode
        except OSError as e:
            raise BEPError(f"cannot write '{path}': {_why(e)}") from None
        if stat.S_ISDIR(mode):
            raise BEPError(f"cannot write '{path}': it is a directory")
        if not stat.S_ISREG(mode):
            raise BEPError(f"cannot write '{path}': it exists and is not a regular file")
    if not directory.is_dir():
        raise BEPError(f"cannot write '{path}': directory '{directory}' does not exist")
    try:  # a real probe: access() says yes for root, and /proc refuses new files anyway
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise BEPError(f"cannot write '{path}': {_why(e)}") from None
    os.close(fd)
    os.unlink(probe)
    return target


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(f)`` to a temporary name beside ``path``'s target,
    then rename it into place: an interrupted or failed write never leaves a
    half-written file, and never replaces anything that is not a regular file."""
    path = Path(path)
    target = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise BEPError(f"cannot write '{path}': {_why(e)}") from None
    try:
        # mkstemp makes the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a file size limit, a vanished directory
            raise BEPError(f"cannot write '{path}': {_why(e)}") from None
        raise


def write_text_files(directory: str | os.PathLike, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` into ``directory`` (created if needed, and the
    folders the paths name), each file atomically and only when its text changed (so
    build tools see no new time)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BEPError(f"--out '{directory}' exists and is not a directory")
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{name!r} is not a path inside the output directory")  # a bep-mcu bug
    for folder in sorted({directory / Path(name).parent for name in files}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BEPError(f"cannot create directory '{folder}': {_why(e)}") from None
    for name, text in files.items():
        target = directory / name
        data = text.encode()
        try:
            unchanged = target.is_file() and not target.is_symlink() and target.read_bytes() == data
        except OSError:
            unchanged = False
        if not unchanged:
            write_atomic(target, lambda f, data=data: f.write(data))
    return directory


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a regular file (created if missing) in a single write, so a
    record is either whole in the file or absent (an append-only log such as a sweep's
    results); anything but a regular file is refused."""
    data = (line.rstrip("\n") + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o666)
    except OSError as e:
        raise BEPError(f"cannot write '{path}': {_why(e)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BEPError(f"cannot write '{path}': not a regular file")
        if os.write(fd, data) != len(data):
            raise BEPError(f"cannot write '{path}': short write (disk full?)")
        os.fsync(fd)
    except OSError as e:
        raise BEPError(f"cannot write '{path}': {_why(e)}") from None
    finally:
        os.close(fd)
