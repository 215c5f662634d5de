"""Render every measured figure of README.md and docs/ from the stored results in results/.

    python scripts/figures.py            # rewrite the marked regions
    python scripts/figures.py --check    # exit 1 naming each region that differs (tests/test_figures.py)

A region is the text between ``<!-- figures:NAME -->`` and ``<!-- /figures -->``, each
marker on its own line; its whole text comes from results/ (results/README.md says which
command wrote each file), so a figure in the README cannot drift from what was measured.
An image (``IMAGES``, drawn by bep_mcu/plots.py) carries in a PNG text chunk a digest of
the values it draws: it is stale, and drawn again, when results/ gives other values.
To change a figure, rerun the command that measures it, store its output, run this.

It lives in scripts/, not in the bep_mcu package: it reads the repository's results/,
README.md and docs/, which an installed package does not have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import textwrap
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 95  # the README's and docs' hard wrap
REGION = re.compile(r"^<!-- figures:([a-z0-9-]+) -->\n(.*?)^<!-- /figures -->$", re.M | re.S)


class FiguresError(Exception):
    """A missing or malformed results file, or a broken region: one line for the user."""


# ------------------------------------------------------------------ reading results/


class Results:
    """The stored results under ``root/results``, each file read once."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "results"
        self._cache: dict[str, object] = {}
        self._rows: dict[str, dict[str, dict]] = {}

    def _text(self, name: str) -> str:
        try:
            return (self.dir / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise FiguresError(f"results/{name}: cannot read it ({err.__class__.__name__})") from None

    def json(self, name: str):
        """A file that is one JSON value, or (``.out``: a command's standard output under
        ``--json``) whose last line is."""
        if name not in self._cache:
            text = self._text(name)
            lines = text.strip().splitlines()
            try:
                self._cache[name] = json.loads(lines[-1] if name.endswith(".out") else text)
            except (json.JSONDecodeError, IndexError):
                what = "its last line is" if name.endswith(".out") else "it is"
                raise FiguresError(f"results/{name}: {what} not JSON") from None
        return self._cache[name]

    def lines(self, name: str) -> list[str]:
        return self._text(name).splitlines()

    def json_lines(self, name: str) -> list:
        """Every JSON line of an ``.out`` file that holds several runs' output one after the other
        (a group run one ``--sets`` key at a time)."""
        values = []
        for number, line in enumerate(self.lines(name), 1):
            if line.startswith("{"):
                try:
                    values.append(json.loads(line))
                except json.JSONDecodeError:
                    raise FiguresError(f"results/{name}: line {number} is not JSON") from None
        if not values:
            raise FiguresError(f"results/{name}: no JSON line")
        return values

    def rows(self, name: str) -> dict[str, dict]:
        """The benchmark rows of an ``.out`` file by ``--sets`` key, over all its JSON lines in
        order: a row run again later (a line appended after a change that moves it) replaces
        its earlier run, in the earlier one's place; a row run again by BEP alone (``bench
        accuracy`` without ``--baseline``, after a change of BEP's settings that leaves the
        baselines' inputs as they were) replaces the BEP columns only. Read once per file."""
        if name not in self._rows:
            rows: dict[str, dict] = {}
            for doc in self.json_lines(name):
                part = field(doc, "rows", source=name)
                if not isinstance(part, list):
                    raise FiguresError(f"results/{name}: rows is not a list of rows")
                for row in part:
                    key = field(row, "config", source=name)
                    rows[key] = {**rows.get(key, {}), **row} if "qat" not in row else row
            self._rows[name] = rows
        return self._rows[name]


def field(value, *path, source: str):
    """``value[path[0]][path[1]]...``, or one error naming the file and the missing key."""
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise FiguresError(f"results/{source}: no {'.'.join(map(str, path))}") from None
    return value


def number(value, *path, source: str) -> float:
    v = field(value, *path, source=source)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FiguresError(f"results/{source}: {'.'.join(map(str, path))} is not a number")
    return float(v)


# ------------------------------------------------------------------ accuracy


ACCEPTANCE = "defaults-accuracy.out"  # python -m bep_mcu.bench accuracy --untuned
BEP_QAT_RNN = "bep-vs-qat-rnn.out"
BEP_MLP = "mlp-rows-accuracy.out"
QAT_MLP = "study/bep-vs-qat.out"  # the MLP rows' QAT; QAT is deterministic, the same with the package
QAT_OSULEAF_MLP = "bep-vs-qat-target-rows-rnn-gamma0-width16.out"  # MLP rows do not depend on the RNN's γ0
HOLDOUT_RNN = "bep-vs-qat-holdout-rnn.out"
HOLDOUT_MLP = "bep-vs-qat-holdout-mlp.out"

# The acceptance table's labels (bench.ACCEPTANCE/UNTUNED) as --sets keys and as the README prints them.
ACCEPTANCE_ROWS = {
    "prototypes 512": ("prototypes:512", "`prototypes`, 1000-512-10"),
    "prototypes 512-512": ("prototypes:512-512", "`prototypes`, 1000-512-512-10"),
    "digits median 512": ("digits-median:512", "`digits --binarize median`, 512"),
    "GunPoint rnn": ("GunPoint:rnn", "`ucr:GunPoint --model rnn`, 256"),
    "ItalyPowerDemand rnn": ("ItalyPowerDemand:rnn", "`ucr:ItalyPowerDemand --model rnn`, 256"),
    "digits default (thermometer:4) 512": ("digits:512", "`digits` (default thermometer:4), 512"),
    "ArrowHead rnn (T=251)": ("ArrowHead:rnn", "`ucr:ArrowHead --model rnn` (T = 251)"),
    "BasicMotions rnn (6 channels)": ("BasicMotions:rnn", "`ucr:BasicMotions --model rnn` (6 channels)"),
    "OSULeaf rnn (T=427, 6 classes)": ("OSULeaf:rnn", "`ucr:OSULeaf --model rnn` (T = 427, 6 classes)"),
    "ItalyPowerDemand mlp": ("ItalyPowerDemand:mlp", "`ucr:ItalyPowerDemand` as an MLP, 512"),
}


@dataclass(frozen=True)
class Scores:
    """One learner's test accuracies on one row, and the file they came from."""

    scores: tuple[float, ...]
    source: str
    seconds: float  # the training time of all the seeds together, as the file records it

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    def mean_std(self) -> str:  # as bench.py prints them: population std
        return f"{100 * self.mean:.1f} ± {100 * statistics.pstdev(self.scores):.1f}"


def _scores(value, *path, source: str) -> Scores:
    """The accuracies at ``path`` and the ``seconds`` beside them (bench.py writes both)."""
    s = field(value, *path, source=source)
    if not isinstance(s, list) or not s or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in s):
        raise FiguresError(f"results/{source}: {'.'.join(map(str, path))} is not a list of accuracies")
    seconds = number(value, *path[:-1], "seconds", source=source)
    if not 0 <= seconds < 1e7:
        raise FiguresError(f"results/{source}: {'.'.join(map(str, (*path[:-1], 'seconds')))} is {seconds}, "
                           "not a duration")
    return Scores(tuple(float(v) for v in s), source, seconds)


