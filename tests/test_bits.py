"""Packed ±1 vectors (docs/algorithm.md §1): layout, round trips, popcount and dot products."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bep_mcu.engine import bits


@settings(max_examples=200, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(0, 5), st.integers(1, 200))))
def test_pack_unpack_round_trip(x):
    packed = bits.pack(x)
    assert packed.dtype == np.uint32
    assert packed.shape == x.shape[:-1] + (bits.n_words(x.shape[-1]),)
    assert (bits.unpack(packed, x.shape[-1]) == x).all()


@settings(max_examples=200, deadline=None)
@given(arrays(np.bool_, st.integers(1, 200)))
def test_layout_feature_i_is_bit_i_mod_32_of_word_i_div_32(x):
    packed = bits.pack(x)
    for i in np.flatnonzero(x):
        assert (int(packed[i // 32]) >> (i % 32)) & 1 == 1
    # padding bits are zero and every set bit belongs to a +1 feature
    assert int(bits.popcount(packed)) == int(x.sum())


def test_pm1_input_and_sign_zero_is_plus_one():
    assert bits.pack(np.array([1, -1, 0, -3, 5])).tolist() == [0b10101]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 150), st.integers(0, 2**32 - 1))
def test_dot_equals_integer_dot_product(k, seed):
    g = np.random.default_rng(seed)
    w = np.where(g.random((7, k)) < 0.5, -1, 1)
    a = np.where(g.random(k) < 0.5, -1, 1)
    assert (bits.dot(bits.pack(w), bits.pack(a), k) == w @ a).all()


def test_dot_broadcasts_over_samples():
    g = np.random.default_rng(0)
    w = np.where(g.random((5, 70)) < 0.5, -1, 1)
    a = np.where(g.random((9, 70)) < 0.5, -1, 1)
    got = bits.dot(bits.pack(w)[None], bits.pack(a)[:, None], 70)
    assert (got == a @ w.T).all()


def test_valid_mask_and_unpack_rejects_wrong_word_count():
    assert bits.valid_mask(33).tolist() == [0xFFFFFFFF, 1]
    try:
        bits.unpack(np.zeros(3, dtype=np.uint32), 33)
    except ValueError as e:
        assert "33 bits" in str(e)
    else:
        raise AssertionError("unpack accepted 3 words for 33 bits")
