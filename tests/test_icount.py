"""Instruction counting of the generated C on emulated Cortex-M cores (bep_mcu/icount).

Small MLPs and an RNN are trained briefly, generated, cross-built with arm-none-eabi-gcc
and trained further inside unicorn. Instruction counts are deterministic, so the tests
assert exact equality between runs, and the performance targets of the 256-128-10
workload as plain bounds on counts; the hidden weights read back from emulated RAM must
equal the numpy engine's bit for bit, for every kernel variant that only runs on ARM
(DSP, assembly, their portable fallbacks on the same cores). Nothing here asserts a speed.

Skipped when arm-none-eabi-gcc, objdump or the unicorn package is missing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from bep_mcu import icount
from bep_mcu.errors import BEPError
from bep_mcu.icount import harness, report

from .conftest import fit

pytestmark = pytest.mark.skipif(bool(icount.missing_tools()),
                                reason=f"icount needs {', '.join(icount.missing_tools())}")

N = 100  # training samples per measurement


class Tiny:
    """A trained model, its generated C, the packed data and per-(cpu, opt, flags) images."""

    def __init__(self, root, features=64, hidden=(32,), hidden_bits=None):
        from bep_mcu.cgen.codegen import generate, with_hidden_bits
        from bep_mcu.data.datasets import load_dataset
        from bep_mcu.engine.bits import pack_inputs

        data = load_dataset(f"prototypes:classes=4,features={features},samples=600")
        trained = fit(data.X_train, data.y_train, hidden=hidden, epochs=1, seed=1, binarize="passthrough")
        self.model = with_hidden_bits(trained, hidden_bits)
        self.gen = generate(self.model, root / "c", "tiny")
        self.X = pack_inputs(trained.encode(data.X_train[:N]))
        self.y = trained.encode_labels(data.y_train[:N])
        self.gamma = list(trained.training.gamma)
        self.seed, self.batches = trained.training.seed, trained.training.batch_counter
        self._images = {}

    def image(self, cpu, opt="-Os", flags=()):
        key = (cpu, opt, tuple(flags))
        if key not in self._images:
            self._images[key] = icount.build_image(self.gen, cpu, opt, extra_cflags=flags)
        return self._images[key]

    def q(self, error_rate):
        return icount.epoch_q(self.model.spec, error_rate)

    def run(self, cpu, batch_size, error_rate=1.0, opt="-Os", n=N, verify=False, flags=(), cycles=False):
        return self.image(cpu, opt, flags).run(self.X[:n], self.y[:n], batch_size, self.gamma, self.q(error_rate),
                                               self.seed, self.batches, verify=verify, cycles=cycles)

    def reference(self, batch_size, error_rate=1.0, n=N):
        return icount.reference_training(self.model, self.X[:n], self.y[:n], batch_size, self.gamma,
                                         self.q(error_rate), self.seed, self.batches)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Tiny(tmp_path_factory.mktemp("icount"))


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Fan-ins that are not multiples of 4 (70 inputs, then 33 neurons): int8 rows start
    at any byte, so the unaligned paths of the row update and the repack run."""
    return Tiny(tmp_path_factory.mktemp("odd"), features=70, hidden=(33, 20))


def assert_same_as_numpy(result, ref):
    assert len(result["hidden"]) == len(ref["hidden"])
    for layer, (mine, theirs) in enumerate(zip(result["hidden"], ref["hidden"])):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        bad = np.argwhere(mine != theirs)
        assert bad.size == 0, f"layer {layer} row/col {tuple(bad[0])}: {mine[tuple(bad[0])]} != {theirs[tuple(bad[0])]}"
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


def test_rv32_instruction_sizes():
    # c.li a0, 1 (16-bit); addi a0, a0, 1 (32-bit: low bits 0b11); c.jr ra
    code = bytes.fromhex("0545" "13051500" "8280")
    assert harness.block_instructions("rv32imac", code) == 3
    assert [a for a, _ in harness.decode("rv32imac", code, 0x100)] == [0x100, 0x102, 0x106]
    with pytest.raises(BEPError):
        harness.block_instructions("rv32imac", bytes.fromhex("1305"))  # half of a 32-bit instruction


