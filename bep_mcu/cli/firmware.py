"""``bep-mcu firmware``: build a training firmware for one board and report its size
(the planning and building live in ``bep_mcu/device/firmware.py``); with ``--self-test
GOLDEN``, an image that replays a golden file on the board instead; with
``--standalone-data DATA``, a board that learns DATA on its own (``device/standalone.py``).
``--run`` runs either in QEMU."""

from __future__ import annotations

import click

from bep_mcu import validate
from bep_mcu.cli.common import INTEGER, NUMBER, emit, input_format, input_format_options, json_option, load_model, \
    model_argument, progress
from bep_mcu.data import inputformat
from bep_mcu.data.datasets import load_dataset
from bep_mcu.device import boards, persistence, standalone
from bep_mcu.device.emulate import RUN_TIMEOUT, run_image
from bep_mcu.device.firmware import LEVEL, SELFTEST_EXIT, SELFTEST_OUT, STANDALONE_OUT, PowerCuts, build, \
    build_selftest, build_standalone
from bep_mcu.engine.schedule import ProgressBudget
from bep_mcu.errors import BEPError
from bep_mcu.model import MAX_EPOCHS


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


def _human_standalone(d: dict) -> str:
    lines = [f"{d['elf']}: {d['board']} ({d['cpu']}) learning {d['data']} on its own, built with -{LEVEL}",
             f"  text {d['text']} (the samples: {d['data_bytes']})  bss {d['bss']}  (arm-none-eabi-size)",
             (f"  RAM   {d['ram_bytes']:>8} of {d['ram_budget']:>8} B: state {d['state_bytes']} + stack "
              f"{d['stack_bytes']} + firmware {d['firmware_static_bytes']} + sample and snapshot "
              f"{d['standalone_buffer_bytes']}; predicted {d['predicted_ram_bytes']}"),
             (f"  flash {d['flash_bytes']:>8} of {d['flash_budget']:>8} B: {d['train_samples']} training and "
              f"{d['test_samples']} test samples as {d['input_type']} ({d['data_bytes']} B) + network tables "
              f"{d['predicted_tables_bytes']} + code and the rest"),
             (f"  inputs: {d['input_type']}; training values within one quantum of a threshold "
              f"{d['input_report']['near_threshold_values']} of {d['input_report']['values']}, saturated "
              f"{d['input_report']['saturated_values']}, bits that differ from the real values' "
              f"{d['input_report']['differing_bits']}")]
    if "store" in d:
        lines.append(f"  {persistence.describe(d['store'])}")
    if "bit_exact" in d:
        verdict = "bit-exact with the host" if d["bit_exact"] else f"DIFFERS from the host: {d['first_difference']}"
        budget = (f" (followed its training error: at least {d['min_epochs']}, at most {d['max_epochs']})"
                  if d["follow_progress"] else "")
        lines.append(f"  ran {d['epochs']} epochs{budget} ({d['samples']} samples) in QEMU in {d['seconds']:.2f} s: "
                     f"{verdict}")
        if "learning_kept" in d:
            lines.append(f"  power cuts: {d['resets']} resets during its {d['saves']} saves; {d['learning_kept']} "
                         f"resumed from a save (learning kept)")
        lines.append(f"  test accuracy   device {d['device_test_accuracy']:.4f}   host {d['host_test_accuracy']:.4f}")
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
@click.option("--standalone-data", "standalone_data", default=None, metavar="DATA",
              help="Build a board that learns on its own instead: DATA's training set (a dataset name, .csv or "
                   ".npz) in flash as raw device values, encoded, learnt and scheduled on the board, then its test "
                   "set evaluated; no link. [default --out: standalone-<board>]")
@click.option("--epochs", type=INTEGER, default=None,
              help="With --standalone-data: epochs to learn; with --follow-progress the least.  [default: 3; with "
                   "--follow-progress train's: max(50, 40000 / training samples), at most 400]")
@click.option("--follow-progress", "follow_progress", is_flag=True,
              help="With --standalone-data: the board stops learning as `train` without --epochs does: from "
                   "--epochs epochs on, once its training error has not fallen by 1 % of the samples for "
                   "max(10, --epochs / 4) epochs, after 4 times --epochs at most (bep_<net>_should_stop).")
@click.option("--batch-size", type=INTEGER, default=None,
              help="With --standalone-data: batch size [default: the model's].")
@click.option("--power-cuts", "power_cuts", type=INTEGER, default=None, metavar="K",
              help="With --standalone-data: keep the learning in a flash store (bep_store.h) and reset the board at K "
                   "flash operations spread over its saves, as power cuts would; with --run, JSON keys learning_kept "
                   "(resets that resumed from a save) and bit_exact.")
@click.option("--snapshot-every", "snapshot_every", type=INTEGER, default=None, metavar="N",
              help="With --power-cuts: save every N samples (after a batch). [default: half an epoch, whole batches]")
