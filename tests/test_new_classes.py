"""New classes on the device: ``train --max-classes N`` reserves prototypes of the fixed
classifier for classes not seen yet; ``adapt`` (and ``partial_fit``) give a label the model has no
prototype for the next reserved one, and the board learns it from its labelled samples, bit for
bit the host's simulation. A reserved prototype is never predicted: the network holds only the
classes that have a label. Refusals are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bep_mcu import BEPClassifier, modelio
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import binary_equiangular_frame
from bep_mcu.engine.spec import MAX_CLASSES
from bep_mcu.errors import BEPError, BoardError

from bep_mcu.cgen.codegen import generate
from bep_mcu.training import NumpyTrainer, Plan, encoded, run_epochs
from bep_mcu.twin.cffi_twin import Twin, TwinTrainer

from .conftest import (assert_error_after_progress, assert_ok, assert_user_error, fit, invoke, last_json, needs_arm,
                       needs_qemu, saved)
from .test_adapt import run as adapt_json  # adapt --json on a fixture's model, target and source
from .test_modelio import forge

NEW = 9  # the digit the source leaves out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Digits without the nines (the source) and with them (the target), and a model trained on
    the source with ten prototypes, by the CLI."""
    root = tmp_path_factory.mktemp("classes")
    data = load_dataset("digits")
    old_train, old_test = data.y_train != NEW, data.y_test != NEW
    np.savez(root / "nine.npz", X_train=data.X_train[old_train], y_train=data.y_train[old_train],
             X_test=data.X_test[old_test], y_test=data.y_test[old_test])
    np.savez(root / "ten.npz", X_train=data.X_train, y_train=data.y_train, X_test=data.X_test, y_test=data.y_test)
    assert_ok(invoke("train", "--data", root / "nine.npz", "--hidden", 32, "--epochs", 8, "--max-classes", 10,
                     "--out", root / "m.npz"))
    return {"root": root, "model": root / "m.npz", "source": root / "nine.npz", "target": root / "ten.npz"}


def test_max_classes_reserves_the_frame_s_last_prototypes(files):
    model = modelio.load(files["model"])
    assert model.spec.n_classes == 9 and model.labels.tolist() == list(range(9))
    assert model.reserved.shape == (1, 32)
    frame = binary_equiangular_frame(10, 32, model.training.seed, model.hyper.alpha)
    assert np.array_equal(np.concatenate([model.classifier, model.reserved]), frame)
    with zipfile.ZipFile(files["model"]) as z:
        assert "reserved_prototypes.npy" in z.namelist()


def test_without_max_classes_nothing_is_reserved(tmp_path):
    data = load_dataset("digits")
    X, y = data.X_train[:300], data.y_train[:300]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert_ok(invoke("train", "--data", tmp_path / "d.npz", "--hidden", 16, "--epochs", 1, "--out", tmp_path / "m.npz"))
    model = modelio.load(tmp_path / "m.npz")
    assert model.reserved.shape == (0, 16)
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert "reserved_prototypes.npy" not in z.namelist()
    assert "reserved" not in invoke("info", tmp_path / "m.npz").stdout


def test_info_tells_the_reserved_classes(files):
    human = invoke("info", files["model"])
    assert_ok(human)
    assert "9 classes (+1 reserved" in human.stdout.splitlines()[0]
    summary = last_json(invoke("info", files["model"], "--json").stdout)
    assert summary["classes"] == 9 and summary["reserved_classes"] == 1


