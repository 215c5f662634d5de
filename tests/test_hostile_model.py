"""A hostile model file must never run code, exhaust memory or reach generated C.

Every metadata field and every array of a real model is replaced, one at a time, by
C source text, a float, a bool, a negative number, 2^80, null, a list, an object,
a wrong shape or a wrong dtype, and the checksum is recomputed (anyone can: it
detects damage, not tampering). Each forged file then goes through ``info``,
``eval``, ``generate`` (training and inference-only code), ``verify``, ``golden`` and
``firmware`` (the training image and a standalone one): a refused file must
give exit status 2 and exactly one ``error:`` line naming the field; an accepted one
(free text in notes, numbers in the history) must run, and the injected text must
appear in no generated file. The memory bombs (a member inflating to GiBs, an
``.npy`` header claiming 10^12 elements) are refused early and in bounded memory,
and a hypothesis fuzz of the loader runs under an address-space limit.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bep_mcu import modelio
from bep_mcu.data.datasets import load_dataset

from .conftest import HAVE_ARM, assert_one_error_line, fit, invoke, saved
from .test_modelio import forge, members, npy_bytes, write_members

DATA = "prototypes:classes=3,features=40,samples=300"
PAYLOAD = '16 }; extern int system(const char *); __attribute__((constructor)) static void f(void)' \
          '{ system("touch PWNED"); } static int g[] = { 1'
MARK = b"PWNED"
BAD_VALUES = {"c-text": PAYLOAD, "float": 16.7, "bool": True, "negative": -1, "huge": 2 ** 80, "null": None,
              "list": [], "object": {}}


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    d = load_dataset(DATA)
    model = fit(d.X_train, d.y_train, hidden=(8,), epochs=1, seed=3)
    return saved(model, tmp_path_factory.mktemp("hostile") / "model.npz")


def meta_of(path: Path) -> dict:
    return json.loads(np.load(io.BytesIO(members(path)["__meta__.npy"])).tobytes())


def leaves(doc, prefix=()):
    """Paths of every value in the metadata (lists: the list and its first element)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from leaves(value, (*prefix, key))
    elif isinstance(doc, list) and doc:
        yield (*prefix, 0)
        yield from leaves(doc[0], (*prefix, 0))


def set_path(doc, path, value):
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def run_commands(model: Path, work: Path, all_commands: bool) -> list[tuple[str, object]]:
    """(command, result) for every command on ``model``; outputs go under ``work``."""
    out = []
    runs = [("info", [model]), ("eval", [model, "--dataset", DATA]),
            ("generate", [model, "--out", work / "gen"]),
            ("generate", [model, "--out", work / "inf", "--inference-only", "--dataset", DATA])]
    if all_commands:
        runs += [("verify", [model, "--dataset", DATA, "--epochs", "1"]),
                 ("golden", [model, "--dataset", DATA, "--out", work / "g.bin", "--batches", "2"])]
        if HAVE_ARM:
            runs.append(("firmware", [model, "--board", "microbit", "--out", work / "fw"]))
            runs.append(("firmware", [model, "--board", "microbit", "--standalone-data", DATA, "--epochs", "1",
                                      "--out", work / "sa"]))
    for command, args in runs:
        out.append((command, invoke(command, *args)))
    return out


def assert_no_injection(work: Path) -> None:
    for path in work.rglob("*"):
        if path.is_file():
            assert MARK not in path.read_bytes(), f"injected text reached {path}"
    assert not Path("PWNED").exists() and not (work / "PWNED").exists()


def check_case(forged: Path, work: Path, what: str, text_payload: bool) -> str:
    """Run the commands on one forged file; returns 'refused' or 'accepted'."""
    first = invoke("info", forged)
    if first.exit_code == 0:
        results = run_commands(forged, work, all_commands=text_payload)
        for command, result in results:
            assert result.exit_code in (0, 1) and result.exception is None or isinstance(result.exception, SystemExit), \
                f"{what}: {command} raised {result.exception!r}\n{result.stderr}"
        assert_no_injection(work)
        return "accepted"
    for command, result in run_commands(forged, work, all_commands=True):
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{what}: {command} raised {type(result.exception).__name__}: {result.exception}"
        assert_one_error_line(result.exit_code, result.stderr, status=2)
        assert "Traceback" not in result.stderr
    assert_no_injection(work)
    return "refused"


