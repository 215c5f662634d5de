"""``bep-mcu size``: flash and RAM of a model's generated code on a target, per part
(training, link, example).

How it is measured (objects, not a linked image) is documented in bep_mcu/cgen/toolchain.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import check_name, generate as generate_c
from bep_mcu.cli.common import emit, json_option, load_model, model_argument
from bep_mcu.errors import DoesNotFit


def _human(d: dict) -> str:
    kinds, parts = d["state_by_kind"], d["parts"]
    lines = [f"network '{d['name']}' on {d['target']} ({d['compiler']}), generated C compiled as objects",
             f"  {'part':<10}{'level':<6}{'text':>8}{'rodata':>8}{'data':>6}{'bss':>6}{'flash':>8}{'RAM':>8}"]
    rows = [(name, p["levels"]) for name, p in parts.items()] + [("total", d["total"])]
    for name, levels in rows:
        for level, s in levels.items():
            lines.append(f"  {name:<10}-{level:<5}{s['text']:>8}{s['rodata']:>8}{s['data']:>6}{s['bss']:>6}"
                         f"{s['flash']:>8}{s['ram']:>8}")
    lines.append(f"  flash = text + rodata + data; RAM = data + bss + the caller's buffer: training state "
                 f"{parts['training']['buffer_bytes']} B (hidden weights {kinds['hidden_weights']} B, packed weights "
                 f"{kinds['packed_weights']} B, activations {kinds['activations']} B, header {kinds['header']} B), "
                 f"link bep_link_t {parts['link']['buffer_bytes']} B")
    for name, p in parts.items():
        lines.append(f"  {name}: {' '.join(p['files'])}")
    if d["fits"]:
        level = toolchain.BUDGET_LEVEL
        training = parts["training"]["levels"][level]
        used = {"RAM": (training["ram"], d["ram_budget"]), "flash": (training["flash"], d["flash_budget"])}
        budgets = [f"{what} {n} of {budget} B" for what, (n, budget) in used.items() if budget is not None]
        lines.append(f"training code fits at -{level}: " + ", ".join(budgets))
    return "\n".join(lines)


@click.command()
@model_argument
@click.option("--target", required=True, type=click.Choice(toolchain.TARGETS, case_sensitive=False),
              help="Core to compile for (host: the host C compiler).")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@click.option("--ram", "ram", metavar="BYTES", default=None, help="RAM budget, e.g. 65536, 64k, 1m.")
@click.option("--flash", "flash", metavar="BYTES", default=None, help="Flash budget, e.g. 262144, 256k, 1m.")
@json_option
def size(model_path, target, name, ram, flash, as_json) -> None:
    """Flash and RAM of MODEL's generated code at -Os and -O2: training code, link (serial
    protocol) and example code apart, and their total.

    Exits with an error when the training code exceeds a --ram/--flash budget (judged at -Os).
    """
    target = target.lower()
    ram_budget = None if ram is None else toolchain.parse_bytes(ram, "--ram")
    flash_budget = None if flash is None else toolchain.parse_bytes(flash, "--flash")
    check_name(name)
    tools = toolchain.toolchain(target)
    model = load_model(model_path)
    with tempfile.TemporaryDirectory(prefix="bep-mcu-size-") as tmp:
        gen = generate_c(model, Path(tmp) / "c", name)
        report = toolchain.measure(gen, target, Path(tmp) / "obj", ram_budget, flash_budget, tools)
    result = report.to_dict()
    over = report.excess()
    if not over:
        emit(result, as_json, _human)
        return
    budget = {"RAM": "--ram", "flash": "--flash"}
    error = DoesNotFit(f"'{name}' training code does not fit on {target} at -{toolchain.BUDGET_LEVEL}: " + "; ".join(
        f"{what} {used} B exceeds {budget[what]} {limit} B by {used - limit} B" for what, used, limit in over))
    # One JSON object stays the last line: the report, with the error in it.
    emit({**result, "error": str(error), "exit_status": error.exit_status} if as_json else result, as_json, _human)
    click.echo(f"error: {error}", err=True)
    raise SystemExit(error.exit_status)