def test_it_block_decoding():
    # ite eq (0xBF0C: 2 conditional instructions), moveq, movne, then an unconditional movs; nop (0xBF00) is no IT
    code = bytes.fromhex("0cbf" "0120" "0020" "0221" "00bf" "0320")
    flags = [in_it for _, in_it in icount.thumb_decode(code, 0)]
    assert flags == [False, True, True, False, False, False]


def test_cycle_model_costs():
    """The Cortex-M4 table, one class at a time, on a block of known instructions."""
    image = harness.Image(None, "cortex-m4", "-Os", None, {}, [], [])
    code = bytes.fromhex("0120" "0268" "4368" "2cbd" "d0e90023" "fee7")  # movs; ldr; ldr; pop {r2,r3,r5,pc}; ldrd; b
    addresses = [a for a, _ in icount.thumb_decode(code, 0)]
    listing = [("movs", "r0, #1"), ("ldr", "r2, [r0, #0]"), ("ldr", "r3, [r0, #4]"), ("pop", "{r2, r3, r5, pc}"),
               ("ldrd", "r0, r3, [r0]"), ("b.n", "0")]
    image.instructions = dict(zip(addresses, listing))
    cycles, writes_pc = harness.m4_block_cycles(image, code, 0)
    assert cycles == 1 + 2 + 1 + (1 + 4) + 3 + 1  # the second load pipelines; POP moves 4 words
    assert writes_pc  # the block ends in a branch: a taken exit adds the refill
    cycles, writes_pc = harness.m4_block_cycles(image, code[:6], 0)
    assert cycles == 4 and not writes_pc


def test_cycle_model_counts_taken_branches_per_phase_segment():
    """A loop run in two batches (two segments of one phase): its branch is taken on every
    pass but the one that falls out of the loop, in each batch. (Falls counted over the
    whole run but subtracted in every segment dropped all but a few refills of loops that
    run in many batches, and made the figure depend on where the linker put each loop.)"""
    image = harness.Image(None, "cortex-m4", "-Os", None, {}, [(0, 4, "bep_loop")], [])
    image.instructions = {0: ("subs", "r0, r0, #1"), 2: ("bne.n", "0 <bep_loop>")}
    code = bytes.fromhex("0138" "fdd1")  # subs r0, #1; bne.n back to the subs
    key = 0 << 16 | len(code)

    class Memory:
        def mem_read(self, address, size):
            return code[address:address + size]

    batch = (harness.PH_BATCH, {key: 10}, {key: 1})  # ten passes, the last falls through
    tallies = harness._tally(image, harness.Trace([batch, batch], Memory(), {}, 0.0), cycles=True)
    assert harness._merged(tallies, harness.PH_BATCH, 1) == {"bep_loop": 2 * 10 * 2}
    assert harness._merged(tallies, harness.PH_BATCH, 2) == {"bep_loop": 2 * (10 * 2 + harness.REFILL * 9)}


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
    assert a["state_bytes"] == tiny.gen.plan.state_bytes


def test_counts_identical_across_builds(tiny):
    """A fresh build of the same sources counts exactly the same."""
    a = tiny.run("cortex-m4", 25, n=50)
    b = icount.count_training(tiny.gen, "cortex-m4", tiny.X[:50], tiny.y[:50], 25, tiny.gamma, tiny.q(1.0), tiny.seed,
                              batches=tiny.batches)
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


# Every -D variant that only ARM runs, on the core it is for; the host ones are in test_verify.py.
VARIANTS = [
    ("cortex-m4", ()),  # QADD8 updates, USADA8 sums, Thumb-2 assembly dot
    ("cortex-m4", ("-DBEP_USE_DSP=0",)),  # the SWAR32 update and multiply sums on a DSP core
    ("cortex-m4", ("-DBEP_USE_ASM=0",)),  # the C loop of the dot
    ("cortex-m4", ("-DBEP_USE_DSP=0", "-DBEP_USE_ASM=0", "-DBEP_UPDATE8=1")),  # all portable, reference update
    ("cortex-m4", ("-DBEP_POPCOUNT_TABLE=1",)),
    ("cortex-m4", ("-DBEP_MEASURE=1",)),
    ("cortex-m0", ()),  # SWAR32 updates, Thumb-1 assembly dot, 16 x 16 multiply-high
    ("cortex-m0", ("-DBEP_USE_ASM=0",)),
    ("cortex-m0", ("-DBEP_POPCOUNT_TABLE=1", "-DBEP_UPDATE8=1")),
    ("cortex-m3", ()),  # Thumb-2 without DSP: SWAR32 updates, assembly dot with multiply sums
]