def test_a_reserved_prototype_is_never_predicted(files, tmp_path):
    """The network scores only the classes that have a label: the nines, before the model has a
    prototype for them, are predicted as one of the other nine digits; the generated C has nine
    classes in use and all ten prototypes in its table (the tenth for a class to come)."""
    model = modelio.load(files["model"])
    data = np.load(files["target"])
    nines = data["X_test"][data["y_test"] == NEW]
    assert model.network().logits(model.encode(nines)).shape == (len(nines), 9)
    assert set(model.predict(nines).tolist()) <= set(range(9))
    assert_ok(invoke("generate", files["model"], "--out", tmp_path / "c"))
    header = (tmp_path / "c" / "src" / "bep_net.h").read_text()
    assert "#define BEP_NET_N_CLASSES 9u" in header and "#define BEP_NET_MAX_CLASSES 10u" in header
    assert "Fixed classifier P (class prototypes), packed: 10 x" in (tmp_path / "c" / "src" / "bep_net.c").read_text()


def test_the_c_twin_puts_a_reserved_prototype_in_use_and_trains_as_numpy(tmp_path):
    """The C of a model with reserved prototypes holds every one of them and a count of classes in
    use: with the model's nine it trains bit for bit as numpy's nine-class network, batch after
    batch; set to ten (bep_net_set_classes) it trains the nines bit for bit as numpy's
    ``with_class(9)``. The count only grows, never past the table, and labels are checked against it."""
    data = load_dataset("digits")
    old = data.y_train != NEW
    model = fit(data.X_train[old], data.y_train[old], hidden=(32,), epochs=1, max_classes=11)
    twin = Twin(generate(model, tmp_path / "c"), model.spec)
    host = NumpyTrainer(model)
    report = run_epochs([host, TwinTrainer(twin, model.training.seed, model.training.batch_counter)],
                        encoded(model, data.X_train[old], data.y_train[old]),
                        Plan.continuing(model, 3, stall_signal="training"))
    assert report.bit_exact and report.batches > 30 and twin.classes() == 9
    grown = report.advance(model, host).with_class(NEW)
    device = TwinTrainer(twin, grown.training.seed, grown.training.batch_counter)  # as a board: INIT, LOAD_HIDDEN,
    for layer, hidden in enumerate(grown.hidden):                                  # SET_CLASSES
        twin.load_hidden(layer, hidden)
    with pytest.raises(RuntimeError, match="ERR_LABEL"):  # a class not in use yet
        twin.train_batch(encoded(grown, data.X_train[:1], [NEW]).packed, [NEW])
    twin.set_classes(10)
    target = encoded(grown, data.X_train, data.y_train)
    report = run_epochs([NumpyTrainer(grown), device], target, Plan.continuing(grown, 3, stall_signal="training"))
    assert report.bit_exact and twin.classes() == 10
    test = encoded(grown, data.X_test, data.y_test)
    predicted = twin.predict(test.packed)
    assert np.array_equal(predicted, NumpyTrainer(report.advance(grown, device)).evaluate(test))
    nines = test.y == NEW
    assert np.mean(predicted[nines] == NEW) > 0.3, "the new class is learnt (chance: 0.1)"
    assert twin.scores(test.packed[:3]).shape == (3, 10)
    for n in (9, 12):  # below the classes in use, past the table: refused, nothing changes
        with pytest.raises(RuntimeError, match="ERR_ARG"):
            twin.set_classes(n)
    assert twin.classes() == 10
    with pytest.raises(RuntimeError, match="ERR_LABEL"):
        twin.train_batch(test.packed[:1], [10])
    twin.set_classes(11)
    assert twin.classes() == 11
    # A state buffer whose count was overwritten since (the header's word 14) is refused by every
    # call before any classifier row is read: the count bounds the rows the runtime reads.
    for count in (0, 12, 0xFFFFFFFF):
        twin.state[14] = count
        with pytest.raises(RuntimeError, match="ERR_STATE"):
            twin.predict(test.packed[:1])
    twin.state[14] = 11
    assert twin.classes() == 11 and len(twin.predict(test.packed[:1])) == 1