@pytest.mark.slow
def test_every_forged_metadata_field(original, tmp_path):
    meta = meta_of(original)
    outcomes = {}
    for n, path in enumerate(list(leaves(meta))):
        if path[:2] == ("training", "history") and len(path) > 2 and path[2] != 0:
            continue
        for name, value in BAD_VALUES.items():
            def edit(m, path=path, value=value):
                set_path(m, path, copy.deepcopy(value))
            forged = forge(original, tmp_path / f"m{n}_{name}.npz", edit)
            outcomes[".".join(map(str, path)), name] = check_case(forged, tmp_path / f"w{n}_{name}", f"{path}={name}",
                                                                  name == "c-text")
            forged.unlink()
    # Every field that reaches C or the network is refused whatever the bad value is.
    for field in ("spec.hidden", "spec.n_inputs", "int_params.trigger_margin", "int_params.gate", "training.seed",
                  "training.batch_counter", "training.gamma", "input.n_features", "input.bias_bits",
                  "hyperparams.gamma_growth", "hyperparams.gamma_cap_div", "version"):
        for name in BAD_VALUES:
            if (field, name) in outcomes:
                assert outcomes[field, name] == "refused", f"{field}={name} was accepted"
    # What may be accepted: free text and numbers for people (notes, the epoch history),
    # and values that are valid in their field (a null γ means the default; an mlp has
    # no series length or window; σ and α are real numbers; restore_best is a flag).
    accepted = {k for k, v in outcomes.items() if v == "accepted"}
    valid = {("training.history", "list"), ("hyperparams.gamma", "null"), ("hyperparams.sigma", "float"), ("hyperparams.alpha", "float"),
             ("input.length", "null"), ("input.window", "null"), ("hyperparams.restore_best", "bool")}
    assert {("hyperparams.gamma_cap_div", "float"), ("input.bias_bits", "float"),
            ("hyperparams.restore_best", "bool")} <= set(outcomes)  # the newer fields are forged too
    unexpected = {k for k in accepted - valid if not k[0].startswith(("training.notes", "training.history."))}
    assert not unexpected, unexpected


ARRAY_EDITS = {
    "float": lambda a: a.astype(np.float64) if a.dtype.kind in "biuf" else np.full(a.shape, 16.7),
    "extra-row": lambda a: np.concatenate([a, a[:1]]) if a.ndim else np.array([a, a]),
    "c-text": lambda a: np.full(a.shape, PAYLOAD),
    "huge": lambda a: np.full(a.shape, 2 ** 40, dtype=np.int64),
    "empty": lambda a: a[:0] if a.ndim else np.zeros(0),
}


@pytest.mark.slow
def test_every_forged_array(original, tmp_path):
    names = [n[:-4] for n in members(original) if n not in ("__meta__.npy", "__checksum__.npy")]
    assert {"hidden_0", "classifier", "classes", "input_keep", "binarizer_spec"} <= set(names)
    kept = np.load(original)
    for name in names:
        for edit_name, edit in ARRAY_EDITS.items():
            if edit_name == "float" and kept[name].dtype == np.float64:
                continue  # already float64 (the thermometer's statistics): the edit forges nothing
            def arrays_edit(arrays, name=name, edit=edit):
                arrays[name] = edit(np.asarray(arrays[name]))
            forged = forge(original, tmp_path / f"{name}_{edit_name}.npz", arrays_edit=arrays_edit)
            outcome = check_case(forged, tmp_path / f"w_{name}_{edit_name}", f"{name}:{edit_name}", True)
            # Float class labels are labels like any other (scikit-learn allows them).
            assert outcome == "refused" or (name, edit_name) == ("classes", "float"), \
                f"array {name} with {edit_name} was accepted"