@pytest.mark.parametrize("cpu,flags", VARIANTS, ids=[f"{c}{''.join(f)}" for c, f in VARIANTS])
def test_every_arm_variant_bit_exact(tiny, odd, cpu, flags):
    for model in (tiny, odd):
        for batch_size in (1, 25):
            result = model.run(cpu, batch_size, n=50, flags=flags)
            assert_same_as_numpy(result, model.reference(batch_size, n=50))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_the_last_layer_alone_is_bit_exact_and_skips_the_backward_pass(odd, cpu):
    """γ 0 on the first of two hidden layers (adapt --layers last): the emulated core trains what numpy
    trains, the first layer untouched, and counts no backward pass (the desired activations of a frozen
    first layer are never computed) and fewer instructions than every layer learning."""
    image = odd.image(cpu, flags=("-DBEP_MEASURE=1",))
    counts = {}
    for name, gamma in (("all", odd.gamma), ("last", [0, odd.gamma[1]])):
        result = image.run(odd.X, odd.y, 10, gamma, odd.q(1.0), odd.seed, odd.batches)
        ref = icount.reference_training(odd.model, odd.X, odd.y, 10, gamma, odd.q(1.0), odd.seed, odd.batches)
        assert result["counters"]["updates"] > 0, name
        assert_same_as_numpy(result, ref)
        counts[name] = report.breakdown(result["functions"]["train"], result["samples"]), result
    (every, _), (last, result) = counts["all"], counts["last"]
    assert np.array_equal(result["hidden"][0], odd.model.hidden[0])
    assert every["backward"] > 0 and last["backward"] == 0
    assert last["update"] < every["update"] and last["reinforcement"] < every["reinforcement"]
    assert result["instructions_per_sample"] < counts["all"][1]["instructions_per_sample"]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Rows of 32 words (1000 inputs): an even number of pairs above the 15 that the
    ARMv6-M row loop's byte lanes hold (the C loop takes them), and 40 neurons, so a
    group of 32 rows and one of 8."""
    return Tiny(tmp_path_factory.mktemp("wide"), features=1000, hidden=(40,))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_forward_row_loops_bit_exact(tiny, wide, cpu):
    """The assembly row loops of the forward pass (bep_dot_rows) on odd (tiny: one pair
    a row) and even (wide: sixteen) numbers of pairs, full and partial groups of rows."""
    for model in (tiny, wide):
        result = model.run(cpu, 25, n=50)
        assert_same_as_numpy(result, model.reference(25, n=50))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """Fan-ins of whole words on both layers (64 inputs, then 96 neurons) and 40 neurons last
    (a group of 32 and one of 8): the Thumb-2 one-pass repack of int8 rows (bep_repack_words)
    on the second layer of two and on a partial word of neurons."""
    return Tiny(tmp_path_factory.mktemp("whole"), features=64, hidden=(96, 40))


@pytest.mark.parametrize("batch_size", [1, 25])
def test_one_pass_repack_of_whole_word_rows_bit_exact(whole, batch_size):
    """The one-pass repack runs (its function counts instructions in the measurement build)
    and trains what numpy trains, both layers."""
    result = whole.run("cortex-m4", batch_size, n=50, flags=("-DBEP_MEASURE=1",))
    assert [c % 32 for _, c in whole.model.spec.layer_shapes()] == [0, 0]
    assert result["functions"]["train"].get("bep_repack_words", 0) > 0
    assert result["counters"]["updates"] > 0
    assert_same_as_numpy(result, whole.reference(batch_size, n=50))


def test_unaligned_rows_are_exercised(odd):
    """The odd model's rows do start off word boundaries (70 and 33 are not multiples of 4)."""
    assert [c % 4 for _, c in odd.model.spec.layer_shapes()] == [2, 1]
    assert odd.run("cortex-m4", 25, n=50)["counters"]["updates"] > 0


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


