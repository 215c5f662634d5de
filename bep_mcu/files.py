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
  only over a regular file or nothing; a symlink the user names is followed and its
  target replaced, so the link stays a link. Any failure is one ``BEPError`` line and
  leaves the old file as it was, with no temporary file left behind;
- a tree (``generate``'s output, a firmware's build directory) is written whole or not
  at all, and never through a symlink inside it (see :func:`write_text_files`).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import stat
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
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


def read_array(f: BinaryIO, header: NpyHeader, where: str) -> np.ndarray:
    """The array ``header`` declares, from the rest of ``f``, which must hold exactly its bytes.
    The caller has bounded ``header.nbytes``."""
    data = bytearray(header.nbytes)  # writable, so the array needs no copy
    if f.readinto(data) != header.nbytes or f.read(1):
        raise BEPError(f"{where}: the data does not match its header (damaged)")
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape)


def read_npy(path: str | os.PathLike, what: str, max_file_bytes: int, check: Callable[[NpyHeader], None],
             max_bytes: int) -> np.ndarray:
    """The array of an ``.npy`` file: its header parsed without numpy's reader (plain dtypes
    only), ``check``ed, and its size bounded by ``max_bytes`` and by the file's own size
    before anything is allocated."""
    with open_regular(path, what, max_file_bytes) as f:
        where = f"{what} '{path}'"
        try:
            header = parse_npy_header(f, where)
            check(header)
            held = os.fstat(f.fileno()).st_size - f.tell()
            if header.nbytes > max_bytes:
                raise BEPError(f"{where}: its array needs {header.nbytes} bytes, more than the limit of "
                               f"{max_bytes} bytes")
            if header.nbytes != held:
                raise BEPError(f"{where}: declares {header.shape} {header.dtype} ({header.nbytes} bytes) but holds "
                               f"{held} bytes (damaged or forged)")
            return read_array(f, header, where)
        except OSError as e:
            raise BEPError(f"cannot read {where}: {_why(e)}") from None


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
                arrays[name] = read_array(member, header, at)
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


def _temporary(folder: Path, name: str, write: Callable[[BinaryIO], None], where: Path) -> Path:
    """A new file in ``folder`` (a hidden temporary name from ``name``) holding what
    ``write(f)`` wrote, fsynced; nothing is left behind when it fails."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise BEPError(f"cannot write '{where}': {_why(e)}") from None
    try:
        # mkstemp makes the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        return Path(tmp)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a file size limit, a vanished directory
            raise BEPError(f"cannot write '{where}': {_why(e)}") from None
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(f)`` to a temporary name beside ``path``'s target,
    then rename it into place: an interrupted or failed write never leaves a
    half-written file, and never replaces anything that is not a regular file."""
    path = Path(path)
    target = check_writable(path)
    tmp = _temporary(target.parent, target.name, write, path)
    try:
        os.replace(tmp, target)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise BEPError(f"cannot write '{path}': {_why(e)}") from None
        raise


# ------------------------------------------------------------------------ trees
#
# A generated tree is often a checked-in folder of a cloned repository, so anything in
# it may have been planted: a symlink at a generated name (or a folder on the way) would
# send our writes, or a compiler's -o, to any file the user can write. So no symlink is
# followed inside a tree, the tree's own folder included: it is refused in one line
# (removing it is the user's decision, it may be theirs). And a tree is replaced as a
# whole, never file by file: every changed file is first written to a temporary file
# beside its target, then all are renamed into place at once, with Ctrl-C and SIGTERM
# held back until the last rename (see _commit). Only the tree's own files are touched,
# so a user's files beside them (a README, .git) stay as they are, and the folder
# itself stays the same folder (a mount point, an open shell in it, its permissions).

COMMIT_RECORD = ".bep-mcu-commit"  # in a tree only while its renames are under way
MAX_COMMIT_RECORD_BYTES = 1 << 20
HELD_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _relative(name: str) -> Path:
    if Path(name).is_absolute() or ".." in Path(name).parts or not Path(name).parts:
        raise ValueError(f"{name!r} is not a path inside the output directory")  # a bep-mcu bug
    return Path(name)


