"""A deliberately literal, loop-based BEP reference trainer (docs/algorithm.md §2–3).

Written from docs/algorithm.md and the decisions in the docstrings of ``bep_mcu/engine/network.py`` and
``bep_mcu/engine/rng.py`` only, NOT from the vectorised engine. It is slow on purpose:
one neuron, one sample, one update, one random draw at a time, with plain Python
integers for every scalar. It exists to check ``bep_mcu.bep.Network`` bit for bit on
tiny networks (see ``test_engine_reference.py``).

Conventions (all from docs/algorithm.md / the docstrings):
- sign(0) = +1 for visible weights, activations and desired activations;
- argmax ties go to the lowest class index;
- trigger iff y_c - max_{c' != c} y_c' < R;
- gate: neuron i of the layer above passes error iff |z_i| <= G of that layer;
- v = W^T (g ⊙ a*); a* = sign(v) where v != 0, else the current activation;
- winner-takes-update in consecutive groups of γ (last group may be shorter): the
  wrong neuron (s < 0) with the smallest |s|, lowest index on ties;
- H[j, :] += 2 a*_j a_in, saturating after every single update, in sample order
  (RNN: within a sample t = T, T-1, ..., 1);
- after the batch, if at least one sample triggered: reinforcement per layer with the
  counter-based generator (M from draw 0, indices from draws 1..M,
  idx = (d * N) >> 32, H += 2 sign(H) unless H == 0, saturating, in draw order);
- γ = 0 freezes a layer: no winner, no reinforcement (its Q ignored); every a* is still
  computed here, as if it learnt;
- then W = sign(H). The batch counter increments on every batch.
- layers are numbered from 0 in the generator (the RNN cell is layer 0, its hidden
  weights are one matrix with rows [H_x[j, :] | H_h[j, :]]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------- generator
# Pure-Python transcription of the formula in rng.py's docstring.
_M32 = 0xFFFFFFFF


def py_mix32(x: int) -> int:
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def py_draw(seed: int, counter: int, layer: int, index: int) -> int:
    h = py_mix32((seed & _M32) ^ 0x9E3779B9)
    h = py_mix32(h ^ (counter & _M32))
    h = py_mix32(h ^ (layer & _M32))
    return py_mix32(h ^ (index & _M32))


# --------------------------------------------------------------------- state
@dataclass
class RefState:
    """Plain state of a BEP network.

    ``H``: list of int64 hidden-weight matrices (rows = neurons of the layer).
    ``W``: visible weights, ±1 int64, refreshed only at the end of a batch.
    ``P``: fixed classifier, ±1 int64, shape (C, K_L).
    ``R``: trigger margin; ``G``: gate per layer (index = layer, 0-based);
    ``gamma``, ``Q``: per-layer group size and fixed-point reinforcement count.
    ``n_inputs``/``steps``: for the RNN, K_x and T.
    """

    model: str
    H: list
    P: np.ndarray
    R: int
    G: list
    gamma: list
    Q: list
    seed: int
    counter: int
    bits: int
    n_inputs: int
    steps: int = 1
    W: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.H = [np.array(h, dtype=np.int64) for h in self.H]
        self.P = np.array(self.P, dtype=np.int64)
        self.W = [sign_matrix(h) for h in self.H]
        self.seed = int(self.seed) & _M32
        for key in (
            "samples", "triggered", "updates", "batches", "empty_batches",
            "update_clips", "reinforce_changes", "reinforce_clips", "reinforce_zero_hits",
            "reinforce_draws", "gate_open", "gate_closed", "z_zero", "v_zero",
            "repeated_rows", "max_row_updates",
        ):
            self.stats.setdefault(key, 0)

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1


def sgn(x: int) -> int:
    """sign with sign(0) = +1."""
    return 1 if x >= 0 else -1


def sign_matrix(H: np.ndarray) -> np.ndarray:
    W = np.empty_like(H)
    for i in range(H.shape[0]):
        for j in range(H.shape[1]):
            W[i, j] = sgn(int(H[i, j]))
    return W


def dot(u, v) -> int:
    """Integer dot product (both integer vectors of the same length)."""
    return int(np.dot(np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)))


def matvec(W: np.ndarray, a) -> list:
    """z_i = <W[i, :], a>, one neuron at a time."""
    return [dot(W[i], a) for i in range(W.shape[0])]


def logits_of(P: np.ndarray, a_last) -> list:
    return [dot(P[c], a_last) for c in range(P.shape[0])]


def argmax_lowest(values) -> int:
    best = 0
    for c in range(1, len(values)):
        if values[c] > values[best]:
            best = c
    return best


def is_triggered(y_logits, label: int, R: int) -> bool:
    rival = max(y_logits[c] for c in range(len(y_logits)) if c != label)
    return y_logits[label] - rival < R


def winners(s, gamma: int) -> list:
    """Chosen neuron indices: per group of gamma, the wrong neuron (s < 0) with the
    smallest |s|, lowest index on ties."""
    chosen = []
    K = len(s)
    if gamma == 0:  # a frozen layer
        return chosen
    for start in range(0, K, gamma):
        best = None
        for j in range(start, min(start + gamma, K)):
            if s[j] < 0 and (best is None or abs(s[j]) < abs(s[best])):
                best = j
        if best is not None:
            chosen.append(best)
    return chosen


def desired_below(W_above: np.ndarray, z_above, astar_above, a_current, G: int, stats) -> list:
    """a* of the layer below from the layer above (gate, v = W^T (g ⊙ a*))."""
    K_above, K_below = W_above.shape
    gated = []
    for i in range(K_above):
        if abs(z_above[i]) <= G:
            gated.append(astar_above[i])
            stats["gate_open"] += 1
        else:
            gated.append(0)
            stats["gate_closed"] += 1
    out = []
    for k in range(K_below):
        v = 0
        for i in range(K_above):
            v += int(W_above[i, k]) * gated[i]
        if v > 0:
            out.append(1)
        elif v < 0:
            out.append(-1)
        else:
            stats["v_zero"] += 1
            out.append(int(a_current[k]))
    return out


def update_row(state: RefState, H: np.ndarray, j: int, astar_j: int, a_in, row_count: dict, layer: int) -> None:
    """H[j, :] += 2 a*_j a_in, saturating now (one sample's update)."""
    for k in range(H.shape[1]):
        new = int(H[j, k]) + 2 * astar_j * int(a_in[k])
        if new > state.hi:
            new = state.hi
            state.stats["update_clips"] += 1
        elif new < state.lo:
            new = state.lo
            state.stats["update_clips"] += 1
        H[j, k] = new
    key = (layer, j)
    row_count[key] = row_count.get(key, 0) + 1
    state.stats["updates"] += 1


def reinforce_layer(state: RefState, layer: int, counter: int) -> None:
    H = state.H[layer]
    rows, cols = H.shape
    N = rows * cols
    u = py_draw(state.seed, counter, layer, 0)
    M = (state.Q[layer] + (u & 0xFFFF)) >> 16
    for k in range(M):
        d = py_draw(state.seed, counter, layer, k + 1)
        idx = (d * N) >> 32
        r, c = divmod(idx, cols)
        h = int(H[r, c])
        state.stats["reinforce_draws"] += 1
        if h == 0:
            state.stats["reinforce_zero_hits"] += 1
            continue
        new = h + 2 * (1 if h > 0 else -1)
        if new > state.hi:
            new = state.hi
        elif new < state.lo:
            new = state.lo
        if new == h:
            state.stats["reinforce_clips"] += 1
        else:
            state.stats["reinforce_changes"] += 1
        H[r, c] = new


# ------------------------------------------------------------------ forward
def forward_mlp(state: RefState, x):
    """Returns (activations a_0..a_L, pre-activations z_1..z_L), lists of ints."""
    acts = [[int(v) for v in x]]
    zs = []
    for W in state.W:
        z = matvec(W, acts[-1])
        zs.append(z)
        acts.append([sgn(v) for v in z])
    return acts, zs


def forward_rnn(state: RefState, x_seq):
    """Returns (inputs [x_t | a_{t-1}] for t=1..T, z_1..z_T, a_0..a_T)."""
    W = state.W[0]
    Kh = W.shape[0]
    acts = [[1] * Kh]  # a_0 = all +1
    ins, zs = [], []
    for t in range(state.steps):
        inp = [int(v) for v in x_seq[t]] + acts[-1]
        ins.append(inp)
        z = matvec(W, inp)
        zs.append(z)
        acts.append([sgn(v) for v in z])
    return ins, zs, acts


def reference_logits(state: RefState, X) -> list:
    out = []
    for x in X:
        if state.model == "mlp":
            acts, _ = forward_mlp(state, x)
            out.append(logits_of(state.P, acts[-1]))
        else:
            _, _, acts = forward_rnn(state, x)
            out.append(logits_of(state.P, acts[-1]))
    return out


def reference_predict(state: RefState, X) -> list:
    return [argmax_lowest(row) for row in reference_logits(state, X)]


# ----------------------------------------------------------------- training
def _count_zero(stats, z) -> None:
    stats["z_zero"] += sum(1 for v in z if v == 0)


def _train_sample_mlp(state: RefState, x, label: int, row_count: dict) -> tuple[int, bool]:
    acts, zs = forward_mlp(state, x)
    for z in zs:
        _count_zero(state.stats, z)
    y_logits = logits_of(state.P, acts[-1])
    pred = argmax_lowest(y_logits)
    if not is_triggered(y_logits, label, state.R):
        return pred, False
    L = len(state.W)
    # Backward: every a* from the forward state of this batch, before any update.
    astar = [None] * L  # astar[l] = desired output of hidden layer l (0-based)
    astar[L - 1] = [int(v) for v in state.P[label]]
    for l in range(L - 2, -1, -1):
        astar[l] = desired_below(state.W[l + 1], zs[l + 1], astar[l + 1], acts[l + 1], state.G[l + 1], state.stats)
    # Update, layer by layer (different matrices, so the order does not matter).
    for l in range(L):
        s = [astar[l][j] * zs[l][j] for j in range(len(zs[l]))]
        for j in winners(s, state.gamma[l]):
            update_row(state, state.H[l], j, astar[l][j], acts[l], row_count, l)
    return pred, True


def _train_sample_rnn(state: RefState, x_seq, label: int, row_count: dict) -> tuple[int, bool]:
    ins, zs, acts = forward_rnn(state, x_seq)
    for z in zs:
        _count_zero(state.stats, z)
    y_logits = logits_of(state.P, acts[-1])
    pred = argmax_lowest(y_logits)
    if not is_triggered(y_logits, label, state.R):
        return pred, False
    T = state.steps
    Kx = state.n_inputs
    W_h = state.W[0][:, Kx:]
    # astar[t] for t = 1..T stored at index t-1; acts[t] is a_t.
    astar = [None] * T
    astar[T - 1] = [int(v) for v in state.P[label]]
    for t in range(T - 2, -1, -1):  # 0-based step t (= BEP step t+1)
        astar[t] = desired_below(W_h, zs[t + 1], astar[t + 1], acts[t + 1], state.G[0], state.stats)
    for t in range(T - 1, -1, -1):  # t = T, T-1, ..., 1
        s = [astar[t][j] * zs[t][j] for j in range(len(zs[t]))]
        for j in winners(s, state.gamma[0]):
            update_row(state, state.H[0], j, astar[t][j], ins[t], row_count, 0)
    return pred, True


def reference_train_batch(state: RefState, X, y) -> dict:
    """One batch (docs/algorithm.md §2.6). Returns predictions (batch-start forward), the number
    of triggered samples and of row updates; mutates ``state``."""
    counter = state.counter
    state.counter += 1  # every batch counts, triggered or not
    updates_before = state.stats["updates"]
    row_count: dict = {}
    preds, n_trig = [], 0
    for x, label in zip(X, y):
        if state.model == "mlp":
            pred, trig = _train_sample_mlp(state, x, int(label), row_count)
        else:
            pred, trig = _train_sample_rnn(state, x, int(label), row_count)
        preds.append(pred)
        n_trig += int(trig)
    state.stats["samples"] += len(y)
    state.stats["triggered"] += n_trig
    state.stats["batches"] += 1
    if row_count:
        most = max(row_count.values())
        state.stats["max_row_updates"] = max(state.stats["max_row_updates"], most)
        state.stats["repeated_rows"] += sum(1 for v in row_count.values() if v > 1)
    if n_trig > 0:
        for layer in range(len(state.H)):
            if state.gamma[layer]:  # a frozen layer is not reinforced
                reinforce_layer(state, layer, counter)
    else:
        state.stats["empty_batches"] += 1
    state.W = [sign_matrix(h) for h in state.H]
    return {"predictions": preds, "triggered": n_trig, "updates": state.stats["updates"] - updates_before}
