"""The vectorised engine (``bep_mcu.bep.Network``) against the literal loop-based
reference trainer (``reference_bep.py``), bit for bit, batch after batch.

Every test trains both side by side on random ±1 data and, after EVERY batch,
asserts equal hidden weights (first differing layer/row/column reported), equal
batch predictions, triggered and update counts, batch counters, and equal logits and
predictions on a probe set (which checks the repacked visible weights too). The
reference also counts the events each test is meant to exercise (saturation,
reinforcement, open and closed gates, repeated rows, z = 0, v = 0, quiet batches)
and the tests assert that those events really happened.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_bep import (  # noqa: E402
    RefState,
    py_draw,
    reference_logits,
    reference_predict,
    reference_train_batch,
    winners,
)

from bep_mcu.engine import rng  # noqa: E402
from bep_mcu.engine.network import Network, winner_mask  # noqa: E402
from bep_mcu.engine.classifier import binary_equiangular_frame  # noqa: E402
from bep_mcu.engine.spec import IntParams, NetSpec  # noqa: E402


# ------------------------------------------------------------------- helpers
def random_hidden(gen: np.random.Generator, spec: NetSpec, sigma: float) -> list[np.ndarray]:
    lo, hi = spec.weight_limits
    return [np.clip(np.rint(gen.normal(0.0, sigma, shape)), lo, hi).astype(np.int64) for shape in spec.layer_shapes()]


def random_pm1(gen: np.random.Generator, shape) -> np.ndarray:
    return np.where(gen.random(shape) < 0.5, -1, 1).astype(np.int8)


def make_pair(
    *,
    model: str = "mlp",
    n_inputs: int,
    hidden: tuple[int, ...],
    n_classes: int,
    bits: int = 8,
    steps: int = 1,
    sigma: float = 16.0,
    R: int,
    G: tuple[int, ...],
    gamma: tuple[int, ...],
    Q: tuple[int, ...] | None = None,
    seed: int = 1,
    classifier: str = "bef",
    data_seed: int = 0,
    batch_counter: int = 0,
):
    """A Network and a RefState with identical state."""
    spec = NetSpec(model=model, n_inputs=n_inputs, hidden=tuple(hidden), n_classes=n_classes,
                   hidden_bits=bits, steps=steps)
    gen = np.random.default_rng(data_seed)
    H = random_hidden(gen, spec, sigma)
    width = hidden[-1]
    if classifier == "bef":
        P = binary_equiangular_frame(n_classes, width, seed=data_seed + 7)
    else:
        P = random_pm1(gen, (n_classes, width))
    params = IntParams(trigger_margin=R, gate=tuple(G), gamma=tuple(gamma))
    net = Network(spec, params, [h.copy() for h in H], P.copy(), seed=seed, batch_counter=batch_counter)
    if Q is None:
        Q = (0,) * spec.n_layers
    net.set_epoch_params(list(gamma), list(Q))
    ref = RefState(model=model, H=[h.copy() for h in H], P=P.astype(np.int64), R=R, G=list(G),
                   gamma=list(gamma), Q=list(Q), seed=seed, counter=batch_counter, bits=bits,
                   n_inputs=n_inputs, steps=steps)
    return spec, net, ref, gen


def set_epoch(net: Network, ref: RefState, gamma, Q) -> None:
    net.set_epoch_params(list(gamma), list(Q))
    ref.gamma = list(gamma)
    ref.Q = list(Q)


def random_data(gen, spec: NetSpec, n: int):
    if spec.model == "mlp":
        X = random_pm1(gen, (n, spec.n_inputs))
    else:
        X = random_pm1(gen, (n, spec.steps, spec.n_inputs))
    y = gen.integers(0, spec.n_classes, n)
    return X, y


def first_difference(a: np.ndarray, b: np.ndarray):
    diff = np.argwhere(a != b)
    return tuple(int(v) for v in diff[0]) if diff.size else None


def assert_same_state(net: Network, ref: RefState, batch: int, where: str = "") -> None:
    engine = net.hidden_weights()
    assert len(engine) == len(ref.H)
    for layer, (he, hr) in enumerate(zip(engine, ref.H)):
        assert he.shape == hr.shape, f"batch {batch}{where}: layer {layer} shape {he.shape} vs {hr.shape}"
        he64 = he.astype(np.int64)
        pos = first_difference(he64, hr)
        if pos is not None:
            r, c = pos
            n_diff = int((he64 != hr).sum())
            raise AssertionError(
                f"batch {batch}{where}: hidden weights differ first at layer {layer}, row {r}, column {c}: "
                f"engine {int(he64[r, c])}, reference {int(hr[r, c])} ({n_diff} weights differ)"
            )
    assert net.batch_counter == ref.counter, f"batch {batch}{where}: batch counter {net.batch_counter} vs {ref.counter}"
    # The engine's visible weights sign(H), repacked after every batch.
    assert len(net.W) == len(ref.W)
    for layer, (we, wr) in enumerate(zip(net.W, ref.W)):
        pos = first_difference(np.asarray(we).astype(np.int64), wr)
        assert pos is None, f"batch {batch}{where}: visible weights differ at layer {layer}, row/col {pos}"


def run_side_by_side(net: Network, ref: RefState, batches, probe=None, schedule=None) -> None:
    """Train both on ``batches`` [(X, y), ...], comparing after every batch.

    ``schedule``: optional {batch index: (gamma, Q)} applied before that batch.
    """
    assert_same_state(net, ref, -1, " (initial)")
    for b, (X, y) in enumerate(batches):
        if schedule and b in schedule:
            set_epoch(net, ref, *schedule[b])
        res = net.train_batch(X, y)
        out = reference_train_batch(ref, X, y)
        pe, pr = np.asarray(res.predictions).tolist(), out["predictions"]
        if pe != pr:
            i = next(k for k, (u, v) in enumerate(zip(pe, pr)) if u != v)
            raise AssertionError(f"batch {b}: prediction of sample {i} differs: engine {pe[i]}, reference {pr[i]}")
        assert res.triggered == out["triggered"], f"batch {b}: triggered {res.triggered} vs {out['triggered']}"
        assert res.updates == out["updates"], f"batch {b}: updates {res.updates} vs {out['updates']}"
        assert_same_state(net, ref, b)
        if probe is not None:
            le = net.logits(probe).astype(np.int64)
            lr = np.array(reference_logits(ref, probe), dtype=np.int64)
            pos = first_difference(le, lr)
            assert pos is None, f"after batch {b}: probe logits differ at sample/class {pos}"
            assert net.predict(probe).tolist() == reference_predict(ref, probe), f"after batch {b}: probe predictions"
    c = net.counters
    assert (c.samples, c.triggered, c.updates) == (ref.stats["samples"], ref.stats["triggered"], ref.stats["updates"])


def data_batches(gen, spec, n_batches: int, batch_size: int):
    return [random_data(gen, spec, batch_size) for _ in range(n_batches)]


def q_fraction(spec: NetSpec, frac: float) -> tuple[int, ...]:
    """Fixed-point Q for an expected ``frac`` of each layer's weights per batch."""
    return tuple(rng.reinforcement_q(frac, r * c) for r, c in spec.layer_shapes())