@dataclass(frozen=True)
class Row:
    key: str  # the bench's --sets key
    bep: Scores
    qat: Scores | None = None
    qat_bn: Scores | None = None


class Accuracy:
    """Every row the accuracy benchmark covers, BEP and (where measured) QAT, from results/."""

    def __init__(self, results: Results) -> None:
        self.r = results

    def acceptance(self) -> dict[str, dict]:
        rows = self.r.json(ACCEPTANCE)
        if not isinstance(rows, list):
            raise FiguresError(f"results/{ACCEPTANCE}: its last line is not a list of rows")
        by_label = {field(row, "config", source=ACCEPTANCE): row for row in rows}
        missing = [label for label in ACCEPTANCE_ROWS if label not in by_label]
        if missing:
            raise FiguresError(f"results/{ACCEPTANCE}: no row '{missing[0]}'")
        return by_label

    def _row(self, name: str, key: str) -> dict:
        rows = self.r.rows(name)
        if key not in rows:
            raise FiguresError(f"results/{name}: no row '{key}'")
        return rows[key]

    def _bep(self, name: str, key: str) -> Scores:
        return _scores(self._row(name, key), "bep", "scores", source=name)

    def _qat(self, name: str, key: str) -> tuple[Scores, Scores]:
        row = self._row(name, key)
        return _scores(row, "qat", "scores", source=name), _scores(row, "qat_bn", "scores", source=name)

    def _accepted(self, key: str) -> Scores:
        label = next(label for label, (k, _) in ACCEPTANCE_ROWS.items() if k == key)
        return _scores(self.acceptance()[label], "scores", source=ACCEPTANCE)

    def ucr(self) -> list[Row]:
        """The ten UCR rows of the side-by-side table: five RNNs, five MLPs."""
        rows = [Row(key, self._bep(BEP_QAT_RNN, key), *self._qat(BEP_QAT_RNN, key))
                for key in ("GunPoint:rnn", "ItalyPowerDemand:rnn", "ArrowHead:rnn", "BasicMotions:rnn",
                            "OSULeaf:rnn")]
        for key in ("GunPoint:mlp", "ArrowHead:mlp", "BasicMotions:mlp"):
            rows.append(Row(key, self._bep(BEP_MLP, key), *self._qat(QAT_MLP, key)))
        rows.append(Row("ItalyPowerDemand:mlp", self._accepted("ItalyPowerDemand:mlp"),
                        *self._qat(QAT_MLP, "ItalyPowerDemand:mlp")))
        rows.append(Row("OSULeaf:mlp", self._bep(BEP_MLP, "OSULeaf:mlp"), *self._qat(QAT_OSULEAF_MLP, "OSULeaf:mlp")))
        return rows

    def holdout(self) -> list[Row]:
        return [Row(key, self._bep(name, key), *self._qat(name, key))
                for name, keys in ((HOLDOUT_RNN, ("JapaneseVowels:rnn", "PickupGestureWiimoteZ:rnn", "ACSF1:rnn")),
                                   (HOLDOUT_MLP, ("JapaneseVowels:mlp", "PickupGestureWiimoteZ:mlp", "ACSF1:mlp")))
                for key in keys]

    def bep_only(self) -> list[Row]:
        """The rows no baseline was run on (the benchmark's tabular and synthetic sets)."""
        rows = [Row(key, self._accepted(key)) for key in ("prototypes:512", "prototypes:512-512")]
        rows.append(Row("prototypes-p46:512", self._bep(BEP_MLP, "prototypes-p46:512")))
        rows += [Row(key, self._accepted(key)) for key in ("digits-median:512", "digits:512")]
        return rows


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def means(rows: list[Row]) -> tuple[float, float, float]:
    return tuple(statistics.fmean(getattr(r, who).mean for r in rows) for who in ("bep", "qat", "qat_bn"))


def gaps(rows: list[Row]) -> list[tuple[str, float]]:
    """BEP's gap to the better of QAT and QAT + BN per row, in points as the tables print them
    (one decimal), so a row the table shows level is level here too."""
    return [(r.key, round(100 * r.bep.mean, 1) - round(100 * max(r.qat.mean, r.qat_bn.mean), 1)) for r in rows]


def fill(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, break_long_words=False, break_on_hyphens=False)


def render_headline(res: Results) -> str:
    bep, qat, bn = means(Accuracy(res).ucr())
    return fill(f"On ten small UCR time-series tasks it averages {pct(bep)} % test accuracy against {pct(qat)} % "
                f"for a quantisation-aware-training baseline given the same inputs ({pct(bn)} % with batch norm; "
                f"docs/accuracy.md).")


