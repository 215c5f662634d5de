"""A hostile firmware image given to ``bep-mcu emulate`` is refused in one line, exit
status 2, and in bounded memory, before QEMU starts.

The board an image was built for is read from its ``.bep_board`` section. pyelftools
would inflate a compressed section (SHF_COMPRESSED) to whatever size its header
claims, and hand a NOBITS section's size back as zeros; so a 1 MB file could take GiBs.
The images here are made by hand (an ELF header, three sections), so no toolchain is
needed: a 1 GiB zlib stream of zeros in a compressed .bep_board section claiming 2 GiB,
a NOBITS .bep_board of 2 GiB, an oversized one, and 5000 section headers. The
same file with a plain .bep_board section reads back its board name, so each refusal
is the bomb's and not a malformed file's.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from bep_mcu.device.emulate import elf_board

from .conftest import assert_one_error_line, invoke
from .test_hostile_model import peak_rss

SHT_PROGBITS, SHT_STRTAB, SHT_NOBITS = 1, 3, 8
SHF_ALLOC, SHF_COMPRESSED = 0x2, 0x800
ELFCOMPRESS_ZLIB = 1
BOARD = b"mps2-an386\0"
REAL_BOARD = b"nucleo-f401re\0"  # not emulated: were the bomb read, QEMU still would not start
NAMES = b"\0.bep_board\0.shstrtab\0"


def elf32(board: bytes, sh_type: int = SHT_PROGBITS, sh_flags: int = SHF_ALLOC, sh_size: int | None = None,
          extra_sections: int = 0) -> bytes:
    """A little-endian ARM ELF32 executable: a null section, .bep_board holding ``board``
    (its header's type, flags and size as given) and the section names; then
    ``extra_sections`` null section headers."""
    board_at = 52
    names_at = board_at + len(board)
    headers_at = (names_at + len(NAMES) + 3) & ~3
    sections = [bytes(40),
                struct.pack("<10I", 1, sh_type, sh_flags, 0, board_at, len(board) if sh_size is None else sh_size,
                            0, 0, 1, 0),
                struct.pack("<10I", 12, SHT_STRTAB, 0, 0, names_at, len(NAMES), 0, 0, 1, 0)]
    sections += [bytes(40)] * extra_sections
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)  # 32-bit, little-endian, version 1
    header = struct.pack("<16sHHIIIIIHHHHHH", ident, 2, 40, 1, 0, 0, headers_at, 0x05000200, 52, 32, 0, 40,
                         len(sections), 2)
    body = header + board + NAMES
    return body + bytes(headers_at - len(body)) + b"".join(sections)


def zeros_deflated(n_bytes: int) -> bytes:
    """A zlib stream of ``n_bytes`` zeros, made in 1 MiB steps (~1 KB each)."""
    z, block = zlib.compressobj(9), bytes(1 << 20)
    return b"".join([*(z.compress(block) for _ in range(n_bytes >> 20)), z.flush()])


@pytest.fixture(scope="module")
def deflate_bomb(tmp_path_factory) -> Path:
    """.bep_board: an Elf32_Chdr claiming 2 GiB, then 1 GiB of zeros deflated (~1 MB)."""
    chdr = struct.pack("<3I", ELFCOMPRESS_ZLIB, 2 << 30, 1)
    path = tmp_path_factory.mktemp("elf") / "deflate_bomb.elf"
    path.write_bytes(elf32(chdr + zeros_deflated(1 << 30), sh_flags=SHF_ALLOC | SHF_COMPRESSED))
    assert path.stat().st_size < 4 << 20
    return path


def test_the_crafted_image_is_otherwise_a_readable_firmware(tmp_path):
    path = tmp_path / "plain.elf"
    path.write_bytes(elf32(BOARD))
    assert elf_board(path) == "mps2-an386"


@pytest.mark.parametrize("board_option", [[], ["--board", "mps2-an386"]])
def test_a_compressed_board_section_is_refused_unread(deflate_bomb, tmp_path, board_option):
    status, stderr, rss = peak_rss(["emulate", str(deflate_bomb), *board_option], tmp_path)
    assert rss < 300 << 20, f"peak RSS {rss >> 20} MiB"
    assert_one_error_line(status, stderr, ("deflate_bomb.elf", ".bep_board", "compressed"), status=2)


def test_a_nobits_board_section_is_refused_unread(tmp_path):
    path = tmp_path / "nobits.elf"
    path.write_bytes(elf32(b"", sh_type=SHT_NOBITS, sh_size=2 << 30))
    status, stderr, rss = peak_rss(["emulate", str(path)], tmp_path)
    assert rss < 300 << 20, f"peak RSS {rss >> 20} MiB"
    assert_one_error_line(status, stderr, ("nobits.elf", ".bep_board", "NOBITS"), status=2)


def test_an_oversized_board_section_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.elf"
    path.write_bytes(elf32(REAL_BOARD + bytes(100)))
    result = invoke("emulate", path)
    assert_one_error_line(result.exit_code, result.stderr, ("big.elf", ".bep_board", "114 bytes"), status=2)


def test_an_image_with_thousands_of_sections_is_refused_before_they_are_parsed(tmp_path):
    path = tmp_path / "many.elf"
    path.write_bytes(elf32(REAL_BOARD, extra_sections=5000))
    result = invoke("emulate", path)
    assert_one_error_line(result.exit_code, result.stderr, ("many.elf", "5003 sections"), status=2)
