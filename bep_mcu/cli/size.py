"""``bep-mcu size``: flash and RAM of a model's generated code on a target, per part
(training, board, link, example), and of its inference-only code (``generate
--inference-only``); a budget is judged on the training part or on the inference-only code.

How it is measured (objects, not a linked image) is documented in bep_mcu/cgen/toolchain.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import check_name, generate as generate_c
from bep_mcu.cli.common import INTEGER, emit, json_option, load_model, model_argument
from bep_mcu.device import boards, persistence
from bep_mcu.errors import BEPError, DoesNotFit


def _human(d: dict) -> str:
    kinds, parts, inf = d["state_by_kind"], d["parts"], d["inference"]
    inf_kinds = inf["state_by_kind"]
    lines = [f"network '{d['name']}' on {d['target']} ({d['compiler']}), generated C compiled as objects",
             f"  {'part':<10}{'level':<6}{'text':>8}{'rodata':>8}{'data':>6}{'bss':>6}{'flash':>8}{'RAM':>8}"]
    rows = [(name, p["levels"]) for name, p in parts.items()] + [("total", d["total"])]
    rows.append(("inference", inf["parts"]["inference"]["levels"]))
    for name, levels in rows:
        for level, s in levels.items():
            lines.append(f"  {name:<10}-{level:<5}{s['text']:>8}{s['rodata']:>8}{s['data']:>6}{s['bss']:>6}"
                         f"{s['flash']:>8}{s['ram']:>8}")
    lines.append(f"  flash = text + rodata + data; RAM = data + bss + the caller's buffer: training state "
                 f"{parts['training']['buffer_bytes']} B (hidden weights {kinds['hidden_weights']} B, packed weights "
                 f"{kinds['packed_weights']} B, activations {kinds['activations']} B, header {kinds['header']} B), "
                 f"link bep_link_t {parts['link']['buffer_bytes']} B, inference work buffer {inf['state_bytes']} B "
                 f"(packed input {inf_kinds['packed_input']} B, activations {inf_kinds['activations']} B)")
    lines.append("  total: training, board, link and example; inference: the code of generate --inference-only alone")
    if "store" in d:
        lines.append(f"  {persistence.describe(d['store'])}")
    for name, p in [*parts.items(), ("inference", inf["parts"]["inference"])]:
        lines.append(f"  {name}: {' '.join(p['files'])}")
    judged = inf if d["judged"] == "inference" else d
    if judged["fits"]:
        level = toolchain.BUDGET_LEVEL
        used = judged["parts"][judged["judged"]]["levels"][level]
        budgets = [f"{what} {used[key]} of {judged[key + '_budget']} B" for what, key in (("RAM", "ram"), ("flash", "flash"))
                   if judged[key + "_budget"] is not None]
        lines.append(f"{d['judged']} code fits at -{level}: " + ", ".join(budgets))
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
@click.option("--snapshot-every", "snapshot_every", type=INTEGER, default=None, metavar="N",
              help="With --board: plan a store of snapshots in the board's flash (bep_store.h) saving every N samples "
                   "(0: on request) and print how long the flash lasts (JSON key store).")
@click.option("--slots", type=INTEGER, default=None, help="With --snapshot-every: slots of the store.  [default: 2]")
@json_option
def size(model_path, target, board_name, name, ram, flash, inference_only, snapshot_every, slots, as_json) -> None:
    """Flash and RAM of MODEL's generated code at -Os and -O2: training code, board code
    (learning alone), link (serial protocol) and example code apart, their total, and the
    inference-only code.

    Exits with an error when a --ram/--flash budget (or --board's) is exceeded (judged at
    -Os, on the training code or with --inference-only on the inference-only code).
    """
    if (target is None) == (board_name is None):
        raise BEPError("give one of --target CORE or --board BOARD")
    if snapshot_every is None and slots is not None:
        raise BEPError("--slots goes with --snapshot-every N")
    if snapshot_every is not None and board_name is None:
        raise BEPError("--snapshot-every needs --board BOARD (its flash pages and endurance)")
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
    result = {**reports["training"].to_dict(), "inference": reports["inference"].to_dict(),
              "judged": "inference" if inference_only else "training", "board": board_name}
    if snapshot_every is not None:
        result["store"] = persistence.plan_store(model, board, snapshot_every,
                                                 persistence.DEFAULT_SLOTS if slots is None else slots).to_dict()
    over = reports[result["judged"]].excess()
    if not over:
        emit(result, as_json, _human)
        return
    budget = {"RAM": "--ram" if ram or not board else f"{board_name}'s RAM",
              "flash": "--flash" if flash or not board else f"{board_name}'s flash"}
    what = "its inference-only code" if inference_only else f"'{name}' training code"
    error = DoesNotFit(f"{what} does not fit on {board_name or target} at -{toolchain.BUDGET_LEVEL}: " + "; ".join(
        f"{w} {used} B exceeds {budget[w]} {limit} B by {used - limit} B" for w, used, limit in over))
    # One JSON object stays the last line: the report, with the error in it.
    emit({**result, "error": str(error), "exit_status": error.exit_status} if as_json else result, as_json, _human)
    click.echo(f"error: {error}", err=True)
    raise SystemExit(error.exit_status)
