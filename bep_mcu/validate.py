"""Type and range checks for values from outside (model files, options, data).

Each check returns the value as the exact Python type the rest of the code relies on
(an ``int`` is a real ``int``: never a bool, a float or a numpy scalar) or raises a
one-line ``BEPError`` that names the field and shows the bad value, shortened and
quoted so that a hostile value cannot forge the rest of the line.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

from bep_mcu.errors import BEPError

UINT32_MAX = 0xFFFFFFFF
INT32_MAX = 0x7FFFFFFF
# Numbers written as text, in ASCII only: int() and float() also read other scripts' digits
# ('٣', '３' and '߃' are 3), '1_000' and surrounding spaces.
INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)",
                         re.ASCII | re.IGNORECASE)


def show(value: object, limit: int = 48) -> str:
    """A short, single-line, quoted rendering of an untrusted value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def integer(value: object, field: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; bools, floats (even 16.0) and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BEPError(f"{field} must be an integer in {lo}..{hi}, got {show(value)}")
    value = int(value)
    if not lo <= value <= hi:
        raise BEPError(f"{field} must be an integer in {lo}..{hi}, got {value}")
    return value


def int_text(text: str) -> int:
    """``int(text)`` for text from outside, ASCII digits only; ValueError otherwise."""
    if not isinstance(text, str) or not INTEGER_TEXT.fullmatch(text):
        raise ValueError(f"not an integer in ASCII digits: {show(text)}")
    return int(text)


def float_text(text: str) -> float:
    """``float(text)`` for text from outside, ASCII only (range checks are the caller's);
    ValueError otherwise."""
    if not isinstance(text, str) or not NUMBER_TEXT.fullmatch(text):
        raise ValueError(f"not a number in ASCII digits: {show(text)}")
    return float(text)


def number(value: object, field: str, lo: float, hi: float) -> float:
    """A finite real number in [lo, hi] (integers accepted; bools, NaN and inf refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise BEPError(f"{field} must be a number in {lo:g}..{hi:g}, got {show(value)}")
    value = float(value)
    if not lo <= value <= hi:
        raise BEPError(f"{field} must be a number in {lo:g}..{hi:g}, got {value:g}")
    return value


def text(value: object, field: str, max_len: int = 256) -> str:
    """A string of at most ``max_len`` characters."""
    if not isinstance(value, str) or len(value) > max_len:
        raise BEPError(f"{field} must be a string of at most {max_len} characters, got {show(value)}")
    return value


def choice(value: object, field: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BEPError(f"{field} must be one of {', '.join(choices)}, got {show(value)}")
    return value


def integers(value: object, field: str, lo: int, hi: int, min_len: int = 1, max_len: int = 64,
             length: int | None = None) -> tuple[int, ...]:
    """A list of integers in [lo, hi]; ``length`` fixes its length."""
    if not isinstance(value, (list, tuple)) or not (min_len <= len(value) <= max_len):
        raise BEPError(f"{field} must be a list of {min_len}..{max_len} integers, got {show(value)}")
    if length is not None and len(value) != length:
        raise BEPError(f"{field} must hold {length} value(s), got {len(value)}")
    return tuple(integer(v, f"{field}[{i}]", lo, hi) for i, v in enumerate(value))


def mapping(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise BEPError(f"{field} must be an object, got {show(value)}")
    return value


def seed(value: object, field: str = "--seed") -> int:
    """Seeds key the C generator as uint32: 0..2^32-1."""
    return integer(value, field, 0, UINT32_MAX)


def timeout(value: object, field: str = "--timeout", hi: float = 24 * 3600.0) -> float:
    """A finite number of seconds > 0 (NaN would spin forever, inf overflows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not 0 < float(value) <= hi:
        raise BEPError(f"{field} must be a number of seconds in (0, {hi:g}], got {show(value)}")
    return float(value)