def test_the_generated_c_of_a_model_with_a_new_class_is_bit_exact(files, tmp_path):
    """The C twin trains the model as numpy does, before the new class and after it took its prototype."""
    model = modelio.load(files["model"])
    grown = saved(model.with_class(NEW), tmp_path / "grown.npz")
    for path, data in ((files["model"], files["source"]), (grown, files["target"])):
        result = invoke("verify", path, "--data", data, "--epochs", 2, "--json")
        assert_ok(result)
        assert last_json(result.stdout)["bit_exact"] is True, path
    assert modelio.load(grown).spec.n_classes == 10 and len(modelio.load(grown).reserved) == 0


def test_adapt_learns_the_new_class_on_the_host(files):
    r = adapt_json(files, "--epochs", 3)
    assert r["new_classes"] == [NEW]
    assert r["before_new_classes"] == 0.0  # an untrained prototype: not predicted here
    assert r["after_new_classes"] > 0.3, r  # chance is 0.1
    assert r["after_old_classes"] > 0.8 and r["source_after"] > 0.8, r
    human = invoke("adapt", files["model"], "--data", files["target"], "--epochs", 1)
    assert_ok(human)
    assert "new classes           9 (reserved prototypes)" in human.stdout


def test_adapt_writes_the_adapted_model_with_out(files, tmp_path):
    """--out: the model with its new class, as trained (its score on the target is the report's
    after); with --labels 0 the class has its prototype and the weights are the model's."""
    model, data = modelio.load(files["model"]), np.load(files["target"])
    r = adapt_json(files, "--epochs", 1, "--out", tmp_path / "adapted.npz")
    adapted = modelio.load(tmp_path / "adapted.npz")
    assert r["out"] == str(tmp_path / "adapted.npz")
    assert adapted.labels.tolist() == list(range(10)) and len(adapted.reserved) == 0
    assert adapted.score(data["X_test"], data["y_test"]) == pytest.approx(r["after"])
    assert adapted.training.epochs == model.training.epochs + 1
    adapt_json(files, "--labels", 0, "--out", tmp_path / "grown.npz")
    grown = modelio.load(tmp_path / "grown.npz")
    assert grown.labels.tolist() == list(range(10)) and np.array_equal(grown.hidden[0], model.hidden[0])
    assert np.array_equal(grown.classifier[NEW], model.reserved[0])
    assert_user_error(invoke("adapt", files["model"], "--data", files["target"], "--recalibrate", "--out",
                             tmp_path / "no.npz"), "--out", "--recalibrate")
    assert not (tmp_path / "no.npz").exists()


@needs_arm
@needs_qemu
def test_an_emulated_board_learns_the_new_class_bit_for_bit(files, no_stray_qemu, tmp_path):
    args = ("--epochs", 1, "--labels", 0.5)
    board = adapt_json(files, *args, "--board", "mps2-an386", "--out", tmp_path / "board.npz")
    host = adapt_json(files, *args, "--out", tmp_path / "host.npz")
    assert board["where"] == "board" and board["bit_exact"] is True and board["first_divergence"] is None
    assert board["new_classes"] == [NEW] and board["after_new_classes"] > 0.2, board
    for key in ("before", "after", "before_new_classes", "after_new_classes", "after_old_classes", "source_before",
                "source_after", "ram_bytes", "instructions_per_sample"):
        assert board[key] == host[key], key
    on_board, on_host = modelio.load(tmp_path / "board.npz"), modelio.load(tmp_path / "host.npz")
    assert np.array_equal(on_board.hidden[0], on_host.hidden[0]) and np.array_equal(on_board.labels, on_host.labels)