def test_cycles_follow_the_instructions(tiny):
    """Cycles come with the Cortex-M4 run only when asked, are deterministic, and every
    instruction costs at least one."""
    a = tiny.run("cortex-m4", 10, n=40, cycles=True)
    b = tiny.run("cortex-m4", 10, n=40, cycles=True)
    assert a["cycles_per_sample"] == b["cycles_per_sample"]
    assert a["functions_cycles"].keys() == a["functions"]["train"].keys()
    for fn, n in a["functions"]["train"].items():
        assert a["functions_cycles"][fn] >= n, fn
    assert "cycles_per_sample" not in tiny.run("cortex-m4", 10, n=40)


def test_partial_last_batch(tiny):
    result = tiny.run("cortex-m0", 30, n=70)  # 30 + 30 + 10
    assert result["batches"] == 3 and len(result["batch_instructions"]) == 3
    assert_same_as_numpy(result, tiny.reference(30, n=70))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_sixteen_bit_hidden_weights(tmp_path, cpu):
    wide = Tiny(tmp_path, hidden_bits=16)
    result = wide.run(cpu, 10, n=40)
    assert result["hidden"][0].dtype == np.int16
    assert_same_as_numpy(result, wide.reference(10, n=40))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_rnn_bit_exact(tmp_path, cpu):
    from bep_mcu.cgen.codegen import generate
    from bep_mcu.engine.bits import pack_inputs

    g = np.random.default_rng(0)
    n, length = 60, 40
    y = g.integers(0, 2, n)
    t = np.linspace(0.0, 1.0, length)
    X = np.sin(2 * np.pi * np.where(y[:, None] == 0, 2, 5) * t + g.uniform(0, 6, (n, 1)))
    model = fit(X, y, model="rnn", hidden=(18,), epochs=1, seed=2, val_fraction=0.0)
    gen = generate(model, tmp_path / "c", "seq")
    Xp, ye = pack_inputs(model.encode(X)), model.encode_labels(y)
    q = icount.epoch_q(model.spec, 1.0)
    gamma = list(model.training.gamma)
    result = icount.count_training(gen, cpu, Xp, ye, 10, gamma, q, model.training.seed,
                                   batches=model.training.batch_counter)
    assert result["instructions_per_sample"] > 0
    assert_same_as_numpy(result, icount.reference_training(model, Xp, ye, 10, gamma, q))


# ---------------------------------------------------------- the float baseline


def float_sgd_numpy(params, X, y, lr):
    """The step of c/float_sgd.c in numpy float32, sample by sample."""
    w1, b1, w2, b2 = (p.copy() for p in params)
    preds = []
    for x, label in zip(X, y):
        h = np.maximum(w1 @ x + b1, 0).astype(np.float32)
        logits = (w2 @ h + b2).astype(np.float32)
        preds.append(int(np.argmax(logits)))
        p = np.exp(logits - logits.max())
        g = (p / p.sum()).astype(np.float32)
        g[label] -= 1
        delta = (w2.T @ g) * (h > 0)
        w2 -= lr * np.outer(g, h)
        b2 -= lr * g
        w1 -= lr * np.outer(delta, x)
        b1 -= lr * delta
    return [w1, b1, w2, b2], np.array(preds)


FLOAT_SHAPE = (40, 16, 5)  # 16 hidden rows: two blocks of eight in the tuned step
FLOAT_STEPS = 12  # enough that the tuned step's W1 update meets both an even and an odd number of active rows


def float_samples(shape=FLOAT_SHAPE, n=FLOAT_STEPS):
    g = np.random.default_rng(3)
    X = np.where(g.random((n, shape[0])) < 0.5, -1, 1).astype(np.float32)
    return X, g.integers(0, shape[2], n)


@pytest.mark.parametrize("cpu,tuned,opt", [("cortex-m4", False, "-Os"), ("cortex-m0", False, "-Os"),
                                           *((cpu, True, opt) for cpu in ("cortex-m4", "cortex-m0")
                                             for opt in report.TUNED_OPTS)])
