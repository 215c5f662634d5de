"""Exact instruction counts of the generated C on emulated Cortex-M and RV32 cores.

``harness`` builds a bare-metal image (the C harness, linker script and float baseline
are files in ``c/``), runs it in unicorn and counts per function and phase (plus a
Cortex-M4 cycle model); ``report`` is the ``python -m bep_mcu.icount`` command.

Example::

    from bep_mcu.cgen.codegen import generate
    from bep_mcu.icount import count_training
    gen = generate(model, "out/net", "net")
    r = count_training(gen, "cortex-m4", X_packed, labels, batch_size=100, gamma=[8], q=[q0], seed=0)
    r["instructions_per_sample"], r["init_instructions"], r["hidden"]
"""

from bep_mcu.icount.harness import (CPUS, Image, build_float_image, build_image, count_training, missing_tools, run_float,
                      thumb_decode, thumb_instructions)
from bep_mcu.icount.report import epoch_q, main, reference_training

__all__ = ["CPUS", "Image", "build_float_image", "build_image", "count_training", "epoch_q", "main", "missing_tools",
           "reference_training", "run_float", "thumb_decode", "thumb_instructions"]
