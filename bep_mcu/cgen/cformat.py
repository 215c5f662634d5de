"""The only way values reach generated C: formatters that accept exactly one kind of
value each and return :class:`C` text.

The Jinja environment of ``codegen`` refuses to output anything that is not ``C``
(its ``finalize`` hook), so a template cannot print a value that skipped these
functions. What each accepts:

- ``cint``/``chex``: a Python ``int`` (never a bool, float or string) in a range;
- ``cints``/``chex_words``: an integer numpy array or a sequence of such ints;
- ``cident``: a C identifier that is not a keyword;
- ``cstr``: any text, as a C string literal with every byte outside a small safe set
  written as an octal escape (so no quote, backslash, newline or trigraph survives);
- ``ctext``: text for comments and prose: characters outside a small safe set become
  ``_`` (so no ``*/`` can end a comment);
- ``cpath``: a relative path inside the generated directory, for the build files
  (CMake, JSON, YAML, properties): '/'-separated names of letters, digits, ``_ . -``
  that start with a letter, digit or ``_`` (no space, quote, ``$``, ``;``, ``..``);
- ``cversion``: a package version (digits and dots, then letters, digits, ``. + -``).

Every formatter's output is safe, unquoted or inside double quotes, in C, CMake,
JSON, YAML and Java properties alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while _Bool _Complex _Imaginary bool true false".split()
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_STR = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.,:+=()[]/#")
_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _\-.,:+=()\[\]#%<>@!^~|&;']")
_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*([.+-]?[A-Za-z0-9]+)*")
# An http(s) URL of a host and a path: nothing that could end a JSON string or a properties line.
_URL = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.~%+-]*)*")
INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1


class C(str):
    """Text that went through a formatter of this module."""


def _int(value: object, lo: int, hi: int) -> int:
    if type(value) is not int:  # noqa: E721 - exactly int: bool and numpy scalars are refused
        raise TypeError(f"generated C takes Python ints only, got {type(value).__name__} {str(value)[:40]!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{value} is outside {lo}..{hi}")
    return value


def cint(value: object, lo: int = INT64_MIN, hi: int = UINT64_MAX) -> C:
    return C(str(_int(value, lo, hi)))


def chex(value: object, digits: int = 8) -> C:
    v = _int(value, 0, (1 << (4 * digits)) - 1)
    return C(f"0x{v:0{digits}X}")


def _int_array(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise TypeError(f"generated C takes integer arrays only, got {values.dtype}")
        return values
    if isinstance(values, Sequence) and all(type(v) is int for v in values):  # noqa: E721
        return np.asarray(values, dtype=np.int64)
    raise TypeError(f"generated C takes integer arrays or lists of ints only, got {type(values).__name__}")


def cints(values, per_line: int = 16, sep: str = ",\n    ") -> C:
    vals = [str(int(v)) for v in _int_array(values).reshape(-1)]
    return C(sep.join(", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)))


def cjoin(values, sep: str = "-") -> C:
    """Integers joined for a comment (e.g. layer widths 256-128)."""
    if not _SAFE_TEXT.sub("", sep) == sep:
        raise ValueError(f"unsafe separator {sep!r}")
    return C(sep.join(str(int(v)) for v in _int_array(values).reshape(-1)))


def chex_words(values, per_line: int = 6, sep: str = ",\n    ") -> C:
    a = _int_array(values).reshape(-1)
    if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
        raise ValueError("words must be 0..0xFFFFFFFF")
    vals = [f"0x{int(v):08X}u" for v in a]
    return C(sep.join(", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)))


def cident(name: object) -> C:
    if not isinstance(name, str) or not _IDENT.fullmatch(name) or name in C_KEYWORDS:
        raise ValueError(f"{str(name)[:40]!r} is not a C identifier")
    return C(name)


def cstr(text: object) -> C:
    """A C string literal holding ``text`` (UTF-8) exactly."""
    if not isinstance(text, str):
        raise TypeError(f"cstr takes text, got {type(text).__name__}")
    return C('"' + "".join(chr(b) if b in _SAFE_STR else f"\\{b:03o}" for b in text.encode("utf-8")) + '"')


def ctext(text: object, max_len: int = 200) -> C:
    """Text for a comment or the README: one line, safe characters only."""
    if not isinstance(text, str):
        raise TypeError(f"ctext takes text, got {type(text).__name__}")
    return C(_SAFE_TEXT.sub("_", text[:max_len]))


def cpath(path: object) -> C:
    """A relative path inside the generated directory (see the module docstring)."""
    if not isinstance(path, str) or len(path) > 200 or not _PATH.fullmatch(path):
        raise ValueError(f"{str(path)[:40]!r} is not a safe relative path")
    return C(path)


def cversion(version: object) -> C:
    if not isinstance(version, str) or len(version) > 40 or not _VERSION.fullmatch(version):
        raise ValueError(f"{str(version)[:40]!r} is not a version")
    return C(version)


def curl(url: object) -> C:
    """The library's home page (library.properties' url, library.json's homepage)."""
    if not isinstance(url, str) or len(url) > 200 or not _URL.fullmatch(url):
        raise ValueError(f"{str(url)[:60]!r} is not an http(s) URL of letters, digits and -._~%+/ "
                         "(no spaces, quotes, query or fragment)")
    return C(url)


def finalize(value: object) -> C:
    """Jinja's finalize hook: only formatter output may be printed into generated files."""
    if isinstance(value, C):
        return value
    raise TypeError(f"a template printed {type(value).__name__} {str(value)[:40]!r} without a formatter "
                    "(bep_mcu/cgen/cformat.py)")


FILTERS = {"cint": cint, "chex": chex, "cints": cints, "cjoin": cjoin, "chex_words": chex_words, "cident": cident,
           "cstr": cstr, "ctext": ctext, "cpath": cpath, "cversion": cversion,
           "curl": curl}