def render_accuracy_defaults(res: Results) -> str:
    acc = Accuracy(res).acceptance()
    lines = ["| configuration | mean | seeds | target |", "|---|---|---|---|"]
    for label, (_, shown) in ACCEPTANCE_ROWS.items():
        row = acc[label]
        s = _scores(row, "scores", source=ACCEPTANCE)
        target = row.get("target")
        goal = "not tuned" if target is None else f"≥ {100 * number(row, 'target', source=ACCEPTANCE):.0f} %"
        lines.append(f"| {shown} | {100 * s.mean:.2f} % | {' '.join(f'{100 * v:.2f}' for v in s.scores)} | {goal} |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """Where BEP stands against the better baseline, in one sentence."""
    gap = gaps(rows)
    ahead = sum(g > 0.05 for _, g in gap)
    level = sum(abs(g) <= 0.05 for _, g in gap)
    behind = [f"{key} (−{-g:.1f})" for key, g in gap if g < -0.05]
    text = f"BEP is ahead of the better of QAT and QAT + batch norm on {ahead} of the {len(rows)} rows"
    text += f", level on {level}" if level else ""
    return text + (f"; behind on {', '.join(behind)}." if behind else ".")


def render_bep_vs_qat(res: Results) -> str:
    rows = Accuracy(res).ucr()
    lines = ["| configuration | BEP | QAT | QAT + BN |", "|---|---|---|---|"]
    lines += [f"| {r.key} | {r.bep.mean_std()} | {r.qat.mean_std()} | {r.qat_bn.mean_std()} |" for r in rows]
    bep, qat, bn = means(rows)
    lines.append(f"| mean of the {len(rows)} rows | {pct(bep)} | {pct(qat)} | {pct(bn)} |")
    return "\n".join(lines) + "\n\n" + fill(summary(rows))


def _link(name: str) -> str:
    return f"[{name}](../results/{name})"


def render_accuracy_table(res: Results) -> str:
    acc = Accuracy(res)
    lines = ["| `--sets` key | BEP | BEP seeds 0, 1, 2 | s | QAT | s | QAT + BN | s | raw results |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(r: Row) -> str:
        seeds = " ".join(f"{100 * v:.2f}" for v in r.bep.scores)
        bep = f"| {r.key} | {r.bep.mean_std()} | {seeds} | {r.bep.seconds:.0f}"
        if r.qat is None:
            return f"{bep} | not run | | not run | | {_link(r.bep.source)} |"
        source = _link(r.bep.source) if r.qat.source == r.bep.source else \
            f"BEP {_link(r.bep.source)}, QAT {_link(r.qat.source)}"
        return (f"{bep} | {r.qat.mean_std()} | {r.qat.seconds:.0f} | {r.qat_bn.mean_std()} | {r.qat_bn.seconds:.0f} "
                f"| {source} |")

    ucr, hold = acc.ucr(), acc.holdout()
    for title, rows in (("UCR series", ucr), ("hold-out: sets nobody tuned on", hold)):
        lines += [row(r) for r in rows]
        bep, qat, bn = means(rows)
        lines.append(f"| **mean, {title}** | **{pct(bep)}** | | | **{pct(qat)}** | | **{pct(bn)}** | | |")
    lines += [row(r) for r in acc.bep_only()]
    return "\n".join(lines) + "\n\n" + fill(f"UCR series: {summary(ucr)} Hold-out: {summary(hold)}")


# The held-out checks' tables (docs/accuracy.md): each as its --sets group ran, one file each,
# with the means of the groups of rows the page discusses.
FRESH = "fresh-sets.out"  # python -m bep_mcu.bench accuracy --baseline qat --sets fresh --seeds 3 --json
FRESH2 = "fresh2-sets.out"  # the same with --sets fresh2
FRESH3 = "fresh3-sets.out"  # the same with --sets fresh3
FRESH4 = "fresh4-sets.out"  # the same with --sets fresh4
FRESH5 = "fresh5-sets.out"  # the same with --sets fresh5
FRESH6 = "fresh6-sets.out"  # the same with --sets fresh6
SPARSE = "sparse-sets.out"  # the same with --sets sparse
BAR = 1.5  # the bar: within this many points of the better baseline
LOW_SEED = 0.9  # and no seed below this share of its row's mean


def signed(x: float) -> str:
    """A difference in points as the tables print it: +0.6, 0.0, −13.5 (a true minus)."""
    return "0.0" if round(x, 1) == 0 else f"{x:+.1f}".replace("-", "−")


def render_heldout(res: Results, name: str, groups: tuple[tuple[str, str], ...]) -> str:
    """One held-out check: BEP (training accuracy, lowest seed) against QAT and QAT + BN per row,
    then a mean row per group ("all", "tabular": not a UCR set, "series": a UCR set)."""
    rows, training, kinds = [], {}, {}
    for key, row in res.rows(name).items():
        rows.append(Row(key, _scores(row, "bep", "scores", source=name), _scores(row, "qat", "scores", source=name),
                        _scores(row, "qat_bn", "scores", source=name)))
        training[key] = _scores(row, "bep", "train", source=name).mean
        kinds[key] = "series" if str(field(row, "dataset", source=name)).startswith("ucr") else "tabular"
    lines = ["| `--sets` key | BEP | BEP seeds 0, 1, 2 | BEP training | s | QAT | s | QAT + BN | s "
             "| BEP − better baseline | lowest seed / row mean |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (key, gap), r in zip(gaps(rows), rows):
        low = min(r.bep.scores) / r.bep.mean
        lines.append(f"| {key} | {r.bep.mean_std()} | {' '.join(f'{100 * v:.2f}' for v in r.bep.scores)} "
                     f"| {pct(training[key])} | {r.bep.seconds:.0f} | {r.qat.mean_std()} | {r.qat.seconds:.0f} "
                     f"| {r.qat_bn.mean_std()} | {r.qat_bn.seconds:.0f} "
                     f"| {signed(gap)}{' **outside**' if round(gap, 1) < -BAR else ''} "
                     f"| {f'**{100 * low:.0f} %**' if low < LOW_SEED else f'{100 * low:.0f} %'} |")
    for title, kind in groups:
        part = [r for r in rows if kind == "all" or kinds[r.key] == kind]
        if not part:
            raise FiguresError(f"results/{name}: no {kind} row")
        bep, qat, bn = (round(100 * m, 1) for m in means(part))
        lines.append(f"| **mean, {title}** | **{bep:.1f}** | | | | **{qat:.1f}** | | **{bn:.1f}** | "
                     f"| {signed(bep - max(qat, bn))} | |")
    return "\n".join(lines)


def render_fresh(res: Results) -> str:
    return render_heldout(res, FRESH, (("ten rows", "all"), ("six tabular rows", "tabular"),
                                       ("four series rows", "series")))


def render_fresh2(res: Results) -> str:
    return render_heldout(res, FRESH2, (("nine rows", "all"),))


def render_fresh3(res: Results) -> str:
    return render_heldout(res, FRESH3, (("six rows", "all"),))


def render_fresh4(res: Results) -> str:
    return render_heldout(res, FRESH4, (("seven rows", "all"),))


def render_fresh5(res: Results) -> str:
    return render_heldout(res, FRESH5, (("seven rows", "all"),))


def render_fresh6(res: Results) -> str:
    return render_heldout(res, FRESH6, (("seven rows", "all"),))


def render_sparse(res: Results) -> str:
    return render_heldout(res, SPARSE, (("five rows", "all"),))


# ------------------------------------------------------------------ speed


SPEED = "training-speed.out"  # python -m bep_mcu.bench speed --json
DEVICE = "device-training.out"  # python -m bep_mcu.bench device --json
MACHINE = "speed-machine.json"


def render_speed(res: Results) -> str:
    s, m = res.json(SPEED), res.json(MACHINE)
    n = lambda key: number(s, key, source=SPEED)  # noqa: E731
    machine = ", ".join(str(field(m, k, source=MACHINE)) for k in ("cpu", "os"))
    head = fill(f"Measured on {machine} (a shared machine: the figures are noisy and machine-dependent), one core "
                f"each (BLAS pinned to one thread), in one run on {field(m, 'date', source=MACHINE)} at commit "
                f"{field(m, 'commit', source=MACHINE)} (`results/{SPEED}`, the machine in `results/{MACHINE}`):")
    rows = [
        ("numpy engine, `prototypes` 1000-512-10, batch 100",
         f"{n('mlp_1000_512_10_samples_per_second'):,.0f} samples/s", "≥ 20,000"),
        ("plain dense-matrix BEP (same maths, per-sample updates, full repack), same run",
         f"{n('dense_baseline_samples_per_second'):,.0f} samples/s", f"engine {n('ratio_vs_dense_baseline'):.2f}×"),
        ("numpy engine, GunPoint RNN 256 hidden, 2 steps, batch 10",
         f"{n('rnn_gunpoint_sequences_per_second'):,.0f} sequences/s", ""),
        ("C twin vs numpy, 1000-512-10, batch 1 (first-epoch reinforcement)",
         f"{n('twin_batch1_samples_per_second'):,.0f} vs {n('numpy_batch1_samples_per_second'):,.0f} samples/s = "
         f"{n('twin_vs_numpy_batch1'):.1f}×", "≥ 10×"),
        ("C twin vs numpy, 1000-512-10, batch 100",
         f"{n('twin_batch100_samples_per_second'):,.0f} vs {n('numpy_batch100_samples_per_second'):,.0f} samples/s = "
         f"{n('twin_vs_numpy_batch100'):.1f}×", "≥ 2×"),
    ]
    table = ["| what | figure | target |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    return head + "\n\n" + "\n".join(table)


def render_device(res: Results) -> str:
    d = res.json(DEVICE)
    n = lambda *key: number(d, *key, source=DEVICE)  # noqa: E731
    share = lambda b: f"~{100 * n(b, 'link_share_estimate'):.0f} %"  # noqa: E731
    return fill(f"On-device training over the emulated serial link (`python -m bep_mcu.bench device`, 256-128-10 int8 "
                f"on `mps2-an386` in QEMU, TCP_NODELAY socket UART, the machine above; `results/{DEVICE}`): "
                f"{n('batch100', 'samples_per_second'):,.0f} samples/s at batch 100 with the link {share('batch100')} "
                f"of the time (the rest is the emulated core computing), {n('batch1', 'samples_per_second'):,.0f} "
                f"samples/s at batch 1 with the link {share('batch1')}. (The link share is estimated from the round "
                f"trip of the smallest request times the frames sent.)")


# ------------------------------------------------------------------ instruction counts


ICOUNT = "instructions-per-sample.json"  # python -m bep_mcu.icount --cpus ... --json (standard output)
ICOUNT_LOG = "instructions-per-sample.log"  # its standard error: the table with the E = 0.1 rows
CORES = {"cortex-m4": ("Cortex-M4", "M4F for float"), "cortex-m0": ("Cortex-M0", "soft float"),  # the float step's
         "cortex-m3": ("Cortex-M3", "soft float"), "cortex-m7": ("Cortex-M7", "hard float"),
         "cortex-m33": ("Cortex-M33", "hard float"), "rv32imac": ("RV32IMAC", "soft float")}
FLOAT_OPTS = ("-Os", "-O2", "-O3")  # the levels icount builds the tuned float step at
TUNED = ("`bep_mcu/icount/c/float_sgd_tuned.c`: the same step to the bit, with the shapes compiled in, `restrict`, "
         "eight hidden rows per pass over the input and unrolled updates, built at the best of `-Os`, `-O2` and "
         "`-O3` per core")
LOG_CORE = re.compile(r"^(cortex-m\d+|rv32\w+)\s+batch")
LOG_ROW = re.compile(r"^\s+(\d+)\s+(\d\.\d\d)\s+([\d,]+)\s+(\d\.\d\d)\s+([\d,]+)\s+(\S+)\s+(yes|NO)$")


class Counts:
    """icount's figures: the JSON per core, and the log's rows per (core, batch, E)."""

    def __init__(self, res: Results) -> None:
        self.json = res.json(ICOUNT)
        self.rows: dict[tuple[str, int, str], dict] = {}
        core = None
        for line in res.lines(ICOUNT_LOG):
            if m := LOG_CORE.match(line):
                core = m.group(1)
            elif (m := LOG_ROW.match(line)) and core:
                self.rows[(core, int(m.group(1)), m.group(2))] = {
                    "draws": int(m.group(3).replace(",", "")), "triggered": float(m.group(4)),
                    "instructions": int(m.group(5).replace(",", ""))}

    def core(self, cpu: str) -> dict:
        return field(self.json, cpu, source=ICOUNT)

    def n(self, cpu: str, *key) -> float:
        return number(self.json, cpu, *key, source=ICOUNT)

    def logged(self, cpu: str, batch: int, error: str, key: str) -> int:
        if (cpu, batch, error) not in self.rows:
            raise FiguresError(f"results/{ICOUNT_LOG}: no row for {cpu}, batch {batch}, E = {error}")
        return self.rows[(cpu, batch, error)][key]

    def triggered(self) -> str:
        """The range of the share of samples that trigger an update, over every logged run."""
        shares = [row["triggered"] for row in self.rows.values()]
        if not shares:
            raise FiguresError(f"results/{ICOUNT_LOG}: no table rows")
        return f"{100 * min(shares):.0f}–{100 * max(shares):.0f} %"

    def opt(self, cpu: str, key: str) -> str:
        """The optimisation level a figure was measured at (the tuned float step's best)."""
        level = field(self.json, cpu, key, source=ICOUNT)
        if level not in FLOAT_OPTS:
            raise FiguresError(f"results/{ICOUNT}: {cpu}.{key} is not one of {', '.join(FLOAT_OPTS)}")
        return level

    def bit_exact(self) -> None:
        """Figures of a run that did not train like numpy are not figures, nor a tuned float step that
        does not compute what float_sgd.c computes: refuse them."""
        for cpu in self.json:
            if field(self.json, cpu, "bit_exact", source=ICOUNT) is not True:
                raise FiguresError(f"results/{ICOUNT}: {cpu} was not bit-exact with numpy")
            if field(self.json, cpu, "float_tuned_same_as_float_sgd", source=ICOUNT) is not True:
                raise FiguresError(f"results/{ICOUNT}: {cpu}'s tuned float step did not train like float_sgd.c")


def k(x: float) -> str:
    return f"{x / 1000:.1f} k"


def render_instructions(res: Results) -> str:
    c = Counts(res)
    c.bit_exact()
    lines = [("| core | batch 100, E = 1.0 | batch 100, E = 0.1 | batch 1, E = 1.0 | batch 1, E = 0.1 | "
              "float32 SGD step, tuned | float32 SGD step as first written | RAM per weight (BEP / float) |"),
             "|---|---|---|---|---|---|---|---|"]
    for cpu in ("cortex-m4", "cortex-m0"):
        lines.append(
            f"| {CORES[cpu][0]} | {c.n(cpu, 'batch_100'):,.0f} | {c.logged(cpu, 100, '0.10', 'instructions'):,} | "
            f"{c.n(cpu, 'batch_1'):,.0f} | {c.logged(cpu, 1, '0.10', 'instructions'):,} | "
            f"{c.n(cpu, 'float_sgd_tuned'):,.0f} ({c.n(cpu, 'float_tuned_over_batch_100'):.1f}×) | "
            f"{c.n(cpu, 'float_sgd'):,.0f} ({c.n(cpu, 'float_over_batch_100'):.1f}×) | "
            f"{c.n(cpu, 'bytes_per_weight'):.2f} B / {c.n(cpu, 'float_bytes_per_weight'):.2f} B |")
    split = field(c.core("cortex-m4"), "breakdown", source=ICOUNT)
    total = sum(number(split, p, source=ICOUNT) for p in split)
    share = lambda p: f"{100 * number(split, p, source=ICOUNT) / total:.0f} %"  # noqa: E731
    one = lambda p: k(c.n("cortex-m4", "breakdown_batch_1", p))  # noqa: E731
    cycles = lambda batch: f"{round(c.n('cortex-m4', f'cycles_batch_{batch}'), -2):,.0f}"  # noqa: E731
    draws = c.logged("cortex-m4", 1, "1.00", "draws")
    m4 = lambda key: c.n("cortex-m4", key)  # noqa: E731
    text = (f"{c.triggered()} of the samples trigger an update. The float step BEP is set against is the tuned one "
            f"({TUNED}: {c.opt('cortex-m4', 'float_sgd_tuned_opt')} on the M4, "
            f"{c.opt('cortex-m0', 'float_sgd_tuned_opt')} on the M0); the step as first written (`float_sgd.c`, "
            f"the shapes passed at run time, `-Os`) stays beside it. "
            f"By the Cortex-M4 TRM's instruction timings the M4 step is about {cycles(100)} "
            f"cycles at batch 100 ({cycles(1)} at batch 1), the tuned float step about "
            f"{round(m4('float_sgd_tuned_cycles'), -2):,.0f} (at {c.opt('cortex-m4', 'float_sgd_tuned_cycles_opt')}, "
            f"its fastest: {m4('float_sgd_tuned_cycles') / m4('cycles_batch_100'):.1f}× BEP's batch 100; as first "
            f"written {round(m4('float_sgd_cycles'), -2):,.0f}, "
            f"{m4('float_sgd_cycles') / m4('cycles_batch_100'):.1f}×). At batch 100 the "
            f"forward pass (column form: a carry-save count of the listed input columns, 32 neurons a word) is "
            f"{share('forward')} of the step, the saturating QADD8 row updates {share('update')}, winner selection "
            f"{share('winner')}; "
            f"at batch 1 the {draws} reinforcement draws add {one('reinforcement')} "
            f"and repacking the updated rows {one('repack')}. Kernels, `-D` options, the cycle model and the floor of "
            f"each part: docs/performance.md.")
    return "\n".join(lines) + "\n\n" + fill(text)


def render_instructions_cores(res: Results) -> str:
    c = Counts(res)
    c.bit_exact()
    lines = [("| core | batch 1 | batch 100 | float32 SGD step, tuned (level) | tuned / batch 100 | "
              "float32 SGD step as first written | first / batch 100 | bytes per weight (BEP / float) |"),
             "|---|---|---|---|---|---|---|---|"]
    for cpu, (name, floats) in CORES.items():
        lines.append(f"| {name} ({floats}) | {c.n(cpu, 'batch_1'):,.0f} | {c.n(cpu, 'batch_100'):,.0f} | "
                     f"{c.n(cpu, 'float_sgd_tuned'):,.0f} ({c.opt(cpu, 'float_sgd_tuned_opt')}) | "
                     f"{c.n(cpu, 'float_tuned_over_batch_100'):.1f} | "
                     f"{c.n(cpu, 'float_sgd'):,.0f} | {c.n(cpu, 'float_over_batch_100'):.1f} | "
                     f"{c.n(cpu, 'bytes_per_weight'):.3f} / {c.n(cpu, 'float_bytes_per_weight'):.3f} |")
    def e01(cpu: str) -> str:
        one, hundred = (c.logged(cpu, batch, "0.10", "instructions") for batch in (1, 100))
        return f"{one:,} (batch 1) and {hundred:,} (batch 100)"

    text = (f"Instructions per training sample (`results/{ICOUNT}`; the Cortex-M4 row also in cycles below); "
            f"{c.triggered()} of the samples trigger an update. The tuned float step ({TUNED}) is the one BEP is "
            f"set against; as first written, `float_sgd.c` at `-Os` with the shapes passed at run time. At "
            f"E = 0.1 ({c.logged('cortex-m4', 1, '0.10', 'draws')} reinforcement draws per batch instead of "
            f"{c.logged('cortex-m4', 1, '1.00', 'draws')}; `results/{ICOUNT_LOG}`): M4 {e01('cortex-m4')}; "
            f"M0 {e01('cortex-m0')}.")
    return "\n".join(lines) + "\n\n" + fill(text)


def render_breakdown(res: Results) -> str:
    c = Counts(res)
    labels = {"forward": "forward (XNOR-popcount, classifier)", "update": "update (saturating int8 rows)",
              "winner": "winner selection", "reinforcement": "reinforcement", "repack": "repack (W = sign(H))",
              "backward": "backward (none with one hidden layer)", "other": "other (calls, checks, counters)"}
    cols = [("cortex-m4", "breakdown"), ("cortex-m4", "breakdown_batch_1"), ("cortex-m0", "breakdown"),
            ("cortex-m0", "breakdown_batch_1")]
    lines = ["| part | M4 batch 100 | M4 batch 1 | M0 batch 100 | M0 batch 1 |", "|---|---|---|---|---|"]
    for part, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(f"{c.n(cpu, col, part):,.0f}" for cpu, col in cols) + " |")
    return "\n".join(lines)


def render_cycles(res: Results) -> str:
    c = Counts(res)
    n = lambda key: f"{c.n('cortex-m4', key):,.0f}"  # noqa: E731
    over = lambda key: f"{c.n('cortex-m4', key) / c.n('cortex-m4', 'cycles_batch_100'):.1f}×"  # noqa: E731
    fewest, fastest = (c.opt("cortex-m4", f"float_sgd_tuned{key}_opt") for key in ("", "_cycles"))
    differ = f"; at {fewest}, its fewest instructions, it takes more cycles" if fewest != fastest else ""
    return fill(f"It is an estimate for comparing code, not a measurement: **M4 batch 100: {n('cycles_batch_100')} "
                f"cycles** (batch 1: {n('cycles_batch_1')}); the tuned float step {n('float_sgd_tuned_cycles')} "
                f"cycles at {fastest}, its fastest level ({over('float_sgd_tuned_cycles')} BEP's batch 100{differ}), "
                f"the step as first written {n('float_sgd_cycles')} ({over('float_sgd_cycles')}).")


def render_floors(res: Results) -> str:
    """The measured side of the floor analysis: each part per sample (BEP_MEASURE build) beside its floor."""
    c = Counts(res)
    rows = [  # (part, the floor derived in docs/performance.md, core, breakdown, part key)
        ("forward, M4 (column form)", 4_600, "cortex-m4", "breakdown", "forward"),
        ("update, M4", 4_100, "cortex-m4", "breakdown", "update"),
        ("winner selection, M4", 500, "cortex-m4", "breakdown", "winner"),
        ("reinforcement, M4 batch 1", 8_600, "cortex-m4", "breakdown_batch_1", "reinforcement"),
        ("repack, M4 batch 1", 3_500, "cortex-m4", "breakdown_batch_1", "repack"),
        ("update, M0", 15_800, "cortex-m0", "breakdown", "update"),
    ]
    lines = ["| part (per sample) | floor | measured | measured / floor |", "|---|---|---|---|"]
    for label, floor, cpu, col, part in rows:
        got = c.n(cpu, col, part)
        lines.append(f"| {label} | {k(floor)} | {k(got)} | {got / floor:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ adaptation (docs/adaptation.md)


DRIFT = "recalibration-under-sensor-drift.jsonl"  # python scripts/recalibration_drift.py
DRIFT_WINDOW = "256"  # bep_mcu/data/recalibration.py DEFAULT_WINDOW: the window the first table shows
DRIFT_STREAM = ("300", "1000", "3000", "10000")
DRIFT_SETS = {"sensor18": "make_classification, 18 features", "breast_cancer": "breast_cancer",
              "wine": "wine", "digits": "digits"}
DRIFT_KINDS = {"gain1.3-offset0.5-noise0.1": "gain 1.3, +0.5 sd", "per-feature-gain-offset-noise0.1": "per feature"}


def drift_runs(res: Results) -> dict[tuple[str, str], list[dict]]:
    """The runs of each (data set, drift), every seed."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for i, line in enumerate(res.lines(DRIFT)):
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            raise FiguresError(f"results/{DRIFT}: line {i + 1} is not JSON") from None
        runs.setdefault((field(run, "ds", source=DRIFT), field(run, "drift", source=DRIFT)), []).append(run)
    if set(runs) != {(ds, kind) for ds in DRIFT_SETS for kind in DRIFT_KINDS}:
        raise FiguresError(f"results/{DRIFT}: not every data set and drift of the tables")
    return runs


def mean_of(runs: list[dict], *path) -> float:
    return statistics.fmean(number(run, *path, source=DRIFT) for run in runs)


def render_adaptation(res: Results) -> str:
    lines = ["| data set | drift | clean | frozen | set at once | followed: " + " | ".join(DRIFT_STREAM) +
             " samples | won back at 3000 |", "|---|---|---|---|---|" + "---|" * len(DRIFT_STREAM) + "---|"]
    for (ds, kind), runs in drift_runs(res).items():
        clean, frozen = mean_of(runs, "clean"), mean_of(runs, "frozen")
        followed = [mean_of(runs, "followed", DRIFT_WINDOW, n) for n in DRIFT_STREAM]
        lines.append(f"| {DRIFT_SETS[ds]} | {DRIFT_KINDS[kind]} | {pct(clean)} | {pct(frozen)} | "
                     f"{pct(mean_of(runs, 'batch'))} | " + " | ".join(pct(f) for f in followed) +
                     f" | {100 * (followed[2] - frozen) / (clean - frozen):.0f} % |")
    return "\n".join(lines)


def render_adaptation_windows(res: Results) -> str:
    groups = drift_runs(res)
    runs = [run for group in groups.values() for run in group]
    seeds = len({field(run, "seed", source=DRIFT) for run in runs})
    stream = list(field(runs[0], "followed", DRIFT_WINDOW, source=DRIFT))
    lines = ["| window | followed: " + " | ".join(stream) + " samples | clean inputs, " + stream[-1] +
             " | runs of one class | ¾ one class |", "|---|" + "---|" * len(stream) + "---|---|---|"]
    for window in field(runs[0], "followed", source=DRIFT):
        cells = [mean_of(runs, "followed", window, n) for n in stream]
        cells += [mean_of(runs, "clean_followed", window, stream[-1]), mean_of(runs, "mixed", "runs", window),
                  mean_of(runs, "mixed", "skewed", window)]
        lines.append(f"| {window} | " + " | ".join(pct(c) for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + fill(
        f"Mean test accuracy in % over the {len(groups)} rows of the table above and {seeds} seeds; the same rows score "
        f"{pct(mean_of(runs, 'frozen'))} with the model's thresholds on the drifted inputs and "
        f"{pct(mean_of(runs, 'clean'))} on clean inputs.")


SCENARIOS = "adaptation-scenarios.out"  # python -m bep_mcu.bench adaptation --seeds 5 --json
SHIFTS = {"drift": "sensor drift", "condition": "new condition", "more": "more data", "class": "a new class"}
CONDITION = {"digits": "digits, by ink", "breast_cancer": "breast_cancer, by a feature"}
DEEP = "-deep"  # a data set's scenario on a network of two hidden layers (bench_adaptation.Scenario.deep)
METHOD_NAMES = {"frozen": "frozen", "recalibration": "recal.", "bep": "BEP", "bep-last-layer": "BEP last layer",
                "bep+recalibration": "BEP + recal.",
                "bep+recalibration@10%": "BEP + recal., 10 % labels", "bep+replay": "BEP + replay",
                "float-last-layer": "float last layer", "float-mlp": "float MLP"}
COSTED = ("recalibration", "bep", "bep-last-layer", "bep+recalibration", "bep+replay", "float-last-layer", "float-mlp")


def set_name(name: str) -> str:
    """A data set of the benchmark as the tables print it."""
    return f"{name[:-len(DEEP)]}, two hidden layers" if name.endswith(DEEP) else name


class Scenarios:
    """The adaptation benchmark's rows, grouped: {scenario: {method: [row per seed]}}."""

    def __init__(self, res: Results) -> None:
        rows = field(res.json(SCENARIOS), "rows", source=SCENARIOS)
        self.groups: dict[str, dict[str, list[dict]]] = {}
        for row in rows:
            key, method = field(row, "scenario", source=SCENARIOS), field(row, "method", source=SCENARIOS)
            if method not in METHOD_NAMES:
                raise FiguresError(f"results/{SCENARIOS}: unknown method {method!r}")
            self.groups.setdefault(key, {}).setdefault(method, []).append(row)
        if not self.groups or any(set(m) != set(METHOD_NAMES) for m in self.groups.values()):
            raise FiguresError(f"results/{SCENARIOS}: not every method of every scenario")
        self.seeds = len(next(iter(next(iter(self.groups.values())).values())))

    def mean(self, key: str, method: str, *path) -> float:
        return statistics.fmean(number(row, *path, source=SCENARIOS) for row in self.groups[key][method])

    def label(self, key: str) -> str:
        kind, _, name = key.partition(":")
        return f"{SHIFTS[kind]}: {CONDITION.get(name, name) if kind == 'condition' else set_name(name)}"

    def data_sets(self) -> dict[str, list[str]]:
        """{data set: its scenarios}, in the file's order."""
        sets: dict[str, list[str]] = {}
        for key in self.groups:
            sets.setdefault(key.partition(":")[2], []).append(key)
        return sets

    def gain(self, name: str, method: str) -> float:
        """After − before, the mean over the scenarios of data set ``name``."""
        return statistics.fmean(self.mean(k, method, "after") - self.mean(k, method, "before")
                                for k in self.data_sets()[name])

    def cost(self, name: str, method: str, *path) -> float:
        """A cost (instructions on a core, RAM) on data set ``name``: its first scenario's mean."""
        return self.mean(self.data_sets()[name][0], method, *path)

    def per(self, name: str, method: str, path: tuple) -> float:
        """Points gained per unit of a cost; nothing gained (or lost) is nothing per unit."""
        gain = self.gain(name, method)
        return gain / self.cost(name, method, *path) if gain > 0 else 0.0

    def won_back(self, key: str, method: str) -> float:
        """The share of what a shift took (the source's accuracy before − the target's) won back."""
        lost = self.mean(key, "frozen", "source_before") - self.mean(key, "frozen", "before")
        if lost <= 0:
            raise FiguresError(f"results/{SCENARIOS}: {key} took nothing to win back")
        return (self.mean(key, method, "after") - self.mean(key, method, "before")) / lost


def render_adaptation_scenarios(res: Results) -> str:
    sc = Scenarios(res)
    bep = [m for m in METHOD_NAMES if m != "float-mlp"]
    lines = ["| shift: data set | " + " | ".join(METHOD_NAMES[m] for m in bep) + " | float MLP: before → after |",
             "|---|" + "---|" * len(bep) + "---|"]
    for key in sc.groups:
        cells = [pct(sc.mean(key, m, "after")) for m in bep]
        cells.append(f"{pct(sc.mean(key, 'float-mlp', 'before'))} → {pct(sc.mean(key, 'float-mlp', 'after'))}")
        lines.append(f"| {sc.label(key)} | " + " | ".join(cells) + " |")
    drifts = [key for key in sc.groups if key.startswith("drift:")]
    won = {m: ", ".join(f"{100 * sc.won_back(key, m):.0f}" for key in drifts)
           for m in ("recalibration", "bep", "bep+recalibration")}
    return "\n".join(lines) + "\n\n" + fill(
        f"Target test accuracy in %, the mean of {sc.seeds} seeds; \"frozen\" is every BEP method's (and the float "
        "last layer's) accuracy before adapting; the float MLP is its own network, with its own before. Of what "
        f"the drift took (clean accuracy − frozen), in the order of the rows, recalibration alone wins back "
        f"{won['recalibration']} %, BEP with every label {won['bep']} %, both {won['bep+recalibration']} %.")


def render_adaptation_forgetting(res: Results) -> str:
    sc = Scenarios(res)
    methods = ("bep", "bep+replay", "bep+recalibration", "float-last-layer")
    lines = ["| shift: data set | before | " + " | ".join(METHOD_NAMES[m] for m in methods) +
             " | float MLP: before → after |", "|---|---|" + "---|" * len(methods) + "---|"]
    for key in sc.groups:
        if key.startswith("more:"):
            continue  # the source's test part is the target's: nothing to forget
        cells = [pct(sc.mean(key, "frozen", "source_before"))] + [pct(sc.mean(key, m, "source_after")) for m in methods]
        cells.append(f"{pct(sc.mean(key, 'float-mlp', 'source_before'))} → "
                     f"{pct(sc.mean(key, 'float-mlp', 'source_after'))}")
        lines.append(f"| {sc.label(key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_adaptation_new_class(res: Results) -> str:
    sc = Scenarios(res)
    keys = [key for key in sc.groups if key.startswith("class:")]
    if not keys:
        raise FiguresError(f"results/{SCENARIOS}: no new-class scenario")
    lines = ["| data set | method | new class: before → after | old classes: before → after | all: after |",
             "|---|---|---|---|---|"]
    for key in keys:
        for i, method in enumerate(METHOD_NAMES):
            new, old = (f"{pct(sc.mean(key, method, f'before_{part}_classes'))} → "
                        f"{pct(sc.mean(key, method, f'after_{part}_classes'))}" for part in ("new", "old"))
            lines.append(f"| {key.partition(':')[2] if i == 0 else ''} | {METHOD_NAMES[method]} | {new} | {old} | "
                         f"{pct(sc.mean(key, method, 'after'))} |")
    return "\n".join(lines) + "\n\n" + fill(
        f"Target test accuracy in %, the mean of {sc.seeds} seeds, on the samples of the class the source left out "
        "(\"new class\"), on the others (\"old classes\") and on all.")


COST_UNITS = {"M4 instruction": ("instructions", "cortex-m4"), "M0 instruction": ("instructions", "cortex-m0"),
              "byte of RAM": ("ram_bytes",)}


def render_adaptation_costs(res: Results) -> str:
    sc = Scenarios(res)
    lines = ["| data set, network | method | instructions per sample, M4 | M0 | RAM, bytes | points gained |",
             "|---|---|---|---|---|---|"]
    for name in sc.data_sets():
        network = field(sc.groups[sc.data_sets()[name][0]]["bep"][0], "network", source=SCENARIOS)
        for i, method in enumerate(COSTED):
            m4, m0, ram = (round(sc.cost(name, method, *unit)) for unit in COST_UNITS.values())
            first = f"{set_name(name)}, {network}" if i == 0 else ""
            lines.append(f"| {first} | {METHOD_NAMES[method]} | {m4:,} | {m0:,} | "
                         f"{ram:,} | {100 * sc.gain(name, method):+.1f} |")
    better = []
    for method in ("float-last-layer", "float-mlp"):
        where = []
        for unit, path in COST_UNITS.items():
            sets = [name for name in sc.data_sets() if sc.per(name, method, path) > sc.per(name, "bep", path)]
            where.append(f"per {unit} on {', '.join(map(set_name, sets)) or 'no data set'}")
        better.append(f"the {METHOD_NAMES[method]} gains more {', '.join(where)}")
    return "\n".join(lines) + "\n\n" + fill(
        "Instructions per sample learnt from and RAM: the mean over the seeds of the first scenario of each data set "
        "(the network's input bits vary a little with the seed); points gained: after − before in percentage "
        "points, the mean over the data set's scenarios. Points gained per instruction or per byte, against BEP "
        f"with every label: {'; '.join(better)}.")


PLOTTED = ("recalibration", "bep", "bep-last-layer", "bep+recalibration", "bep+recalibration@10%", "bep+replay",
           "float-last-layer", "float-mlp")


def adaptation_panels(res: Results) -> list[dict]:
    """What docs/adaptation-tradeoff.png draws: per scenario, every method's M4 instructions per sample and
    target accuracy after adapting (the means of the seeds), and the accuracy before."""
    sc = Scenarios(res)
    return [{"title": sc.label(key), "before": sc.mean(key, "frozen", "before"),
             "methods": {METHOD_NAMES[m]: [sc.mean(key, m, "instructions", "cortex-m4"), sc.mean(key, m, "after")]
                         for m in PLOTTED}} for key in sc.groups]


def render_adaptation_tradeoff(res: Results) -> tuple[str, Callable[[], bytes]]:
    """The stamp of what the figure draws, and a function drawing it (run only when the file is stale)."""
    panels = adaptation_panels(res)
    stamp = "sha256:" + hashlib.sha256(json.dumps(panels, sort_keys=True).encode()).hexdigest()

    def draw() -> bytes:
        sys.path.insert(0, str(ROOT))  # the package of this checkout, as the benchmark that measured it
        from bep_mcu import plots
        from bep_mcu.errors import BEPError

        try:
            return plots.adaptation_tradeoff(panels, {STAMP_KEY: f"{SCENARIOS} {stamp}"})
        except BEPError as err:  # matplotlib missing
            raise FiguresError(f"docs/adaptation-tradeoff.png: {err}") from None

    return f"{SCENARIOS} {stamp}", draw


# ------------------------------------------------------------------ the regions


RENDER = {
    "headline": render_headline,
    "accuracy-defaults": render_accuracy_defaults,
    "bep-vs-qat": render_bep_vs_qat,
    "speed": render_speed,
    "instructions": render_instructions,
    "device": render_device,
    "accuracy-table": render_accuracy_table,
    "fresh-table": render_fresh,
    "fresh2-table": render_fresh2,
    "fresh3-table": render_fresh3,
    "fresh4-table": render_fresh4,
    "fresh5-table": render_fresh5,
    "fresh6-table": render_fresh6,
    "sparse-table": render_sparse,
    "instructions-cores": render_instructions_cores,
    "breakdown": render_breakdown,
    "cycles": render_cycles,
    "floors": render_floors,
    "adaptation": render_adaptation,
    "adaptation-windows": render_adaptation_windows,
    "adaptation-scenarios": render_adaptation_scenarios,
    "adaptation-forgetting": render_adaptation_forgetting,
    "adaptation-new-class": render_adaptation_new_class,
    "adaptation-costs": render_adaptation_costs,
}
FILES = {  # every region each file must hold
    "README.md": ("headline", "accuracy-defaults", "bep-vs-qat", "speed", "instructions", "device"),
    "docs/accuracy.md": ("accuracy-table", "fresh-table", "fresh2-table", "fresh3-table", "fresh4-table"),
    "docs/performance.md": ("instructions-cores", "breakdown", "cycles", "floors"),
    "docs/adaptation.md": ("adaptation", "adaptation-windows", "adaptation-scenarios", "adaptation-forgetting",
                           "adaptation-new-class", "adaptation-costs"),
}


IMAGES = {  # figure → its renderer: (the stamp of what it draws, a function drawing it)
    "docs/adaptation-tradeoff.png": render_adaptation_tradeoff,
}
STAMP_KEY = "Source"  # the PNG text chunk holding the stamp: which results, and a digest of what is drawn


def image_stamp(path: Path) -> str | None:
    """The stamp a figure was drawn with; None for a missing file or one without a stamp."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.text.get(STAMP_KEY)
    except (OSError, ValueError, SyntaxError):  # missing, unreadable or not a PNG
        return None


def regions(path: str, text: str) -> list[tuple[str, str]]:
    """(name, current text) of each region in order; a broken or unknown marker is an error."""
    found = [(m.group(1), m.group(2)) for m in REGION.finditer(text)]
    opened = len(re.findall(r"^<!-- figures:", text, re.M))
    closed = len(re.findall(r"^<!-- /figures -->$", text, re.M))
    if opened != len(found) or closed != len(found):
        raise FiguresError(f"{path}: a figures region is not closed by '<!-- /figures -->' on its own line")
    names = [name for name, _ in found]
    for name in names:
        if name not in RENDER:
            raise FiguresError(f"{path}: unknown figures region '{name}'")
    for name in FILES[path]:
        if names.count(name) != 1:
            raise FiguresError(f"{path}: figures region '{name}' appears {names.count(name)} times, not once")
    return found


def rendered(text: str, res: Results) -> str:
    cache: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in cache:
            cache[name] = RENDER[name](res)
        return f"<!-- figures:{name} -->\n{cache[name]}\n<!-- /figures -->"

    return REGION.sub(sub, text)


def run(root: Path, check: bool) -> list[str]:
    """Render every file; write it (or, with ``check``, only compare). Returns the stale regions."""
    res = Results(root)
    stale, changed = [], {}
    for path in FILES:  # everything rendered before anything is written: an error leaves every file as it was
        try:
            text = (root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise FiguresError(f"{path}: cannot read it ({err.__class__.__name__})") from None
        before = dict(regions(path, text))
        new = rendered(text, res)
        after = dict(regions(path, new))
        stale += [f"{path}: region '{name}'" for name in before if before[name] != after[name]]
        if new != text:
            changed[path] = new
    images = {}
    for path, render in IMAGES.items():
        # A figure's pixels depend on the matplotlib that drew it; what it draws does not: it is stale when
        # the digest of its data differs from the one it was drawn with.
        stamp, draw = render(res)
        if image_stamp(root / path) != stamp:
            stale.append(f"{path}: figure")
            images[path] = draw
    if not check:
        drawn = {path: draw() for path, draw in images.items()}  # before anything is written
        for path, new in changed.items():
            (root / path).write_text(new, encoding="utf-8")
        for path, png in drawn.items():
            (root / path).write_bytes(png)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/figures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a region differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    args = parser.parse_args(argv)
    try:
        stale = run(args.root, args.check)
    except FiguresError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in stale:
        print(f"{line} {'differs from' if args.check else 'rendered again from'} results/")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
