"""The fixed output classifier P: a Binary Equiangular Frame (docs/algorithm.md §2.2).

Rows of P are ±1 class prototypes pushed as far apart as greedy single-bit flips can
get them, by lowering J = Σ_{i<j} <ρ_i, ρ_j> + α · Var_{i<j}(<ρ_i, ρ_j>). Computed once
on the host from the seed; the C code receives it as a constant table.
"""

from __future__ import annotations

import numpy as np


def binary_equiangular_frame(
    n_classes: int, width: int, seed: int, alpha: float = 1.0, max_flips: int = 20000
) -> np.ndarray:
    """Return P as int8 ±1 of shape (n_classes, width).

    Each step evaluates every single-bit flip at once (vectorised over rows, columns and
    partner rows) and applies the best one; it stops when no flip lowers J or after
    ``max_flips`` flips. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    rho = np.where(rng.random((n_classes, width)) < 0.5, -1, 1).astype(np.int64)
    if n_classes < 2:
        return rho.astype(np.int8)
    n_pairs = n_classes * (n_classes - 1) / 2
    off_diag = ~np.eye(n_classes, dtype=bool)
    gram = rho @ rho.T
    for _ in range(max_flips):
        iu = np.triu_indices(n_classes, k=1)
        g = gram[iu]
        total, total_sq = g.sum(), (g.astype(np.float64) ** 2).sum()
        # Flipping bit (r, k) changes <ρ_r, ρ_j> by d = -2 ρ_rk ρ_jk for every j != r.
        d = -2 * rho[:, :, None] * rho.T[None, :, :]  # (r, k, j)
        d = d * off_diag[:, None, :]
        new_total = total + d.sum(axis=2)
        new_total_sq = total_sq + (2 * gram[:, None, :] * d + d * d).sum(axis=2)
        mean = new_total / n_pairs
        new_j = new_total + alpha * (new_total_sq / n_pairs - mean * mean)
        current = total + alpha * (total_sq / n_pairs - (total / n_pairs) ** 2)
        r, k = np.unravel_index(np.argmin(new_j), new_j.shape)
        if new_j[r, k] >= current - 1e-9:
            break
        rho[r, k] = -rho[r, k]
        gram = rho @ rho.T
    return rho.astype(np.int8)
