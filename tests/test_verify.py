"""The generated C (host twin) against the numpy engine: full state after every batch.

Every case trains ≥ 5 full epochs from a trained model with reinforcement on (Q from
the training error, 1.0 in the first epoch) and patience 1, so γ grows during the run.
"""

import json
import shutil
import subprocess

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen import abi
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.layout import plan_model, plan_state
from bep_mcu.cgen.status import STATUS
from bep_mcu.data.datasets import load_dataset
from bep_mcu.training import Plan, encoded, run_epochs
from bep_mcu.twin.cffi_twin import Twin, TwinTrainer
from bep_mcu.twin.verify import build_twin, summary, verify

from .conftest import fit, saved

PROTO = "prototypes:classes=5,features=150,samples=1200"


def train_model(tmp_path_factory, name, dataset, **kwargs):
    data = load_dataset(dataset)
    model = fit(data.X_train, data.y_train, epochs=2, **kwargs)
    return str(saved(model, tmp_path_factory.mktemp("models") / f"{name}.npz")), data


def verify_case(model_path, data, batch_size, epochs=5, defines=None):
    model = modelio.load(model_path)
    report = verify(model, build_twin(model, defines=defines), encoded(model, data.X_train, data.y_train), epochs,
                    batch_size, grow_every=2)
    return summary(report, batch_size)


