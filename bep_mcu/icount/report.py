"""``python -m bep_mcu.icount``: instructions per training sample on Cortex-M0 and M4.

The workload: a 256-128-10 MLP with int8 hidden weights, trained two epochs on Random
Prototypes (256 features), so that ~95 % of the samples still trigger an update (the
worst case), generated and trained on 300 further samples in the emulator from the saved
state, E = 1.0 (817 reinforcement draws per batch). Every run is checked bit for bit
against the numpy engine. Beside it, the float32 SGD step of the same shape on the same
samples, hard-float on the M4 (M4F), soft-float on the M0, twice: as first written
(c/float_sgd.c, shapes at run time, built like the BEP code) and as a careful user would
tune it (c/float_sgd_tuned.c: shapes compiled in, blocked rows, unrolled updates; built at
-Os, -O2 and -O3, the fewest instructions kept), the two checked to give the same weights
and predictions bit for bit. ``--json`` ends with one JSON line per core: batch_1,
batch_100, float_sgd, float_sgd_tuned (instructions per sample) and the level that gave it
(float_sgd_tuned_opt), bytes_per_weight (RAM of the training state per trained weight),
cycles_batch_100 and float_sgd_tuned_cycles (the Cortex-M4 cycle model of harness.py, the
tuned step at its level with the fewest cycles, float_sgd_tuned_cycles_opt; null elsewhere)
and the per-part breakdown (from a BEP_MEASURE build that keeps the kernels apart; the
headline counts are of the normal build).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bep_mcu import training, validate
from bep_mcu.cgen.codegen import generate
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine import bits
from bep_mcu.engine.schedule import reinforcement_counts
from bep_mcu.icount.harness import CPUS, OPTS, build_float_image, build_image, missing_tools, run_float
from bep_mcu.model import Model
from bep_mcu.training import EncodedData, NumpyTrainer

DEMO_DATA = "prototypes:classes=10,features=256,samples=3000"
PARTS = {  # breakdown: function (GCC suffixes such as .isra.0 dropped) → part of the step
    "forward": ("bep_forward", "bep_layer_forward", "bep_layer_forward_cols", "bep_slice_z", "bep_slice_count",
                "bep_dot_rows", "bep_classify", "bep_logits16", "bep_padding"),
    "backward": ("bep_learn_mlp", "bep_learn_rnn", "bep_backward"),
    "update": ("bep_update", "bep_row_add8", "bep_row_add16", "bep_row_add8_split", "bep_row_add8_words"),
    "winner": ("bep_winner",),
    "reinforcement": ("bep_reinforce", "bep_draw_key"),
    "repack": ("bep_repack_dirty", "bep_repack_words", "bep_pack_row", "bep_row_sign", "bep_toggle"),
}
FLOAT_LR = 0.01
TUNED_OPTS = ("-Os", "-O2", "-O3")  # the levels the tuned float step is built at; the best is kept


def epoch_q(spec, error_rate: float, p_r: float = 0.5) -> list[int]:
    """Fixed-point reinforcement count Q per layer for a training error rate E (as training does)."""
    return reinforcement_counts(spec, p_r, error_rate)


def unpack_inputs(X_packed: np.ndarray, spec) -> np.ndarray:
    """Packed C input words → the ±1 float32 network input (inverse of ``bits.pack_inputs``)."""
    X = np.asarray(X_packed, dtype=np.uint32)
    if spec.model == "rnn":
        X = X.reshape(len(X), spec.steps, -1)
    return np.where(bits.unpack(X, spec.n_inputs), np.float32(1), np.float32(-1)).astype(np.float32)


def reference_training(model: Model, X_packed, labels, batch_size: int, gamma, q, seed: int | None = None,
                       batches: int | None = None) -> dict:
    """The numpy engine on the same consecutive batches from the same model: hidden
    weights, counters and forward predictions (``seed``/``batches`` default to the model's)."""
    t = model.training
    trainer = NumpyTrainer(model.with_training(seed=t.seed if seed is None else seed,
                                               batch_counter=t.batch_counter if batches is None else batches))
    trainer.set_epoch(gamma, q)
    data = EncodedData(unpack_inputs(X_packed, model.spec), np.asarray(labels, dtype=np.int64))
    preds = [trainer.train_batch(data.take(np.arange(i, min(i + batch_size, len(data)))))
             for i in range(0, len(data), batch_size)]
    return {"hidden": trainer.hidden_weights(), "counters": trainer.counters().as_dict(),
            "predictions": np.concatenate(preds).astype(np.int64)}


def same_as_numpy(result: dict, ref: dict) -> bool:
    return (all(np.array_equal(a, b) for a, b in zip(result["hidden"], ref["hidden"]))
            and np.array_equal(result["predictions"], ref["predictions"]) and result["counters"] == ref["counters"])


def same_floats(a: dict, b: dict) -> bool:
    """Two float baselines' runs left the same weights and predicted the same, bit for bit."""
    return (np.array_equal(a["predictions"], b["predictions"])
            and all(np.array_equal(p.view(np.uint32), q.view(np.uint32)) for p, q in zip(a["params"], b["params"])))


def breakdown(functions: dict[str, int], samples: int) -> dict[str, int]:
    """Per-sample instructions of each part of the step (``other``: the calls in between)."""
    out = dict.fromkeys([*PARTS, "other"], 0)
    for fn, v in functions.items():
        base = fn.split(".")[0]
        out[next((part for part, names in PARTS.items() if base in names), "other")] += v
    return {part: round(v / samples) for part, v in out.items()}


def float_params(shape: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    """He-initialised float32 weights and zero biases: w1, b1, w2, b2."""
    n_in, n_hidden, n_out = shape
    g = np.random.default_rng(seed)
    return [(g.standard_normal((n_hidden, n_in)) * np.sqrt(2 / n_in)).astype(np.float32),
            np.zeros(n_hidden, np.float32),
            (g.standard_normal((n_out, n_hidden)) * np.sqrt(2 / n_hidden)).astype(np.float32),
            np.zeros(n_out, np.float32)]


class Workload:
    """The demo model, its generated C and the packed samples (trained once, in ``work``)."""

    def __init__(self, work: Path, samples: int, epochs: int = 2, seed: int = 0) -> None:
        data = load_dataset(DEMO_DATA)
        self.model = training.fit(data.X_train, data.y_train, training.Settings(hidden=(128,), epochs=epochs, seed=seed))
        self.gen = generate(self.model, work / "c", "net")
        n = min(samples, len(data.y_train))
        encoded = self.model.encode(data.X_train[:n])
        self.X = bits.pack_inputs(encoded)
        self.X_float = np.asarray(encoded, dtype=np.float32)
        self.y = self.model.encode_labels(data.y_train[:n])
        self.gamma = list(self.model.training.gamma)
        self.seed, self.batches = self.model.training.seed, self.model.training.batch_counter
        spec = self.model.spec
        self.shape = (spec.n_inputs, spec.hidden[0], spec.n_classes)
        self.n_weights = spec.synapses

    def q(self, error_rate: float) -> list[int]:
        return epoch_q(self.model.spec, error_rate, self.model.hyper.p_r)

    def run(self, image, batch_size: int, error_rate: float = 1.0, cycles: bool = False) -> dict:
        r = image.run(self.X, self.y, batch_size, self.gamma, self.q(error_rate), self.seed, self.batches,
                      cycles=cycles)
        ref = reference_training(self.model, self.X, self.y, batch_size, self.gamma, self.q(error_rate), self.seed,
                                 self.batches)
        r["bit_exact"] = same_as_numpy(r, ref)
        return r


def measure(w: Workload, cpu: str, sizes, errors, opt: str, extra: list[str], float_samples: int, keep) -> dict:
    """Every figure of one core: the table rows, the float baseline and the breakdown."""
    cycles = cpu == "cortex-m4"
    image = build_image(w.gen, cpu, opt, keep / f"elf-{cpu}" if keep else None, extra)
    rows = {(bs, err): w.run(image, bs, err, cycles) for err in errors for bs in sizes}
    parts = build_image(w.gen, cpu, opt, keep / f"elf-{cpu}-measure" if keep else None, [*extra, "-DBEP_MEASURE=1"])
    split = {bs: w.run(parts, bs) for bs in (1, 100)}
    fimage = build_float_image(cpu, w.shape, opt, keep / f"elf-{cpu}-float" if keep else None)
    k = min(float_samples, len(w.y))
    params = float_params(w.shape, w.seed)
    flt = run_float(fimage, w.X_float[:k], w.y[:k], params, FLOAT_LR, cycles)
    tuned = {level: run_float(build_float_image(cpu, w.shape, level, keep / f"elf-{cpu}-float-tuned{level}"
                                                if keep else None, tuned=True),
                              w.X_float[:k], w.y[:k], params, FLOAT_LR, cycles) for level in TUNED_OPTS}
    return {"rows": rows, "split": split, "float": flt, "tuned": tuned, "cycles": cycles,
            "draws": {err: w.q(err)[0] / 65536 for err in errors}}


def summary(m: dict, n_weights: int) -> dict:
    """The JSON object of one core (worst case, E = 1.0)."""
    rows, flt = m["rows"], m["float"]
    b1, b100 = rows.get((1, 1.0)), rows.get((100, 1.0))
    per = lambda r: round(r["instructions_per_sample"]) if r else None  # noqa: E731
    tuned = m["tuned"]
    best = min(tuned, key=lambda level: tuned[level]["instructions_per_sample"])
    fastest = min(tuned, key=lambda level: tuned[level]["cycles_per_sample"]) if m["cycles"] else None

    def over(r: dict) -> float | None:
        return round(r["instructions_per_sample"] / b100["instructions_per_sample"], 2) if b100 else None

    out = {
        "batch_1": per(b1), "batch_100": per(b100), "float_sgd": round(flt["instructions_per_sample"]),
        "float_over_batch_100": over(flt),
        "float_sgd_tuned": round(tuned[best]["instructions_per_sample"]), "float_sgd_tuned_opt": best,
        "float_tuned_over_batch_100": over(tuned[best]),
        "float_tuned_same_as_float_sgd": all(same_floats(r, flt) for r in tuned.values()),
        "bytes_per_weight": round(next(iter(rows.values()))["state_bytes"] / n_weights, 3),
        "float_bytes_per_weight": round(flt["state_bytes"] / flt["weights"], 3),
        "cycles_batch_100": round(b100["cycles_per_sample"]) if m["cycles"] and b100 else None,
        "cycles_batch_1": round(b1["cycles_per_sample"]) if m["cycles"] and b1 else None,
        "float_sgd_cycles": round(flt["cycles_per_sample"]) if m["cycles"] else None,
        "float_sgd_tuned_cycles": round(tuned[fastest]["cycles_per_sample"]) if fastest else None,
        "float_sgd_tuned_cycles_opt": fastest,
        "breakdown": breakdown(m["split"][100]["functions"]["train"], m["split"][100]["samples"]),
        "breakdown_batch_1": breakdown(m["split"][1]["functions"]["train"], m["split"][1]["samples"]),
        "bit_exact": all(r["bit_exact"] for r in [*rows.values(), *m["split"].values()]),
    }
    return out


def _numbers(text: str, parse, option: str, ok, what: str, parser: argparse.ArgumentParser) -> list:
    """A comma-separated option, each item in ASCII digits (int() and float() also read
    '٣') and ``ok``; else one usage error naming the option."""
    try:
        values = [parse(v.strip()) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(ok(v) for v in values):
        parser.error(f"{option}: {validate.show(text)} is not a comma-separated list of {what}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bep_mcu.icount",
        description="Instructions per BEP training sample of the generated C on emulated Cortex-M and RV32 cores "
                    "(256-128-10 MLP, int8 hidden weights, the worst case), beside a float32 SGD step.")
    parser.add_argument("--cpus", default="cortex-m0,cortex-m4",
                        help=f"comma-separated cores: {', '.join(CPUS)} (an Arm -mcpu or a RISC-V -march)")
    parser.add_argument("--batch-sizes", default="1,100")
    parser.add_argument("--errors", default="1.0,0.1", help="training error rates E that set Q")
    parser.add_argument("--samples", type=validate.int_text, default=300, help="training samples per measurement")
    parser.add_argument("--float-samples", type=validate.int_text, default=20, help="samples for the float baseline")
    parser.add_argument("--opt", default="-Os", type=lambda v: v if v.startswith("-") else f"-{v}", choices=OPTS,
                        help="optimisation level: Os, O2, ... (or --opt=-O2)")
    parser.add_argument("--keep", default=None, help="keep model, generated C and ELF files in this directory")
    parser.add_argument("--cflags", default="", help="extra compiler flags, e.g. --cflags=-DBEP_USE_DSP=0")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (progress to stderr)")
    args = parser.parse_args(argv)
    sizes = _numbers(args.batch_sizes, validate.int_text, "--batch-sizes", lambda n: n >= 1, "integers >= 1", parser)
    errors = _numbers(args.errors, validate.float_text, "--errors", lambda e: 0.0 <= e <= 1.0, "error rates in 0..1",
                      parser)
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json else print
    cpus = [c.strip() for c in args.cpus.split(",") if c.strip()]
    unknown = [c for c in cpus if c not in CPUS]
    if not cpus or unknown:
        parser.error(f"--cpus: {validate.show(args.cpus)} is not a comma-separated list of {', '.join(CPUS)}")
    missing = missing_tools(cpus)
    if missing:
        print(f"error: icount needs {', '.join(missing)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bep-icount-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        w = Workload(work, args.samples)
        spec = w.model.spec
        say(f"network {spec.n_inputs}-{'-'.join(map(str, spec.hidden))}-{spec.n_classes} MLP, int{spec.hidden_bits} "
            f"hidden weights, trained 2 epochs on {DEMO_DATA} (train error {w.model.training.error_rate:.3f}) in "
            f"{time.perf_counter() - t0:.1f} s; gamma {w.gamma}; {len(w.y)} samples, {args.opt} {args.cflags}".rstrip())
        results = {}
        for cpu in cpus:
            m = measure(w, cpu, sizes, errors, args.opt, args.cflags.split(), args.float_samples,
                        work if args.keep else None)
            results[cpu] = summary(m, w.n_weights)
            _print_core(say, cpu, m, results[cpu], len(w.y))
        say("\ntrig = share of samples whose margin was below R (backward + update); counts are instructions "
            "per training sample, reinforcement and repacking included;\ncycles: the Cortex-M4 TRM model of "
            "bep_mcu/icount/harness.py; bit-exact: weights, predictions and counters read back from emulated RAM "
            "equal the numpy engine's.")
        if args.json:
            print(json.dumps(results))
        if not all(r["bit_exact"] for r in results.values()):
            print("error: emulated training differs from the numpy engine", file=sys.stderr)
            return 1
        if not all(r["float_tuned_same_as_float_sgd"] for r in results.values()):
            print("error: the tuned float step (float_sgd_tuned.c) differs from float_sgd.c", file=sys.stderr)
            return 1
        return 0


def _print_core(say, cpu: str, m: dict, s: dict, n: int) -> None:
    say(f"\n{cpu}  {'batch':>5} {'E':>4} {'draws':>6} {'trig':>5} {'instr/sample':>12} {'cycles':>8}  bit-exact")
    for (bs, err), r in m["rows"].items():
        cyc = f"{r['cycles_per_sample']:>8,.0f}" if m["cycles"] else f"{'-':>8}"
        say(f"{'':<10} {bs:>5} {err:>4.2f} {m['draws'][err]:>6.0f} "
            f"{r['counters']['triggered'] / n:>5.2f} {r['instructions_per_sample']:>12,.0f} {cyc}  "
            f"{'yes' if r['bit_exact'] else 'NO'}")
    ratio = s["float_over_batch_100"]
    say(f"{'':<10} float32 SGD step as first written: {s['float_sgd']:,} instructions per sample"
        f"{f' ({ratio:.1f}x batch 100)' if ratio else ''}; training state {s['bytes_per_weight']} B/weight "
        f"(float {s['float_bytes_per_weight']})")
    tuned_ratio = s["float_tuned_over_batch_100"]
    cyc = (f", {s['float_sgd_tuned_cycles']:,} cycles at {s['float_sgd_tuned_cycles_opt']}"
           if s["float_sgd_tuned_cycles"] else "")
    levels = ", ".join(f"{level} {r['instructions_per_sample']:,.0f}" for level, r in m["tuned"].items())
    say(f"{'':<10} float32 SGD step tuned: {s['float_sgd_tuned']:,} instructions per sample at "
        f"{s['float_sgd_tuned_opt']}{f' ({tuned_ratio:.1f}x batch 100)' if tuned_ratio else ''}{cyc} "
        f"(of {levels}); "
        f"same weights as first written: {'yes' if s['float_tuned_same_as_float_sgd'] else 'NO'}")
    say(f"{'':<10} batch 100, per part: " + ", ".join(f"{k} {v:,}" for k, v in s["breakdown"].items()))
    say(f"{'':<10} batch 1,   per part: " + ", ".join(f"{k} {v:,}" for k, v in s["breakdown_batch_1"].items()))
