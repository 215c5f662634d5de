"""``bep-mcu firmware``: build a training firmware for one board and report its size
(the planning and building live in ``bep_mcu/device/firmware.py``); with ``--self-test
GOLDEN``, an image that replays a golden file on the board instead (and ``--run`` runs
it in QEMU)."""

from __future__ import annotations

import click

from bep_mcu import validate
from bep_mcu.cli.common import emit, json_option, load_model, model_argument, progress
from bep_mcu.device import boards
from bep_mcu.device.emulate import RUN_TIMEOUT, run_image
from bep_mcu.device.firmware import LEVEL, SELFTEST_EXIT, SELFTEST_OUT, build, build_selftest
from bep_mcu.errors import BEPError


def _human(d: dict) -> str:
    def pct(used: int, budget: int) -> str:
        return f"{100.0 * used / budget:.1f} %"

    ram = (f"  RAM   {d['ram_bytes']:>8} of {d['ram_budget']:>8} B ({pct(d['ram_bytes'], d['ram_budget'])}): "
           f"state {d['state_bytes']} + link {d['link_bytes']} (payload {d['max_payload']}) + stack {d['stack_bytes']} "
           f"+ firmware {d['firmware_static_bytes']}; predicted {d['predicted_ram_bytes']}")
    flash = (f"  flash {d['flash_bytes']:>8} of {d['flash_budget']:>8} B ({pct(d['flash_bytes'], d['flash_budget'])}): "
             f"network tables {d['predicted_tables_bytes']} + code and runtime tables "
             f"{d['flash_bytes'] - d['predicted_tables_bytes']}")
    return "\n".join([f"{d['elf']} for {d['board']} ({d['cpu']}), built with -{LEVEL}",
                      f"  text {d['text']}  data {d['data']}  bss {d['bss']}  (arm-none-eabi-size)", ram, flash])


def _human_selftest(d: dict) -> str:
    lines = [f"{d['elf']}: self-test of {d['golden']} for {d['board']} ({d['cpu']}), built with -{LEVEL}",
             f"  text {d['text']}  data {d['data']}  bss {d['bss']}  (arm-none-eabi-size)",
             (f"  RAM   {d['ram_bytes']:>8} of {d['ram_budget']:>8} B: state {d['state_bytes']} + stack "
              f"{d['stack_bytes']} + firmware {d['firmware_static_bytes']} + self-test buffers "
              f"{d['self_test_buffer_bytes']} (batches up to {d['golden_max_batch']}); predicted "
              f"{d['predicted_ram_bytes']}"),
             (f"  flash {d['flash_bytes']:>8} of {d['flash_budget']:>8} B: golden file {d['golden_bytes']} "
              f"({d['golden_batches']} batches) + network tables {d['predicted_tables_bytes']} + code and the rest "
              f"{d['flash_bytes'] - d['golden_bytes'] - d['predicted_tables_bytes']}")]
    if "self_test_passed" in d:
        verdict = "PASS" if d["self_test_passed"] else "FAIL"
        lines.append(f"  self-test in QEMU: {verdict}, exit status {d['self_test_exit']} "
                     f"({d['self_test_result']}), {d['self_test_seconds']:.2f} s")
        lines += [f"  {line}" for line in d["self_test_output"].splitlines()]
    return "\n".join(lines)


@click.command(name="firmware")
@model_argument
@click.option("--board", "board_name", required=True, type=click.Choice(list(boards.BOARDS)),
              help="Board to build for.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output directory  [default: firmware-<board>]")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@click.option("--self-test", "golden_path", default=None, metavar="GOLDEN", type=click.Path(dir_okay=False),
              help="Build a self-test instead: the image replays this golden file (bep-mcu golden) and ends QEMU "
                   "with exit status 0 (match), 1 (mismatch), 2 (foreign file). [default --out: selftest-<board>]")
@click.option("--run", "run", is_flag=True, help="With --self-test: run the image in QEMU and report the verdict "
              "(JSON key self_test_passed); exit status 1 when it fails.")
@click.option("--timeout", type=float, default=RUN_TIMEOUT, show_default=True,
              help="With --run: seconds before QEMU is killed.")
@json_option
def firmware_cmd(model_path, board_name, out_dir, name, golden_path, run, timeout, as_json) -> None:
    """Build a training firmware for BOARD running MODEL's network, and report its size.

    Refuses (exit status 3, one line) when the network does not fit the board's RAM or flash.
    With --self-test GOLDEN it builds the self-test image (bep_mcu/fw/selftest.c) instead,
    refusing a golden file of another network configuration in one line.
    """
    if golden_path is None:
        if run:
            raise BEPError("--run goes with --self-test GOLDEN")
        result = build(load_model(model_path), board_name, out_dir or f"firmware-{board_name}", name,
                       on_progress=progress)
        emit(result.to_dict(), as_json, _human)
        return
    validate.timeout(timeout)
    st = build_selftest(load_model(model_path), board_name, golden_path, out_dir or SELFTEST_OUT.format(board=board_name),
                        name, on_progress=progress, model_name=str(model_path))
    d = st.to_dict()
    if run:
        progress(f"running {st.firmware.elf} in QEMU ({board_name})")
        ran = run_image(st.firmware.elf, board_name, timeout)
        d.update({"self_test_passed": ran.status == 0, "self_test_exit": ran.status,
                  "self_test_result": SELFTEST_EXIT.get(ran.status, "unexpected QEMU exit status"),
                  "self_test_output": ran.output, "self_test_seconds": round(ran.seconds, 3)})
    emit(d, as_json, _human_selftest)
    if run and not d["self_test_passed"]:
        raise SystemExit(1)

