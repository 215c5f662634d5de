"""The fixed output classifier P (docs/algorithm.md §2.2): a Binary Equiangular Frame, or a
frame from the class centroids.

The equiangular frame's rows are ±1 class prototypes pushed as far apart as greedy single-bit
flips can get them, by lowering J = Σ_{i<j} <ρ_i, ρ_j> + α · Var_{i<j}(<ρ_i, ρ_j>). The
centroid frame's columns are cuts of the classes along directions of their mean inputs
(``training.classifier_frame`` says which models take it). Either is computed once on the
host; the C code receives P as a constant table.
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


def centroid_frame(centroids: np.ndarray, width: int, seed: int) -> np.ndarray:
    """Return P as int8 ±1 of shape (n_classes, width) whose columns are cuts of the classes
    along random directions in the span of their centroids (``centroids``: one row per class,
    the mean of its samples' network inputs; at least two classes).

    Column j projects the centred centroids on a random combination of them, p = G c (G their
    Gram matrix, c Gaussian), sorts the projections, cuts at one of the C − 1 gaps drawn at
    random and sets +1 above the cut. Where the classes lie along one direction of the inputs
    (classes by bins of a regression target) every column is a threshold of their order, a
    target one neuron reading that direction can meet; where they lie in general position,
    the columns are random splits of them. Deterministic for a given seed.
    """
    gram = centred_gram(centroids)
    rng = np.random.default_rng(seed + 11)  # a stream of its own, apart from the weights' and the BEF's
    proj = gram @ rng.standard_normal((len(gram), width))
    ordered = np.sort(proj, axis=0)
    cut = rng.integers(0, len(gram) - 1, size=width)
    columns = np.arange(width)
    threshold = (ordered[cut, columns] + ordered[cut + 1, columns]) / 2
    return np.where(proj > threshold, 1, -1).astype(np.int8)


def centred_gram(centroids: np.ndarray) -> np.ndarray:
    """The Gram matrix of the class centroids less their mean (float64)."""
    mu = np.asarray(centroids, dtype=np.float64)
    mu = mu - mu.mean(axis=0)
    return mu @ mu.T


def leading_direction(centroids: np.ndarray) -> np.ndarray:
    """The direction of the inputs along which the centred class centroids spread most (float64,
    not normalised): the centred centroids combined by their Gram matrix's leading eigenvector."""
    mu = np.asarray(centroids, dtype=np.float64)
    return np.linalg.eigh(centred_gram(mu))[1][:, -1] @ (mu - mu.mean(axis=0))


def leading_share(centroids: np.ndarray) -> float:
    """The fraction of the centred class centroids' spread (the trace of their Gram matrix)
    along its leading direction: 1 for classes on a line, 1/(C − 1) for a regular simplex.
    0 where every centroid is the same."""
    eigenvalues = np.linalg.eigvalsh(centred_gram(centroids))
    total = eigenvalues.sum()
    return float(eigenvalues[-1] / total) if total > 0 else 0.0
