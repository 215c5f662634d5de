"""Benchmarks that print figures (never timed assertions).

    python -m bep_mcu.bench speed      # numpy engine vs a plain dense baseline; C twin vs numpy
    python -m bep_mcu.bench accuracy   # the acceptance table: default settings, 3 seeds
    python -m bep_mcu.bench accuracy --baseline qat [--sets ArrowHead:rnn,...] [--json]
                                       # BEP vs QAT vs QAT + batch norm on the same inputs
    python -m bep_mcu.bench accuracy --sets GunPoint:mlp,...   # BEP alone on chosen sets
    python -m bep_mcu.bench device     # on-device training over the emulated link (QEMU)
    python -m bep_mcu.bench adaptation [--scenarios drift:digits,...] [--seeds N] [--json]
                                       # shifts a deployed device meets: BEP vs the float alternatives

Speed runs on one core (BLAS threads pinned to 1) and measures, in the same run, a
plain dense-matrix BEP step (per-sample updates, full repack with np.where) as the
baseline, so the printed ratio means something on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from bep_mcu import training, validate
from bep_mcu.data.datasets import (FRESH2_SETS, FRESH3_SETS, FRESH4_SETS, FRESH5_SETS, FRESH6_SETS, FRESH_SETS,
                                   SPARSE_SETS,
                                   UCR_VARIANTS, available_ucr, classification_features, load_dataset)
from bep_mcu.errors import BEPError
from bep_mcu.engine import rng
from bep_mcu.engine.network import BatchResult, Network, winner_mask
from bep_mcu.model import Model
from bep_mcu.settings import PRESETS, of_model


class DenseBaseline(Network):
    """The straightforward implementation: same maths, one sample's update at a time
    and a full np.where repack of every layer after each batch."""

    def train_batch(self, X, y, trace=None):
        y = np.asarray(y, dtype=np.int64)
        ins, zs, acts, logits = self._forward(X)
        predictions = logits.argmax(axis=1)
        hit = np.flatnonzero(self._triggered(logits, y))
        counter = self.batch_counter
        self.batch_counter += 1
        if hit.size == 0:
            return BatchResult(predictions, 0, 0)
        L = self.spec.n_layers
        target = [None] * L
        target[L - 1] = self.P[y[hit]]
        for layer in range(L - 2, -1, -1):
            gated = np.where(np.abs(zs[layer + 1][hit]) <= self.gate[layer + 1], target[layer + 1], 0)
            v = gated @ self.W[layer + 1]
            target[layer] = np.where(v > 0, 1, np.where(v < 0, -1, ins[layer + 1][hit])).astype(np.float32)
        for layer in range(L):
            mask = winner_mask(target[layer] * zs[layer][hit], self.gamma[layer])
            for s in range(hit.size):
                rows = np.flatnonzero(mask[s])
                delta = 2 * target[layer][s, rows, None] * ins[layer][hit[s]][None, :]
                self.H[layer][rows] = np.clip(self.H[layer][rows] + delta, self.lo, self.hi)
        for layer, H in enumerate(self.H):
            draws = rng.reinforcement_indices(self.seed, counter, layer, self.reinforce_q[layer], H.size)
            flat = H.reshape(-1)
            for i in draws:
                flat[i] = np.clip(flat[i] + 2 * np.sign(flat[i]), self.lo, self.hi)
            self.W[layer] = np.where(H >= 0, np.float32(1), np.float32(-1))
        return BatchResult(predictions, int(hit.size), 0)


class DenseTrainer(training.NumpyTrainer):
    """The dense baseline as a trainer, so it runs through the same driver."""

    name = "dense"

    def __init__(self, model: Model) -> None:
        self.net = DenseBaseline(model.spec, model.params, [h.copy() for h in model.hidden], model.classifier,
                                 model.training.seed, model.training.batch_counter)


def _fresh(X, y, hidden: tuple[int, ...], **settings) -> Model:
    """An untrained model of this shape (its state is what every benchmark starts from)."""
    return training.new_model(X, y, training.Settings(hidden=hidden, **settings))


def _throughput(trainer, model: Model, data: training.EncodedData, epochs: int, batch_size: int) -> float:
    plan = training.Plan.continuing(model, epochs, batch_size, stall_signal="training")
    report = training.run_epochs([trainer], data, plan)
    return report.samples_per_second(trainer.name)


def speed(epochs: int) -> dict:
    from threadpoolctl import threadpool_limits

    results = {}
    with threadpool_limits(limits=1):
        data = load_dataset("prototypes")
        model = _fresh(data.X_train, data.y_train, (512,))
        train = training.encoded(model, data.X_train, data.y_train)
        fast = _throughput(training.NumpyTrainer(model), model, train, epochs, 100)
        slow = _throughput(DenseTrainer(model), model, train, epochs, 100)
        results["mlp_1000_512_10_samples_per_second"] = fast
        results["dense_baseline_samples_per_second"] = slow
        results["ratio_vs_dense_baseline"] = fast / slow
        print(f"numpy engine, prototypes 1000-512-10, batch 100, one core: {fast:,.0f} samples/s", flush=True)
        print(f"plain dense baseline, same data and run:                 {slow:,.0f} samples/s"
              f"  (engine is {fast / slow:.2f}x)", flush=True)

        results.update(twin_speed(data))

        gp = load_dataset("ucr:GunPoint")
        rnn = _fresh(gp.X_train, gp.y_train, (256,), model="rnn")
        seqs = _throughput(training.NumpyTrainer(rnn), rnn, training.encoded(rnn, gp.X_train, gp.y_train),
                           epochs * 20, rnn.training.batch_size)
        results["rnn_gunpoint_sequences_per_second"] = seqs
        print(f"numpy engine, GunPoint RNN 256 hidden, {rnn.spec.steps} steps, batch {rnn.training.batch_size}: "
              f"{seqs:,.0f} sequences/s", flush=True)
    return results


def twin_speed(data, n_samples: int = 3000) -> dict:
    """The generated C (host twin) vs the numpy engine on the same samples, same run,
    at batch size 1 (online learning, as on a device) and 100. Both start from the same
    initial weights, first-epoch reinforcement (E = 1) on."""
    from bep_mcu.twin.cffi_twin import TwinTrainer
    from bep_mcu.twin.verify import build_twin

    model = _fresh(data.X_train[:n_samples], data.y_train[:n_samples], (512,))
    train = training.encoded(model, data.X_train[:n_samples], data.y_train[:n_samples])
    twin = build_twin(model, "bench")
    out = {}
    for batch in (1, 100):
        part = train if batch > 1 else train.take(np.arange(n_samples // 3))  # numpy at batch 1 is slow
        numpy_sps = _throughput(training.NumpyTrainer(model), model, part, 1, batch)
        c_sps = _throughput(TwinTrainer(twin, model.training.seed, model.training.batch_counter), model, train, 1,
                            batch)
        out[f"twin_batch{batch}_samples_per_second"] = c_sps
        out[f"numpy_batch{batch}_samples_per_second"] = numpy_sps
        out[f"twin_vs_numpy_batch{batch}"] = c_sps / numpy_sps
        print(f"batch {batch:>3}: C twin {c_sps:>9,.0f} samples/s, numpy {numpy_sps:>9,.0f} samples/s "
              f"-> C is {c_sps / numpy_sps:.1f}x (1000-512-10, first-epoch reinforcement)", flush=True)
    return out


ACCEPTANCE = [
    # (label, dataset, classifier arguments, required mean test accuracy)
    ("prototypes 512", "prototypes", {"hidden": (512,)}, 0.95),
    ("prototypes 512-512", "prototypes", {"hidden": (512, 512)}, 0.94),
    ("digits median 512", "digits", {"hidden": (512,), "binarize": "median"}, 0.87),
    ("GunPoint rnn", "ucr:GunPoint", {"model": "rnn", "hidden": (256,)}, 0.88),
    ("ItalyPowerDemand rnn", "ucr:ItalyPowerDemand", {"model": "rnn", "hidden": (256,)}, 0.88),
]
UNTUNED = [
    ("digits default (thermometer:4) 512", "digits", {"hidden": (512,)}, None),
    ("ArrowHead rnn (T=251)", "ucr:ArrowHead", {"model": "rnn", "hidden": (256,)}, None),
    ("BasicMotions rnn (6 channels)", "ucr:BasicMotions", {"model": "rnn", "hidden": (256,)}, None),
    ("OSULeaf rnn (T=427, 6 classes)", "ucr:OSULeaf", {"model": "rnn", "hidden": (256,)}, None),
    ("ItalyPowerDemand mlp", "ucr:ItalyPowerDemand", {"hidden": (512,)}, None),
]


def accuracy(seeds: int, include_untuned: bool) -> list[dict]:
    rows = []
    for label, name, kwargs, target in ACCEPTANCE + (UNTUNED if include_untuned else []):
        data = load_dataset(name)
        scores = []
        start = time.perf_counter()
        for seed in range(seeds):
            model = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **kwargs))
            scores.append(model.score(data.X_test, data.y_test))
        row = {"config": label, "mean": float(np.mean(scores)), "scores": scores, "target": target,
               "epochs": model.training.epochs, "seconds": time.perf_counter() - start}
        rows.append(row)
        status = "" if target is None else ("  ok" if row["mean"] >= target else "  BELOW TARGET")
        print(f"{label:<36} mean {row['mean']:.4f}  seeds {' '.join(f'{s:.4f}' for s in scores)}"
              f"  target {target if target is not None else '-'}{status}", flush=True)
    return rows


# The side-by-side table of docs/accuracy.md: ``<set>:<network>`` keys (see ``parse_config``).
BASELINE_SETS = [
    "prototypes:512", "prototypes:512-512", "prototypes-p46:512", "digits-median:512",
    "GunPoint:rnn", "GunPoint:mlp", "ItalyPowerDemand:rnn", "ItalyPowerDemand:mlp", "ArrowHead:rnn",
    "ArrowHead:mlp", "BasicMotions:rnn", "BasicMotions:mlp", "OSULeaf:rnn", "OSULeaf:mlp",
]
# Sets nobody tuned on (the hold-out check of the defaults).
HOLDOUT_SETS = ["JapaneseVowels:rnn", "JapaneseVowels:mlp", "PickupGestureWiimoteZ:rnn",
                "PickupGestureWiimoteZ:mlp", "ACSF1:rnn", "ACSF1:mlp"]
# Kinds of data the defaults were not tuned on (docs/research/untuned-data.md): low-dimensional
# tabular data, images that are mostly zeros, long padded series of unequal length, small
# two-class series (``--sets kinds``).
KINDS_SETS = ["moons:mlp", "circles:mlp", "iris:mlp", "classification-2:mlp", "classification-8:mlp",
              "classification-20:mlp", "digits-28:mlp", "JapaneseVowels-long:mlp", "JapaneseVowels-long:rnn",
              "PickupGestureWiimoteZ-long:mlp", "PickupGestureWiimoteZ-long:rnn",
              "spectra:rnn", "spectra:mlp", "UnitTest:rnn"]
# A fresh held-out check of the defaults (docs/accuracy.md, "Held-out check"): sets nobody here
# had used when the defaults were chosen, frozen before any of them was run (``--sets fresh``).
FRESH_KEYS = [f"{name}:mlp" for name in FRESH_SETS] + ["ACSF1-down:mlp", "ACSF1-down:rnn", "ArrowHead-noisy:mlp",
                                                       "ArrowHead-noisy:rnn"]
# The second held-out check (``--sets fresh2``), frozen before any of it was run, after the first had
# been seen and the bias-bit candidate chosen with it (docs/accuracy.md, "Held-out check").
FRESH2_KEYS = [f"{name}:mlp" for name in FRESH2_SETS] + ["Covid3Month_disc:mlp", "Covid3Month_disc:rnn",
                                                         "JapaneseVowels-noisy:mlp", "PickupGestureWiimoteZ-down:rnn"]
# The third (``--sets fresh3``), tabular only, frozen before any of it was run, after the second had been
# seen: to judge a tabular default chosen with the first two.
FRESH3_KEYS = [f"{name}:mlp" for name in FRESH3_SETS]
# The fourth (``--sets fresh4``), tabular of three classes or more, frozen before any of it was run, after
# the third had been seen: to judge the centroid frame chosen with the first three.
FRESH4_KEYS = [f"{name}:mlp" for name in FRESH4_SETS]
# The fifth (``--sets fresh5``), the same kind, frozen before any of it was run, after the fourth had been
# seen: to test a centroid frame for one hidden layer.
FRESH5_KEYS = [f"{name}:mlp" for name in FRESH5_SETS]
# The sixth (``--sets fresh6``), frozen before any of it was run: rows of binary features, fewer than 256.
FRESH6_KEYS = [f"{name}:mlp" for name in FRESH6_SETS]
# Sparse features (``--sets sparse``): indicators and counts where most input bits take one value.
SPARSE_KEYS = [f"{name}:mlp" for name in SPARSE_SETS]
GENERATED = (("moons", "circles", "iris", "digits-28", "spectra") + FRESH_SETS + FRESH2_SETS + FRESH3_SETS
             + FRESH4_SETS + FRESH5_SETS + FRESH6_SETS + SPARSE_SETS)
SET_GROUPS = {"holdout": HOLDOUT_SETS, "kinds": KINDS_SETS, "fresh": FRESH_KEYS, "fresh2": FRESH2_KEYS,
              "fresh3": FRESH3_KEYS, "fresh4": FRESH4_KEYS, "fresh5": FRESH5_KEYS, "fresh6": FRESH6_KEYS,
              "sparse": SPARSE_KEYS}


def parse_config(key: str) -> tuple[str, dict]:
    """``<set>:<network>`` → (dataset name, ``training.Settings`` arguments).

    set: ``prototypes`` (p = 0.44), ``prototypes-p46`` (p = 0.46), ``digits`` (default
    binariser), ``digits-median``, a generated set (``moons``, ``circles``, ``iris``,
    ``classification-<F>``, ``digits-28``, ``spectra``, ``FRESH_SETS``, ``FRESH2_SETS``,
    ``FRESH3_SETS``, ``FRESH4_SETS``, ``FRESH5_SETS``, ``FRESH6_SETS``, ``SPARSE_SETS``), a UCR name, or a UCR
    name with ``-long`` (every series four times as long), ``-down`` (eight times shorter) or
    ``-noisy`` (Gaussian noise added); network: ``rnn`` (256 hidden, the benchmark's
    configuration), ``rnn-W`` (W hidden, e.g. ``rnn-512``, the CLI's default width), ``mlp``
    (the CLI's default: 512, and on tabular data the other candidates ``training.fit`` tries) or
    widths such as ``512`` or ``512-512`` (an MLP of those widths only)."""
    name, _, net = key.partition(":")
    net = net or "mlp"
    if net == "rnn" or net.startswith("rnn-"):
        kwargs: dict = {"model": "rnn", "hidden": (int(net[len("rnn-"):]) if net != "rnn" else 256,)}
    elif net == "mlp":
        kwargs = {}  # the CLI's default widths (and the candidates fit tries where they are left to it)
    else:
        kwargs = {"hidden": tuple(int(w) for w in net.split("-"))}
    if name == "prototypes":
        return "prototypes", kwargs
    if name.startswith("prototypes-p"):
        digits = name[len("prototypes-p"):]
        if not digits.isdigit():
            raise ValueError(f"'{name}' is not prototypes-p<digits of the flip probability>")
        return f"prototypes:flip=0.{digits}", kwargs
    if name == "digits-median":
        return "digits", {**kwargs, "binarize": "median"}
    if name == "digits":
        return "digits", kwargs
    if name in GENERATED:
        return name, kwargs
    if name.startswith("classification-"):
        classification_features(name[len("classification-"):])
        return name, kwargs
    base, _, variant = name.rpartition("-")
    if base and variant in UCR_VARIANTS:
        return f"ucr-{variant}:{base}", kwargs
    return f"ucr:{name}", kwargs


def _mean_std(scores) -> str:
    return f"{100 * np.mean(scores):5.1f} ± {100 * np.std(scores):3.1f}"


def accuracy_vs_baseline(keys: list[str], seeds: int, rates=None, decays=None, baseline: bool = True,
                         preset: str | None = None) -> list[dict]:
    """BEP (defaults, or a ``preset``'s) vs QAT and QAT + batch norm on the same inputs, per
    ``<set>:<network>``: mean ± std over seeds of the final model's test accuracy, and seconds
    (``baseline`` False: BEP alone)."""
    if baseline:
        from bep_mcu import qat

    rows = []
    print(f"{'configuration':<28} {'BEP':>13} {'s':>6}" +
          (f"   {'QAT':>13} {'s':>6}   {'QAT+BN':>13} {'s':>6}" if baseline else ""), flush=True)
    for key in keys:
        name, kwargs = parse_config(key)
        kwargs = {**kwargs, "preset": preset} if preset else kwargs
        data = load_dataset(name)
        scores, train, curves, kept = [], [], [], []
        start = time.perf_counter()
        for seed in range(seeds):
            history: list[dict] = []
            model = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **kwargs),
                                 on_epoch=history.append)
            scores.append(model.score(data.X_test, data.y_test))
            train.append(model.score(data.X_train, data.y_train))
            curves.append({"train_error": [round(h["train_error"], 4) for h in history],
                           "val_accuracy": [h["val_accuracy"] for h in history]})
            kept.append(of_model(model))  # the settings of the candidate fit kept (training.second_candidate)
        bep_seconds = time.perf_counter() - start
        row = {"config": key, "dataset": name, "kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in kwargs.items()},
               "seeds": seeds, "epochs": model.training.epochs,
               "bep": {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "scores": scores,
                       "train": train, "seconds": bep_seconds, "curves": curves, "kept": kept}}
        rows.append(row)
        if not baseline:
            print(f"{key:<28} {_mean_std(scores):>13} {bep_seconds:6.0f}", flush=True)
            continue
        for label, bn in (("qat", False), ("qat_bn", True)):
            res = qat.tuned_qat(kwargs, data, seeds, batch_norm=bn, learning_rates=rates or qat.LEARNING_RATES,
                                weight_decays=decays or qat.WEIGHT_DECAYS)
            row[label] = {"mean": float(np.mean(res["scores"])), "std": float(np.std(res["scores"])),
                          "scores": res["scores"], "train": res["train"], "chosen": res["chosen"],
                          "seconds": res["seconds"], "grid": res["grid"]}
        print(f"{key:<28} {_mean_std(scores):>13} {bep_seconds:6.0f}   {_mean_std(row['qat']['scores']):>13} "
              f"{row['qat']['seconds']:6.0f}   {_mean_std(row['qat_bn']['scores']):>13} {row['qat_bn']['seconds']:6.0f}",
              flush=True)
    return rows


def device(epochs: int) -> dict:
    """Samples per second of on-device training of a 256-128-10 int8 MLP on mps2-an386
    (Cortex-M4 in QEMU) over the emulated UART, and the link's estimated share."""
    import tempfile
    from pathlib import Path

    from bep_mcu.device.emulate import EmulatedBoard
    from bep_mcu.device.firmware import build
    from bep_mcu.device.stream import connect, stream_train

    data = load_dataset("prototypes:classes=10,features=256,samples=3000")
    results = {}
    model = training.fit(data.X_train, data.y_train, training.Settings(hidden=(128,), epochs=1, batch_size=100))
    train = training.encoded(model, data.X_train, data.y_train)
    with tempfile.TemporaryDirectory() as tmp:
        fw = build(model, "mps2-an386", Path(tmp) / "fw")
        for batch in (100, 1):
            with EmulatedBoard(fw.elf, "mps2-an386") as url, connect(url, model) as link:
                part = train if batch > 1 else train.take(np.arange(500))
                r, _ = stream_train(link, model, part, epochs, batch)
            share = r.link_seconds_estimate / r.seconds
            results[f"batch{batch}"] = {"samples_per_second": r.samples_per_second, "link_share_estimate": share,
                                        "frames": r.frames_sent}
            print(f"on-device training, 256-128-10 int8, mps2-an386 (QEMU), batch {batch:>3}: "
                  f"{r.samples_per_second:,.0f} samples/s; link ~{100 * share:.0f} % of the time "
                  f"({r.frames_sent} frames), compute ~{100 * (1 - share):.0f} %", flush=True)
    return results


class Parser(argparse.ArgumentParser):
    """A bad option is one line, ``error: ...``, exit status 2, as in ``bep-mcu``."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())}\n")


def positive_int(text: str) -> int:
    """A count option: ASCII digits (int() alone also reads '٣' as 3), at least 1."""
    try:
        value = validate.int_text(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 1 << 31:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer in 1..{1 << 31}")
    return value


def main() -> None:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "accuracy", "device", "adaptation"])
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs per speed measurement")
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--untuned", action="store_true", help="also datasets nobody tuned for")
    parser.add_argument("--baseline", choices=["qat"], default=None,
                        help="accuracy: also train the QAT baseline (and QAT + batch norm) on the same inputs "
                             "(pip install 'bep-mcu[bench]')")
    parser.add_argument("--sets", default=None,
                        help="accuracy: comma-separated <set>:<network> keys, 'holdout' for the untuned hold-out "
                             "sets, 'kinds' for the untuned kinds of data, 'fresh' and 'fresh2' to "
                             "'fresh6' for the six held-out checks, 'sparse' for sparse indicators and counts "
                             "(without --baseline: BEP alone) "
                             "[default with --baseline: "
                             + ",".join(BASELINE_SETS) + "]")
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="accuracy with --sets or --baseline: BEP from this preset (bep-mcu presets)")
    parser.add_argument("--qat-rates", default=None, help="QAT learning rates to try [default: 1e-3,1e-2]")
    parser.add_argument("--qat-decays", default=None, help="QAT weight decays to try [default: 0,1e-4]")
    parser.add_argument("--scenarios", default=None,
                        help="adaptation: comma-separated scenarios [default: all of bep_mcu/bench_adaptation.py]")
    parser.add_argument("--hidden", type=positive_int, default=None, help="adaptation: hidden width [default: 128]")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        result = run(args, parser)
    except BEPError as err:  # a missing extra or data set: one line, like the CLI's errors
        parser.error(str(err))
    if args.json:
        print(json.dumps(result))


def check_sets(keys: list[str], parser: argparse.ArgumentParser) -> None:
    """Refuse a bad ``--sets`` key before any training (rows can take minutes each): its
    network through ``training.Settings``' own checks, a UCR name against aeon's sets."""
    ucr = None
    for key in keys:
        try:
            name, kwargs = parse_config(key)
            training.Settings(**kwargs)
        except (ValueError, BEPError) as err:
            parser.error(f"--sets: '{key}' is not <set>:<network> (network: rnn, rnn-<width>, mlp or "
                         f"widths such as 512-512): {err}")
        if name.startswith(("ucr:", *(f"ucr-{v}:" for v in UCR_VARIANTS))):
            ucr = available_ucr() if ucr is None else ucr
            if name.partition(":")[2] not in ucr:
                parser.error(f"--sets: '{key}' names no UCR set; available: {', '.join(ucr)}")


def set_keys(text: str | None, parser: argparse.ArgumentParser) -> list[str]:
    """``--sets`` as keys ('holdout': the hold-out sets, 'kinds': the untuned kinds of data, 'fresh',
    'fresh2' to 'fresh6': the six held-out checks, 'sparse': sparse features; not given: the baseline table). An
    empty list or an empty key is refused: it would measure nothing or the whole default table."""
    if text is None:
        return list(BASELINE_SETS)
    parts = [k.strip() for k in text.split(",")]
    if not all(parts):
        parser.error(f"--sets: '{text}' has an empty key; give <set>:<network>[,<set>:<network>...] or holdout")
    return [key for k in parts for key in SET_GROUPS.get(k, [k])]


def numbers(text: str | None, option: str, positive: bool, parser: argparse.ArgumentParser) -> tuple[float, ...] | None:
    """``--qat-rates``/``--qat-decays``: comma-separated finite numbers in ASCII, > 0 (rates)
    or >= 0 (decays); None when not given (the defaults)."""
    if text is None:
        return None
    try:
        values = tuple(validate.float_text(v.strip()) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and (v > 0 if positive else v >= 0) for v in values):
        parser.error(f"{option}: '{text}' is not a comma-separated list of {'positive' if positive else 'non-negative'}"
                     " numbers")
    return values


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    if args.what == "accuracy" and (args.baseline or args.sets is not None):
        rates = numbers(args.qat_rates, "--qat-rates", True, parser)
        decays = numbers(args.qat_decays, "--qat-decays", False, parser)
        keys = set_keys(args.sets, parser)
        check_sets(keys, parser)
        return {"baseline": args.baseline, "preset": args.preset,
                "rows": accuracy_vs_baseline(keys, args.seeds, rates, decays, baseline=args.baseline is not None,
                                             preset=args.preset)}
    if args.what == "speed":
        return speed(args.epochs)
    if args.what == "device":
        return device(1)
    if args.what == "adaptation":
        from bep_mcu import bench_adaptation

        keys = list(bench_adaptation.SCENARIOS) if args.scenarios is None else \
            [k.strip() for k in args.scenarios.split(",")]
        return bench_adaptation.adaptation(keys, args.seeds, args.hidden or bench_adaptation.DEFAULT_HIDDEN)
    return accuracy(args.seeds, args.untuned)


if __name__ == "__main__":
    main()
