"""Memory estimates checked before allocating: a run that cannot fit is refused in one
line with its estimate, instead of ending in a MemoryError traceback or swapping."""

from __future__ import annotations

import os

from bep_mcu.errors import DoesNotFit


def available_bytes() -> int:
    """Memory this process can still use: MemAvailable on Linux, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def require(needed: int, what: str) -> None:
    """Refuse ``what`` when its estimate ``needed`` exceeds the memory available."""
    have = available_bytes()
    if needed > have:
        raise DoesNotFit(f"{what} needs about {human(needed)} of memory; this machine has {human(have)} available")
