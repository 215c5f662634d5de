"""The trees bep-mcu writes (``generate``, ``firmware``'s output and build directories,
``demo``): never through a symlink planted in them, and whole or not at all.

A generated tree is often a checked-in folder of a cloned repository, so a symlink at a
generated name (``src/bep_net.c -> ../../victim.txt``), a symlinked folder
(``src -> ../elsewhere``) or a symlinked output directory is refused in one line, exit
status 2, and what it points to is left as it was. A ``generate`` interrupted after any
number of files (Ctrl-C while the files are written, a signal while they are renamed into
place) leaves the old tree or the new one, byte for byte, and a file of the user's in
the tree survives; a process killed while renaming is finished by the next write.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bep_mcu import files

from .conftest import assert_error_after_progress, assert_ok, assert_user_error, invoke, needs_arm
from .test_hostile_model import peak_rss

DATA = "prototypes:classes=3,features=40,samples=300"
FAST = ["--dataset", DATA, "--epochs", "1", "--hidden-bits", "8"]
USER_FILES = {"NOTES.md": b"the user's own notes\n", ".git/HEAD": b"ref: refs/heads/main\n"}
VICTIM = b"a file of the user's, outside the tree\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """Two different networks: nearly every generated file differs between them."""
    root = tmp_path_factory.mktemp("tree_models")
    assert_ok(invoke("train", *FAST, "--hidden", "8", "--out", root / "a.npz"))
    assert_ok(invoke("train", *FAST, "--hidden", "16", "--seed", "3", "--out", root / "b.npz"))
    return root / "a.npz", root / "b.npz"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (hidden and temporary ones too) and its bytes."""
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file() or p.is_symlink()}


def generated(model: Path, where: Path, *extra: str) -> dict[str, bytes]:
    assert_ok(invoke("generate", model, "--out", where, *extra))
    return snapshot(where)


