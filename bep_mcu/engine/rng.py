"""The counter-based generator shared by numpy and C (docs/algorithm.md §2.7).

Every random draw made during training is a pure function of
``(seed, batch counter, layer, draw index)``, so the numpy engine, the host C twin and
the firmware draw the same numbers without carrying generator state, in any order and
with any batch size. The mixer is Chris Wellons' "lowbias32" integer hash; the C
runtime implements exactly these lines with ``uint32_t`` arithmetic.

    mix32(x):  x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15; x *= 0x846CA68B; x ^= x >> 16
    draw(seed, counter, layer, index) =
        mix32(mix32(mix32(mix32(seed ^ 0x9E3779B9) ^ counter) ^ layer) ^ index)

Reinforcement (per layer and triggered batch, N weights in the layer, fixed-point
expected count Q = floor(q * 2^16) from the host):
    u     = draw(seed, counter, layer, 0)
    M     = (Q + (u & 0xFFFF)) >> 16           (Q <= Q_MAX so this never overflows)
    idx_k = (draw(seed, counter, layer, k + 1) * N) >> 32,   k = 0 .. M-1

Sample order of a board that learns on its own (no numpy there): epoch e visits sample
``sample_order(seed, e, n)[i]`` at position i. It is a permutation of 0..n-1 computed
one position at a time with no memory: a 4-round Feistel network over 2h bits
(h = ceil(max(2, ceil(log2 n)) / 2)), whose round r maps the halves (L, R) to
(R, L ^ (draw(seed, e, ORDER_LAYER, (r << 16) | R) & (2^h - 1))), applied again while
the result is >= n ("cycle walking"). The C runtime (bep_standalone.c) runs the same lines.
"""

from __future__ import annotations

import math

import numpy as np

MASK32 = 0xFFFFFFFF
SEED_SALT = 0x9E3779B9
MIX_MUL1 = 0x7FEB352D
MIX_MUL2 = 0x846CA68B
# Largest fixed-point expected count: Q + 0xFFFF must still fit in 32 bits.
Q_MAX = MASK32 - 0xFFFF
# The "layer" key of the sample-order draws: reinforcement uses layers 0..3, so the two never share a draw.
ORDER_LAYER = 0x5EED
ORDER_ROUNDS = 4


def mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 on uint32 arrays (wrapping multiplication, as in C)."""
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):  # numpy warns on scalar wrap-around; C wraps too
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(MIX_MUL1)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(MIX_MUL2)
        x = x ^ (x >> np.uint32(16))
    return x


def draw(seed: int, counter: int, layer: int, index) -> np.ndarray:
    """32-bit draws for one (seed, batch counter, layer) and an array of indices."""
    h = mix32(np.uint32((seed & MASK32) ^ SEED_SALT))
    h = mix32(h ^ np.uint32(counter & MASK32))
    h = mix32(h ^ np.uint32(layer & MASK32))
    return mix32(h ^ np.asarray(index, dtype=np.uint32))


def reinforcement_q(p: float, n_weights: int) -> int:
    """Host side: per-batch reinforcement probability ``p`` → fixed-point count Q."""
    q = max(0.0, p) * n_weights
    return int(min(math.floor(q * 65536.0), Q_MAX))


def reinforcement_indices(seed: int, counter: int, layer: int, q_fixed: int, n_weights: int) -> np.ndarray:
    """Flat weight indices reinforced in one batch, in draw order (with replacement)."""
    u = int(draw(seed, counter, layer, 0))
    m = (q_fixed + (u & 0xFFFF)) >> 16
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    d = draw(seed, counter, layer, np.arange(1, m + 1, dtype=np.uint64).astype(np.uint32))
    return ((d.astype(np.uint64) * np.uint64(n_weights)) >> np.uint64(32)).astype(np.int64)


def order_half_bits(n: int) -> int:
    """Bits of each Feistel half for ``n`` samples (module docstring)."""
    bits = max(2, (n - 1).bit_length())
    return (bits + 1) // 2


def sample_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of 0..n-1 a board visits in epoch ``epoch`` (module docstring)."""
    if not 1 <= n <= MASK32:
        raise ValueError(f"sample count {n} is outside 1..{MASK32}")
    half = order_half_bits(n)
    mask = np.uint32((1 << half) - 1)

    def feistel(x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint32(half), x & mask
        for r in range(ORDER_ROUNDS):
            keyed = draw(seed, epoch, ORDER_LAYER, np.uint32(r << 16) | right)
            left, right = right, left ^ (keyed & mask)
        return (left << np.uint32(half)) | right

    x = feistel(np.arange(n, dtype=np.uint32))
    out = x >= n
    while out.any():  # cycle walking: at most 2^(2h) / n < 4 applications on average
        x[out] = feistel(x[out])
        out = x >= n
    return x.astype(np.int64)
