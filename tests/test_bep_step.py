"""One BEP training step on a tiny network, every intermediate computed by hand.

Network: 4 inputs → 3 → 4 → 2 classes (two hidden layers so the gated backward pass
runs), 8-bit hidden weights, r = 0.5 (R = 2), ν = 0.4 (G = floor(0.4 · 3) = 1),
γ = (2, 2). Hand computation in the comments; sign(0) = +1 throughout.
"""

import numpy as np

from bep_mcu.engine.network import Network
from bep_mcu.engine.spec import IntParams, NetSpec

MASK = 0xFFFFFFFF


def lowbias32(x: int) -> int:
    """Plain-int reimplementation of rng.mix32, to pin the generator independently."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK
    x ^= x >> 16
    return x


def draw(seed: int, counter: int, layer: int, index: int) -> int:
    h = lowbias32(seed ^ 0x9E3779B9)
    h = lowbias32(h ^ counter)
    h = lowbias32(h ^ layer)
    return lowbias32(h ^ index)


H1 = np.array([[3, -1, 0, 2], [-2, 5, 1, -1], [1, 1, -4, 0]], dtype=np.int8)
#      W1 = [[+,-,+,+], [-,+,+,-], [+,+,-,+]]   (H = 0 → +1)
H2 = np.array([[127, 2, -3], [-1, 2, 4], [6, -2, 2], [3, -5, 1]], dtype=np.int8)
#      W2 = [[+,+,-], [-,+,+], [+,-,+], [+,-,+]]
P = np.array([[1, 1, -1, -1], [1, -1, 1, 1]], dtype=np.int8)
X = np.array([[1, -1, 1, 1]], dtype=np.float32)
Y = np.array([0])
SEED = 1234


def make_net(q_layer0: int) -> Network:
    spec = NetSpec("mlp", 4, (3, 4), 2, hidden_bits=8)
    net = Network(spec, IntParams(trigger_margin=2, gate=(1, 1), gamma=(2, 2)), [H1, H2], P, seed=SEED)
    net.set_epoch_params([2, 2], [q_layer0, 0])
    return net


def test_hand_computed_step():
    net = make_net(q_layer0=3 << 16)  # M = (3·2^16 + (u & 0xFFFF)) >> 16 = 3 draws exactly
    trace: dict = {}
    result = net.train_batch(X, Y, trace=trace)

    # Forward. z1 = W1 a0 = [1+1+1+1, -1-1+1-1, 1-1-1+1] = [4, -2, 0] → a1 = [+1, -1, +1]
    assert trace["z"][0].tolist() == [[4, -2, 0]]
    # z2 = W2 a1 = [1-1-1, -1-1+1, 1+1+1, 1+1+1] = [-1, -1, 3, 3] → a2 = [-1, -1, +1, +1]
    assert trace["z"][1].tolist() == [[-1, -1, 3, 3]]
    # logits = P a2 = [-1-1-1-1, -1+1+1+1] = [-4, 2]; label 0: margin -6 < R = 2 → trigger.
    assert trace["logits"].tolist() == [[-4, 2]]
    assert trace["triggered"].tolist() == [0]
    assert result.predictions.tolist() == [1]

    # Backward. a*2 = P[0] = [+1, +1, -1, -1]; gate |z2| <= 1 → [1, 1, 0, 0].
    assert trace["gates"][0].tolist() == [[True, True, False, False]]
    # v = W2^T (g ⊙ a*2) = W2[0] + W2[1] = [1-1, 1+1, -1+1] = [0, 2, 0]
    # → a*1 = [a1_0, +1, a1_2] = [+1, +1, +1] (v = 0 keeps the current activation).
    assert trace["targets"][0].tolist() == [[1, 1, 1]]
    assert trace["targets"][1].tolist() == [[1, 1, -1, -1]]

    # Winner-takes-update. s1 = a*1 ⊙ z1 = [4, -2, 0]: only neuron 1 is wrong (s = 0 is
    # not wrong); groups {0,1}, {2} (the last one shorter) → mask [0, 1, 0].
    assert trace["masks"][0].tolist() == [[False, True, False]]
    # s2 = a*2 ⊙ z2 = [-1, -1, -3, -3], all wrong; groups {0,1} tie → lowest index 0,
    # {2,3} tie → 2. mask [1, 0, 1, 0].
    assert trace["masks"][1].tolist() == [[True, False, True, False]]
    assert result.updates == 3

    # ΔH. Layer 1 row 1 += 2·(+1)·a0 = [2, -2, 2, 2]: [-2, 5, 1, -1] → [0, 3, 3, 1].
    expected1 = H1.astype(int).copy()
    expected1[1] = [0, 3, 3, 1]
    # Layer 2 row 0 += 2·(+1)·a1 = [2, -2, 2]: [127, 2, -3] → [127 (saturated), 0, -1];
    # row 2 += 2·(-1)·a1 = [-2, 2, -2]: [6, -2, 2] → [4, 0, 0].
    expected2 = H2.astype(int).copy()
    expected2[0] = [127, 0, -1]
    expected2[2] = [4, 0, 0]

    # Reinforcement of layer 0, batch counter 0: three draws (indices over 12 weights),
    # each pushes its weight 2 away from zero; a weight at 0 stays.
    indices = [(draw(SEED, 0, 0, k + 1) * 12) >> 32 for k in range(3)]
    assert trace["draws"][0].tolist() == indices
    assert trace["draws"][1].tolist() == []
    flat = expected1.reshape(-1)
    for i in indices:
        flat[i] = np.clip(flat[i] + 2 * np.sign(flat[i]), -128, 127)

    h1, h2 = net.hidden_weights()
    assert h1.tolist() == expected1.tolist()
    assert h2.tolist() == expected2.tolist()
    # W = sign(H) after the batch: H1 row 1 = [0, 3, 3, 1] → all +1.
    assert net.W[0][1].tolist() == [1, 1, 1, 1]
    assert net.counters.as_dict() == {"samples": 1, "triggered": 1, "errors": 1, "updates": 3, "batches": 1}
    assert net.batch_counter == 1


def test_untriggered_sample_changes_nothing():
    net = make_net(q_layer0=3 << 16)
    # Label 1 has margin 2 - (-4) = 6 >= R: no trigger, no update, no reinforcement.
    result = net.train_batch(X, np.array([1]))
    assert result.triggered == 0 and result.updates == 0
    h1, h2 = net.hidden_weights()
    assert (h1 == H1).all() and (h2 == H2).all()
    assert net.batch_counter == 1  # the counter still moves on


def test_zero_weight_not_reinforced_and_saturation_holds():
    net = make_net(q_layer0=2000 << 16)  # 2000 draws over 12 weights: every weight hit
    net.train_batch(X, Y)
    h1, _ = net.hidden_weights()
    # Weights that were 0 after the update (H1[1,0]) stay 0; the rest saturate.
    assert h1[1, 0] == 0
    nonzero = h1[h1 != 0]
    assert set(nonzero.tolist()) <= {127, -128}
