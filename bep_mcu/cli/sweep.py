"""``bep-mcu sweep``: search for the most accurate network that fits a board, on Ray Tune
(the search lives in ``bep_mcu/sweep.py``; this module reads and writes the files)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

import click

from bep_mcu import files, modelio, plots, sweep, validate
from bep_mcu.cli.common import INTEGER, data_options, emit, json_option, load_data, progress, progress_bar, \
    setting_option
from bep_mcu.device import boards
from bep_mcu.errors import BEPError
from bep_mcu.settings import BY_NAME

MAX_RESULTS_BYTES = 1 << 30
MAX_LINE_BYTES = 1 << 20  # a record is about 1 KB, plus 20 B an epoch of its validation history


def read_results(path: str, add: Callable[[int, bytes], None]) -> int | None:
    """Hand each line of a results file to ``add(line number, line)``, reading one line
    at a time and none longer than :data:`MAX_LINE_BYTES`. Returns where an incomplete
    last line starts (a write cut short by a kill), else None; no file is no records."""
    if not os.path.lexists(path):
        return None
    where = f"results file '{path}'"
    offset = 0
    with files.open_regular(path, "results file", MAX_RESULTS_BYTES) as f:
        try:
            for n, line in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
                if not line.endswith(b"\n"):
                    if len(line) > MAX_LINE_BYTES:
                        raise BEPError(f"{where} line {n} is longer than {MAX_LINE_BYTES} bytes (not a bep-mcu "
                                       f"sweep results file?)")
                    return offset  # the end of the file, in the middle of a line
                add(n, line)
                offset += len(line)
                if offset > MAX_RESULTS_BYTES:  # it grew while it was read
                    raise BEPError(f"{where} is more than the limit of {MAX_RESULTS_BYTES} bytes")
        except OSError as e:
            raise BEPError(f"cannot read {where}: {e.strerror or e}") from None
    return None


def drop_incomplete_line(path: str, offset: int) -> None:
    """Cut an interrupted last record off, so appending continues on a clean line."""
    progress(f"{path}: dropping an incomplete last line (an interrupted write)")
    try:
        os.truncate(path, offset)
    except OSError as e:
        raise BEPError(f"cannot repair results file '{path}': {e.strerror or e}") from None


def _public(summary: dict) -> dict:
    keep = ("trial", "config", "network", "val_accuracy", "ram_bytes", "flash_bytes", "state_bytes", "instructions",
            "inference_bytes", "standalone_ram_bytes", "standalone_flash_bytes", "seeds")
    return {k: summary[k] for k in keep if k in summary}


def _human(d: dict) -> str:
    b = d["best"]
    lines = [f"{d['trials']} configuration(s) on {d['board']}: {d['ran']} trained on {len(d['nodes'])} Ray node(s) "
             f"({d['stopped']} stopped early), {d['skipped']} skipped (do not fit)"
             + (f"; {d['resumed']} taken from {d['results']}" if d["resumed"] else ""),
             "Pareto front (validation accuracy vs RAM):"]
    for s in d["pareto"]:
        lines.append(f"  trial {s['trial']:>4}  {'-'.join(map(str, s['network'])):<16} val {s['val_accuracy']:.4f}  "
                     f"RAM {s['ram_bytes']:>8} B  flash {s['flash_bytes']:>8} B  {s['instructions']:>9} instr/sample")
    lines.append(f"best: trial {b['trial']} {b['config']}: val {b['val_accuracy']:.4f}, test {b['test_accuracy']:.4f}, "
                 f"RAM {b['ram_bytes']} of {d['board_ram_bytes']} B"
                 + (f"; saved {b['model']}" if b["model"] else ""))
    return "\n".join(lines)


@click.command(name="sweep")
@data_options
@click.option("--board", "board_name", required=True, type=click.Choice(list(boards.BOARDS)), help="Board to fit.")
@click.option("--trials", type=INTEGER, default=16, help="Network configurations to sample.")
@click.option("--model", "network", type=click.Choice(["mlp", "rnn"]), default="mlp",
              help="Binary MLP or binary Elman RNN.")
@click.option("--seeds", type=INTEGER, default=1, help="Training seeds per configuration (its accuracy is their mean).")
@click.option("--seed", type=INTEGER, default=0, help="Seed of the sampled configurations and the first training seed.")
@click.option("--epochs", type=INTEGER, default=10, help="Epochs per trial.")
@click.option("--early-stop/--no-early-stop", default=False,
              help="Let ASHA stop trials that trail their peers (from 4 epochs up): faster, but a stopped trial "
                   "never wins, even one that would have.")
@click.option("--standalone", is_flag=True,
              help="Require the image that learns the data alone (firmware --standalone-data) to fit the board too.")
@setting_option(BY_NAME["val_fraction"])
@setting_option(BY_NAME["preset"])
@click.option("--max-instructions", type=INTEGER, default=None,
              help="Skip networks predicted to need more instructions per training sample on the board's core.")
@click.option("--address", default=None, metavar="ADDR",
              help="Run the trials on the Ray cluster whose head is at ADDR (HOST:PORT, or auto: the one `ray start` "
                   f"started on this machine); gives up after about {sweep.CONNECT_TIMEOUT} s when no head answers "
                   "there [default: Ray in this process, on this machine's cores].")
@click.option("--results", "results_path", type=click.Path(), default=None,
              help="JSONL file the trials are appended to as they finish; an interrupted sweep given the same file "
                   "runs only the missing trials.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the best network, retrained, as a model file (for bep-mcu firmware).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the Pareto fronts (accuracy vs RAM and vs instructions) as a PNG.")
@json_option
def sweep_cmd(dataset, data_path, test_data, board_name, trials, network, seeds, seed, epochs, early_stop, standalone,
              val_fraction, preset, max_instructions, address, results_path, out, plot_path, as_json) -> None:
    """Find the most accurate network that fits BOARD: trials on Ray Tune, widths sampled
    from those that fit, skipped when they do not (RAM, flash, instructions), scored on a
    validation split."""
    settings = sweep.SweepSettings(board=board_name, model=network, trials=trials, seeds=seeds, seed=seed,
                                   epochs=epochs, val_fraction=val_fraction, preset=preset,
                                   max_instructions=max_instructions,
                                   early_stop=early_stop, standalone=standalone)
    if address is not None:
        validate.text(address, "--address")
    sweep.prepare_ray(address)  # before anything imports Ray: it reads its environment then
    if plot_path is not None:
        plots.require_matplotlib()
    for path in (out, plot_path):
        if path is not None:
            files.check_writable(path)
    data = load_data(dataset, data_path, test_data)
    start = time.perf_counter()
    sweep_id = sweep.fingerprint(data.name, data.X_train, data.y_train, settings, (data.X_test, data.y_test))
    records = sweep.Records(settings, sweep_id, f"results file '{results_path}'")
    results = ResultsFile(results_path, records)
    with _trial_bar() as tick:
        try:
            found = sweep.search(data.name, data.X_train, data.y_train, settings, sweep_id, records, results.append,
                                 progress, address, tick, data if standalone else None)
        except BEPError as e:
            raise type(e)(f"{e}{results.again}") from None
    results.matched()
    test_accuracy = found.model.score(data.X_test, data.y_test)
    if out is not None:
        modelio.save(found.model.with_training(notes={
            **found.model.training.notes, "dataset": data.name[:1024], "test_accuracy": test_accuracy,
            "val_accuracy": found.winner["val_accuracy"], "sweep_board": board_name,
            "sweep_trial": found.winner["trial"]}), out)
    if plot_path is not None:
        png = plots.pareto_fronts(found.summaries, found.fronts, found.winner, board_name,
                                  {"ram_bytes": boards.board(board_name).ram_bytes, "instructions": max_instructions})
        files.write_atomic(plot_path, lambda f: f.write(png))
    result = _result(found, settings, data.name, address, results_path, sweep_id, test_accuracy, out, plot_path)
    emit({**result, "seconds": time.perf_counter() - start}, as_json, _human)


class ResultsFile:
    """The ``--results`` file of a sweep (or none): its records read into ``records`` line
    by line (bounded), an incomplete last line cut off once the file is known to be this
    sweep's, and new records appended."""

    def __init__(self, path: str | None, records: sweep.Records) -> None:
        self.path = path
        self.incomplete = read_results(path, records.add) if path is not None else None
        if path is not None:
            files.check_writable(path)

    def matched(self) -> None:
        """The records matched the sweep's plan: the file is this sweep's, so an incomplete
        last line (a write cut short) is cut off before anything is appended."""
        if self.incomplete is not None:
            drop_incomplete_line(self.path, self.incomplete)
            self.incomplete = None

    def append(self, rec: dict) -> None:
        self.matched()  # search() appends only after matching its records
        if self.path is not None:
            files.append_line(self.path, json.dumps(rec, sort_keys=True))

    @property
    def again(self) -> str:
        """What the one line of an unfinished sweep adds about running it again."""
        return f"; the same command runs them again (the others are in {self.path})" if self.path else ""


