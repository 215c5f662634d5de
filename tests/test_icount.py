"""Instruction counting of the generated C on emulated Cortex-M cores (bep_mcu/icount.py).

A small 64-32-4 MLP is trained briefly, generated, cross-built with arm-none-eabi-gcc
and trained further inside unicorn. Instruction counts are deterministic, so the tests
assert exact equality between runs; the hidden weights read back from emulated RAM
must equal the numpy engine's bit for bit. Nothing here asserts a speed.

Skipped when arm-none-eabi-gcc or the unicorn package is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from bep_mcu import icount
from bep_mcu.errors import BEPError

pytestmark = pytest.mark.skipif(bool(icount.missing_tools()),
                                reason=f"icount needs {', '.join(icount.missing_tools())}")

DATASET = "prototypes:classes=4,features=64,samples=600"
N = 100  # training samples per measurement


class Tiny:
    """The trained model, its generated C, the packed data and per-(cpu, opt) images."""

    def __init__(self, root, hidden_bits=None):
        from bep_mcu import modelio, training
        from bep_mcu.cgen.codegen import generate, with_hidden_bits
        from bep_mcu.data.datasets import load_dataset
        from bep_mcu.engine.bits import pack_inputs

        data = load_dataset(DATASET)
        self.clf = training.fit(data.X_train, data.y_train, training.Settings(hidden=(32,), epochs=1, seed=1))
        self.model = root / "tiny.npz"
        modelio.save(self.clf, self.model)
        self.hidden_bits = hidden_bits
        self.gen = generate(with_hidden_bits(self.clf, hidden_bits), root / "c", "tiny")
        self.X = pack_inputs(self.clf.encode(data.X_train[:N]))
        self.y = self.clf.encode_labels(data.y_train[:N])
        self.gamma = list(self.clf.training.gamma)
        self.seed, self.batches = self.clf.training.seed, self.clf.training.batch_counter
        self._images = {}

    def image(self, cpu, opt="-Os"):
        if (cpu, opt) not in self._images:
            self._images[cpu, opt] = icount.build_image(self.gen.src, "tiny", cpu, opt)
        return self._images[cpu, opt]

    def q(self, error_rate):
        return icount.epoch_q(self.clf.spec, error_rate)

    def run(self, cpu, batch_size, error_rate=1.0, opt="-Os", n=N, verify=False):
        return self.image(cpu, opt).run(self.X[:n], self.y[:n], batch_size, self.gamma, self.q(error_rate), self.seed,
                                        self.batches, verify=verify)

    def reference(self, batch_size, error_rate=1.0, n=N):
        return icount.reference_training(self.model, self.X[:n], self.y[:n], batch_size, self.gamma,
                                         self.q(error_rate), self.seed, self.batches, self.hidden_bits)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Tiny(tmp_path_factory.mktemp("icount"))


def assert_same_as_numpy(result, ref):
    assert len(result["hidden"]) == len(ref["hidden"])
    for mine, theirs in zip(result["hidden"], ref["hidden"]):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert np.array_equal(mine, theirs)
    assert np.array_equal(result["predictions"], ref["predictions"])
    assert result["counters"] == ref["counters"]


# ------------------------------------------------------------------ decoding


def test_thumb_instruction_sizes():
    # movs r0, #1 (16-bit); bl (32-bit, 0b11110 prefix); ldr.w (32-bit, 0b11111); add.w (0b11101); bx lr
    code = bytes.fromhex("0120" "00f000f8" "d0f80000" "00eb0100" "7047")
    assert icount.thumb_instructions(code) == 5
    assert [a for a, _ in icount.thumb_decode(code, 0x100)] == [0x100, 0x102, 0x106, 0x10A, 0x10E]
    with pytest.raises(BEPError):
        icount.thumb_instructions(bytes.fromhex("00f0"))  # half of a 32-bit instruction


def test_it_block_decoding():
    # ite eq (0xBF0C: 2 conditional instructions), moveq, movne, then an unconditional movs; nop (0xBF00) is no IT
    code = bytes.fromhex("0cbf" "0120" "0020" "0221" "00bf" "0320")
    flags = [in_it for _, in_it in icount.thumb_decode(code, 0)]
    assert flags == [False, True, True, False, False, False]


# ------------------------------------------------------------- measurements


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_counts_positive_and_deterministic(tiny, cpu):
    a = tiny.run(cpu, 10)
    b = tiny.run(cpu, 10)
    for key in ("init_instructions", "set_epoch_instructions", "train_instructions", "harness_instructions"):
        assert a[key] > 0, key
        assert a[key] == b[key], key
    assert a["batch_instructions"] == b["batch_instructions"]
    assert len(a["batch_instructions"]) == a["batches"] == N // 10
    assert sum(a["batch_instructions"]) == a["train_instructions"]
    assert a["instructions_per_sample"] == a["train_instructions"] / N
    assert a["functions"]["train"] == b["functions"]["train"]
    assert sum(a["functions"]["train"].values()) == a["train_instructions"]
    assert not any(fn.startswith("icount_") for fn in a["functions"]["train"])
    assert a["size"]["text"] > 0


def test_counts_identical_across_builds(tiny):
    """A fresh build of the same sources counts exactly the same."""
    a = tiny.run("cortex-m4", 25, n=50)
    b = icount.count_training(tiny.gen.src, "tiny", "cortex-m4", tiny.X[:50], tiny.y[:50], 25, tiny.gamma,
                              tiny.q(1.0), tiny.seed, batches=tiny.batches)
    assert (a["init_instructions"], a["batch_instructions"]) == (b["init_instructions"], b["batch_instructions"])


def test_init_does_not_depend_on_the_data(tiny):
    a = tiny.run("cortex-m4", 1, n=5)
    b = tiny.run("cortex-m4", 50, error_rate=0.1)
    assert a["init_instructions"] == b["init_instructions"]
    assert a["set_epoch_instructions"] == b["set_epoch_instructions"]


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
@pytest.mark.parametrize("batch_size", [1, 100])
def test_weights_bit_exact_with_numpy(tiny, cpu, batch_size):
    result = tiny.run(cpu, batch_size)
    assert result["counters"]["triggered"] > 0  # the comparison covers updates and reinforcement
    assert_same_as_numpy(result, tiny.reference(batch_size))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_batch_100_cheaper_per_sample_than_batch_1(tiny, cpu):
    """Reinforcement and repacking are per batch: batch 100 amortises them."""
    for error_rate in (1.0, 0.1):
        assert min(tiny.q(error_rate)) > 0
        one = tiny.run(cpu, 1, error_rate)
        hundred = tiny.run(cpu, 100, error_rate)
        assert hundred["instructions_per_sample"] < one["instructions_per_sample"]


def test_reinforcement_costs_instructions(tiny):
    """Q = 0 (no reinforcement) is cheaper than E = 1.0 at batch size 1, same data."""
    image = tiny.image("cortex-m4")
    with_q = image.run(tiny.X, tiny.y, 1, tiny.gamma, tiny.q(1.0), tiny.seed, tiny.batches)
    no_q = image.run(tiny.X, tiny.y, 1, tiny.gamma, [0] * len(tiny.gamma), tiny.seed, tiny.batches)
    assert no_q["train_instructions"] < with_q["train_instructions"]


@pytest.mark.parametrize("cpu,opt", [("cortex-m4", "-Os"), ("cortex-m0", "-Os"), ("cortex-m33", "-O2")])
def test_block_counts_match_a_per_instruction_hook(tiny, cpu, opt):
    """The block-hook count agrees with a per-instruction hook, except condition-failed
    instructions of IT blocks, which the per-instruction hook does not see (ARMv6-M has none)."""
    result = tiny.run(cpu, 10, opt=opt, n=30, verify=True)
    assert result["verified"]
    if cpu == "cortex-m0":
        assert result["it_skipped"] == 0
    assert_same_as_numpy(result, tiny.reference(10, n=30))


@pytest.mark.parametrize("cpu", ["cortex-m3", "cortex-m7", "cortex-m33"])
@pytest.mark.parametrize("opt", ["-Os", "-O2"])
def test_other_cores_and_opt_levels_bit_exact(tiny, cpu, opt):
    result = tiny.run(cpu, 20, n=40, opt=opt)
    assert result["instructions_per_sample"] > 0
    assert_same_as_numpy(result, tiny.reference(20, n=40))


def test_o2_and_os_train_the_same_weights(tiny):
    a = tiny.run("cortex-m4", 10, n=40)
    b = tiny.run("cortex-m4", 10, n=40, opt="-O2")
    assert all(np.array_equal(x, y) for x, y in zip(a["hidden"], b["hidden"]))
    assert a["train_instructions"] != b["train_instructions"]  # different code, still counted exactly


def test_partial_last_batch(tiny):
    result = tiny.run("cortex-m0", 30, n=70)  # 30 + 30 + 10
    assert result["batches"] == 3 and len(result["batch_instructions"]) == 3
    assert_same_as_numpy(result, tiny.reference(30, n=70))


def test_sixteen_bit_hidden_weights(tmp_path):
    wide = Tiny(tmp_path, hidden_bits=16)
    result = wide.run("cortex-m4", 10, n=40)
    assert result["hidden"][0].dtype == np.int16
    assert_same_as_numpy(result, wide.reference(10, n=40))


def test_rnn_bit_exact(tmp_path):
    from bep_mcu import modelio, training
    from bep_mcu.cgen.codegen import generate
    from bep_mcu.engine.bits import pack_inputs

    g = np.random.default_rng(0)
    n, length = 60, 40
    y = g.integers(0, 2, n)
    t = np.linspace(0.0, 1.0, length)
    X = np.sin(2 * np.pi * np.where(y[:, None] == 0, 2, 5) * t + g.uniform(0, 6, (n, 1)))
    model = training.fit(X, y, training.Settings(model="rnn", hidden=(16,), epochs=1, seed=2, val_fraction=0.0))
    modelio.save(model, tmp_path / "rnn.npz")
    gen = generate(model, tmp_path / "c", "seq")
    Xp, ye = pack_inputs(model.encode(X)), model.encode_labels(y)
    q = icount.epoch_q(model.spec, 1.0)
    gamma = list(model.training.gamma)
    result = icount.count_training(gen.src, "seq", "cortex-m4", Xp, ye, 10, gamma, q, model.training.seed,
                                   batches=model.training.batch_counter)
    assert result["instructions_per_sample"] > 0
    assert_same_as_numpy(result, icount.reference_training(tmp_path / "rnn.npz", Xp, ye, 10, gamma, q))


# -------------------------------------------------------------------- errors


def test_bad_arguments(tiny):
    with pytest.raises(BEPError, match="cpu"):
        icount.build_image(tiny.gen.src, "tiny", "cortex-a53")
    with pytest.raises(BEPError, match="opt"):
        icount.build_image(tiny.gen.src, "tiny", "cortex-m4", "-Ofast")
    with pytest.raises(BEPError, match="not found"):
        icount.build_image(tiny.gen.src, "other", "cortex-m4")
    image = tiny.image("cortex-m4")
    with pytest.raises(BEPError, match="words"):
        image.run(tiny.X[:, :1], tiny.y, 10, tiny.gamma, tiny.q(1.0), tiny.seed)
    with pytest.raises(BEPError, match="labels"):
        image.run(tiny.X, tiny.y[:5], 10, tiny.gamma, tiny.q(1.0), tiny.seed)
    with pytest.raises(BEPError, match="per layer"):
        image.run(tiny.X, tiny.y, 10, tiny.gamma * 2, tiny.q(1.0), tiny.seed)


def test_runtime_refusal_is_reported(tiny):
    """The generated code's own checks surface as a BEPError naming the call."""
    image = tiny.image("cortex-m0")
    with pytest.raises(BEPError, match="set_epoch"):
        image.run(tiny.X[:10], tiny.y[:10], 10, [0], tiny.q(1.0), tiny.seed)  # γ = 0 is out of range
    bad = tiny.y[:10].copy()
    bad[3] = 9  # not a class
    with pytest.raises(BEPError, match="train_batch"):
        image.run(tiny.X[:10], bad, 10, tiny.gamma, tiny.q(1.0), tiny.seed)


def test_main_prints_the_table(capsys):
    """The demo end to end, shrunk: one core, 50 samples (about 5 s)."""
    assert icount.main(["--cpus", "cortex-m4", "--samples", "50", "--batch-sizes", "1,50", "--errors", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "instr/sample" in out and "cortex-m4" in out
    assert " NO" not in out
