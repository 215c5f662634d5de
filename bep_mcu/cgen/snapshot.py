"""Snapshots of what a board learnt: the bytes ``bep_<net>_snapshot`` writes.

The format's home is ``templates/runtime/bep_standalone.h`` (its layout comment and the
``BEP_SNAPSHOT_*`` defines, read here through ``abi``). The host composes the snapshot a
board must write from a trainer's state and the schedule's (:func:`compose`), so a
board's snapshot, or just its CRC, is compared with the host's bit for bit.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from bep_mcu.cgen import abi
from bep_mcu.cgen.layout import StatePlan
from bep_mcu.engine.network import Counters

MAGIC = abi.standalone_define("BEP_SNAPSHOT_MAGIC")
VERSION = abi.standalone_define("BEP_SNAPSHOT_VERSION")
HEADER_BYTES = abi.SNAPSHOT_HEADER_BYTES
SCHEDULE_FIELDS = ("epoch", "level", "stalled", "best_errors", "best_samples", "start_errors", "start_samples")
BUDGET_FIELDS = ("budget_epochs", "marked_epoch", "marked_errors")  # engine/schedule.py: ProgressMarks.state
# The fixed part, field by field (bep_standalone.h): γ and Q have one entry per possible
# layer; the generation is a store's write count (bep_store.h), 0 in a snapshot to a buffer;
# the budget's epoch count and mark come after it, then the classes in use (bep_set_classes).
HEADER_FIELDS = (("magic", "I"), ("version", "I"), ("hash", "I"), ("bytes", "I"), ("seed", "I"),
                 *((n, "I") for n in Counters.NAMES), *((f"gamma{i}", "H") for i in range(abi.MAX_LAYERS)),
                 *((f"q{i}", "I") for i in range(abi.MAX_LAYERS)), *((n, "I") for n in SCHEDULE_FIELDS),
                 ("generation", "I"), *((n, "I") for n in BUDGET_FIELDS), ("classes", "I"))
HEADER_FORMAT = "<" + "".join(code for _, code in HEADER_FIELDS)


def header_offsets() -> dict[str, tuple[int, int]]:
    """Each header field's (byte offset, size)."""
    out, off = {}, 0
    for name, code in HEADER_FIELDS:
        out[name], off = (off, struct.calcsize(code)), off + struct.calcsize(code)
    return out


def followed_offset(plan: StatePlan) -> int:
    """Where a snapshot's followed input thresholds begin (their accumulators come after them)."""
    return HEADER_BYTES + sum(p.sizes["h"] for p in plan.layers)


def snapshot_bytes(plan: StatePlan) -> int:
    """Bytes of a snapshot: header, each layer's hidden weights padded to 4, the followed input
    thresholds and their accumulators, CRC."""
    return followed_offset(plan) + 8 * plan.followed + 4


def compose(config_hash32: int, seed: int, counters: Counters, gamma: Sequence[int], q: Sequence[int],
            schedule: dict[str, int], hidden: Sequence[np.ndarray], followed: tuple[np.ndarray, np.ndarray],
            generation: int = 0, *, classes: int) -> bytes:
    """The snapshot of a state (bep_standalone.h's layout): ``schedule`` holds
    ``SCHEDULE_FIELDS`` and ``BUDGET_FIELDS`` (absent: no epoch closed since the start, all 0); γ and Q are the ones in use; ``followed`` the followed input
    thresholds and their accumulators (data/recalibration.py: ``Calibration``; empty when the
    board follows none); ``generation`` a store's (0: a buffer's); ``classes`` the classes in use."""
    pad = [0] * (abi.MAX_LAYERS - len(gamma))
    head = struct.pack(HEADER_FORMAT, MAGIC, VERSION, config_hash32, 0, seed & 0xFFFFFFFF,
                       *(getattr(counters, n) & 0xFFFFFFFF for n in Counters.NAMES), *gamma, *pad, *q, *pad,
                       *(schedule[f] & 0xFFFFFFFF for f in SCHEDULE_FIELDS), generation & 0xFFFFFFFF,
                       *(schedule.get(f, 0) & 0xFFFFFFFF for f in BUDGET_FIELDS), classes)
    assert len(head) == HEADER_BYTES
    body = b"".join(_padded(np.ascontiguousarray(h).astype(h.dtype.newbyteorder("<")).tobytes()) for h in hidden)
    body += b"".join(np.asarray(v, dtype=np.int64).astype("<i4").tobytes() for v in followed)
    total = HEADER_BYTES + len(body) + 4
    data = head[:12] + struct.pack("<I", total) + head[16:] + body
    return data + struct.pack("<I", zlib.crc32(data))


def _padded(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)
