"""Is BEP's fixed classifier what keeps it behind QAT on the tabular rows? QAT trained as the
benchmark trains it (`qat.tuned_qat`: the same inputs, candidates, widths, grid and choice on
validation), but with its output layer frozen to BEP's classifier (the Binary Equiangular Frame
of `training.new_model`, seeded by the run's seed) and no batch norm on the logits (BEP has no
class bias); batch norm on the hidden layers stays where asked (docs/accuracy.md, "Rule changes
for the tabular rows"). One JSON line per key and baseline.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/qat-fixed-classifier.py OUT.jsonl KEY[,KEY...] SEEDS
"""

import json
import sys

import numpy as np

from bep_mcu import qat
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import binary_equiangular_frame

build = qat._build
current = {"seed": 0}


def fixed_classifier(torch, model, n_in, hidden, n_classes, batch_norm, steps=1):
    net = build(torch, model, n_in, hidden, n_classes, batch_norm, steps)
    frame = binary_equiangular_frame(n_classes, hidden[-1], current["seed"])
    with torch.no_grad():
        net.out.weight.copy_(torch.from_numpy(frame.astype(np.float32)))
    net.out.weight.requires_grad_(False)
    net.out_norm = None  # logits P·a times the learnt temperature, as BEP's (argmax unchanged)
    return net


train = qat.train_qat


def seeded(*args, seed, **kwargs):
    current["seed"] = seed
    return train(*args, seed=seed, **kwargs)


def freeze_classifiers():
    """From now on every QAT network trains with BEP's classifier of its run's seed, frozen
    (also used by ``qat-bisection.py``)."""
    qat._build, qat.train_qat = fixed_classifier, seeded


if __name__ == "__main__":
    freeze_classifiers()
    out, keys, seeds = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
    for key in keys:
        name, kwargs = parse_config(key)
        data = load_dataset(name)
        for label, bn in (("qat", False), ("qat_bn", True)):
            res = qat.tuned_qat(kwargs, data, seeds, batch_norm=bn)
            line = {"config": key, "baseline": label, "classifier": "fixed", "seeds": seeds,
                    "mean": float(np.mean(res["scores"])), "scores": res["scores"], "train": res["train"],
                    "chosen": res["chosen"], "seconds": res["seconds"], "grid_seconds": res["grid_seconds"]}
            with open(out, "a") as fh:
                print(json.dumps(line), file=fh)
            print(key, label, f"{100 * line['mean']:.1f}", res["chosen"], flush=True)
