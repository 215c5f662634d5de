"""A board's store of snapshots in flash (templates/runtime/bep_store.h): its layout on a
board, what a save costs, and how long the flash lasts under a write policy.

A store is ``slots`` slots of whole flash pages, each holding one snapshot; a save erases
the pages of one slot (round robin) and programs the snapshot in the flash's write units.
So each page is erased once every ``slots`` saves, and with E rated erase cycles, one save
every N samples and R samples a second, the store lasts E · slots · N / R seconds. R is
bounded from above by the board's clock over the predicted instructions of a training
sample (``cgen.cost``; one instruction a cycle, faster than any Cortex-M runs the step),
so the lifetime printed is a lower bound for a board that trains without pause.
"""

from __future__ import annotations

from dataclasses import dataclass

from bep_mcu import validate
from bep_mcu.cgen import cost
from bep_mcu.cgen.codegen import snapshot_bytes
from bep_mcu.cgen.layout import plan_model
from bep_mcu.device.boards import Board
from bep_mcu.model import Model

DEFAULT_SLOTS = 2
MAX_SLOTS = 64
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class StorePlan:
    board: str
    snapshot_bytes: int
    page_bytes: int
    write_bytes: int
    slots: int
    every_samples: int          # bep_store_tick's policy (0: saves on request only)
    endurance: int              # erase cycles a page is rated for
    samples_per_second: float   # at most: the board's clock over the instructions of a sample
    driver: str | None

    @property
    def slot_pages(self) -> int:
        return -(-self.snapshot_bytes // self.page_bytes)

    @property
    def store_bytes(self) -> int:
        return self.slots * self.slot_pages * self.page_bytes

    @property
    def ops_per_save(self) -> int:
        """Flash operations of one save: each page of the slot erased, each write unit programmed."""
        return self.slot_pages + -(-self.snapshot_bytes // self.write_bytes)

    @property
    def saves(self) -> int:
        """Saves the flash takes before its pages reach their rated erase cycles."""
        return self.endurance * self.slots

    @property
    def lifetime_seconds(self) -> float | None:
        if self.every_samples == 0:
            return None
        return self.saves * self.every_samples / self.samples_per_second

    def to_dict(self) -> dict:
        life = self.lifetime_seconds
        return {"board": self.board, "snapshot_bytes": self.snapshot_bytes, "page_bytes": self.page_bytes,
                "write_bytes": self.write_bytes, "slots": self.slots, "slot_pages": self.slot_pages,
                "store_bytes": self.store_bytes, "every_samples": self.every_samples, "endurance": self.endurance,
                "saves_before_wear_out": self.saves, "samples_per_second_at_most": round(self.samples_per_second, 1),
                "lifetime_seconds_at_least": None if life is None else round(life, 1),
                "lifetime_days_at_least": None if life is None else round(life / SECONDS_PER_DAY, 2),
                "flash_driver": self.driver}



def describe(d: dict) -> str:
    """One line about a store (``StorePlan.to_dict()``)."""
    head = (f"store: {d['slots']} slots of {d['slot_pages']} x {d['page_bytes']} B pages ({d['store_bytes']} B of "
            f"flash) for a {d['snapshot_bytes']} B snapshot; {d['saves_before_wear_out']:,} saves before the pages "
            f"reach {d['endurance']:,} erase cycles")
    if d["lifetime_seconds_at_least"] is None:
        return head + " (saves on request only)"
    return (head + f"; one save every {d['every_samples']} samples at up to {d['samples_per_second_at_most']:,.0f} "
            f"samples/s: at least {_duration(d['lifetime_seconds_at_least'])} of continuous training")


def _duration(seconds: float) -> str:
    days = seconds / SECONDS_PER_DAY
    if days >= 365:
        return f"{days / 365:.1f} years"
    if days >= 1:
        return f"{days:.1f} days"
    return f"{seconds / 3600:.1f} hours"


def plan_store(model: Model, board: Board, every_samples: int, slots: int = DEFAULT_SLOTS) -> StorePlan:
    """The store of ``model``'s snapshots on ``board`` with a save every ``every_samples``
    samples (0: on request)."""
    validate.integer(every_samples, "--snapshot-every", 0, 0xFFFFFFFF)
    validate.integer(slots, "--slots", 2, MAX_SLOTS)
    t = model.training
    instructions = cost.instructions_per_sample(model.spec, t.gamma, board.cpu, t.batch_size, error_rate=1.0)
    return StorePlan(board.name, snapshot_bytes(plan_model(model)), board.flash_page_bytes,
                     board.flash_write_bytes, slots, every_samples, board.flash_endurance,
                     board.clock_hz / instructions, board.flash_driver)