def test_float_baseline_trains_like_numpy(cpu, tuned, opt):
    """The float SGD step computes what it claims (hard-float on M4F, soft-float on M0), as
    first written and tuned at every level icount builds it at: its weights after 12 steps
    match a numpy float32 step to rounding. (At -O3 gcc once called a constant-propagated
    clone of icount_mark that the host does not watch, and the step counted 0.)"""
    shape = FLOAT_SHAPE
    X, y = float_samples()
    params = report.float_params(shape, seed=4)
    image = icount.build_float_image(cpu, shape, opt, tuned=tuned)
    result = icount.run_float(image, X, y, params, 0.05, cycles=cpu == "cortex-m4")
    want, preds = float_sgd_numpy(params, X, y, 0.05)
    assert np.array_equal(result["predictions"], preds)
    for mine, theirs, before in zip(result["params"], want, params):
        assert not np.array_equal(mine, before)  # it did train
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    assert result["state_bytes"] == 4 * (sum(p.size for p in params) + 2 * shape[1] + shape[2])
    assert result["instructions_per_sample"] > shape[0] * shape[1]  # at least one per multiply-add
    if cpu == "cortex-m0":
        assert any(fn.startswith("__aeabi_f") for fn in result["functions"])  # libgcc soft-float
    else:
        assert result["cycles_per_sample"] > result["instructions_per_sample"]


def test_active_rows_of_the_float_samples_are_both_odd_and_even():
    """The samples of the float tests reach the tuned W1 update's pair loop and its odd row out:
    the numbers of hidden units whose ReLU is on, step by step (numpy's), include both parities."""
    params = report.float_params(FLOAT_SHAPE, seed=4)
    X, y = float_samples()
    active = []
    for i in range(len(y)):
        (w1, b1, *_), _ = float_sgd_numpy(params, X[:i], y[:i], 0.05)
        active.append(int(np.count_nonzero(w1 @ X[i] + b1 > 0)))
    assert {n % 2 for n in active} == {0, 1}, active


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0"])
def test_tuned_float_step_is_float_sgd_to_the_bit(cpu):
    """float_sgd_tuned.c is float_sgd.c's maths rewritten, not approximated: at every level the
    same predictions and weights, bit for bit, in fewer instructions."""
    X, y = float_samples()
    params = report.float_params(FLOAT_SHAPE, seed=4)
    first = icount.run_float(icount.build_float_image(cpu, FLOAT_SHAPE), X, y, params, 0.05)
    for opt in report.TUNED_OPTS:
        tuned = icount.run_float(icount.build_float_image(cpu, FLOAT_SHAPE, opt, tuned=True), X, y, params, 0.05)
        assert report.same_floats(tuned, first), opt
        assert tuned["instructions_per_sample"] < first["instructions_per_sample"], opt
    first["params"][0][3, 7] = np.nextafter(first["params"][0][3, 7], np.float32(2))  # one ulp apart
    assert not report.same_floats(tuned, first)


def test_tuned_float_step_refuses_shapes_it_does_not_block():
    with pytest.raises(BEPError, match="fsgd_shape_check"):
        icount.build_float_image("cortex-m4", (40, 12, 5), tuned=True)  # 12 hidden rows: not blocks of eight


# ----------------------------------------------- the 256-128-10 workload (issue #12)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return report.Workload(tmp_path_factory.mktemp("demo"), samples=300)


def test_targets_of_the_worst_case_workload(demo):
    """256-128-10, int8, ~95 % of the samples triggering, E = 1.0, -Os: the published
    targets as deterministic instruction counts, every run bit-exact with numpy."""
    m4 = icount.build_image(demo.gen, "cortex-m4")
    m0 = icount.build_image(demo.gen, "cortex-m0")
    b100, b1 = demo.run(m4, 100, cycles=True), demo.run(m4, 1)
    m0_100 = demo.run(m0, 100)
    for r in (b100, b1, m0_100):
        assert r["bit_exact"]
        assert r["counters"]["triggered"] >= 0.9 * r["samples"]  # the worst case: almost every sample learns
    assert b100["instructions_per_sample"] <= 16_000  # issue 25's goals
    assert b1["instructions_per_sample"] <= 28_000
    assert m0_100["instructions_per_sample"] <= 37_000
    flt, tuned = (icount.run_float(icount.build_float_image("cortex-m4", demo.shape, tuned=tuned), demo.X_float[:5],
                                   demo.y[:5], report.float_params(demo.shape, demo.seed), report.FLOAT_LR)
                  for tuned in (False, True))
    assert flt["instructions_per_sample"] >= 17 * b100["instructions_per_sample"]
    assert tuned["instructions_per_sample"] <= 180_000  # the tuned step at -Os (its best level on the M4)
    assert tuned["instructions_per_sample"] >= 10 * b100["instructions_per_sample"]
    assert b100["cycles_per_sample"] > b100["instructions_per_sample"]