# ------------------------------------------------------- building blocks
def test_generator_matches_docstring_formula():
    gen = np.random.default_rng(3)
    for _ in range(200):
        seed, counter = int(gen.integers(0, 2**32)), int(gen.integers(0, 2**32))
        layer, index = int(gen.integers(0, 8)), int(gen.integers(0, 2**32))
        assert int(rng.draw(seed, counter, layer, index)) == py_draw(seed, counter, layer, index)


@pytest.mark.parametrize("q_fixed,n", [(0, 100), (5 << 16, 37), (123456, 1000), (40 << 16, 7)])
def test_reinforcement_indices_literal(q_fixed, n):
    for counter in range(20):
        u = py_draw(11, counter, 2, 0)
        m = (q_fixed + (u & 0xFFFF)) >> 16
        expected = [(py_draw(11, counter, 2, k + 1) * n) >> 32 for k in range(m)]
        assert rng.reinforcement_indices(11, counter, 2, q_fixed, n).tolist() == expected


def test_winner_mask_literal():
    gen = np.random.default_rng(5)
    for _ in range(300):
        k = int(gen.integers(1, 40))
        gamma = int(gen.integers(1, k + 3))
        s = gen.integers(-4, 5, (3, k))
        mask = winner_mask(s.astype(np.float32), gamma)
        for row in range(3):
            assert np.flatnonzero(mask[row]).tolist() == winners(s[row].tolist(), gamma)


