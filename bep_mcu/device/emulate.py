"""Emulated boards: a firmware image running in QEMU, its UART on a local TCP port.

    with EmulatedBoard("firmware-microbit/firmware.elf", "microbit") as url:
        link = Link(url)          # url = "socket://127.0.0.1:<port>"
        ...

QEMU (the system emulator of the board's core, ``toolchain.ARCHES``: qemu-system-arm or
qemu-system-riscv32) runs the board's machine (``boards.Board.qemu``) with the UART as a TCP server
that waits for the host (``server=on,wait=on``: nothing the board sends before the
host connects is lost) and ``nodelay=on`` (no Nagle delay per frame). Semihosting is
on, so a firmware that faults ends QEMU (bep_mcu/fw/startup.c) instead of hanging.

QEMU is always stopped on leaving the context, normally or by an exception or Ctrl-C
(terminate, then kill after a grace period); on Linux it also gets SIGTERM if this
process dies first (PR_SET_PDEATHSIG, when started from the main thread), so no emulator outlives
its host.

The board an ELF was built for is recorded in its ``.bep_board`` section (see
bep_mcu/fw/main.c); :func:`elf_board` reads it and :class:`EmulatedBoard` refuses an
image built for another board.

An image that ends by itself (the self-test, bep_mcu/fw/selftest.c) runs with
:func:`run_to_exit` / :func:`run_image` instead: no socket, the UART on a null chardev,
QEMU's exit status is the firmware's semihosting exit status, and QEMU is killed after a
timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bep_mcu import files
from bep_mcu.cgen import toolchain
from bep_mcu.device import boards
from bep_mcu.errors import BEPError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

BOARD_SECTION = ".bep_board"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for QEMU to listen on its port
STOP_TIMEOUT = 5.0    # seconds between SIGTERM and SIGKILL


# ---------------------------------------------------------------------- ELF


MAX_ELF_BYTES = 64 << 20
MAX_ELF_SECTIONS = 4096  # a firmware image has a few dozen; pyelftools parses each one to find a name
MAX_ELF_SEGMENTS = 256
BOARD_SECTION_BYTES = 64  # the board's name, NUL-terminated (bep_mcu/fw/main.c)


@contextlib.contextmanager
def open_elf(path: str | Path, what: str = "firmware") -> Iterator[ELFFile]:
    """An ELF file of at most MAX_ELF_BYTES bytes and a bounded number of sections and
    segments; any damage, here or while the caller reads it, is one ``BEPError``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with files.open_regular(path, what, MAX_ELF_BYTES) as f:
            elf = ELFFile(f)
            if elf.num_sections() > MAX_ELF_SECTIONS or elf.num_segments() > MAX_ELF_SEGMENTS:
                raise BEPError(f"'{path}' has {elf.num_sections()} sections and {elf.num_segments()} segments, more "
                               f"than a {what} image has (at most {MAX_ELF_SECTIONS} and {MAX_ELF_SEGMENTS})")
            yield elf
    except (ELFError, OSError) as e:
        raise BEPError(f"'{path}' is not a readable ELF file (a {what} image from bep-mcu): {e}") from None


def elf_section(path: str | Path, name: str, max_bytes: int) -> bytes | None:
    """Contents of one section of an ELF file (None when it has no such section), of at
    most ``max_bytes`` bytes. Its size is checked before it is read, and a compressed
    section (SHF_COMPRESSED: pyelftools would inflate whatever size its header claims)
    or one without file data (NOBITS: pyelftools would allocate its size in zeros) is
    refused unread."""
    with open_elf(path) as elf:
        section = elf.get_section_by_name(name)
        if section is None:
            return None
        if section.compressed:
            why = "is compressed"
        elif section["sh_type"] == "SHT_NOBITS":
            why = "holds no data (NOBITS)"
        elif section["sh_size"] > max_bytes:
            why = f"is {section['sh_size']} bytes, more than {max_bytes}"
        else:
            return section.data()
        raise BEPError(f"'{path}' is not a firmware image from bep-mcu firmware: its {name} section {why}")