def with_user_files(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {**tree, **USER_FILES}


def plant_user_files(directory: Path) -> None:
    for name, data in USER_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


@pytest.fixture(scope="module")
def trees(models, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The generated files of model a, of model b, and of b with --inference-only."""
    root = tmp_path_factory.mktemp("trees")
    a, b = models
    return {"a": generated(a, root / "a"), "b": generated(b, root / "b"),
            "b-inference": generated(b, root / "bi", "--inference-only")}


@pytest.fixture()
def old_tree(models, tmp_path) -> Path:
    """A tree generated from model a, with the user's own files in it."""
    out = tmp_path / "gen"
    generated(models[0], out)
    plant_user_files(out)
    return out


# ---------------------------------------------------------------------- symlinks


@pytest.mark.parametrize("extra", [[], ["--inference-only"]])
def test_a_symlink_at_a_generated_name_is_refused_and_its_target_kept(models, old_tree, tmp_path, extra):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    link = old_tree / "src" / "bep_status.c"  # a file the training and the inference output both write
    link.unlink()
    link.symlink_to("../../victim.txt")
    before = snapshot(old_tree)
    assert_user_error(invoke("generate", models[1], "--out", old_tree, *extra), "src/bep_status.c", "symbolic link")
    assert victim.read_bytes() == VICTIM and link.is_symlink()
    assert snapshot(old_tree) == before


@pytest.mark.parametrize("extra", [[], ["--inference-only"]])
def test_a_symlinked_folder_in_the_tree_is_refused(models, tmp_path, extra):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "gen"
    out.mkdir()
    (out / "src").symlink_to("../elsewhere")
    assert_user_error(invoke("generate", models[0], "--out", out, *extra), "gen/src", "symbolic link")
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["src"]


def test_a_symlinked_output_directory_is_refused(models, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "gen").symlink_to("elsewhere")
    assert_user_error(invoke("generate", models[0], "--out", tmp_path / "gen"), "gen", "symbolic link")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("planted", ["firmware.elf", "firmware.bin", "firmware.map", "build", "build/main.o",
                                     "build/memory.ld", "net", "net/src/bep_net.c"])
@needs_arm
def test_firmware_writes_through_no_symlink_in_its_output(models, tmp_path, planted):
    """The linker, objcopy and the compiler would follow a link where they write."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_bytes(VICTIM)
    out = tmp_path / "fw"
    link = out / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim if planted in ("build", "net") else victim / "file")
    result = invoke("firmware", models[0], "--board", "microbit", "--out", out)
    assert_error_after_progress(result.exit_code, result.stderr, (planted, "symbolic link"))
    assert snapshot(victim) == {"file": VICTIM}


@pytest.mark.parametrize("mode", [["--standalone-data", DATA, "--epochs", "1"], ["--self-test", "golden.bin"]])
def test_firmware_images_for_qemu_refuse_a_symlinked_output_too(models, tmp_path, monkeypatch, mode):
    monkeypatch.chdir(tmp_path)
    if "--self-test" in mode:
        assert_ok(invoke("golden", models[0], "--dataset", DATA, "--out", "golden.bin", "--batches", "1"))
    (tmp_path / "victim").mkdir()
    (tmp_path / "out").symlink_to("victim")
    assert_user_error(invoke("firmware", models[0], "--board", "mps2-an386", "--out", "out", *mode),
                      "out", "symbolic link")
    assert list((tmp_path / "victim").iterdir()) == []


def test_demo_refuses_a_symlink_in_its_output_before_training(tmp_path):
    (tmp_path / "victim").write_bytes(VICTIM)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "model.npz").symlink_to("../victim")
    assert_user_error(invoke("demo", "--out", tmp_path / "demo"), "model.npz", "symbolic link")
    assert (tmp_path / "victim").read_bytes() == VICTIM


def test_a_huge_file_at_a_generated_name_is_not_read(models, old_tree, tmp_path):
    """Whether a file changed is decided by its size first: 1 GiB there is never read."""
    with open(old_tree / "src" / "bep_net.c", "wb") as f:
        f.truncate(1 << 30)
    status, stderr, rss = peak_rss(["generate", str(models[0]), "--out", str(old_tree)], tmp_path)
    assert status == 0, stderr
    assert rss < 300 << 20, f"peak RSS {rss >> 20} MiB"


# ---------------------------------------------------------------------- whole or not at all


class Interrupt:
    """Raise KeyboardInterrupt at the ``k``-th call of what it replaces (0: the first)."""

    def __init__(self, real, k: int) -> None:
        self.real, self.k, self.calls = real, k, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.k:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


def test_ctrl_c_while_the_files_are_written_leaves_the_old_tree(models, trees, old_tree, tmp_path, monkeypatch):
    """Every file is fsynced once when written, so an interrupt at the k-th fsync is a
    Ctrl-C after k files; for every k the tree is the old one, or (no interrupt) the new."""
    pristine = tmp_path / "pristine"
    shutil.copytree(old_tree, pristine, symlinks=True)
    old, new = with_user_files(trees["a"]), with_user_files(trees["b"])
    assert snapshot(old_tree) == old
    changed = sum(trees["a"].get(name) != data for name, data in trees["b"].items())
    assert changed > 5  # the network's files (the build files are the same for every model of one name)
    outcomes = []
    for k in range(changed + 2):
        shutil.rmtree(old_tree)
        shutil.copytree(pristine, old_tree, symlinks=True)
        interrupt = Interrupt(os.fsync, k)
        with monkeypatch.context() as m:
            m.setattr(os, "fsync", interrupt)
            result = invoke("generate", models[1], "--out", old_tree)
        tree = snapshot(old_tree)
        outcomes.append("old" if tree == old else "new" if tree == new else f"a mix after {k} files")
        assert (result.exit_code == 0) == (outcomes[-1] == "new"), result.output
    assert outcomes == ["old"] * (len(outcomes) - 1) + ["new"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_renaming_waits_until_the_new_tree_is_whole(models, trees, old_tree, monkeypatch, signum):
    """SIGINT or SIGTERM delivered between two renames acts once the last is done."""
    real, renamed = os.replace, []
    handled: list[dict[str, bytes]] = []  # the tree when SIGTERM's handler ran

    def replace_and_signal(src, dst):
        renamed.append(dst)
        if len(renamed) == 3:
            os.kill(os.getpid(), signum)
        real(src, dst)

    previous = signal.signal(signal.SIGTERM, lambda _n, _f: handled.append(snapshot(old_tree)))
    try:
        with monkeypatch.context() as m:
            m.setattr(os, "replace", replace_and_signal)
            result = invoke("generate", models[1], "--out", old_tree)
    finally:
        signal.signal(signal.SIGTERM, previous)
    new = with_user_files(trees["b"])
    assert len(renamed) > 3 and snapshot(old_tree) == new
    if signum == signal.SIGINT:
        assert result.exit_code != 0 and "Aborted" in result.output
    else:
        assert_ok(result)
        assert handled == [new]


KILLED_COMMIT = r"""
import os, sys
from bep_mcu.cli.main import main

real, done, k = os.replace, [], int(sys.argv[1])

def replace_then_die(src, dst):
    if str(dst).endswith(".bep-mcu-commit"):
        return real(src, dst)
    if len(done) == k:
        os._exit(9)  # SIGKILL, power loss: no handler runs
    done.append(dst)
    return real(src, dst)

os.replace = replace_then_die
sys.argv = ["bep-mcu", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("k", [0, 1, 7])
def test_a_process_killed_while_renaming_is_finished_by_the_next_write(models, trees, old_tree, k):
    """Killed after k renames, the tree mixes two networks until the next write into it,
    which first finishes the renames (here --inference-only, which rewrites only part of
    the tree: everything else must then be the interrupted tree's new files)."""
    proc = subprocess.run([sys.executable, "-c", KILLED_COMMIT, str(k), "generate", str(models[1]), "--out",
                           str(old_tree)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 9, proc.stderr
    assert (old_tree / files.COMMIT_RECORD).exists()
    assert_ok(invoke("generate", models[1], "--out", old_tree, "--inference-only"))
    assert snapshot(old_tree) == with_user_files({**trees["b"], **trees["b-inference"]})


@pytest.mark.parametrize("record", [b"not json", b'[["../../victim", "../../.victim.x.tmp"]]',
                                   b'[["src/bep_net.c", "NOTES.md"]]', b'{"a": 1}', b"[" * 100000],
                         ids=["text", "outside", "not-a-temporary", "object", "deep"])
def test_a_forged_record_of_an_interrupted_write_is_refused(models, old_tree, record):
    (old_tree / files.COMMIT_RECORD).write_bytes(record)
    before = snapshot(old_tree)
    assert_user_error(invoke("generate", models[1], "--out", old_tree), files.COMMIT_RECORD, "damaged")
    assert snapshot(old_tree) == before