@pytest.mark.parametrize("field,value,words", [
    (("int_params", "trigger_margin"), PAYLOAD, ("trigger_margin", "integer")),
    (("training", "batch_counter"), PAYLOAD, ("batch_counter",)),
    (("training", "batch_counter"), 2 ** 32, ("batch_counter", "4294967295")),
    (("spec", "hidden"), [16.7], ("hidden",)),
    (("int_params", "gate"), [10 ** 9], ("gate",)),
    (("int_params", "gamma"), [9], ("gamma[0]", "1..8")),  # in range for the type, wider than the layer (8)
    (("training", "seed"), -1, ("seed",)),
    (("hyperparams", "gamma_growth"), 1.1, ("hyperparams.gamma_growth", "1/16")),
    (("hyperparams", "gamma_cap_div"), 0, ("hyperparams.gamma_cap_div",)),
    (("hyperparams", "restore_best"), "yes", ("hyperparams.restore_best",)),
    (("input", "bias_bits"), PAYLOAD, ("input.bias_bits",)),
    (("input", "bias_bits"), 2, ("input encoding",)),
])
def test_refusals_name_the_field(original, tmp_path, field, value, words):
    forged = forge(original, tmp_path / "f.npz", lambda m: set_path(m, field, value))
    for command in ("info", "generate"):
        result = invoke(command, forged, *(["--out", tmp_path / "gen"] if command == "generate" else []))
        assert_one_error_line(result.exit_code, result.stderr, words, status=2)
    assert not (tmp_path / "gen").exists()


HISTORY_VALUES = {"text": "0.5", "null": None, "bool": True, "negative": -1, "huge": 2 ** 80, "fraction": 1.5,
                  "nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "empty-list": [], "one": [1],
                  "three": [1, 2, 3], "nested-list": [[1], [2]], "strings": ["a", "b"], "object": {"gamma": [1, 1]}}


def history_edits(record: dict):
    """(name, edit of the metadata) for every way of breaking one epoch record of a
    2-layer network's history, and the history itself."""
    for key in record:
        for name, value in HISTORY_VALUES.items():
            yield f"{key}={name}", lambda m, key=key, value=value: m["training"]["history"][1].update({key: value})
        yield f"no-{key}", lambda m, key=key: m["training"]["history"][1].pop(key)
    for name, value in HISTORY_VALUES.items():
        yield f"record={name}", lambda m, value=value: m["training"]["history"].__setitem__(1, value)
        yield f"history={name}", lambda m, value=value: m["training"].__setitem__("history", value)
    yield "unknown-key", lambda m: m["training"]["history"][1].update(loss=0.5)
    yield "gamma-of-one-layer", lambda m: [rec.update(gamma=rec["gamma"][:1]) for rec in m["training"]["history"]]


def test_malformed_training_history_is_refused_or_plotted(tmp_path):
    """``plot`` reads the history's epochs, errors, accuracies and per-layer γ: every
    record that is not what training writes is refused at load in one line naming the
    field (so by every command), and what loads plots."""
    pytest.importorskip("matplotlib")
    d = load_dataset(DATA)
    original = saved(fit(d.X_train, d.y_train, hidden=(8, 8), epochs=3, seed=3), tmp_path / "two-layers.npz")
    record = meta_of(original)["training"]["history"][1]
    assert {"epoch", "train_error", "val_accuracy", "gamma", "reinforce_q", "best"} <= set(record)
    outcomes = {}
    for name, edit in history_edits(record):
        forged = forge(original, tmp_path / "forged.npz", edit)
        png = tmp_path / "curve.png"
        result = invoke("plot", forged, "--out", png)
        if result.exit_code == 0:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
            png.unlink()
            outcomes[name] = "plotted"
        else:
            line = assert_one_error_line(result.exit_code, result.stderr, ("history",), status=2)
            assert result.exception is None or isinstance(result.exception, SystemExit), (name, line)
            assert not png.exists()
            outcomes[name] = "refused"
    plotted = {name for name, outcome in outcomes.items() if outcome == "plotted"}
    # only values that are valid there load: null (no validation set, a timing that was not
    # finite), any finite non-negative timing, and the optional stall flag
    assert plotted == {"val_accuracy=null", "seconds=null", "seconds=fraction", "seconds=huge",
                       "samples_per_second=null", "samples_per_second=fraction", "samples_per_second=huge",
                       "best=bool", "no-best"}, sorted(plotted)