def _entry(path: Path, root: Path, folder: bool) -> bool:
    """Whether ``path`` exists, after refusing a symlink there, and a folder that is
    not a directory or a file that is not a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as e:
        raise BEPError(f"cannot write '{path}': {_why(e)}") from None
    if stat.S_ISLNK(mode) and path == root:
        raise BEPError(f"'{path}' is a symbolic link: give the directory itself (bep-mcu writes through no link "
                       f"in its output)")
    if stat.S_ISLNK(mode):
        raise BEPError(f"'{path}' in the output directory '{root}' is a symbolic link: remove it (bep-mcu writes "
                       f"through no link in its output, it could point anywhere)")
    if folder and not stat.S_ISDIR(mode):
        raise BEPError(f"cannot write into '{path}': it exists and is not a directory")
    if not folder and stat.S_ISDIR(mode):
        raise BEPError(f"cannot write '{path}': it is a directory")
    if not folder and not stat.S_ISREG(mode):
        raise BEPError(f"cannot write '{path}': it exists and is not a regular file")
    return True


def check_tree(directory: str | os.PathLike, names: Iterable[str]) -> Path:
    """Refuse, in one line, a tree ``directory`` where writing the files ``names``
    (relative paths) would follow a symlink (``directory`` itself, a folder on the way
    or the file) or replace what is not a regular file; for writes by other programs
    too (a compiler's objects, a linker's image). Returns ``directory`` as a Path."""
    directory = Path(directory)
    _entry(directory, directory, folder=True)
    for name in names:
        parts = _relative(name).parts
        path = directory
        for i, part in enumerate(parts):
            path = path / part
            if not _entry(path, directory, folder=i < len(parts) - 1):
                break  # absent: the rest is created
    return directory


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block has run, then act as they would
    have. Python runs signal handlers in the main thread only, so this holds them whatever
    thread the kernel delivers them to (pthread_sigmask would not: numpy's threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can be set from the main thread only; a library caller's thread
        return
    caught: list[int] = []
    held = {}
    for name in HELD_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not None:  # None: set outside Python
            held[number] = signal.signal(number, lambda n, _frame: caught.append(n))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number in caught:
            signal.raise_signal(number)


def _commit(directory: Path, renames: list[tuple[str, str]]) -> None:
    """Rename each temporary file onto its target, all of them: the record written
    first lets the next write finish the job should this process be killed (SIGKILL,
    power loss) between two renames."""
    record = directory / COMMIT_RECORD
    with _signals_held():
        write_atomic(record, lambda f: f.write(json.dumps(renames).encode()))
        for target, tmp in renames:
            if os.path.lexists(directory / tmp):  # gone: renamed before an earlier process was killed
                os.replace(directory / tmp, directory / target)
        os.unlink(record)


def _finish_interrupted(directory: Path) -> None:
    """Complete the renames of a write killed while committing (its record is there;
    every temporary file it names was whole before the record was written)."""
    record = directory / COMMIT_RECORD
    if not os.path.lexists(record):
        return
    raw = read_regular(record, "record of an interrupted write", MAX_COMMIT_RECORD_BYTES)
    try:
        renames = [(target, tmp) for target, tmp in json.loads(raw)]
        for target, tmp in renames:  # only a temporary file of a target's own name, beside it
            t, p = _relative(target), _relative(tmp)
            if p.parent != t.parent or not (p.name.startswith(f".{t.name}.") and p.name.endswith(".tmp")):
                raise ValueError(tmp)
    except (ValueError, TypeError, RecursionError):  # _relative's ValueError too: names from a file
        raise BEPError(f"'{record}' (left by an interrupted bep-mcu write) is damaged: remove it and check "
                       f"'{directory}'") from None
    check_tree(directory, [name for pair in renames for name in pair])
    try:
        _commit(directory, renames)
    except OSError as e:
        raise BEPError(f"cannot finish the interrupted write of '{directory}': {_why(e)}") from None


def _unchanged(path: Path, data: bytes) -> bool:
    """Whether ``path`` (checked: a regular file or nothing) already holds ``data``; its
    size first, so a huge file put there is never read."""
    try:
        return os.lstat(path).st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def write_text_files(directory: str | os.PathLike, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` into ``directory`` (created if needed, and the
    folders the paths name) as one tree: each file only when its text changed (so build
    tools see no new time), all or none of them, never through a symlink (see above).
    Files of ``directory`` that are not in ``files`` are left alone."""
    directory = check_tree(directory, [COMMIT_RECORD])
    _finish_interrupted(directory)
    check_tree(directory, files)
    changed = {name: text.encode() for name, text in files.items()}
    changed = {name: data for name, data in changed.items() if not _unchanged(directory / name, data)}
    created: list[Path] = []  # folders this write made: removed again when it fails
    renames: list[tuple[str, str]] = []
    try:
        for name, data in changed.items():
            target = directory / name
            _make_folders(target.parent, created)
            tmp = _temporary(target.parent, target.name, lambda f, data=data: f.write(data), target)
            renames.append((name, (Path(name).parent / tmp.name).as_posix()))
        if renames:
            _commit(directory, renames)
    except BaseException as e:
        if not os.path.lexists(directory / COMMIT_RECORD):  # else: the next write finishes it
            for _, tmp in renames:
                with contextlib.suppress(OSError):
                    os.unlink(directory / tmp)
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if isinstance(e, OSError):
            raise BEPError(f"cannot write into '{directory}': {_why(e)}") from None
        raise
    return directory


def _make_folders(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` and the missing folders above it (checked: no symlink on the way)."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except OSError as e:
            raise BEPError(f"cannot create directory '{path}': {_why(e)}") from None
        created.append(path)


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
