"""The numpy BEP engine: binary MLPs and binary Elman RNNs (docs/algorithm.md §2–3).

Speed without losing exactness:
- ±1 activations and visible weights are float32 matrices, so forward and backward
  passes are BLAS matrix products. Every value is an integer below 2^24, so float32
  arithmetic is exact.
- Hidden weights are kept as float32 holding exact integers in the B-bit range; they
  are exposed as int8/int16 (``hidden_weights()``).
- Per-sample updates must be applied in sample order with saturation after each one
  (§2.6). Updates to different rows commute, so they are applied in "rounds": round k
  applies, for every row at once, the k-th update that row receives in this batch.
  That is exact and needs as many numpy calls as the busiest row has updates, not as
  many as there are samples.

Decisions beyond docs/algorithm.md (the C runtime follows them too):
- Within one RNN sample, updates are applied for t = T, T-1, …, 1 (the order of the
  backward sweep).
- The batch counter that feeds the reinforcement generator counts every batch, with or
  without triggered samples.
- The RNN cell is one layer (index 0) whose row j is ``[H_x[j, :], H_h[j, :]]``;
  reinforcement draws flat indices over that K_h × (K_x + K_h) matrix.
- γ = 0 freezes a layer: it takes no update and no reinforcement (whatever its Q), and no
  desired activation is computed below the lowest layer that learns. So "BEP on the last
  hidden layer only" is γ = (0, …, 0, γ_L), set per epoch like any γ (``training.Plan.layers``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bep_mcu.engine import rng
from bep_mcu.engine.spec import MAX_FAN_IN, IntParams, NetSpec

_NOT_WRONG = np.float32(np.inf)

# Centred inputs (docs/algorithm.md §2.9): an MLP's first layer may read its input bits centred on
# their training means m_i, given as integers M_i = round(m_i · 2^CENTRE_SHIFT) in [-256, 256]. Neuron
# j then computes z_j = W_j·x − o_j with the integer offset o_j = floor((Σ_i W_ji M_i + 128) / 256),
# which follows row j whenever its visible weights are repacked, and a chosen row moves by
# 2 a*_j (x − r) with r_i = round(m_i) (±1 where a bit's rarer value comes in fewer than one row in
# four, else 0), saturating once. Without it, rows whose bits mostly sit at one value collapse: every
# update moves a neuron for all samples alike (docs/accuracy.md, "Sparse features").
CENTRE_SHIFT = 8
CENTRE_ONE = 1 << CENTRE_SHIFT
MAX_CENTRED_INPUTS = MAX_FAN_IN // 2  # |z - o| <= 2 K_0 + 1 must fit the int16 pre-activations


def centre_offsets(W0: np.ndarray, input_means: np.ndarray) -> np.ndarray:
    """o_j = floor((Σ_i W_ji M_i + 128) / 256) for rows of ±1 visible weights (float32, exact)."""
    S = W0.astype(np.int64) @ input_means.astype(np.int64)
    return ((S + CENTRE_ONE // 2) >> CENTRE_SHIFT).astype(np.float32)


def centre_shifts(input_means: np.ndarray) -> np.ndarray:
    """r_i = round(m_i): sign(M_i) where |M_i| > 128, else 0 (float32)."""
    M = np.asarray(input_means, dtype=np.int64)
    return np.where(np.abs(M) > CENTRE_ONE // 2, np.sign(M), 0).astype(np.float32)


@dataclass
class Counters:
    """What every trainer reports (numpy, the C twin's ``bep_counters_t``, a board):
    samples seen, triggered, predicted wrong, rows updated, and the batch counter that
    keys the reinforcement generator. All uint32 in C, so they wrap: differences are
    taken modulo 2^32 (``since``)."""

    samples: int = 0
    triggered: int = 0
    errors: int = 0
    updates: int = 0
    batches: int = 0

    NAMES = ("samples", "triggered", "errors", "updates", "batches")

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.NAMES}

    def since(self, before: "Counters", name: str) -> int:
        """How far counter ``name`` moved since ``before`` (modulo 2^32, as the counters wrap)."""
        return (getattr(self, name) - getattr(before, name)) & rng.MASK32


def sign_pm1(x: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1, as float32 ±1.

    ``x + 0`` turns a -0.0 into +0.0, then copysign is one cheap pass (np.where is
    several times slower on the full weight matrices repacked every batch).
    """
    return np.copysign(np.float32(1), np.asarray(x, dtype=np.float32) + np.float32(0))


def winner_mask(stability: np.ndarray, gamma: int) -> np.ndarray:
    """Winner-takes-update (§2.5): in each group of γ consecutive neurons, the wrong
    neuron (stability < 0) with the smallest |stability|, lowest index on ties.

    ``stability`` is (n, K); returns a bool mask of the same shape.
    """
    n, k = stability.shape
    groups = -(-k // gamma)
    key = np.full((n, groups * gamma), _NOT_WRONG, dtype=np.float32)
    key[:, :k] = np.where(stability < 0, -stability, _NOT_WRONG)
    key = key.reshape(n, groups, gamma)
    winner = key.argmin(axis=2)  # argmin takes the first minimum: lowest index wins ties
    chosen = np.take_along_axis(key, winner[:, :, None], axis=2)[:, :, 0] < _NOT_WRONG
    mask = np.zeros((n, groups, gamma), dtype=bool)
    np.put_along_axis(mask, winner[:, :, None], chosen[:, :, None], axis=2)
    return mask.reshape(n, groups * gamma)[:, :k]


def apply_updates(
    H: np.ndarray, mask: np.ndarray, target: np.ndarray, inputs: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """``H[j, :] += 2 · target[e, j] · inputs[e, :]`` for every event e (in order) and
    chosen row j (``mask[e, j]``), saturating at [lo, hi] after every event.

    Returns the indices of the rows that changed (their visible weights need a refresh).
    """
    ev, rows = np.nonzero(mask)  # row-major: events in order, then rows
    if ev.size == 0:
        return rows
    # rank = how many earlier events of this batch chose the same row.
    by_row = np.argsort(rows, kind="stable")  # stable: event order kept inside a row
    sorted_rows = rows[by_row]
    run_start = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    run_len = np.diff(np.r_[run_start, sorted_rows.size])
    rank = np.empty_like(by_row)
    rank[by_row] = np.arange(by_row.size) - np.repeat(run_start, run_len)
    order = np.argsort(rank, kind="stable")
    ev, rows, rank = ev[order], rows[order], rank[order]
    bounds = np.flatnonzero(np.diff(rank)) + 1
    for sel in np.split(np.arange(ev.size), bounds):
        e, j = ev[sel], rows[sel]
        delta = (2 * target[e, j])[:, None] * inputs[e]
        H[j] = np.clip(H[j] + delta, lo, hi)
    return np.unique(rows)


def reinforce(H: np.ndarray, flat_indices: np.ndarray, lo: float, hi: float) -> None:
    """§2.7: each draw pushes its weight 2 further from zero (zero stays), saturating.

    Draws of one weight all push the same way, so summing them first and saturating
    once equals saturating after every draw.
    """
    if flat_indices.size == 0:
        return
    idx, count = np.unique(flat_indices, return_counts=True)
    flat = H.reshape(-1)
    h = flat[idx]
    flat[idx] = np.clip(h + 2 * np.sign(h) * count, lo, hi)


@dataclass
class BatchResult:
    """Per-batch outcome; ``predictions`` are class indices from the forward pass."""

    predictions: np.ndarray
    triggered: int
    updates: int


class Network:
    """A BEP network: hidden weights, fixed classifier and the integers that drive it.

    Inputs are ±1 arrays: (n, n_inputs) for an MLP, (n, steps, n_inputs) for an RNN.
    Labels are class indices 0..C-1.
    """

    def __init__(
        self,
        spec: NetSpec,
        params: IntParams,
        hidden: list[np.ndarray],
        classifier: np.ndarray,
        seed: int,
        batch_counter: int = 0,
        input_means: np.ndarray | None = None,
    ) -> None:
        self.spec = spec
        self.params = params
        self.trigger_margin = params.trigger_margin
        self.gate = list(params.gate)
        self.gamma = list(params.gamma)
        self.reinforce_q = [0] * spec.n_layers
        self.seed = int(seed) & rng.MASK32
        self.batch_counter = int(batch_counter)
        self.counters = Counters(batches=self.batch_counter & rng.MASK32)
        self.lo, self.hi = (float(v) for v in spec.weight_limits)
        for (rows, cols), h in zip(spec.layer_shapes(), hidden):
            if h.shape != (rows, cols):
                raise ValueError(f"hidden weights of shape {h.shape}, expected {(rows, cols)}")
        self.H = [np.ascontiguousarray(h, dtype=np.float32) for h in hidden]
        self.W = [sign_pm1(h) for h in self.H]
        self.P = np.asarray(classifier, dtype=np.float32)
        self.input_means = None if input_means is None else np.asarray(input_means, dtype=np.int64)
        if self.input_means is not None:  # the first layer's offsets and update shifts (module docstring)
            self.offset = centre_offsets(self.W[0], self.input_means)
            self.shift = centre_shifts(self.input_means)

    # ----------------------------------------------------------------- state
    def copy(self, hidden: list[np.ndarray] | None = None, batch_counter: int | None = None) -> "Network":
        """The same network (shape, integers, classifier, seed) with fresh counters, its
        own copy of these hidden weights (default: this one's) and batch counter."""
        return Network(self.spec, self.params, self.hidden_weights() if hidden is None else hidden, self.P,
                       self.seed, self.batch_counter if batch_counter is None else batch_counter, self.input_means)

    def hidden_weights(self) -> list[np.ndarray]:
        dtype = np.dtype(self.spec.hidden_dtype)
        return [h.astype(dtype) for h in self.H]

    def set_epoch_params(self, gamma: list[int], reinforce_q: list[int]) -> None:
        """Per-epoch parameters, computed on the host (γ schedule, fixed-point Q)."""
        self.gamma = [int(g) for g in gamma]
        self.reinforce_q = [int(q) for q in reinforce_q]

    # --------------------------------------------------------------- forward
    def _forward(self, X: np.ndarray):
        """Returns (inputs per layer/step, pre-activations, activations, logits)."""
        X = np.asarray(X, dtype=np.float32)
        if self.spec.model == "mlp":
            ins, zs = [], []
            a = X
            for layer, W in enumerate(self.W):
                ins.append(a)
                z = a @ W.T
                if layer == 0 and self.input_means is not None:
                    z -= self.offset
                zs.append(z)
                a = sign_pm1(z)
            return ins, zs, a, a @ self.P.T
        n = X.shape[0]
        kh = self.spec.hidden[0]
        a = np.ones((n, kh), dtype=np.float32)
        W = self.W[0]
        ins = np.empty((n, self.spec.steps, self.spec.fan_in(0)), dtype=np.float32)
        zs = np.empty((n, self.spec.steps, kh), dtype=np.float32)
        acts = np.empty_like(zs)
        for t in range(self.spec.steps):
            ins[:, t, : self.spec.n_inputs] = X[:, t]
            ins[:, t, self.spec.n_inputs :] = a
            zs[:, t] = ins[:, t] @ W.T
            a = acts[:, t] = sign_pm1(zs[:, t])
        return ins, zs, acts, a @ self.P.T

    def logits(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[3].astype(np.int64)

    def hidden_activations(self, X: np.ndarray) -> np.ndarray:
        """The ±1 activations the classifier reads (the last hidden layer's; an RNN's last step's)."""
        a = self._forward(X)[2]
        return a if self.spec.model == "mlp" else a[:, -1]

    def predict(self, X: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Class indices; ties go to the lowest index (np.argmax)."""
        out = [self._forward(X[i : i + chunk])[3].argmax(axis=1) for i in range(0, len(X), chunk)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------- training
    def _triggered(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = len(y)
        correct = logits[np.arange(n), y]
        rivals = logits.copy()
        rivals[np.arange(n), y] = -np.inf
        return correct - rivals.max(axis=1) < self.trigger_margin

    def train_batch(self, X: np.ndarray, y: np.ndarray, trace: dict | None = None) -> BatchResult:
        """One batch in the normative order of §2.6: forward and backward with the
        visible weights of the batch start, updates in sample order, then
        reinforcement, then repacking W = sign(H).

        ``trace``, when given, receives the intermediates (for tests and debugging):
        pre-activations, logits, triggered samples, desired activations, gates, winner
        masks and reinforcement draws.
        """
        y = np.asarray(y, dtype=np.int64)
        ins, zs, acts, logits = self._forward(X)
        predictions = logits.argmax(axis=1)
        hit = np.flatnonzero(self._triggered(logits, y))
        if trace is not None:
            trace.update(z=zs, logits=logits, triggered=hit, targets=[], gates=[], masks=[], draws=[])
        counter = self.batch_counter
        self.batch_counter += 1
        c = self.counters  # uint32 in C: they wrap there, so they wrap here
        c.batches = self.batch_counter & rng.MASK32
        c.samples = (c.samples + len(y)) & rng.MASK32
        c.errors = (c.errors + int((predictions != y).sum())) & rng.MASK32
        if hit.size == 0:
            return BatchResult(predictions, 0, 0)
        c.triggered = (c.triggered + int(hit.size)) & rng.MASK32
        if self.spec.model == "mlp":
            changed, n_updates = self._learn_mlp(ins, zs, acts, y, hit, trace)
        else:
            changed, n_updates = self._learn_rnn(ins, zs, acts, y, hit, trace)
        c.updates = (c.updates + n_updates) & rng.MASK32
        for layer, H in enumerate(self.H):
            n_weights = H.size
            draws = rng.reinforcement_indices(self.seed, counter, layer, self.reinforce_q[layer], n_weights) \
                if self.gamma[layer] else np.zeros(0, dtype=np.int64)
            if trace is not None:
                trace["draws"].append(draws)
            reinforce(H, draws, self.lo, self.hi)
            # Reinforcement never flips a sign, so only rows touched by updates repack.
            rows = changed[layer]
            if rows.size:
                self.W[layer][rows] = sign_pm1(H[rows])
                if layer == 0 and self.input_means is not None:
                    self.offset[rows] = centre_offsets(self.W[0][rows], self.input_means)
        return BatchResult(predictions, int(hit.size), n_updates)

    def _learn_mlp(self, ins, zs, a_out, y, hit, trace):
        L = self.spec.n_layers
        learning = [layer for layer in range(L) if self.gamma[layer]]
        if not learning:
            return [np.zeros(0, dtype=np.int64)] * L, 0
        target = [None] * L  # None below the lowest layer that learns: nothing reads it
        target[L - 1] = self.P[y[hit]]
        for layer in range(L - 2, learning[0] - 1, -1):
            gate = np.abs(zs[layer + 1][hit]) <= self.gate[layer + 1]
            if trace is not None:
                trace["gates"].insert(0, gate)
            gated = np.where(gate, target[layer + 1], np.float32(0))
            v = gated @ self.W[layer + 1]
            own = ins[layer + 1][hit]  # the forward activation of this layer
            target[layer] = np.where(v > 0, np.float32(1), np.where(v < 0, np.float32(-1), own))
        changed, n_updates = [], 0
        for layer in range(L):
            if not self.gamma[layer]:  # frozen
                if trace is not None:
                    trace["targets"].append(target[layer])
                    trace["masks"].append(None)
                changed.append(np.zeros(0, dtype=np.int64))
                continue
            mask = winner_mask(target[layer] * zs[layer][hit], self.gamma[layer])
            if trace is not None:
                trace["targets"].append(target[layer])
                trace["masks"].append(mask)
            n_updates += int(mask.sum())
            inputs = ins[layer][hit]
            if layer == 0 and self.input_means is not None:
                inputs = inputs - self.shift  # 2 a* (x − r): 0 where a centred bit is at its commoner value
            changed.append(apply_updates(self.H[layer], mask, target[layer], inputs, self.lo, self.hi))
        return changed, n_updates

    def _learn_rnn(self, ins, zs, acts, y, hit, trace):
        if not self.gamma[0]:  # the cell is frozen
            return [np.zeros(0, dtype=np.int64)], 0
        steps, kx = self.spec.steps, self.spec.n_inputs
        z, a = zs[hit], acts[hit]
        target = np.empty_like(z)
        target[:, steps - 1] = self.P[y[hit]]
        W_h = self.W[0][:, kx:]
        for t in range(steps - 2, -1, -1):
            gated = np.where(np.abs(z[:, t + 1]) <= self.gate[0], target[:, t + 1], np.float32(0))
            v = gated @ W_h
            target[:, t] = np.where(v > 0, np.float32(1), np.where(v < 0, np.float32(-1), a[:, t]))
        # Events in application order: sample by sample, t = T..1 within a sample.
        kh = self.spec.hidden[0]
        tgt_ev = target[:, ::-1].reshape(-1, kh)
        mask = winner_mask(tgt_ev * z[:, ::-1].reshape(-1, kh), self.gamma[0])
        inp_ev = ins[hit][:, ::-1].reshape(-1, self.spec.fan_in(0))
        changed = apply_updates(self.H[0], mask, tgt_ev, inp_ev, self.lo, self.hi)
        if trace is not None:
            trace["targets"].append(target)
            trace["masks"].append(mask.reshape(len(hit), steps, kh)[:, ::-1])
        return [changed], int(mask.sum())
