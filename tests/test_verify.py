"""The generated C (host twin) against the numpy engine: full state after every batch.

Every case trains ≥ 5 full epochs from a trained model with reinforcement on (Q from
the training error, 1.0 in the first epoch) and patience 1, so γ grows during the run.
"""

import json
import shutil
import subprocess

import numpy as np
import pytest

from bep_mcu.codegen import RUNTIME_ABI, generate
from bep_mcu.data import load_dataset
from bep_mcu.estimator import BEPClassifier
from bep_mcu.layout import plan_state
from bep_mcu.status import STATUS
from bep_mcu.twin import Twin
from bep_mcu.verify import build_twin, run_verify

PROTO = "prototypes:classes=5,features=150,samples=1200"


def train_model(tmp_path_factory, name, dataset, **kwargs):
    path = tmp_path_factory.mktemp("models") / f"{name}.npz"
    data = load_dataset(dataset)
    clf = BEPClassifier(epochs=2, **kwargs).fit(data.X_train, data.y_train)
    clf.save(path)
    return str(path), data


def verify_case(model_path, data, batch_size, epochs=5):
    clf = BEPClassifier.load(model_path)
    twin = build_twin(model_path, clf, "net", None)
    X, y = clf.encode(data.X_train), clf.encode_labels(data.y_train)
    return run_verify(clf, twin, X, y, epochs, batch_size, grow_every=2)


