"""Sparse features: does centring the input bits stop BEP's collapse? One JSON line per seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/centred-inputs.py OUT.jsonl VARIANT KEY[,KEY...] [SEEDS]
    python results/centred-inputs.py summary OUT.jsonl

A numpy prototype, in float and so not bit-exact with the C twin: nothing here is in the package.
Each input bit i has its training share of +1 turned into a mean m_i in (-1, 1) (constant bits, such
as bias bits, keep m_i = 0). The first hidden layer then reads the bits as VARIANT says:

- ``off``: as the package does (z = W x, update 2 a* x);
- ``fwd``: centred in the forward pass only (z = W (x - m)), the update as the package's;
- ``fwd+upd``: centred in both (update 2 a* (x - m));
- ``fwd+round``: centred forward, update 2 a* (x - round(m)), an integer update: a bit whose
  minority value is rarer than 1 in 4 moves its weight only when it takes that value, by 4.

Everything else is ``training.fit`` with its defaults (both candidates, validation's choice). KEY is a
``bench accuracy --sets`` key. Each line: key, variant, seed, test and training accuracy, the hidden
widths kept, the mean share of +1 over the input bits and their common mode (``training.common_mode``:
sum(m^2) / sum(1 - m^2) over the bits that vary; 0 for balanced bits, above 1 where most bits sit at
one value).
docs/accuracy.md, "Sparse features", says what it found.
"""

import json
import sys

import numpy as np

from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine import network

VARIANTS = ("off", "fwd", "fwd+upd", "fwd+round")


def summary(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    keys = list(dict.fromkeys(r["key"] for r in rows))
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    print(f"{'set':<24}" + "".join(f"{v:>22}" for v in variants))
    for key in keys:
        cells = []
        for v in variants:
            mine = [r for r in rows if r["key"] == key and r["variant"] == v]
            test, train = (100 * np.mean([r[k] for r in mine]) for k in ("test", "train")) if mine else (0, 0)
            cells.append(f"{test:6.1f} (train {train:5.1f})" if mine else "")
        print(f"{key:<24}" + "".join(f"{c:>22}" for c in cells))


def main() -> None:
    out, variant, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    if variant not in VARIANTS:
        sys.exit(f"VARIANT must be one of {', '.join(VARIANTS)}")
    means: dict[int, np.ndarray] = {}  # by input width: the two candidates differ by their bias bits

    split0 = training.split_encoded

    def split_encoded(model, X, y):
        train, val = split0(model, X, y)
        m = np.asarray(train.x, dtype=np.float32).mean(axis=0)
        m[np.abs(m) == 1] = 0  # constant bits (bias bits) are not centred
        means[train.x.shape[1]] = m
        return train, val

    forward0, learn0 = network.Network._forward, network.Network._learn_mlp

    def forward(self, X):
        X = np.asarray(X, dtype=np.float32)
        if variant != "off" and X.shape[1] in means:
            X = X - means[X.shape[1]][None, :]
        return forward0(self, X)

    def learn(self, ins, zs, a_out, y, hit, trace):
        m = means.get(ins[0].shape[1])
        if m is not None and variant in ("fwd", "fwd+round"):  # the forward's input was centred: undo
            shift = np.round(m) if variant == "fwd+round" else 0
            ins = [ins[0] + m[None, :] - shift] + ins[1:]
        return learn0(self, ins, zs, a_out, y, hit, trace)

    training.split_encoded = split_encoded
    network.Network._forward, network.Network._learn_mlp = forward, learn
    with open(out, "a") as f:
        for key in keys:
            name, kwargs = parse_config(key)
            data = load_dataset(name)
            for seed in range(seeds):
                model = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **kwargs))
                bits = np.asarray(training.split_encoded(model, data.X_train, data.y_train)[0].x, dtype=np.float32)
                row = {"key": key, "variant": variant, "seed": seed,
                       "test": round(model.score(data.X_test, data.y_test), 4),
                       "train": round(model.score(data.X_train, data.y_train), 4),
                       "hidden": list(model.spec.hidden), "share": round(float((bits > 0).mean()), 4),
                       "common_mode": round(training.common_mode((bits > 0).mean(axis=0) * 2 - 1)[0], 3)}
                print(json.dumps(row), file=f, flush=True)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["summary"]:
        summary(sys.argv[2])
    else:
        main()