@click.option("--slots", type=INTEGER, default=None, help="With --power-cuts: slots of the store.  [default: 2]")
@input_format_options
@click.option("--run", "run", is_flag=True, help="With --self-test: run the image in QEMU and report the verdict "
              "(JSON key self_test_passed); with --standalone-data: run it, simulate the same run on the host and "
              "compare (JSON key bit_exact). Exit status 1 when either fails.")
@click.option("--timeout", type=NUMBER, default=RUN_TIMEOUT, show_default=True,
              help="With --run: seconds before QEMU is killed.")
@json_option
def firmware_cmd(model_path, board_name, out_dir, name, golden_path, standalone_data, epochs, follow_progress,
                 batch_size, power_cuts, snapshot_every, slots, input_type, input_scale, run, timeout, as_json) -> None:
    """Build a training firmware for BOARD running MODEL's network, and report its size.

    Refuses (exit status 3, one line) when the network does not fit the board's RAM or flash.
    With --self-test GOLDEN it builds the self-test image (bep_mcu/fw/selftest.c) instead,
    refusing a golden file of another network configuration in one line. With
    --standalone-data DATA it builds an image that learns DATA on its own
    (bep_mcu/fw/standalone.c).
    """
    if standalone_data is not None:
        if golden_path is not None:
            raise BEPError("give --self-test GOLDEN or --standalone-data DATA, not both")
        _standalone(model_path, board_name, out_dir, name, standalone_data, (epochs, follow_progress), batch_size,
                    (power_cuts, snapshot_every, slots), input_type, input_scale, run, timeout, as_json)
        return
    for option, value in (("--epochs", epochs), ("--follow-progress", follow_progress or None),
                          ("--batch-size", batch_size), ("--input-type", input_type),
                          ("--input-scale", input_scale), ("--power-cuts", power_cuts),
                          ("--snapshot-every", snapshot_every), ("--slots", slots)):
        if value is not None:
            raise BEPError(f"{option} goes with --standalone-data DATA")
    if golden_path is None:
        if run:
            raise BEPError("--run goes with --self-test GOLDEN or --standalone-data DATA")
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



def _power_cuts(model, board_name: str, data, plan, options: tuple, min_epochs: int) -> PowerCuts | None:
    """The store and the cut points of ``--power-cuts K`` (None without it)."""
    k, every, slots = options
    if k is None:
        for option, value in (("--snapshot-every", every), ("--slots", slots)):
            if value is not None:
                raise BEPError(f"{option} goes with --power-cuts K")
        return None
    validate.integer(k, "--power-cuts", 1, 1000)
    if every is None:  # half an epoch, in whole batches
        every = max(1, -(-len(data.train_y) // (2 * plan.batch_size))) * plan.batch_size
    validate.integer(every, "--snapshot-every", 1, 0xFFFFFFFF)
    board = boards.board(board_name)
    store = persistence.plan_store(model, board, every, persistence.DEFAULT_SLOTS if slots is None else slots)
    most = (store.page_bytes - 4) // 12 - 1  # standalone.c: a magic, then 3 words per boot
    if k > most:
        raise BEPError(f"--power-cuts {k}: at most {most} on {board.name} (the boot log is one page of "
                       f"{store.page_bytes} B)")
    _, _, points = standalone.simulate(model, data, plan, 0, store, min_epochs)
    return PowerCuts(store, standalone.plan_cuts(len(points), store.ops_per_save, k))


def _standalone(model_path, board_name, out_dir, name, data_name, epoch_options, batch_size, cut_options,
                input_type, input_scale, run, timeout, as_json) -> None:
    if run:
        validate.timeout(timeout)
    epochs, follow = epoch_options
    if epochs is not None:  # the budget's cap, 4 times --epochs, must be an epoch count too
        validate.integer(epochs, "--epochs", 1, MAX_EPOCHS // ProgressBudget.CAP_FACTOR if follow else MAX_EPOCHS)
    model = load_model(model_path)
    dataset = load_dataset(data_name)
    fmt = input_format(model, dataset.X_train, input_type, input_scale)
    data = standalone.standalone_data(model, dataset, fmt)
    min_epochs = 0
    if follow:  # --epochs is the least, the budget's cap the most
        budget = standalone.budget(epochs, len(data.train_y))
        min_epochs, epochs = budget.minimum, budget.cap
    plan = standalone.board_plan(model, 3 if epochs is None else epochs, batch_size)
    cuts = _power_cuts(model, board_name, data, plan, cut_options, min_epochs)
    built = build_standalone(model, board_name, data, plan.epochs, plan.batch_size,
                             out_dir or STANDALONE_OUT.format(board=board_name), name, on_progress=progress,
                             power_cuts=cuts, min_epochs=min_epochs)
    d = {**built.to_dict(), "input_report": inputformat.report(model.encoder, fmt, dataset.X_train)}
    if run:
        progress(f"running {built.firmware.elf} in QEMU ({board_name}) and the same run on the host")
        d.update(standalone.run(built, model, plan, timeout))
    emit(d, as_json, _human_standalone)
    if run and not d["bit_exact"]:
        raise SystemExit(1)
