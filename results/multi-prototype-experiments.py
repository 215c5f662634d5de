"""The runs of docs/accuracy.md, "Several prototypes a class": fit's two candidates trained with K
prototypes for each class instead of one (numpy only, not in the package), one JSON line per set
and seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/multi-prototype-experiments.py OUT.jsonl K FRAME KEY[,KEY...] [SEEDS]

Row r = j·C + c of the classifier is class c's j-th prototype; a sample's score for a class is its
best prototype of that class (so prediction is the class of the best row), and a triggered
sample's target for the last hidden layer is the best prototype of its own class: the hidden
layers may map a class of several clusters to several prototypes. FRAME:
- ``bef``: the K·C rows are the Binary Equiangular Frame of K·C prototypes;
- a number F: class c's first row is its prototype in the package's frame and each of its
  other K − 1 rows that prototype with a share F of its bits flipped at random.
A model whose frame is the centroid frame (``training.classifier_frame``) keeps one row a class.
Each line: the key, the seed, the variant ("rule", e.g. "k2-bef") and per candidate (fit's
default first) its widths, synapses, validation / test / training accuracy and seconds.
``results/multi-prototype.py`` replays fit's choice against the package's runs.
"""

import importlib.util
import pathlib
import sys

import numpy as np

from bep_mcu.engine.classifier import binary_equiangular_frame
from bep_mcu.engine.network import Network
from bep_mcu.model import Model

out, K, FRAME, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
seeds = range(int(sys.argv[5]) if len(sys.argv) > 5 else 3)
package_forward, package_learn_mlp, package_network = Network._forward, Network._learn_mlp, Model.network


def forward(self, X):
    """The package's forward pass, each class scored by its best row (which is kept for learning)."""
    ins, zs, a, logits = package_forward(self, X)
    k = getattr(self, "k", 1)
    if k == 1:
        return ins, zs, a, logits
    rows = logits.reshape(len(logits), k, -1)
    self.best_row = rows.argmax(axis=1)
    return ins, zs, a, rows.max(axis=1)


def learn_mlp(self, ins, zs, a_out, y, hit, trace):
    """The package's learning step, with the target row of a sample its class's best row."""
    k = getattr(self, "k", 1)
    if k > 1:
        n_classes = self.P.shape[0] // k
        y = self.best_row[np.arange(len(y)), y] * n_classes + y
    return package_learn_mlp(self, ins, zs, a_out, y, hit, trace)


def network(self):
    net = package_network(self)
    n_classes, width = self.classifier.shape
    seed = self.training.seed
    if self.spec.model != "mlp" or not np.array_equal(
            self.classifier, binary_equiangular_frame(n_classes, width, seed, self.hyper.alpha)):
        return net  # the centroid frame (or an RNN): one row a class
    if FRAME == "bef":
        P = binary_equiangular_frame(K * n_classes, width, seed, self.hyper.alpha)
    else:
        flips = np.random.default_rng(seed + 99).random((K - 1, n_classes, width)) < float(FRAME)
        P = np.concatenate([self.classifier[None], np.where(flips, -1, 1) * self.classifier[None]])
    net.P, net.k = np.asarray(P, dtype=np.float32).reshape(K * n_classes, width), K
    return net


if __name__ == "__main__":
    Network._forward, Network._learn_mlp, Model.network = forward, learn_mlp, network
    spec = importlib.util.spec_from_file_location("experiments", pathlib.Path(__file__).with_name(
        "centroid-frame-experiments.py"))
    experiments = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiments)  # its fit loop; the package's frames (its variant "today")
    experiments.run_candidates(out, f"k{K}-{FRAME}", keys, seeds)
