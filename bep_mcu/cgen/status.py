"""Status codes of the C runtime: the one list the enum and its strings are rendered from."""

from __future__ import annotations

# (name without the BEP_ prefix, value, meaning). BEP_OK is 0, errors are negative.
STATUS: list[tuple[str, int, str]] = [
    ("OK", 0, "success"),
    ("ERR_NULL", -1, "a required pointer is NULL"),
    ("ERR_SIZE", -2, "a buffer is too small or has the wrong length"),
    ("ERR_ABI", -3, "generated code and runtime were built for different ABI versions"),
    ("ERR_ALIGN", -4, "the state buffer is not 4-byte aligned"),
    ("ERR_STATE", -5, "the state buffer was not initialised for this network"),
    ("ERR_ARG", -6, "an argument is out of range"),
    ("ERR_LABEL", -7, "the label is not a class of this network"),
    ("ERR_BATCH_OPEN", -8, "a batch with updates is open: call end_batch first"),
    ("ERR_FOREIGN", -9, "the snapshot was written by another network configuration"),
    ("ERR_CORRUPT", -10, "the snapshot is damaged (magic, version, length, CRC or contents)"),
    ("ERR_EMPTY", -11, "the store holds no valid snapshot of this network"),
    ("ERR_FLASH", -12, "the flash driver failed, or what it programmed did not read back"),
]

BY_VALUE = {value: (name, meaning) for name, value, meaning in STATUS}


def status_value(name: str) -> int:
    """The value of status ``name`` (without the BEP_ prefix)."""
    return next(value for n, value, _ in STATUS if n == name)


def status_name(value: int) -> str:
    name, meaning = BY_VALUE.get(value, (f"UNKNOWN({value})", "unknown status"))
    return f"BEP_{name}: {meaning}"