@needs_arm
@needs_qemu
def test_a_deployed_board_learns_the_new_class_without_new_firmware(files, no_stray_qemu, tmp_path, monkeypatch):
    """The issue's case: firmware built from the model before the nines existed (nine classes in use,
    the tenth prototype reserved), then `adapt --port` with target data holding nines. The host gives
    the nines the reserved prototype and puts it in use on the board (SET_CLASSES): nothing is built
    (the firmware image is the same bytes), the board learns the nines bit for bit as the host's
    simulation. Then the board refuses to take a class back or to grow past its table, and `pull`
    with the model of nine classes is one line naming both counts."""
    from bep_mcu import adapt
    from bep_mcu.device.emulate import EmulatedBoard
    from bep_mcu.device.firmware import build
    from bep_mcu.device.stream import connect

    board = "netduinoplus2"
    fw = build(modelio.load(files["model"]), board, tmp_path / "fw")
    image = fw.elf.read_bytes()
    monkeypatch.setattr(adapt, "build", lambda *a, **k: pytest.fail("adapt --port built firmware"))
    with EmulatedBoard(fw.elf, board) as url:
        result = invoke("adapt", files["model"], "--data", files["target"], "--epochs", 3, "--port", url,
                        "--out", tmp_path / "adapted.npz", "--json")
        assert_ok(result)
        refused = invoke("pull", files["model"], "--port", url, "--out", tmp_path / "pulled.npz")
        assert_user_error(refused, "10 classes in use", "the model 9")
        assert not (tmp_path / "pulled.npz").exists()
        assert_ok(invoke("pull", tmp_path / "adapted.npz", "--port", url, "--out", tmp_path / "pulled.npz"))
        with connect(url, modelio.load(files["model"])) as link:
            assert (link.info.n_classes, link.info.max_classes, link.classes_in_use) == (9, 10, 10)
            for n in (9, 11):  # fewer than in use, more than the table: refused, the count stays
                with pytest.raises(BoardError, match="SET_CLASSES failed on the board: BEP_ERR_ARG"):
                    link.set_classes(n)
            assert link.hello().classes_in_use == 10
    assert fw.elf.read_bytes() == image
    r = last_json(result.stdout)
    host = last_json(invoke("adapt", files["model"], "--data", files["target"], "--epochs", 3, "--json").stdout)
    assert r["where"] == "board" and r["bit_exact"] is True and r["first_divergence"] is None
    assert r["new_classes"] == [NEW] and r["after_new_classes"] > 0.3, r  # chance is 0.1
    for key in ("before", "after", "before_new_classes", "after_new_classes", "after_old_classes"):
        assert r[key] == host[key], key
    adapted, pulled = modelio.load(tmp_path / "adapted.npz"), modelio.load(tmp_path / "pulled.npz")
    assert adapted.labels.tolist() == list(range(10)) and np.array_equal(pulled.hidden[0], adapted.hidden[0])


def test_the_link_checks_the_classes_in_use_against_the_model(files, tmp_path):
    """Over the link (the board side compiled in-process): firmware built before the nines refuses
    a label 9 until SET_CLASSES puts it in use; firmware built with ten classes in use refuses to
    stream the nine-class model (same config hash), and reading a board of ten classes in use
    with the nine-class model is one line naming both counts."""
    from bep_mcu.device.link import Link
    from bep_mcu.device.stream import DeviceTrainer, pull_model

    from .test_link import DeviceTransport, InProcessDevice, build_device_module

    model = modelio.load(files["model"])
    grown = model.with_class(NEW)
    data = np.load(files["target"])
    enc = encoded(grown, data["X_train"][:40], data["y_train"][:40])
    assert NEW in enc.y.tolist()
    for built, runs, refused in ((model, grown, None), (grown, model, "built with 10 classes in use, the model has 9")):
        gen = generate(built, tmp_path / f"c{built.spec.n_classes}")
        device = InProcessDevice(build_device_module(gen, tmp_path / f"b{built.spec.n_classes}"), gen)
        with Link(DeviceTransport(device), timeout=0.2) as link:
            info = link.hello()
            assert info.config_hash == model.config_hash32 == grown.config_hash32
            assert (info.n_classes, info.max_classes, info.classes_in_use) == (built.spec.n_classes, 10, 0)
            if refused:
                with pytest.raises(BEPError, match=refused):
                    DeviceTrainer(link, runs)
                DeviceTrainer(link, built)
                with pytest.raises(BEPError, match="the board has 10 classes in use, the model 9"):
                    pull_model(link, model)
                continue
            link.init(1, 0)
            with pytest.raises(BoardError, match="TRAIN refused by the board: BAD_PAYLOAD"):
                link.train(enc.packed, enc.y)  # a label not in use yet: nothing trained
            assert link.counters()["samples"] == 0
            DeviceTrainer(link, runs)  # INIT, the weights, SET_CLASSES
            assert link.hello().classes_in_use == 10
            link.train(enc.packed, enc.y)
            assert link.counters()["samples"] == len(enc.y)


