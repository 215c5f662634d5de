"""``bep-mcu size``: flash and RAM of a model's generated code on a target: the training
code and the inference-only code (``generate --inference-only``), both reported; a budget
is judged on one of them.

How it is measured (objects, not a linked image) is documented in bep_mcu/cgen/toolchain.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import check_name, generate as generate_c
from bep_mcu.cli.common import emit, json_option, load_model, model_argument
from bep_mcu.device import boards
from bep_mcu.errors import BEPError


def _levels(d: dict) -> list[str]:
    lines = [f"  {'level':<6}{'text':>8}{'rodata':>8}{'data':>6}{'bss':>6}{'flash':>8}{'RAM':>8}"]
    for level, s in d["levels"].items():
        lines.append(f"  -{level:<5}{s['text']:>8}{s['rodata']:>8}{s['data']:>6}{s['bss']:>6}"
                     f"{s['flash']:>8}{s['ram']:>8}")
    return lines


def _human(d: dict) -> str:
    kinds = d["state_by_kind"]
    lines = [f"network '{d['name']}' on {d['target']} ({d['compiler']}), generated C compiled as objects",
             "training code:", *_levels(d),
             f"  flash = text + rodata + data; RAM = data + bss + state buffer {d['state_bytes']} B "
             f"(hidden weights {kinds['hidden_weights']} B, packed weights {kinds['packed_weights']} B, "
             f"activations {kinds['activations']} B, header {kinds['header']} B)"]
    inf = d["inference"]
    lines += ["inference-only code (generate --inference-only):", *_levels(inf),
              f"  RAM = data + bss + work buffer {inf['state_bytes']} B (packed input "
              f"{inf['state_by_kind']['packed_input']} B, activations {inf['state_by_kind']['activations']} B)"]
    judged = inf if d["judged"] == "inference" else d
    if judged["fits"]:
        level = toolchain.BUDGET_LEVEL
        used = {"RAM": (judged["levels"][level]["ram"], judged["ram_budget"]),
                "flash": (judged["levels"][level]["flash"], judged["flash_budget"])}
        parts = [f"{what} {n} of {budget} B" for what, (n, budget) in used.items() if budget is not None]
        lines.append(f"fits at -{level} ({d['judged']} code): " + ", ".join(parts))
    return "\n".join(lines)


@click.command()
@model_argument
@click.option("--target", default=None, type=click.Choice(toolchain.TARGETS, case_sensitive=False),
              help="Core to compile for (host: the host C compiler).")
@click.option("--board", "board_name", default=None, type=click.Choice(list(boards.BOARDS)),
              help="Instead of --target: the board's core, with its RAM and flash as the budgets.")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@click.option("--ram", "ram", metavar="BYTES", default=None, help="RAM budget, e.g. 65536, 64k, 1m.")
@click.option("--flash", "flash", metavar="BYTES", default=None, help="Flash budget, e.g. 262144, 256k, 1m.")
@click.option("--inference-only", is_flag=True, help="Judge the budgets on the inference-only code.")
@json_option
def size(model_path, target, board_name, name, ram, flash, inference_only, as_json) -> None:
    """Flash and RAM of MODEL's generated training code and inference-only code, at -Os and -O2.

    Exits with an error when a --ram/--flash budget (or --board's) is exceeded (judged at
    -Os, on the training code or with --inference-only on the inference-only code).
    """
    if (target is None) == (board_name is None):
        raise BEPError("give one of --target CORE or --board BOARD")
    board = boards.board(board_name) if board_name else None
    target = board.cpu if board else target.lower()
    ram_budget = None if ram is None else toolchain.parse_bytes(ram, "--ram")
    flash_budget = None if flash is None else toolchain.parse_bytes(flash, "--flash")
    if board:
        ram_budget, flash_budget = ram_budget or board.ram_bytes, flash_budget or board.flash_bytes
    check_name(name)
    tools = toolchain.toolchain(target)
    model = load_model(model_path)
    with tempfile.TemporaryDirectory(prefix="bep-mcu-size-") as tmp:
        reports = {}
        for kind in ("training", "inference"):
            gen = generate_c(model, Path(tmp) / kind, name, inference_only=kind == "inference")
            judged = (kind == "inference") == inference_only
            reports[kind] = toolchain.measure(gen, target, Path(tmp) / f"obj-{kind}",
                                              ram_budget if judged else None, flash_budget if judged else None, tools)
    d = {**reports["training"].to_dict(), "inference": reports["inference"].to_dict(),
         "judged": "inference" if inference_only else "training", "board": board_name}
    emit(d, as_json, _human)
    report = reports["inference" if inference_only else "training"]
    over = report.excess()
    if over:
        budget = {"RAM": "--ram" if ram or not board else f"{board_name}'s RAM",
                  "flash": "--flash" if flash or not board else f"{board_name}'s flash"}
        what = "its inference-only code" if inference_only else f"'{name}'"
        raise BEPError(f"{what} does not fit on {board_name or target} at -{toolchain.BUDGET_LEVEL}: " + "; ".join(
            f"{w} {used} B exceeds {budget[w]} {limit} B by {used - limit} B" for w, used, limit in over))