@pytest.mark.parametrize("hidden,bits", [((64,), 8), ((48, 40), 8), ((40, 33, 20), 8), ((48, 40), 16), ((33,), 16)])
@pytest.mark.parametrize("batch_size", [1, 100])
def test_mlp_bit_exact(tmp_path_factory, hidden, bits, batch_size):
    model, data = train_model(tmp_path_factory, "mlp", PROTO, hidden=hidden, hidden_bits=bits, seed=3)
    result = verify_case(model, data, batch_size)
    assert result["bit_exact"], result["first_divergence"]
    assert result["epochs"] == 5 and result["batches"] == 5 * -(-len(data.y_train) // batch_size)
    assert result["reinforced_epochs"] == 5
    assert len({tuple(g) for g in result["gammas"]}) > 1, "γ never changed"


def test_rnn_gunpoint_bit_exact(tmp_path_factory):
    model, data = train_model(tmp_path_factory, "rnn", "ucr:GunPoint", model="rnn", hidden=(64,), seed=1)
    result = verify_case(model, data, batch_size=5, epochs=6)
    assert result["bit_exact"], result["first_divergence"]
    assert len({tuple(g) for g in result["gammas"]}) > 1


def test_rnn_int16_batch1_bit_exact(tmp_path_factory):
    model, data = train_model(tmp_path_factory, "rnn16", "ucr:ItalyPowerDemand", model="rnn", hidden=(40,),
                              hidden_bits=16, window=5)
    result = verify_case(model, data, batch_size=1)
    assert result["bit_exact"], result["first_divergence"]


@pytest.mark.parametrize("batch_size", [1, 25])
def test_last_layer_only_bit_exact(tmp_path_factory, batch_size):
    """BEP on the last hidden layer only (γ 0 on the others) of 64-32-16-10: the C twin equals numpy after
    every batch of 4 epochs (γ growing, reinforcement on), the first layer untouched, the last learning."""
    path, data = train_model(tmp_path_factory, "last", "digits", hidden=(32, 16), seed=2)
    model = modelio.load(path)
    report = verify(model, build_twin(model), encoded(model, data.X_train, data.y_train), 4, batch_size,
                    grow_every=2, layers="last")
    result = summary(report, batch_size)
    assert result["bit_exact"], result["first_divergence"]
    assert result["batches"] == 4 * -(-len(data.y_train) // batch_size) and result["reinforced_epochs"] == 4
    assert len({tuple(g) for g in result["gammas"]}) > 1, "γ never changed"
    for trainer in report.trainers:
        first, last = trainer.hidden_weights()
        assert np.array_equal(first, model.hidden[0]) and not np.array_equal(last, model.hidden[1]), trainer.name


def _planted(model, tmp_path, old: str, new: str):
    gen = generate(model, tmp_path / "gen", "net")
    runtime = gen.src / "bep_runtime.c"
    text = runtime.read_text()
    assert text.count(old) == 1
    runtime.write_text(text.replace(old, new))
    return gen.directory


def test_planted_one_bit_change_is_reported(tmp_path_factory, tmp_path):
    path, data = train_model(tmp_path_factory, "plant", PROTO, hidden=(48, 40), seed=5)
    model = modelio.load(path)
    # One bit of one constant: the mask of the reinforcement draw count (0xFFFF → 0x7FFF).
    gen_dir = _planted(model, tmp_path, "(bep_mix32(key) & 0xFFFFu)", "(bep_mix32(key) & 0x7FFFu)")
    out = subprocess.run(["bep-mcu", "verify", path, "--dataset", PROTO, "--epochs", "2", "--c-dir", str(gen_dir),
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bit_exact"] is False
    div = result["first_divergence"]
    assert div["trainer"] == "c-twin"
    # Reproduce independently: the honest C against the planted C, through the same driver.
    t = model.training
    honest = TwinTrainer(build_twin(model), t.seed, t.batch_counter)
    honest.name = "honest"
    planted = TwinTrainer(build_twin(model, c_dir=str(gen_dir)), t.seed, t.batch_counter)
    plan = Plan.continuing(model, 2, patience=1, stall_signal="training")
    report = run_epochs([honest, planted], encoded(model, data.X_train, data.y_train), plan)
    again = report.divergence.as_dict()
    assert (again["batch"], again["layer"], again["row"], again["column"]) == \
        (div["batch"], div["layer"], div["row"], div["column"])
    assert (again["reference"], again["other"]) == (div["reference"], div["other"])


def test_generate_is_reproducible_and_self_contained(tmp_path_factory, tmp_path):
    model, _ = train_model(tmp_path_factory, "gen", PROTO, hidden=(40,))
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        subprocess.run(["bep-mcu", "generate", model, "--out", str(d), "--name", "kws"], check=True,
                       capture_output=True)
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == ["CMakeLists.txt", "README.md", "examples/kws_train/bep_kws_trainer.c",
                     "examples/kws_train/bep_kws_trainer.h", "examples/kws_train/kws_train.ino", "library.json",
                     "library.properties", "src/bep_calibrate.c", "src/bep_calibrate.h", "src/bep_encode.c",
                     "src/bep_encode.h", "src/bep_kernels.c",
                     "src/bep_kernels_arm.h", "src/bep_kws.c", "src/bep_kws.h", "src/bep_kws_board.c",
                     "src/bep_kws_board.h", "src/bep_link.c", "src/bep_link.h", "src/bep_proto.h", "src/bep_runtime.c",
                     "src/bep_runtime.h", "src/bep_runtime_internal.h", "src/bep_standalone.c",
                     "src/bep_standalone.h", "src/bep_status.c", "src/bep_status.h", "src/bep_store.c",
                     "src/bep_store.h", "zephyr/Kconfig", "zephyr/module.yml"]
    assert sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()) == files
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    header = (a / "src" / "bep_kws.h").read_text()
    assert "DO NOT EDIT" in header and "BEP_KWS_STATE_BYTES" in header
    # compiles as is, with nothing but src/ on the include path
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-c", str(a / "src" / "bep_kws.c"), "-I", str(a / "src"),
                    "-o", str(tmp_path / "k.o")], check=True)


def test_runtime_abi_and_status_list_are_one_source_of_truth(tmp_path_factory, tmp_path):
    path, _ = train_model(tmp_path_factory, "abi", PROTO, hidden=(40,))
    model = modelio.load(path)
    gen = generate(model, tmp_path / "g", "net")
    # The generated header refuses to compile against a runtime of another ABI (nanopb's
    # PB_PROTO_HEADER_VERSION check): bump the shipped runtime's ABI in a copy and build.
    assert f"#if BEP_RUNTIME_ABI != {abi.RUNTIME_ABI}" in (gen.src / "bep_net.h").read_text()
    other = tmp_path / "other-abi"
    shutil.copytree(gen.src, other)
    runtime_h = (other / "bep_runtime.h").read_text()
    bumped = runtime_h.replace(f"#define BEP_RUNTIME_ABI {abi.RUNTIME_ABI}\n", f"#define BEP_RUNTIME_ABI {abi.RUNTIME_ABI + 1}\n")
    assert bumped != runtime_h
    (other / "bep_runtime.h").write_text(bumped)
    cc = shutil.which("cc") or shutil.which("gcc")
    built = subprocess.run([cc, "-std=c99", "-c", str(other / "bep_net.c"), "-I", str(other), "-o", str(tmp_path / "n.o")],
                           capture_output=True, text=True)
    assert built.returncode != 0 and "regenerate" in built.stderr
    status_h = (gen.src / "bep_status.h").read_text()
    status_c = (gen.src / "bep_status.c").read_text()
    for name, value, meaning in STATUS:
        assert f"BEP_{name} = {value}," in status_h
        assert f'"BEP_{name}: {meaning}"' in status_c
    twin = Twin(gen, model.spec)
    assert twin.state_size() == plan_model(model).state_bytes
    for value in (v for _, v, _ in STATUS):
        assert twin.ffi.string(twin.lib.bep_status_str(value)).decode().startswith("BEP_")


def test_init_refuses_short_buffer_and_foreign_state(tmp_path_factory, tmp_path):
    path, _ = train_model(tmp_path_factory, "short", PROTO, hidden=(40,))
    model = modelio.load(path)
    twin = Twin(generate(model, tmp_path / "g", "net"), model.spec)
    gen = twin.gen
    lib, ffi = twin.lib, twin.ffi
    codes = {name: value for name, value, _ in STATUS}
    buf = np.zeros(twin.state.size, dtype=np.uint32)
    ptr = ffi.from_buffer("uint32_t[]", buf)
    assert lib.bep_net_init(ptr, buf.nbytes - 4, 1, 0) == codes["ERR_SIZE"]
    assert lib.bep_net_end_batch(ptr, buf.nbytes) == codes["ERR_STATE"]  # never initialised
    assert lib.bep_net_init(ffi.NULL, buf.nbytes, 1, 0) == codes["ERR_NULL"]
    assert lib.bep_net_init(ptr, buf.nbytes, 1, 0) == codes["OK"]
    label = ffi.new("uint16_t *")
    x = np.zeros(gen.plan.input_words, dtype=np.uint32)
    assert lib.bep_net_train_sample(ptr, buf.nbytes, ffi.from_buffer("uint32_t[]", x), x.size, 99, label) == \
        codes["ERR_LABEL"]
    assert lib.bep_net_train_sample(ptr, buf.nbytes, ffi.from_buffer("uint32_t[]", x), x.size - 1, 0, label) == \
        codes["ERR_SIZE"]
    gamma = np.array([41], dtype=np.uint16)  # wider than the layer (0 is a frozen layer)
    q = np.array([0], dtype=np.uint32)
    assert lib.bep_net_set_epoch(ptr, buf.nbytes, ffi.from_buffer("uint16_t[]", gamma), 1,
                                 ffi.from_buffer("uint32_t[]", q), 1) == codes["ERR_ARG"]


@pytest.mark.parametrize("dataset,settings", [("digits", dict(hidden=(48, 30))),
                                              ("ucr:GunPoint", dict(model="rnn", hidden=(40,)))])
def test_scores_equal_the_numpy_logits(tmp_path_factory, tmp_path, dataset, settings):
    """bep_<net>_scores gives the logits <P_c, a_L> numpy's forward pass computes, on real
    data (a trained model, then after a batch trained on both), and bep_<net>_infer's
    prediction is their first largest."""
    path, data = train_model(tmp_path_factory, "scores", dataset, seed=2, **settings)
    model = modelio.load(path)
    twin = Twin(generate(model, tmp_path / "g", "net"), model.spec)
    twin.init(model.training.seed, model.training.batch_counter)
    numpy_net = model.network()
    test, train = encoded(model, data.X_test, data.y_test), encoded(model, data.X_train, data.y_train)
    for trained in (False, True):
        if trained:  # one batch with the model's γ and Q = 1.0 on both
            gamma, q = numpy_net.gamma, [1 << 16] * model.spec.n_layers
            numpy_net.set_epoch_params(gamma, q)
            twin.set_epoch(gamma, q)
            batch = train.take(np.arange(50))
            assert (twin.train_batch(batch.packed, batch.y) == numpy_net.train_batch(batch.x, batch.y).predictions).all()
        scores = twin.scores(test.packed)
        np.testing.assert_array_equal(scores, numpy_net.logits(test.x))
        np.testing.assert_array_equal(twin.predict(test.packed), scores.argmax(axis=1))
        assert len(np.unique(scores)) > 2  # not a degenerate network
    assert twin.counters().updates > 0  # the batch changed the weights the scores come from


def test_scores_refuse_a_short_buffer_and_write_nothing(tmp_path_factory, tmp_path):
    path, _ = train_model(tmp_path_factory, "scores-short", PROTO, hidden=(40,))
    model = modelio.load(path)
    twin = Twin(generate(model, tmp_path / "g", "net"), model.spec)
    twin.init(model.training.seed)
    codes = {name: value for name, value, _ in STATUS}
    ffi, state = twin.ffi, twin.ffi.from_buffer("uint32_t[]", twin.state)
    x = ffi.from_buffer("uint32_t[]", np.zeros(twin.gen.plan.input_words, dtype=np.uint32))
    n = model.spec.n_classes
    scores = np.full(n, 0x5A5A5A5A, dtype=np.int32)
    before = twin.state.copy()
    out = ffi.from_buffer("int32_t[]", scores)
    words = twin.gen.plan.input_words
    assert twin.lib.bep_net_scores(state, twin.state.nbytes, x, words, out, n - 1) == codes["ERR_SIZE"]
    assert twin.lib.bep_net_scores(state, twin.state.nbytes, x, words - 1, out, n) == codes["ERR_SIZE"]
    assert twin.lib.bep_net_scores(state, twin.state.nbytes, x, words, ffi.NULL, n) == codes["ERR_NULL"]
    assert twin.lib.bep_net_scores(state, twin.state.nbytes - 4, x, words, out, n) == codes["ERR_SIZE"]
    assert (scores == 0x5A5A5A5A).all() and (twin.state == before).all()
    assert twin.lib.bep_net_scores(state, twin.state.nbytes, x, words, out, n) == codes["OK"]
    assert (np.abs(scores) <= model.spec.hidden[-1]).all()


def test_training_state_of_256_128_10_int8_fits_1_25_bytes_per_synapse():
    from bep_mcu.engine.spec import NetSpec

    for hidden in ((128,), (128, 64)):
        spec = NetSpec("mlp", 256, hidden, 10, 8)
        plan = plan_state(spec, (0,) * len(hidden))
        kinds = plan.bytes_by_kind()
        assert kinds["hidden_weights"] + kinds["packed_weights"] <= 1.25 * spec.synapses
    plan = plan_state(NetSpec("mlp", 256, (128,), 10, 8), (0,))
    # one sign bit per synapse in rows and one in columns (the column-form forward pass): 1.25 exactly
    assert plan.bytes_by_kind() == {"header": 60 + 44, "hidden_weights": 32768, "packed_weights": 8192,
                                    "activations": plan.state_bytes - 104 - 32768 - 8192, "calibration": 0}
    assert plan.bytes_by_kind()["activations"] < 1024


@pytest.mark.parametrize("args,words", [
    (["--name", "int"], "C keyword"),
    (["--name", "3net"], "not a valid C identifier"),
    (["--name", "my-net"], "not a valid C identifier"),
    (["--hidden-bits", "12"], "8 or 16"),
])
def test_generate_bad_options(tmp_path_factory, tmp_path, args, words):
    model, _ = train_model(tmp_path_factory, "bad", PROTO, hidden=(40,))
    out = subprocess.run(["bep-mcu", "generate", model, "--out", str(tmp_path / "g"), *args], capture_output=True,
                         text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert not (tmp_path / "g").exists()


def test_generate_missing_and_corrupted_model(tmp_path):
    out = subprocess.run(["bep-mcu", "generate", str(tmp_path / "none.npz"), "--out", str(tmp_path / "g")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "cannot read model" in out.stderr
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    out = subprocess.run(["bep-mcu", "generate", str(bad), "--out", str(tmp_path / "g")], capture_output=True,
                         text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("defines", [
    {"BEP_POPCOUNT_TABLE": "1", "BEP_MULHI_PORTABLE": "1", "BEP_UPDATE8": "2"},  # Cortex-M0/M3 without assembly
    {"BEP_POPCOUNT_BUILTIN": "0"},  # the paired SWAR dot, SWAR64 row updates
    {"BEP_POPCOUNT_BUILTIN": "0", "BEP_UPDATE8": "1"},  # the one-weight-at-a-time reference update
], ids=["table-swar32-mulhi", "paired-swar", "reference-update"])
def test_alternative_kernels_are_bit_exact(tmp_path_factory, tmp_path, defines):
    """Every portable kernel variant compiled on the host trains the same weights as numpy:
    the table and paired-SWAR dots, the 16-bit multiply-high of ARMv6-M, and the SWAR32,
    SWAR64 and one-weight-at-a-time int8 row updates (their ARM-only siblings run in the
    emulator, tests/test_icount.py)."""
    path, data = train_model(tmp_path_factory, "alt", PROTO, hidden=(48, 40), seed=2)
    model = modelio.load(path)
    report = verify(model, build_twin(model, defines=defines), encoded(model, data.X_train, data.y_train), 2, 10,
                    grow_every=1)
    assert report.bit_exact, report.divergence


def test_portable_multiply_high_on_a_layer_of_more_than_65535_weights(tmp_path_factory, tmp_path):
    """ARMv6-M's index (d * N) >> 32 takes four 16 x 16 products once N >= 2^16 (two
    below): a 300 x 256 layer (76,800 weights) trains the same as numpy with it."""
    path, data = train_model(tmp_path_factory, "wide", "prototypes:classes=5,features=300,samples=600",
                             hidden=(256,), seed=4)
    model = modelio.load(path)
    rows, cols = model.spec.layer_shapes()[0]
    assert rows * cols >= 65536
    twin = build_twin(model, defines={"BEP_MULHI_PORTABLE": "1", "BEP_POPCOUNT_BUILTIN": "0"})
    report = verify(model, twin, encoded(model, data.X_train, data.y_train), 2, 1, grow_every=1)
    assert report.bit_exact, report.divergence