def elf_board(path: str | Path) -> str | None:
    """The board a firmware image was built for, or None when it carries no record."""
    tag = elf_section(path, BOARD_SECTION, BOARD_SECTION_BYTES)
    return None if tag is None else tag.split(b"\0", 1)[0].decode("ascii", "replace")


def recorded_board(path: str | Path) -> str:
    """The board an image records (``emulate`` without ``--board``)."""
    built_for = elf_board(path)
    if built_for is None:
        raise BEPError(f"'{path}' records no board (no {BOARD_SECTION} section): build it with bep-mcu firmware")
    return built_for


def check_firmware(path: str | Path, board_name: str) -> boards.Board:
    """The board, after checking that ``path`` is a firmware built for it and emulable."""
    board = boards.board(board_name)
    if not Path(path).is_file():
        raise BEPError(f"firmware '{path}' not found")
    built_for = elf_board(path)
    if built_for is None:
        raise BEPError(f"'{path}' records no board (no {BOARD_SECTION} section): build it with bep-mcu firmware")
    if built_for != board.name:
        raise BEPError(f"'{path}' was built for {built_for}, not {board.name}: "
                       f"rebuild with bep-mcu firmware MODEL --board {board.name}")
    if not board.emulated:
        raise BEPError(f"{board.name} is a real board and cannot be emulated: flash it (see bep_mcu/fw/README.md) "
                       f"and use its serial port")
    return board


# ---------------------------------------------------------------------- QEMU


def qemu_name(board: boards.Board) -> str:
    """The QEMU system emulator of ``board``'s core (qemu-system-arm, qemu-system-riscv32)."""
    return toolchain.ARCHES[board.arch].qemu


def qemu_binary(board: boards.Board) -> str:
    name = qemu_name(board)
    path = shutil.which(name)
    if path is None:
        raise BEPError(f"'{name}' not found: install QEMU (apt-get install {toolchain.ARCHES[board.arch].qemu_apt_package})")
    return path


def _machine(elf: str | Path, board: boards.Board, qemu: str | None) -> list[str]:
    """QEMU running ``board``'s machine with ``elf`` loaded, no display or monitor."""
    return [qemu or qemu_name(board), "-M", board.qemu, *board.qemu_args, "-display", "none", "-monitor", "none",
            "-kernel", str(elf)]


def qemu_command(elf: str | Path, board: boards.Board, port: int, qemu: str | None = None) -> list[str]:
    """The QEMU command line of ``board`` running ``elf`` with its UART on ``HOST:port``."""
    serial = ["-serial", "null"] * board.serial_index + ["-serial", "chardev:u0"]
    return [*_machine(elf, board, qemu),
            "-chardev", f"socket,id=u0,host={HOST},port={port},server=on,wait=on,nodelay=on",
            *serial, "-semihosting-config", "enable=on,target=native"]


def free_port() -> int:
    """A TCP port on HOST that nothing listens on right now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool | None:
    """Whether something listens on HOST:port, from /proc/net/tcp without connecting
    (a probe connection would be QEMU's one client); None where /proc is missing."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    want = f"0100007F:{port:04X}"
    return any(line.split()[1] == want and line.split()[3] == "0A" for line in lines if len(line.split()) > 3)


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl() if sys.platform.startswith("linux") else None  # looked up here, not in the forked child


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)


def _pdeathsig_safe() -> bool:
    """PR_SET_PDEATHSIG fires when the creating *thread* ends: use it from the main thread only."""
    return _PRCTL is not None and threading.current_thread() is threading.main_thread()