# ------------------------------------------------------------------- MLPs
@pytest.mark.parametrize(
    "hidden,gamma,G,bits,batch_size",
    [
        ((20,), (6,), (0,), 8, 1),
        ((20,), (6,), (0,), 8, 16),
        ((33,), (4,), (0,), 16, 7),
        ((20, 24), (6, 5), (0, 3), 8, 7),
        ((28, 20), (3, 6), (0, 2), 16, 1),
        ((20, 18, 22), (6, 4, 5), (0, 4, 3), 8, 16),
        ((21, 33, 20), (5, 7, 6), (0, 5, 4), 16, 7),
    ],
)
def test_mlp_matches_reference(hidden, gamma, G, bits, batch_size):
    spec, net, ref, gen = make_pair(n_inputs=37, hidden=hidden, n_classes=4, bits=bits, sigma=6.0,
                                    R=hidden[-1] // 2, G=G, gamma=gamma, seed=1234 + batch_size,
                                    data_seed=len(hidden) * 100 + batch_size + bits)
    n_batches = 40 if batch_size == 1 else 24
    batches = data_batches(gen, spec, n_batches, batch_size)
    probe, _ = random_data(gen, spec, 12)
    schedule = {n_batches // 2: (tuple(g + 1 for g in gamma), q_fraction(spec, 0.05))}
    run_side_by_side(net, ref, batches, probe, schedule)
    assert ref.stats["updates"] > 0
    if batch_size > 1:
        # rows chosen by several samples of one batch (sample-order saturation matters)
        assert ref.stats["max_row_updates"] > 1
    assert ref.stats["reinforce_changes"] > 0


def test_mlp_saturation_b8():
    """sigma ~ 100 with B = 8: many weights start at the bounds and updates clip."""
    spec, net, ref, gen = make_pair(n_inputs=40, hidden=(20, 26), n_classes=3, bits=8, sigma=100.0,
                                    R=13, G=(0, 3), gamma=(6, 4), seed=77, data_seed=11,
                                    Q=None)
    lo, hi = spec.weight_limits
    at_bound = sum(int(((h == lo) | (h == hi)).sum()) for h in ref.H)
    assert at_bound > 0.2 * spec.synapses
    batches = data_batches(gen, spec, 30, 9)
    probe, _ = random_data(gen, spec, 10)
    run_side_by_side(net, ref, batches, probe, schedule={10: ((6, 4), q_fraction(spec, 0.2))})
    assert ref.stats["update_clips"] > 0
    assert ref.stats["reinforce_clips"] > 0  # reinforcement hitting already saturated weights
    assert ref.stats["reinforce_changes"] > 0


def test_mlp_saturation_b16():
    spec, net, ref, gen = make_pair(n_inputs=20, hidden=(19,), n_classes=3, bits=16, sigma=30000.0,
                                    R=9, G=(0,), gamma=(5,), seed=5, data_seed=12,
                                    Q=None)
    batches = data_batches(gen, spec, 25, 6)
    run_side_by_side(net, ref, batches, schedule={0: ((5,), q_fraction(spec, 0.3))})
    assert ref.stats["update_clips"] > 0


def test_mlp_reinforcement_fires_large_q():
    """A large Q: hundreds of draws per batch, many weights pushed, including draws
    that land on H == 0 (left alone) thanks to a small sigma."""
    spec, net, ref, gen = make_pair(n_inputs=30, hidden=(20, 20), n_classes=5, bits=8, sigma=2.0,
                                    R=10, G=(0, 4), gamma=(6, 6), seed=99, data_seed=21,
                                    Q=None)
    Q = q_fraction(spec, 0.6)
    set_epoch(net, ref, (6, 6), Q)
    before = [h.copy() for h in ref.H]
    batches = data_batches(gen, spec, 25, 5)
    probe, _ = random_data(gen, spec, 10)
    run_side_by_side(net, ref, batches, probe)
    assert ref.stats["reinforce_changes"] > 100
    assert ref.stats["reinforce_zero_hits"] > 0
    assert any(bool((b != a).any()) for b, a in zip(before, ref.H))


def test_reinforcement_only_changes_magnitudes():
    """One batch trained with reinforcement (engine and reference) and without it
    (an engine twin): the extra changes only push weights away from zero."""
    spec, net, ref, gen = make_pair(n_inputs=25, hidden=(20,), n_classes=3, bits=8, sigma=10.0,
                                    R=10, G=(0,), gamma=(6,), seed=3, data_seed=31)
    _, twin, _, _ = make_pair(n_inputs=25, hidden=(20,), n_classes=3, bits=8, sigma=10.0,
                              R=10, G=(0,), gamma=(6,), seed=3, data_seed=31)
    Q = q_fraction(spec, 0.5)
    set_epoch(net, ref, (6,), Q)
    X, y = random_data(gen, spec, 4)
    net.train_batch(X, y)
    twin.train_batch(X, y)
    reference_train_batch(ref, X, y)
    assert ref.stats["triggered"] > 0
    assert_same_state(net, ref, 0)
    a, b = net.hidden_weights()[0].astype(np.int64), twin.hidden_weights()[0].astype(np.int64)
    changed = a != b
    assert changed.any()
    # reinforcement never flips a sign and never moves toward zero
    assert (np.sign(a[changed]) == np.sign(b[changed])).all()
    assert (np.abs(a[changed]) > np.abs(b[changed])).all()


def test_mlp_gates_open_and_closed():
    spec, net, ref, gen = make_pair(n_inputs=36, hidden=(24, 30, 20), n_classes=4, bits=8, sigma=8.0,
                                    R=10, G=(0, 4, 5), gamma=(5, 6, 6), seed=8, data_seed=41,
                                    Q=None)
    batches = data_batches(gen, spec, 24, 7)
    probe, _ = random_data(gen, spec, 10)
    run_side_by_side(net, ref, batches, probe)
    assert ref.stats["gate_open"] > 0 and ref.stats["gate_closed"] > 0
    # even fan-ins: z = 0 occurs (sign(0) = +1); v = 0 occurs (keep the activation)
    assert ref.stats["z_zero"] > 0
    assert ref.stats["v_zero"] > 0


def test_mlp_online_with_quiet_batches():
    """Batch size 1 with mostly 'correct' labels and R = 1: many batches trigger
    nothing (they still advance the reinforcement counter)."""
    spec, net, ref, gen = make_pair(n_inputs=33, hidden=(20, 21), n_classes=3, bits=8, sigma=12.0,
                                    R=1, G=(0, 3), gamma=(6, 4), seed=2024, data_seed=51,
                                    Q=None, batch_counter=5)
    set_epoch(net, ref, (6, 4), q_fraction(spec, 0.1))
    X, y = random_data(gen, spec, 40)
    keep = gen.random(40) < 0.8
    y = np.where(keep, np.array(reference_predict(ref, X)), y)
    batches = [(X[i : i + 1], y[i : i + 1]) for i in range(40)]
    run_side_by_side(net, ref, batches, X[:10])
    assert ref.stats["empty_batches"] > 0
    assert ref.stats["triggered"] > 0
    assert ref.stats["reinforce_changes"] > 0


def test_mlp_random_classifier_and_width_multiple_of_32():
    spec, net, ref, gen = make_pair(n_inputs=64, hidden=(32, 32), n_classes=6, bits=16, sigma=20.0,
                                    R=16, G=(0, 6), gamma=(8, 7), seed=17, data_seed=61,
                                    classifier="random", Q=None)
    batches = data_batches(gen, spec, 20, 8)
    run_side_by_side(net, ref, batches, schedule={5: ((8, 7), q_fraction(spec, 0.1)), 12: ((40, 3), (0, 0))})


@pytest.mark.parametrize("gamma", [(0, 0, 4), (0, 5, 4), (6, 0, 4), (0, 0, 0)])
def test_frozen_layers_match_reference(gamma):
    """γ 0 freezes a layer (BEP on the last hidden layer only: 0, 0, γ): it keeps its weights, takes no
    reinforcement whatever its Q, and the engine skips the a* below the lowest learning layer that the
    reference still computes; a frozen layer between two that learn still passes a* down."""
    spec, net, ref, gen = make_pair(n_inputs=37, hidden=(24, 30, 20), n_classes=4, bits=8, sigma=6.0,
                                    R=10, G=(0, 4, 5), gamma=gamma, seed=8, data_seed=41)
    Q = q_fraction(spec, 0.2)
    set_epoch(net, ref, gamma, Q)
    before = net.hidden_weights()
    batches = data_batches(gen, spec, 24, 7)
    probe, _ = random_data(gen, spec, 10)
    run_side_by_side(net, ref, batches, probe)
    for layer, (a, b) in enumerate(zip(before, net.hidden_weights())):
        assert np.array_equal(a, b) == (gamma[layer] == 0), layer
    assert (ref.stats["updates"] > 0) == any(gamma) and ref.stats["triggered"] > 0


def test_mlp_logit_ties_go_to_lowest_class():
    """A narrow last layer and many classes with a random classifier: tied logits
    are frequent, and both sides must break ties toward the lowest class."""
    spec, net, ref, gen = make_pair(n_inputs=12, hidden=(9, 4), n_classes=7, bits=8, sigma=5.0,
                                    R=2, G=(0, 2), gamma=(3, 2), seed=4, data_seed=71,
                                    classifier="random", Q=None)
    set_epoch(net, ref, (3, 2), q_fraction(spec, 0.05))
    batches = data_batches(gen, spec, 25, 6)
    probe, _ = random_data(gen, spec, 30)
    run_side_by_side(net, ref, batches, probe)
    logits = np.array(reference_logits(ref, probe))
    ties = (logits == logits.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert ties.any()


# ------------------------------------------------------------------- RNNs
@pytest.mark.parametrize(
    "n_inputs,width,steps,bits,sigma,gamma,G,batch_size",
    [
        (7, 20, 3, 8, 6.0, 6, 3, 1),
        (9, 22, 4, 8, 100.0, 5, 4, 7),   # saturation
        (5, 19, 5, 16, 12.0, 4, 3, 16),
        (6, 21, 5, 16, 30000.0, 6, 5, 5),  # saturation at B = 16
        (4, 18, 1, 8, 8.0, 4, 2, 4),     # a single step: no backward through time
    ],
)
def test_rnn_matches_reference(n_inputs, width, steps, bits, sigma, gamma, G, batch_size):
    spec, net, ref, gen = make_pair(model="rnn", n_inputs=n_inputs, hidden=(width,), n_classes=3, bits=bits,
                                    steps=steps, sigma=sigma, R=width // 2, G=(G,), gamma=(gamma,),
                                    seed=300 + steps, data_seed=steps * 10 + batch_size)
    n_batches = 30 if batch_size == 1 else 20
    batches = data_batches(gen, spec, n_batches, batch_size)
    probe, _ = random_data(gen, spec, 8)
    schedule = {3: ((gamma,), q_fraction(spec, 0.1)), n_batches // 2: ((gamma + 2,), q_fraction(spec, 0.02))}
    run_side_by_side(net, ref, batches, probe, schedule)
    assert ref.stats["updates"] > 0
    assert ref.stats["reinforce_changes"] > 0
    if sigma >= 100:
        assert ref.stats["update_clips"] > 0
    if steps > 1:
        assert ref.stats["gate_open"] > 0 and ref.stats["gate_closed"] > 0
    if batch_size > 1 or steps > 1:
        assert ref.stats["max_row_updates"] > 1  # one row updated by several steps/samples


# ------------------------------------------------------------- hypothesis
@st.composite
def configs(draw):
    model = draw(st.sampled_from(["mlp", "mlp", "rnn"]))
    bits = draw(st.sampled_from([8, 16]))
    if model == "mlp":
        n_layers = draw(st.integers(1, 3))
        hidden = tuple(draw(st.integers(3, 26)) for _ in range(n_layers))
        n_inputs = draw(st.integers(2, 40))
        steps = 1
    else:
        hidden = (draw(st.integers(3, 22)),)
        n_inputs = draw(st.integers(1, 10))
        steps = draw(st.integers(1, 5))
    gamma = tuple(draw(st.integers(1, k + 2)) for k in hidden)
    spec = NetSpec(model=model, n_inputs=n_inputs, hidden=hidden, n_classes=2, hidden_bits=bits, steps=steps)
    G = tuple(draw(st.integers(0, max(0, spec.fan_in(i) // 3))) for i in range(len(hidden)))
    return dict(
        model=model,
        n_inputs=n_inputs,
        hidden=hidden,
        n_classes=draw(st.integers(2, 5)),
        bits=bits,
        steps=steps,
        sigma=draw(st.sampled_from([0.5, 4.0, 20.0, 120.0 if bits == 8 else 30000.0])),
        R=draw(st.integers(-2, hidden[-1])),
        G=G,
        gamma=gamma,
        seed=draw(st.integers(0, 2**32 - 1)),
        classifier=draw(st.sampled_from(["bef", "random"])),
        data_seed=draw(st.integers(0, 10_000)),
        batch_counter=draw(st.integers(0, 2**32 - 20)),
        frac=draw(st.sampled_from([0.0, 0.01, 0.3])),
        batch_size=draw(st.integers(1, 9)),
        n_batches=draw(st.integers(1, 12)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_random_shapes_match_reference(cfg):
    frac, batch_size, n_batches = cfg.pop("frac"), cfg.pop("batch_size"), cfg.pop("n_batches")
    spec, net, ref, gen = make_pair(**cfg)
    set_epoch(net, ref, cfg["gamma"], q_fraction(spec, frac))
    batches = data_batches(gen, spec, n_batches, batch_size)
    probe, _ = random_data(gen, spec, 4)
    run_side_by_side(net, ref, batches, probe)


# ------------------------------------------------ host-side integers (docs/algorithm.md)
def test_int_params_follow_bep_md():
    """R = floor(r · K_L); G_{l+1} = floor(ν · K_l) (fan-in of the gated layer);
    RNN G = floor(ν · (K_x + K_h)); Q = floor(p · N · 2^16)."""
    import math

    from bep_mcu.engine.spec import HyperParams, int_params

    hp = HyperParams(r=0.37, nu=0.07, gamma=(5,))
    spec = NetSpec(model="mlp", n_inputs=37, hidden=(21, 33, 20), n_classes=4)
    ip = int_params(spec, hp)
    assert ip.trigger_margin == math.floor(0.37 * 20)
    assert ip.gate == (math.floor(0.07 * 37), math.floor(0.07 * 21), math.floor(0.07 * 33))
    rnn = NetSpec(model="rnn", n_inputs=9, hidden=(22,), n_classes=3, steps=4)
    assert int_params(rnn, hp).gate == (math.floor(0.07 * 31),)
    assert rng.reinforcement_q(0.013, 700) == math.floor(0.013 * 700 * 65536)