@pytest.mark.parametrize("hidden,bits", [((64,), 8), ((48, 40), 8), ((40, 33, 20), 8), ((48, 40), 16), ((33,), 16)])
@pytest.mark.parametrize("batch_size", [1, 100])
def test_mlp_bit_exact(tmp_path_factory, hidden, bits, batch_size):
    model, data = train_model(tmp_path_factory, "mlp", PROTO, hidden=hidden, hidden_bits=bits, seed=3)
    result = verify_case(model, data, batch_size)
    assert result.bit_exact, result.first_divergence
    assert result.epochs == 5 and result.batches == 5 * -(-len(data.y_train) // batch_size)
    assert result.reinforced_epochs == 5
    assert len({tuple(g) for g in result.gammas}) > 1, "γ never changed"


def test_rnn_gunpoint_bit_exact(tmp_path_factory):
    model, data = train_model(tmp_path_factory, "rnn", "ucr:GunPoint", model="rnn", hidden=(64,), seed=1)
    result = verify_case(model, data, batch_size=5, epochs=6)
    assert result.bit_exact, result.first_divergence
    assert len({tuple(g) for g in result.gammas}) > 1


def test_rnn_int16_batch1_bit_exact(tmp_path_factory):
    model, data = train_model(tmp_path_factory, "rnn16", "ucr:ItalyPowerDemand", model="rnn", hidden=(40,),
                              hidden_bits=16, window=5)
    result = verify_case(model, data, batch_size=1)
    assert result.bit_exact, result.first_divergence


def _planted(model_path, tmp_path, old: str, new: str):
    gen_dir = tmp_path / "gen"
    generate(model_path, str(gen_dir), "net")
    runtime = gen_dir / "bep_runtime.c"
    text = runtime.read_text()
    assert text.count(old) == 1
    runtime.write_text(text.replace(old, new))
    return gen_dir


def test_planted_one_bit_change_is_reported(tmp_path_factory, tmp_path):
    model, data = train_model(tmp_path_factory, "plant", PROTO, hidden=(48, 40), seed=5)
    # One bit of one constant: the mask of the reinforcement draw count (0xFFFF → 0x7FFF).
    gen_dir = _planted(model, tmp_path, "(bep_mix32(key) & 0xFFFFu)", "(bep_mix32(key) & 0x7FFFu)")
    out = subprocess.run(["bep-mcu", "verify", model, "--dataset", PROTO, "--epochs", "2", "--c-dir", str(gen_dir),
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bit_exact"] is False
    div = result["first_divergence"]
    # Reproduce independently: the numpy state after `batch` batches vs the planted C.
    clf = BEPClassifier.load(model)
    twin = build_twin(model, clf, "net", str(gen_dir))
    honest = build_twin(model, clf, "net", None)
    X, y = clf.encode(data.X_train), clf.encode_labels(data.y_train)
    from bep_mcu.estimator import epoch_order
    from bep_mcu.twin import pack_inputs

    Xp = pack_inputs(X, clf.spec_)
    twin.init(clf.network.seed, clf.network.batch_counter)
    honest.init(clf.network.seed, clf.network.batch_counter)
    from bep_mcu.schedule import EpochSchedule

    sched = EpochSchedule(clf.spec_, list(clf.gamma_), clf.hp.p_r, 1)
    twin.set_epoch(sched.gamma, sched.q())
    honest.set_epoch(sched.gamma, sched.q())
    order = epoch_order(clf.network.seed, 0, len(y))
    bs = clf.batch_size_
    for k in range(div["batch"] + 1):
        b = order[k * bs:(k + 1) * bs]
        twin.train_batch(Xp[b], y[b])
        honest.train_batch(Xp[b], y[b])
        same = all((a == c).all() for a, c in zip(twin.hidden_weights(), honest.hidden_weights()))
        assert same == (k < div["batch"]), f"batch {k}"
    layer, row, col = div["layer"], div["row"], div["column"]
    assert twin.hidden_weights()[layer][row, col] == div["c"]
    assert honest.hidden_weights()[layer][row, col] == div["numpy"]
    earlier = np.argwhere(twin.hidden_weights()[layer] != honest.hidden_weights()[layer])[0]
    assert tuple(earlier) == (row, col)


def test_generate_is_reproducible_and_self_contained(tmp_path_factory, tmp_path):
    model, _ = train_model(tmp_path_factory, "gen", PROTO, hidden=(40,))
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        subprocess.run(["bep-mcu", "generate", model, "--out", str(d), "--name", "kws"], check=True,
                       capture_output=True)
    files = sorted(p.name for p in a.iterdir())
    assert files == ["README.md", "bep_kws.c", "bep_kws.h", "bep_link.c", "bep_link.h", "bep_proto.h", "bep_runtime.c",
                     "bep_runtime.h", "bep_status.c", "bep_status.h"]
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    header = (a / "bep_kws.h").read_text()
    assert "DO NOT EDIT" in header and "BEP_KWS_STATE_BYTES" in header
    # compiles as is, with nothing but the directory on the include path
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-c", str(a / "bep_kws.c"), "-I", str(a), "-o",
                    str(tmp_path / "k.o")], check=True)


def test_runtime_abi_and_status_list_are_one_source_of_truth(tmp_path_factory, tmp_path):
    model, _ = train_model(tmp_path_factory, "abi", PROTO, hidden=(40,))
    gen = generate(model, str(tmp_path / "g"), "net")
    runtime_h = (gen.directory / "bep_runtime.h").read_text()
    assert f"#define BEP_RUNTIME_ABI {RUNTIME_ABI}\n" in runtime_h
    status_h = (gen.directory / "bep_status.h").read_text()
    status_c = (gen.directory / "bep_status.c").read_text()
    for name, value, meaning in STATUS:
        assert f"BEP_{name} = {value}," in status_h
        assert f'"BEP_{name}: {meaning}"' in status_c
    clf = BEPClassifier.load(model)
    twin = Twin(gen, clf.spec_)
    assert twin.state_size() == plan_state(clf.spec_, clf.params_.gate).state_bytes
    for value in (v for _, v, _ in STATUS):
        assert twin.ffi.string(twin.lib.bep_status_str(value)).decode().startswith("BEP_")


def test_init_refuses_short_buffer_and_foreign_state(tmp_path_factory, tmp_path):
    model, _ = train_model(tmp_path_factory, "short", PROTO, hidden=(40,))
    gen = generate(model, str(tmp_path / "g"), "net")
    clf = BEPClassifier.load(model)
    twin = Twin(gen, clf.spec_)
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
    gamma = np.array([0], dtype=np.uint16)
    q = np.array([0], dtype=np.uint32)
    assert lib.bep_net_set_epoch(ptr, buf.nbytes, ffi.from_buffer("uint16_t[]", gamma), 1,
                                 ffi.from_buffer("uint32_t[]", q), 1) == codes["ERR_ARG"]


def test_training_state_of_256_128_10_int8_fits_1_25_bytes_per_synapse():
    from bep_mcu.spec import NetSpec

    for hidden in ((128,), (128, 64)):
        spec = NetSpec("mlp", 256, hidden, 10, 8)
        plan = plan_state(spec, (0,) * len(hidden))
        kinds = plan.bytes_by_kind()
        assert kinds["hidden_weights"] + kinds["packed_weights"] <= 1.25 * spec.synapses
    plan = plan_state(NetSpec("mlp", 256, (128,), 10, 8), (0,))
    assert plan.bytes_by_kind() == {"header": 56, "hidden_weights": 32768, "packed_weights": 4096,
                                    "activations": plan.state_bytes - 56 - 32768 - 4096}
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


@pytest.mark.parametrize("flags", [
    ["-DBEP_POPCOUNT_TABLE=1", "-DBEP_MULHI_PORTABLE=1", "-DBEP_UPDATE8=2"],  # Cortex-M0/M3 without assembly
    ["-UBEP_POPCOUNT_BUILTIN"],  # the paired SWAR dot, SWAR64 row updates
    ["-UBEP_POPCOUNT_BUILTIN", "-DBEP_UPDATE8=1"],  # the one-weight-at-a-time reference update
], ids=["table-swar32-mulhi", "paired-swar", "reference-update"])
def test_alternative_kernels_are_bit_exact(tmp_path_factory, tmp_path, flags):
    """Every portable kernel variant compiled on the host trains the same weights as numpy:
    the table and paired-SWAR dots, the 16-bit multiply-high of ARMv6-M, and the SWAR32,
    SWAR64 and one-weight-at-a-time int8 row updates (their ARM-only siblings run in the
    emulator, tests/test_icount.py)."""
    model, data = train_model(tmp_path_factory, "alt", PROTO, hidden=(48, 40), seed=2)
    clf = BEPClassifier.load(model)
    gen = generate(model, str(tmp_path / "g"), "net")
    twin = Twin(gen, clf.spec_, extra_cflags=flags)
    result = run_verify(clf, twin, clf.encode(data.X_train), clf.encode_labels(data.y_train), 2, 10, grow_every=1)
    assert result.bit_exact, result.first_divergence


def test_portable_multiply_high_on_a_layer_of_more_than_65535_weights(tmp_path_factory, tmp_path):
    """ARMv6-M's index (d * N) >> 32 takes four 16 x 16 products once N >= 2^16 (two
    below): a 300 x 256 layer (76,800 weights) trains the same as numpy with it."""
    model, data = train_model(tmp_path_factory, "wide", "prototypes:classes=5,features=300,samples=600",
                              hidden=(256,), seed=4)
    clf = BEPClassifier.load(model)
    assert clf.spec_.layer_shapes()[0][0] * clf.spec_.layer_shapes()[0][1] >= 65536
    gen = generate(model, str(tmp_path / "g"), "net")
    twin = Twin(gen, clf.spec_, extra_cflags=["-DBEP_MULHI_PORTABLE=1", "-UBEP_POPCOUNT_BUILTIN"])
    result = run_verify(clf, twin, clf.encode(data.X_train), clf.encode_labels(data.y_train), 2, 1, grow_every=1)
    assert result.bit_exact, result.first_divergence
