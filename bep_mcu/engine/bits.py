"""Packed ±1 vectors (docs/algorithm.md §1).

Bit 1 means +1, bit 0 means -1. Feature ``i`` is bit ``i % 32`` of word ``i // 32``
(little-endian bit order inside little-endian ``uint32`` words). Padding bits beyond
the vector length are 0 and never count. Every function works on the last axis and is
vectorised over all leading axes (samples, rows).
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 32


def n_words(n_bits: int) -> int:
    """Number of uint32 words that hold ``n_bits`` bits."""
    return (n_bits + WORD_BITS - 1) // WORD_BITS


def to_bits(x: np.ndarray) -> np.ndarray:
    """±1 (or bool) array → bool array, True where the value is +1 (``x >= 0``).

    sign(0) = +1 (docs/algorithm.md §1 decision), so a zero maps to True as well.
    """
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return x
    return x >= 0


def pack(x: np.ndarray) -> np.ndarray:
    """Pack the last axis of a ±1 / bool array into uint32 words.

    Shape ``(..., K)`` → ``(..., ceil(K / 32))``; padding bits are zero.
    """
    bits = to_bits(x)
    k = bits.shape[-1]
    pad = n_words(k) * WORD_BITS - k
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), dtype=bool)], axis=-1)
    packed_bytes = np.packbits(bits, axis=-1, bitorder="little")
    # Four little-endian bytes make one word whatever the host's byte order.
    return np.ascontiguousarray(packed_bytes).view("<u4").astype(np.uint32, copy=False)


def unpack(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: uint32 words → bool array with ``n_bits`` on the last axis."""
    words = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
    if words.shape[-1] != n_words(n_bits):
        raise ValueError(f"{words.shape[-1]} words cannot hold exactly {n_bits} bits")
    as_bytes = words.view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
    return bits[..., :n_bits].astype(bool)


def valid_mask(n_bits: int) -> np.ndarray:
    """Words with a 1 in every bit that belongs to the vector and 0 in the padding."""
    return pack(np.ones(n_bits, dtype=bool))


def popcount(words: np.ndarray) -> np.ndarray:
    """Number of set bits, summed over the last (word) axis."""
    return np.bitwise_count(np.asarray(words, dtype=np.uint32)).sum(axis=-1, dtype=np.int64)


def dot(w: np.ndarray, a: np.ndarray, n_bits: int) -> np.ndarray:
    """Integer dot product of packed ±1 vectors: ``2 * popcount(XNOR(w, a) & valid) - K``.

    ``w`` and ``a`` broadcast against each other on the leading axes, e.g. weights
    ``(K_out, W)`` with one sample ``(W,)``, or ``(1, K_out, W)`` with ``(n, 1, W)``.
    """
    agree = ~(np.asarray(w, dtype=np.uint32) ^ np.asarray(a, dtype=np.uint32)) & valid_mask(n_bits)
    return 2 * popcount(agree) - n_bits


def pack_inputs(encoded: np.ndarray) -> np.ndarray:
    """±1 network inputs → the packed words the C code reads, one row per sample:
    (n, K) → (n, words(K)); an rnn's (n, T, K) → (n, T · words(K)) (step-major)."""
    packed = pack(encoded)
    return np.ascontiguousarray(packed.reshape(len(encoded), -1))