def test_classes_that_do_not_match_the_network(original, tmp_path):
    for bad in (np.array(["a"]), np.array([1, 1, 2]), np.array([[1, 2, 3]])):
        forged = forge(original, tmp_path / "c.npz", arrays_edit=lambda a, bad=bad: a.update(classes=bad))
        assert_one_error_line(invoke("eval", forged, "--dataset", DATA).exit_code,
                              invoke("eval", forged, "--dataset", DATA).stderr, ("classes",), status=2)
    # any order of distinct labels is one (a class given a reserved prototype comes last)
    reordered = forge(original, tmp_path / "r.npz", arrays_edit=lambda a: a.update(classes=a["classes"][::-1]))
    assert modelio.load(reordered).labels.tolist() == modelio.load(original).labels.tolist()[::-1]


# ---------------------------------------------------------------- memory bombs


PEAK_CHILD = r"""
import atexit, sys

REPORT = sys.argv[1]

def report():  # VmHWM: this process image's own peak RSS (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(REPORT, "w") as out:
        out.write(peak)

atexit.register(report)
sys.argv = ["bep-mcu", *sys.argv[2:]]
from bep_mcu.cli.main import main
main()
"""


def peak_rss(args: list[str], tmp_path: Path) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in bytes) of one ``bep-mcu`` run in a fresh process."""
    report = tmp_path / "peak.txt"
    proc = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(report), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    return proc.returncode, proc.stderr, int(report.read_text()) * 1024


def test_inflating_member_is_refused_in_bounded_memory(original, tmp_path):
    contents = members(original)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in contents.items():
            if name != "hidden_0.npy":
                z.writestr(name, data)
        with z.open("hidden_0.npy", "w", force_zip64=True) as member:  # 1 GiB of zeros, ~1 MB deflated
            member.write(contents["hidden_0.npy"][:128])  # its own .npy header
            block = bytes(1 << 20)
            for _ in range(1024):
                member.write(block)
    assert bomb.stat().st_size < 4 << 20
    status, stderr, rss = peak_rss(["info", str(bomb)], tmp_path)
    assert_one_error_line(status, stderr, ("bomb.npz",), status=2)
    assert rss < 300 << 20, f"peak RSS {rss >> 20} MiB"


def test_header_claiming_a_trillion_elements_is_refused_in_bounded_memory(original, tmp_path):
    contents = members(original)
    head = npy_bytes(np.zeros((2, 3), np.int8))
    forged_header = head.replace(b"(2, 3)", b"(1000000, 1000000)")
    contents["hidden_0.npy"] = forged_header[:128] + contents["hidden_0.npy"][128:]
    path = write_members(tmp_path / "claims.npz", contents)
    status, stderr, rss = peak_rss(["info", str(path)], tmp_path)
    assert_one_error_line(status, stderr, ("hidden_0",), status=2)
    assert rss < 300 << 20
    data = tmp_path / "data.npz"
    write_members(data, {"X.npy": forged_header[:128] + bytes(64), "y.npy": npy_bytes(np.arange(2))})
    status, stderr, rss = peak_rss(["train", "--data", str(data), "--out", str(tmp_path / "m.npz")], tmp_path)
    assert_one_error_line(status, stderr, ("data.npz",), status=2)
    assert rss < 300 << 20


FUZZ_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from bep_mcu import modelio
from bep_mcu.errors import BEPError
for path in sys.argv[2:]:
    try:
        modelio.load(path)
        print(json.dumps({"path": path, "ok": True}))
    except BEPError as e:
        print(json.dumps({"path": path, "ok": False, "lines": len(str(e).splitlines())}))
with open("/proc/self/status") as status:  # VmHWM: this image's own peak (ru_maxrss counts the parent's)
    print(json.dumps({"rss": int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) * 1024}))
"""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_archives_under_a_memory_limit(original, tmp_path_factory, data):
    """Random edits of members (bytes flipped, cut, inserted; members dropped, renamed,
    duplicated as other names) with the checksum left as it is: the loader, in a child
    process under a 1.5 GiB address-space limit, gives one-line BEPErrors only."""
    contents = members(original)
    work = tmp_path_factory.mktemp("fuzz")
    paths = []
    for k in range(8):
        edited = dict(contents)
        name = data.draw(st.sampled_from(sorted(edited)))
        raw = bytearray(edited[name])
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "drop", "rename", "header"]))
        if action == "flip" and raw:
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            raw = raw[:data.draw(st.integers(0, len(raw)))]
        elif action == "insert":
            at = data.draw(st.integers(0, len(raw)))
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        elif action == "header":
            raw[8:10] = data.draw(st.binary(min_size=2, max_size=2))  # the .npy header length
        if action == "drop":
            del edited[name]
        elif action == "rename":
            edited[data.draw(st.text("abcdefgh_", min_size=1, max_size=8)) + ".npy"] = edited.pop(name)
        else:
            edited[name] = bytes(raw)
        paths.append(str(write_members(work / f"f{k}.npz", edited)))
    proc = subprocess.run([sys.executable, "-c", FUZZ_CHILD, str(3 << 29), *paths], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    for row in rows[:-1]:
        assert row["ok"] or row["lines"] == 1, row
    assert rows[-1]["rss"] < 300 << 20


def test_forged_thresholds_reach_c_only_as_checked_integers(tmp_path):
    """Binariser thresholds become the device encoder's integers (data.inputformat): a
    forged threshold beyond every input type is refused in one line by generate, training
    or inference-only, and by a standalone build; one far below is the type's minimum (the
    bit is +1 for every value, as the model says)."""
    g = np.random.default_rng(2)
    X, y = g.normal(0, 3, (200, 4)), np.arange(200) % 2
    original = saved(fit(X, y, hidden=(8,), epochs=1, binarize="thermometer:3"), tmp_path / "thermo.npz")
    np.savez(tmp_path / "data.npz", X=X, y=y)

    def with_threshold(value: float, dst: Path) -> Path:
        def edit(arrays):
            t = np.array(arrays["binarizer_thresholds"])
            t[1, 2] = value
            arrays["binarizer_thresholds"] = t
        return forge(original, dst, arrays_edit=edit)

    huge = with_threshold(1e300, tmp_path / "huge.npz")
    for args in (["--out", tmp_path / "g"], ["--out", tmp_path / "g", "--inference-only"],
                 ["--out", tmp_path / "g", "--input-type", "int32", "--input-scale", "1000000000"]):
        result = invoke("generate", huge, *args)
        assert_one_error_line(result.exit_code, result.stderr, status=2)
        assert "threshold" in result.stderr or "no input type" in result.stderr
    if HAVE_ARM:
        result = invoke("firmware", huge, "--board", "microbit", "--standalone-data", tmp_path / "data.npz", "--out",
                        tmp_path / "fw")
        assert_one_error_line(result.exit_code, result.stderr, status=2)
    assert not (tmp_path / "g").exists() and not (tmp_path / "fw").exists()
    tiny = with_threshold(-1e300, tmp_path / "tiny.npz")
    result = invoke("generate", tiny, "--out", tmp_path / "ok", "--input-type", "int16", "--input-scale", "10",
                    "--json")
    assert result.exit_code == 0, result.stderr
    board = (tmp_path / "ok" / "src" / "bep_net_board.c").read_text()
    assert "static const int16_t bep_net_input_threshold" in board and "-32768" in board