class EmulatedBoard:
    """Context manager: QEMU running ``elf`` on ``board``; yields the UART's ``socket://`` URL.

    ``port`` None picks a free one (and retries with another if QEMU loses a race for it).
    """

    def __init__(self, elf: str | Path, board: str, port: int | None = None) -> None:
        self.elf = Path(elf)
        self.board = check_firmware(self.elf, board)
        self.requested_port = port
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"socket://{HOST}:{self.port}"

    def start(self) -> str:
        qemu = qemu_binary(self.board)
        for _ in range(1 if self.requested_port else 3):
            self.port = self.requested_port or free_port()
            if self._launch(qemu):
                return self.url
        raise BEPError(f"QEMU could not listen on {HOST}:{self.port}: the port stayed in use")

    def _launch(self, qemu: str) -> bool:
        self._log = tempfile.TemporaryFile(prefix="bep-qemu-")  # noqa: SIM115 - lives as long as QEMU
        self.process = subprocess.Popen(
            qemu_command(self.elf, self.board, self.port, qemu), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log,
            preexec_fn=_die_with_parent if _pdeathsig_safe() else None)  # noqa: PLW1509 - one prctl call
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = self._stderr()
                if "Address already in use" in message and not self.requested_port:
                    self._close_log()
                    return False
                raise BEPError(f"QEMU exited at start (status {self.process.returncode}): {message}")
            listening = _listening(self.port)
            if listening or (listening is None and "waiting for connection" in self._stderr()):
                return True
            time.sleep(0.01)
        self.stop()
        raise BEPError(f"QEMU did not listen on {HOST}:{self.port} within {START_TIMEOUT:.0f} s")

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines()
                 if line.strip() and "waiting for connection" not in line]
        return " | ".join(lines) or "(no message)"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Block until QEMU exits (e.g. the firmware faulted: status 3); its exit status.
        Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Terminate QEMU (SIGTERM, SIGKILL after STOP_TIMEOUT s) and reap it. Idempotent."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:  # a forgotten board must not keep an emulator alive
        try:
            self.stop()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing left to report to
            pass



# ---------------------------------------------------------------------- run to completion

RUN_TIMEOUT = 60.0  # seconds a self-ending image (the self-test) may run


def exit_command(elf: str | Path, board: boards.Board, qemu: str | None = None) -> list[str]:
    """The QEMU command line of ``board`` running an image that ends QEMU itself through
    semihosting (the self-test): the UART on a null chardev, the semihosting console on
    QEMU's standard error."""
    return [*_machine(elf, board, qemu), *["-serial", "null"] * (board.serial_index + 1), "-semihosting-config", "enable=on,target=native"]


@dataclass(frozen=True)
class ExitRun:
    """How a self-ending image ended: QEMU's exit status (the firmware's
    SYS_EXIT_EXTENDED status) and what it printed (semihosting SYS_WRITE0, plus any
    QEMU message)."""

    status: int
    output: str
    seconds: float


def run_image(elf: str | Path, board: str, timeout: float = RUN_TIMEOUT) -> ExitRun:
    """Run ``elf`` on ``board`` in QEMU until the firmware ends it; QEMU is killed after
    ``timeout`` seconds (one-line ``BEPError``) and, whatever happens, never outlives
    this call."""
    b = check_firmware(elf, board)
    qemu = qemu_binary(b)
    with tempfile.TemporaryFile(prefix="bep-qemu-") as log:
        start = time.monotonic()
        proc = subprocess.Popen(exit_command(elf, b, qemu), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent if _pdeathsig_safe() else None)  # noqa: PLW1509
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BEPError(f"'{elf}' did not end QEMU within {timeout:g} s on {b.name} (not a self-test image, "
                           f"or it hangs)") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.monotonic() - start
        log.seek(0)
        output = log.read().decode(errors="replace")
    return ExitRun(status, output, seconds)


def run_to_exit(elf: str | Path, board: str, timeout: float = RUN_TIMEOUT) -> int:
    """QEMU's exit status after running ``elf`` to completion (see :func:`run_image`)."""
    return run_image(elf, board, timeout).status