def test_breakdown_covers_the_measurement_build(demo):
    """The parts of the BEP_MEASURE build add up to its total, and each kernel lands in its
    part (forward, update, winner, reinforcement, repack)."""
    image = icount.build_image(demo.gen, "cortex-m4", extra_cflags=["-DBEP_MEASURE=1"])
    r = demo.run(image, 1)
    parts = report.breakdown(r["functions"]["train"], r["samples"])
    assert abs(sum(parts.values()) - r["instructions_per_sample"]) <= len(parts)  # rounding only
    for part in ("forward", "update", "winner", "reinforcement", "repack"):
        assert parts[part] > 0, part
    assert parts["backward"] == 0  # one hidden layer: nothing to propagate
    assert parts["forward"] > parts["other"]


needs_rv32 = pytest.mark.skipif(bool(icount.missing_tools(["rv32imac"])),
                                reason=f"icount needs {', '.join(icount.missing_tools(['rv32imac']))}")


@needs_rv32
@pytest.mark.parametrize("batch_size", [1, 100])
def test_rv32_weights_bit_exact_with_numpy(tiny, batch_size):
    """The runtime's portable C on RV32 (no Arm kernel compiled in), every instruction
    counted by the block hook seen by the per-instruction hook too (verify)."""
    result = tiny.run("rv32imac", batch_size, verify=True)
    assert result["counters"]["triggered"] > 0 and result["it_skipped"] == 0
    assert_same_as_numpy(result, tiny.reference(batch_size))