@pytest.mark.parametrize("case, words", [
    ("two-new", ("target data", "label 11", "no prototype", "reserved 1")),
    ("text-label", ("target data", "label 'nine'", "kind")),
    ("none-reserved", ("target test data", "label 9", "not seen in training")),
])
def test_a_class_without_a_prototype_is_one_line_and_writes_nothing(files, case, words, tmp_path, monkeypatch):
    d = np.load(files["target"])
    y_train, y_test, model = d["y_train"].copy(), d["y_test"], files["model"]
    if case == "two-new":
        y_train[0] = 11
    elif case == "text-label":
        y_train, y_test = (np.where(y == NEW, "nine", y.astype(str)) for y in (y_train, y_test))
    else:
        assert_ok(invoke("train", "--data", files["source"], "--hidden", 16, "--epochs", 1, "--out",
                         tmp_path / "full.npz"))
        model = tmp_path / "full.npz"
    np.savez(tmp_path / "target.npz", X_train=d["X_train"], y_train=y_train, X_test=d["X_test"], y_test=y_test)
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    for json_flag in ((), ("--json",)):
        assert_user_error(invoke("adapt", model, "--data", tmp_path / "target.npz", *json_flag), *words)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("value, words", [
    ("8", ("--max-classes 8", "fewer than the 9 classes")),
    (str(MAX_CLASSES + 1), ("--max-classes", str(MAX_CLASSES))),
    ("1", ("--max-classes",)),
])
def test_max_classes_out_of_range_is_one_line(files, value, words, tmp_path):
    """Out of 2..MAX_CLASSES before the data is read; fewer than its classes once it is (after the
    line that says what was read)."""
    result = invoke("train", "--data", files["source"], "--hidden", 8, "--epochs", 1, "--max-classes", value,
                    "--out", tmp_path / "m.npz")
    if value == "8":
        assert_error_after_progress(result.exit_code, result.stderr, words)
    else:
        assert_user_error(result, *words)
    assert not (tmp_path / "m.npz").exists()


def test_init_from_keeps_the_model_s_prototypes(files, tmp_path):
    assert_user_error(invoke("train", "--data", files["source"], "--init-from", files["model"], "--epochs", 1,
                             "--max-classes", 12, "--out", tmp_path / "m.npz"), "--max-classes")
    assert_ok(invoke("train", "--data", files["source"], "--init-from", files["model"], "--epochs", 1, "--out",
                     tmp_path / "m.npz"))
    assert np.array_equal(modelio.load(tmp_path / "m.npz").reserved, modelio.load(files["model"]).reserved)


@pytest.mark.parametrize("edit, words", [
    (lambda a: a.update(reserved_prototypes=np.zeros((1, 32), np.int8)), ("reserved prototype", "-1 or +1")),
    (lambda a: a.update(reserved_prototypes=np.ones((1, 31), np.int8)), ("reserved_prototypes", "int8 of shape")),
    (lambda a: a.update(reserved_prototypes=np.ones((MAX_CLASSES, 32), np.int8)), ("reserved_prototypes",)),
    (lambda a: a.update(reserved_prototypes=np.ones(32, np.int8)), ("reserved_prototypes",)),
])
def test_a_forged_reserved_prototype_is_refused(files, tmp_path, edit, words):
    bad = forge(files["model"], tmp_path / "bad.npz", arrays_edit=edit)
    assert_user_error(invoke("info", bad), *words)