@contextlib.contextmanager
def _trial_bar():
    """A progress bar of finished trials on standard error, as ``search``'s ``tick``."""
    with progress_bar("trials", "trial") as bar:
        def tick(total: int, best_val: float | None) -> None:
            bar.total = total
            bar.update(1)
            if best_val is not None:
                bar.set_postfix(best_val=f"{best_val:.3f}")

        yield tick


def _result(found: sweep.Outcome, settings: sweep.SweepSettings, dataset: str, address: str | None,
            results_path: str | None, sweep_id: str, test_accuracy: float, out: str | None,
            plot_path: str | None) -> dict:
    """The ``--json`` keys."""
    board, summaries, winner = boards.board(settings.board), found.summaries, found.winner
    counts = {s: sum(x["status"] == s for x in summaries) for s in ("done", "stopped", "skipped")}
    return {
        "engine": "ray", "address": address, "ray_address": found.engine_address, "dataset": dataset,
        "board": board.name, "cpu": board.cpu, "board_ram_bytes": board.ram_bytes,
        "board_flash_bytes": board.flash_bytes, "model": settings.model, "trials": len(summaries),
        "seeds": settings.seeds, "seed": settings.seed, "epochs": settings.epochs, "early_stop": settings.early_stop,
        "standalone": settings.standalone,
        "ran": counts["done"] + counts["stopped"], "stopped": counts["stopped"], "skipped": counts["skipped"],
        "resumed": found.resumed, "results": results_path, "sweep": sweep_id,
        "nodes": sorted({n for s in summaries for n in s.get("nodes", [])}),
        "best": {**_public(winner), "seed": winner["best_seed"], "test_accuracy": test_accuracy,
                 "retrained_val_accuracy": found.model.training.history[-1]["val_accuracy"], "model": out},
        "pareto": [_public(s) for s in found.fronts["ram_bytes"]],
        "pareto_instructions": [_public(s) for s in found.fronts["instructions"]],
        "plot": plot_path,
    }