@needs_rv32
def test_main_json_rv32(capsys):
    """``--cpus rv32imac``: the key and figures of the Cortex-M ones, soft float, no cycle model."""
    assert icount.main(["--cpus", "rv32imac", "--samples", "40", "--batch-sizes", "1,100", "--errors", "1.0",
                        "--float-samples", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rv32imac"]
    assert d["bit_exact"] is True and d["float_tuned_same_as_float_sgd"] is True
    assert d["batch_1"] > d["batch_100"] > 0 and d["float_sgd"] > d["float_sgd_tuned"] > d["batch_100"]
    assert d["cycles_batch_100"] is None and d["float_sgd_cycles"] is None
    assert set(d["breakdown"]) == {"forward", "backward", "update", "winner", "reinforcement", "repack", "other"}


def test_main_refuses_an_unknown_cpu(capsys):
    with pytest.raises(SystemExit) as e:
        icount.main(["--cpus", "rv64gc"])
    assert e.value.code == 2 and "--cpus" in capsys.readouterr().err


def test_main_json(capsys):
    """The command end to end, shrunk: one core, 40 samples; the last line is the JSON."""
    assert icount.main(["--cpus", "cortex-m4", "--samples", "40", "--batch-sizes", "1,100", "--errors", "1.0",
                        "--float-samples", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    d = json.loads(out[-1])["cortex-m4"]
    assert d["bit_exact"] is True
    assert d["batch_1"] > d["batch_100"] > 0 and d["float_sgd"] > d["float_sgd_tuned"] > d["batch_100"]
    assert d["float_tuned_same_as_float_sgd"] is True
    assert d["float_sgd_tuned_opt"] in report.TUNED_OPTS and d["float_sgd_tuned_cycles_opt"] in report.TUNED_OPTS
    assert abs(d["float_tuned_over_batch_100"] - d["float_sgd_tuned"] / d["batch_100"]) < 0.01  # batch_100 rounded
    assert d["cycles_batch_100"] > d["batch_100"]
    assert d["float_sgd_tuned_cycles"] > d["float_sgd_tuned"] and d["float_sgd_tuned_cycles"] < d["float_sgd_cycles"]
    # the whole state: 1 B hidden weight + 2 sign bits per weight, plus per-neuron buffers and header
    # (test_verify bounds the per-synapse part at 1.25 B)
    assert d["float_bytes_per_weight"] > 4 > 1.25 < d["bytes_per_weight"] < 1.3
    assert set(d["breakdown"]) == {"forward", "backward", "update", "winner", "reinforcement", "repack", "other"}


# -------------------------------------------------------------------- errors


def test_bad_arguments(tiny, tmp_path):
    with pytest.raises(BEPError, match="cpu"):
        icount.build_image(tiny.gen, "cortex-a53")
    with pytest.raises(BEPError, match="opt"):
        icount.build_image(tiny.gen, "cortex-m4", "-Ofast")
    with pytest.raises(BEPError, match="not found"):
        icount.build_image(dataclasses.replace(tiny.gen, directory=tmp_path), "cortex-m4")  # its files are gone
    image = tiny.image("cortex-m4")
    with pytest.raises(BEPError, match="words"):
        image.run(tiny.X[:, :1], tiny.y, 10, tiny.gamma, tiny.q(1.0), tiny.seed)
    with pytest.raises(BEPError, match="labels"):
        image.run(tiny.X, tiny.y[:5], 10, tiny.gamma, tiny.q(1.0), tiny.seed)
    with pytest.raises(BEPError, match="per layer"):
        image.run(tiny.X, tiny.y, 10, tiny.gamma * 2, tiny.q(1.0), tiny.seed)


def test_image_is_the_strict_build_of_the_training_part(tiny, tmp_path):
    """The image compiles exactly the training part's sources (codegen's file lists) with
    toolchain's strict flags: a warning the other builds refuse fails the measurement too."""
    image = icount.build_image(tiny.gen, "cortex-m4", build_dir=tmp_path / "ok")
    assert image.plan is tiny.gen.plan and "-Werror" in image.cflags
    objects = {p.stem for p in (tmp_path / "ok").glob("*.o")}
    assert objects == {p.stem for p in tiny.gen.sources(("training",))} | {"icount_main"}
    warned = tmp_path / "warned"
    shutil.copytree(tiny.gen.directory, warned)
    kernels = warned / "src" / "bep_kernels.c"
    kernels.write_text(kernels.read_text() + "static int bep_unused_variable;\n")  # -Wunused-variable
    with pytest.raises(BEPError, match="bep_unused_variable"):
        icount.build_image(dataclasses.replace(tiny.gen, directory=warned), "cortex-m4")


def test_inference_only_code_is_refused(tiny, tmp_path):
    from bep_mcu.cgen.codegen import generate

    with pytest.raises(BEPError, match="inference-only"):
        icount.build_image(generate(tiny.model, tmp_path / "c", "tiny", inference_only=True), "cortex-m4")


def test_runtime_refusal_is_reported(tiny):
    """The generated code's own checks surface as a BEPError naming the call."""
    image = tiny.image("cortex-m0")
    with pytest.raises(BEPError, match="set_epoch"):
        image.run(tiny.X[:10], tiny.y[:10], 10, [33], tiny.q(1.0), tiny.seed)  # γ above the width of 32
    bad = tiny.y[:10].copy()
    bad[3] = 9  # not a class
    with pytest.raises(BEPError, match="train_batch"):
        image.run(tiny.X[:10], bad, 10, tiny.gamma, tiny.q(1.0), tiny.seed)


@pytest.mark.parametrize("args", [["--batch-sizes", "٣"], ["--batch-sizes", "1,0"], ["--batch-sizes", ","],
                                  ["--errors", "０.5"], ["--errors", "nan"], ["--samples", "３00"]])
def test_numeric_options_are_ascii_and_in_range(args, capsys):
    """Refused before anything is built (int() and float() would read '٣' as 3)."""
    with pytest.raises(SystemExit) as exit_info:
        report.main(args)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert args[0] in last and "Traceback" not in last