def test_partial_fit_gives_a_new_label_the_reserved_prototype():
    data = load_dataset("digits")
    X, y = data.X_train, data.y_train
    clf = BEPClassifier(hidden=(32,), max_classes=10)
    old = y != NEW
    clf.partial_fit(X[old][:300], y[old][:300], classes=np.arange(9))
    assert clf.classes_.tolist() == list(range(9)) and len(clf.model_.reserved) == 1
    clf.partial_fit(X[:300], y[:300])
    assert clf.classes_.tolist() == list(range(10)) and len(clf.model_.reserved) == 0
    with pytest.raises(Exception, match="label 11"):
        clf.partial_fit(X[:10], np.r_[y[:9], 11])
    back = BEPClassifier.from_model(clf.model_)
    assert back.max_classes is None  # nothing reserved any more


def test_bench_adaptation_s_new_class_scenario():
    """``python -m bep_mcu.bench adaptation``'s new-class scenario: every method reports the new
    class's and the old classes' accuracy; BEP learns the new class."""
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "adaptation", "--scenarios", "class:digits",
                          "--seeds", "1", "--hidden", "32", "--json"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    from bep_mcu import bench_adaptation as b

    rows = {r["method"]: r for r in json.loads(out.stdout.strip().splitlines()[-1])["rows"]}
    assert list(rows) == list(b.METHODS)
    for method, r in rows.items():
        for key in ("before_new_classes", "after_new_classes", "before_old_classes", "after_old_classes"):
            assert 0 <= r[key] <= 1, (method, key)
        assert r["network"].endswith("-10"), method  # the board's network has the new class
    assert rows["frozen"]["after_new_classes"] == rows["frozen"]["before_new_classes"]
    assert rows["bep"]["after_new_classes"] > max(0.1, rows["bep"]["before_new_classes"]), rows["bep"]


def test_a_new_label_takes_the_next_index_and_stays_bit_exact(tmp_path):
    """A new label that sorts before the others takes the index after them (its prototype is the
    classifier's next row): the classes keep their indices and prototypes, the model file keeps
    the order, and the C twin trains the grown network as numpy does."""
    data = load_dataset("digits")
    old = data.y_train != 3
    np.savez(tmp_path / "d.npz", X_train=data.X_train, y_train=data.y_train, X_test=data.X_test, y_test=data.y_test)
    model = fit(data.X_train[old], data.y_train[old], hidden=(16,), epochs=2, max_classes=11)
    grown = model.with_class(3)
    assert grown.labels.tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 3] and len(grown.reserved) == 1
    assert np.array_equal(grown.classifier, np.concatenate([model.classifier, model.reserved[:1]]))
    assert grown.encode_labels([3, 0, 9]).tolist() == [9, 0, 8]
    assert set(grown.predict(data.X_test).tolist()) <= set(range(10))
    back = modelio.load(saved(grown, tmp_path / "grown.npz"))
    assert back.labels.tolist() == grown.labels.tolist() and np.array_equal(back.classifier, grown.classifier)
    result = invoke("verify", tmp_path / "grown.npz", "--data", tmp_path / "d.npz", "--epochs", 2, "--json")
    assert_ok(result)
    assert last_json(result.stdout)["bit_exact"] is True
    with pytest.raises(Exception, match="not of the kind"):
        grown.with_class("three")


def test_a_forged_repeated_label_is_refused(files, tmp_path):
    """Labels need not be sorted (a new class comes after the others), but they stay distinct."""
    bad = forge(files["model"], tmp_path / "bad.npz", arrays_edit=lambda a: a.update(classes=np.r_[0:8, 0]))
    assert_user_error(invoke("info", bad), "distinct")
