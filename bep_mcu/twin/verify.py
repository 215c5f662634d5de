"""``bep-mcu verify``: the numpy engine and the C twin trained side by side.

Both start from the model's state (hidden weights, seed, batch counter) and train
through the one driver (``training.run_epochs``), which compares their complete state
after every batch: every hidden weight of every layer, the forward predictions and
all five counters, with exact equality, and stops at the first divergence.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from bep_mcu.cgen import package
from bep_mcu.cgen.codegen import Generated, check_name, generate
from bep_mcu.cgen.layout import plan_model
from bep_mcu.errors import BEPError
from bep_mcu.model import Model
from bep_mcu.engine.schedule import GrowingSchedule
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, Report, run_epochs, schedule_for
from bep_mcu.twin.cffi_twin import Twin, TwinTrainer


def build_twin(model: Model, name: str = "net", c_dir: str | None = None,
               defines: dict[str, str] | None = None) -> Twin:
    """Generate the C into a temporary directory (or use an existing one) and compile it."""
    check_name(name)
    if c_dir is not None:
        directory = Path(c_dir)
        src = directory / package.SRC_DIR
        if not (src / f"bep_{name}.h").is_file():
            raise BEPError(f"--c-dir '{c_dir}' holds no {package.SRC_DIR}/bep_{name}.h: generate it with "
                           f"bep-mcu generate --name {name}")
        # the user's directory, maybe edited: every source of src/ is compiled, as one part
        library = sorted(f"{package.SRC_DIR}/{p.name}" for p in src.iterdir() if p.suffix in (".c", ".h"))
        gen = Generated(directory, name, plan_model(model), model.config_hash,
                        library, {"library": library})
        return Twin(gen, model.spec, defines)
    with tempfile.TemporaryDirectory(prefix="bep-verify-") as tmp:
        return Twin(generate(model, tmp, name), model.spec, defines)  # the module is cached; sources may go


def verify(model: Model, twin: Twin, data: EncodedData, epochs: int, batch_size: int | None = None,
           patience: int = 1, grow_every: int | None = None,
           on_batch: Callable[[int, object, list], None] | None = None, layers: str = "all") -> Report:
    """Train numpy and the twin side by side from ``model``'s state, comparing every batch.

    The schedule runs on the training accuracy (no validation split here), with a short
    ``patience`` so that a few epochs cross γ changes. ``layers``: which hidden layers learn
    (``training.Plan.layers``)."""
    plan = Plan.continuing(model, epochs, batch_size, patience=patience, stall_signal="training", layers=layers)
    trainers = [NumpyTrainer(model), TwinTrainer(twin, model.training.seed, model.training.batch_counter)]
    schedule = schedule_for(plan, GrowingSchedule, every=grow_every) if grow_every else None
    return run_epochs(trainers, data, plan, on_batch=on_batch, schedule=schedule)


def summary(report: Report, batch_size: int) -> dict:
    """The JSON of ``bep-mcu verify``."""
    numpy_sps, c_sps = report.samples_per_second("numpy"), report.samples_per_second("c-twin")
    return {"bit_exact": report.bit_exact, "batches": report.batches, "epochs": report.epochs,
            "first_divergence": None if report.bit_exact else report.divergence.as_dict(),
            "numpy_samples_per_second": numpy_sps, "c_samples_per_second": c_sps, "speedup": c_sps / numpy_sps,
            "gammas": [rec["gamma"] for rec in report.history],
            "reinforced_epochs": sum(1 for rec in report.history if any(rec["reinforce_q"])),
            "batch_size": batch_size, "samples": report.samples}
