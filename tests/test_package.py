"""The generated directory as a library that build systems take as it is (bep_mcu/cgen/package.py).

With the real tools, on one network (MLP 100-48-32-4, int8 hidden weights, trained for an
epoch with patience 1 so that the example trainer's γ grows within a few epochs):

* CMake on the host: tests/package/CMakeLists.txt adds the generated directory with
  ``add_subdirectory``, builds its three static libraries with the strict warning set
  (``-Werror``) and links ``train_main.c`` (C, gcc) and ``train_main.cpp`` (the same
  program compiled as C++11 by g++) against them. Both run; every line they print equals
  numpy: the predictions of each batch trained with the ``bep_net_*`` API, the counters,
  a hash of every layer's hidden weights, an inference, the HELLO reply through the link
  target (parsed by the host's protocol code), and, for the example trainer, each epoch's
  errors and next γ and Q (a mirror of its integer schedule over the numpy engine) and the
  final weights.
* CMake for Cortex-M4: the same project configured with an arm-none-eabi toolchain file
  (tests/package/arm-none-eabi.cmake): the static libraries cross-build, both programs
  link freestanding (``-nostdlib``, libgcc only; C++ with ``-fno-exceptions -fno-rtti``)
  with bep_mcu/fw's linker script and a minimal start-up (tests/package/cortexm_start.c),
  and in QEMU (mps2-an386) print exactly what the host programs print.
* Zephyr is not installed: tests/package/zephyr_stub stands in for a Zephyr build (it
  defines ZEPHYR_BASE and the Zephyr CMake functions a module calls, with their meaning)
  and includes the generated directory as a module; the ``zephyr_library()`` gets the
  training sources, the link's only with CONFIG_BEP_NET_LINK, none without CONFIG_BEP_NET,
  and compiles. module.yml is valid YAML naming a CMakeLists.txt and the Kconfig, which
  defines every CONFIG_ symbol the CMakeLists.txt tests.
* PlatformIO's library.json is valid JSON with the manifest's required fields, Arduino's
  library.properties valid properties with every field the Library Manager requires (url
  included); both list the architectures and platforms the code is built and tested for
  (32-bit Cortex-M: no ``*``, no AVR); every path they name exists; both versions equal
  ``bep_mcu.__version__``.
* Training and inference-only output of one network share one directory: every file both
  write has the same text; CMake builds both, and one program links the training and the
  inference targets (no clashing symbol) and predicts like numpy, with the scores; the
  Zephyr module adds the inference sources with CONFIG_BEP_NET_INFER; the inference
  example sketch compiles and links for Cortex-M4.
* The Arduino example ``examples/net_train/net_train.ino`` compiles as C++ for Cortex-M4
  (arm-none-eabi-g++ ``-fno-exceptions -fno-rtti -Wall -Wextra -Werror``), in both of its
  modes, against the generated library, with the few Arduino declarations it uses (Serial,
  millis) supplied by this test's stub header tests/package/arduino/Arduino.h (not an
  Arduino core), and links freestanding with the library, the trainer and
  tests/package/arduino/arduino_stub.cpp (a main that calls setup and loop).
* Every build file names the files of the parts as ``generate`` wrote them, and each
  library source is in exactly one part; a network name whose files would be a shared
  file's (``--name runtime``) is refused.
* Values reach the build files only through cformat's formatters: ``cpath`` and
  ``cversion`` refuse anything that could break out of a CMake, JSON, YAML or properties
  value, and hostile labels leave every build file parseable.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import bep_mcu
from bep_mcu import modelio
from bep_mcu.cgen import cformat, codegen, package, protocol
from bep_mcu.cgen.codegen import environment, generate
from bep_mcu.data.datasets import load_dataset
from bep_mcu.device import boards, emulate
from bep_mcu.device.firmware import fw_dir
from bep_mcu.engine.schedule import IntegerSchedule, gamma_caps, reinforcement_counts
from bep_mcu.errors import BEPError
from bep_mcu.training import NumpyTrainer, encoded

from .conftest import assert_ok, assert_user_error, blobs, fit, invoke, needs_arm, needs_qemu, run_ok

HERE = Path(__file__).parent / "package"
DATASET = "prototypes:classes=4,features=100,samples=600"
N, BATCH = 60, 10
TRAINER_BATCH, TRAINER_EPOCH_BATCHES, TRAINER_EPOCHS = 10, 3, 8
SESSION = 0x5EED1234
BOARD = "mps2-an386"
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed (apt-get install cmake)")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed (apt-get install g++)")
needs_arm_gxx = pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None,
                                   reason="arm-none-eabi-g++ not installed (apt-get install gcc-arm-none-eabi)")


def library_sources(gen) -> list[str]:
    return [p.relative_to(gen.directory).as_posix() for p in gen.sources()]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("package")


@pytest.fixture(scope="module")
def model(work):
    path = work / "mlp.npz"
    assert_ok(invoke("train", "--dataset", DATASET, "--hidden", "48,32", "--hidden-bits", "8", "--epochs", "1",
                     "--patience", "1", "--out", path))
    return modelio.load(path)


@pytest.fixture(scope="module")
def gen(model, work):
    return generate(model, work / "gen", "net")


@pytest.fixture(scope="module")
def both(model, work):
    """The training and the inference-only output of the model, generated into one directory:
    (training Generated, inference Generated)."""
    return generate(model, work / "both", "net"), generate(model, work / "both", "net", inference_only=True)


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def hidden_lines(tag: str, weights: list[np.ndarray], bits: int) -> list[str]:
    dtype = np.int8 if bits == 8 else np.int16
    return [f"{tag} {k} {fnv1a(w.astype(dtype).tobytes())}" for k, w in enumerate(weights)]


def api_lines(model, data) -> list[str]:
    """What train_main prints for the API part: numpy trained on the same batches."""
    trainer = NumpyTrainer(model)
    trainer.set_epoch(list(model.training.gamma), case_q(model))
    lines = []
    for start in range(0, N, BATCH):
        preds = trainer.train_batch(data.take(np.arange(start, start + BATCH)))
        lines.append("batch " + " ".join(str(int(p)) for p in preds))
    c = trainer.counters()
    lines.append(f"counters {c.samples} {c.triggered} {c.errors} {c.updates} {c.batches}")
    lines += hidden_lines("hidden", trainer.hidden_weights(), model.spec.hidden_bits)
    lines.append(f"infer {int(trainer.net.predict(data.x[:1])[0])}")
    return lines


def trainer_lines(model, data) -> list[str]:
    """What the example trainer prints: the host's integer schedule (engine/schedule.py,
    the rule of the board part's bep_<net>_end_epoch) over the numpy engine."""
    spec, hyper = model.spec, model.hyper
    trainer = NumpyTrainer(model)
    schedule = IntegerSchedule(spec, list(model.training.gamma), hyper.p_r, hyper.patience, hyper.growth,
                               gamma_caps(spec, hyper, model.params.gamma), error_rate=model.training.error_rate)
    i, lines = 0, []
    for epoch in range(1, TRAINER_EPOCHS + 1):
        trainer.set_epoch(schedule.gamma, schedule.q())
        before = trainer.counters()
        for _ in range(TRAINER_EPOCH_BATCHES):
            trainer.train_batch(data.take((i + np.arange(TRAINER_BATCH)) % N))
            i = (i + TRAINER_BATCH) % N
        after = trainer.counters()
        samples, errors = after.samples - before.samples, after.errors - before.errors
        schedule.end_epoch_counts(errors, samples)
        lines.append(f"epoch {epoch} errors {errors} gamma {' '.join(map(str, schedule.gamma))} "
                     f"q {' '.join(map(str, schedule.q()))}")
    return lines + hidden_lines("trained", trainer.hidden_weights(), spec.hidden_bits)


def case_q(model) -> list[int]:
    return reinforcement_counts(model.spec, model.hyper.p_r, model.training.error_rate)


@pytest.fixture(scope="module")
def case(model, work):
    """case.h for train_main.c, and the lines it must print (the HELLO reply apart)."""
    raw = load_dataset(DATASET)
    data = encoded(model, raw.X_train[:N], raw.y_train[:N])
    hello = protocol.encode_frame(protocol.Msg.HELLO, 7, protocol.HELLO_REQ.pack(session=SESSION))
    hidden_bytes = [w.size * model.spec.hidden_bits // 8 for w in model.hidden]
    include = work / "case"
    include.mkdir()
    (include / "case.h").write_text("\n".join([
        "/* case.h: rendered by tests/test_package.py */",
        f"#define CASE_N {N}u",
        f"#define CASE_BATCH {BATCH}u",
        f"#define CASE_TRAINER_EPOCHS {TRAINER_EPOCHS}u",
        f"#define CASE_HIDDEN_MAX_BYTES {max(hidden_bytes)}u",
        f"static const size_t case_hidden_bytes[] = {{{', '.join(f'{b}u' for b in hidden_bytes)}}};",
        f"static const uint32_t case_x[] = {{{', '.join(f'0x{int(w):08X}u' for w in data.packed.reshape(-1))}}};",
        f"static const uint16_t case_y[] = {{{', '.join(f'{int(v)}u' for v in data.y)}}};",
        f"static const uint16_t case_gamma[] = {{{', '.join(f'{int(g)}u' for g in model.training.gamma)}}};",
        f"static const uint32_t case_q[] = {{{', '.join(f'{int(v)}u' for v in case_q(model))}}};",
        f"static const uint8_t case_hello[] = {{{', '.join(f'0x{b:02X}u' for b in hello)}}};",
        "",
    ]))
    assert any(case_q(model)), "the case must exercise reinforcement"
    expected = api_lines(model, data) + trainer_lines(model, data) + ["done"]
    gammas = {line.split(" q ")[0].split(" gamma ")[1] for line in expected if line.startswith("epoch ")}
    assert len(gammas) > 1, "the trainer's γ must grow within the case"
    return {"include": include, "expected": expected, "config_hash": model.config_hash}


def check_output(stdout: str, case: dict) -> None:
    lines = stdout.splitlines()
    replies = [line for line in lines if line.startswith("reply ")]
    assert [line for line in lines if not line.startswith("reply ")] == case["expected"]
    assert len(replies) == 1
    frames = protocol.FrameReader(1024).feed(bytes.fromhex(replies[0].split()[1]))
    assert len(frames) == 1 and isinstance(frames[0], protocol.Frame), frames
    frame = frames[0]
    assert frame.type == protocol.Msg.HELLO | protocol.REPLY_BIT and frame.seq == 7
    info = protocol.parse_hello(frame.payload)
    assert info.session == SESSION and info.board == "cmake"
    assert info.config_hash == int(case["config_hash"][:8], 16)


def cmake(source: Path, build: Path, *defines: str, toolchain: Path | None = None) -> None:
    args = [f"-D{d}" for d in (*defines, f"BEP_TRAINER_BATCH={TRAINER_BATCH}",
                                f"BEP_TRAINER_EPOCH_BATCHES={TRAINER_EPOCH_BATCHES}")]
    if toolchain is not None:
        args.append(f"-DCMAKE_TOOLCHAIN_FILE={toolchain}")
    run_ok(["cmake", "-S", source, "-B", build, *args])
    run_ok(["cmake", "--build", build, "--parallel", "2"])


# ---------------------------------------------------------------------- CMake


@needs_cmake
@needs_gxx
def test_cmake_host_add_subdirectory_c_and_cxx_programs_train_like_numpy(gen, case, work):
    build = work / "cmake-host"
    cmake(HERE, build, f"BEP_GEN={gen.directory}", f"BEP_CASE={case['include']}", "CMAKE_C_COMPILER=gcc",
          "CMAKE_CXX_COMPILER=g++")
    for lib in ("bep_net/libbep_net.a", "bep_net/libbep_net_board.a", "bep_net/libbep_net_link.a",
                "bep_net/libbep_net_trainer.a"):
        assert (build / lib).is_file(), lib
    for program in ("train_c", "train_cxx"):
        check_output(run_ok([build / program], timeout=120).stdout, case)


@needs_cmake
@needs_arm
@needs_arm_gxx
@needs_qemu
def test_cmake_cortex_m4_toolchain_file_cross_build_runs_in_qemu(gen, case, work):
    build, memory = work / "cmake-m4", work / "cmake-m4-memory"
    memory.mkdir()
    (memory / "memory.ld").write_text(boards.memory_script(boards.board(BOARD)))
    cmake(HERE, build, f"BEP_GEN={gen.directory}", f"BEP_CASE={case['include']}", "BEP_CORTEX_M=ON",
          f"BEP_FW_DIR={fw_dir()}", f"BEP_MEMORY_DIR={memory}", "CMAKE_BUILD_TYPE=MinSizeRel",
          toolchain=HERE / "arm-none-eabi.cmake")
    for lib in ("libbep_net.a", "libbep_net_board.a", "libbep_net_link.a", "libbep_net_trainer.a"):
        members = run_ok(["arm-none-eabi-objdump", "-f", build / "bep_net" / lib]).stdout
        assert "elf32-littlearm" in members, lib
    for program in ("train_c", "train_cxx"):
        elf = build / program
        assert "Tag_CPU_arch: v7E-M" in run_ok(["arm-none-eabi-readelf", "-A", elf]).stdout
        result = emulate.run_image(elf, BOARD, timeout=120)
        assert result.status == 0, result.output
        lines = [line for line in result.output.splitlines() if line]
        check_output("\n".join(lines), case)


# ---------------------------------------------------------------------- Zephyr


def zephyr_configure(gen, build: Path, *config: str) -> tuple[list[str], list[str]]:
    """(sources, include directories) the stand-in Zephyr build gave the module's library."""
    proc = run_ok(["cmake", "-S", HERE / "zephyr_stub", "-B", build, f"-DBEP_GEN={gen.directory}",
                *[f"-D{c}" for c in config]])
    sources = re.search(r"zephyr-library-sources: (.*)", proc.stdout).group(1)
    includes = re.search(r"zephyr-include-directories: (.*)", proc.stdout)
    split = (lambda text: [] if text == "none" else text.split(";"))
    return split(sources), split(includes.group(1)) if includes else []


@needs_cmake
def test_zephyr_module_builds_one_zephyr_library(gen, work):
    def files(paths):
        return sorted(Path(p).relative_to(gen.directory).as_posix() for p in paths)

    training, board, link = gen.parts["training"], gen.parts["board"], gen.parts["link"]
    sources, includes = zephyr_configure(gen, work / "zephyr-all", "CONFIG_BEP_NET=y", "CONFIG_BEP_NET_BOARD=y",
                                         "CONFIG_BEP_NET_LINK=y")
    assert files(sources) == sorted(training + board + link)
    assert [Path(i) for i in includes] == [gen.src]
    run_ok(["cmake", "--build", work / "zephyr-all", "--parallel", "2"])
    sources, _ = zephyr_configure(gen, work / "zephyr-link", "CONFIG_BEP_NET=y", "CONFIG_BEP_NET_LINK=y")
    assert files(sources) == sorted(training + link)
    sources, _ = zephyr_configure(gen, work / "zephyr-training", "CONFIG_BEP_NET=y")
    assert files(sources) == sorted(training)
    assert zephyr_configure(gen, work / "zephyr-off") == ([], [])


def test_zephyr_module_yml_and_kconfig(gen):
    module = yaml.safe_load((gen.directory / "zephyr" / "module.yml").read_text())
    assert module["name"] == "bep_net"
    assert (gen.directory / module["build"]["cmake"] / "CMakeLists.txt").is_file()
    kconfig = (gen.directory / module["build"]["kconfig"]).read_text()
    defined = set(re.findall(r"^config (\w+)$", kconfig, re.MULTILINE))
    used = set(re.findall(r"\bCONFIG_(\w+)", (gen.directory / "CMakeLists.txt").read_text()))
    assert used == defined == {"BEP_NET", "BEP_NET_BOARD", "BEP_NET_LINK", "BEP_NET_INFER"}
    for option in ("BEP_NET_BOARD", "BEP_NET_LINK"):
        assert re.search(rf"^config {option}\n\tbool [^\n]+\n\tdepends on BEP_NET\n", kconfig, re.MULTILINE)


# ---------------------------------------------------------------------- PlatformIO, Arduino


def test_platformio_library_json(gen):
    manifest = json.loads((gen.directory / "library.json").read_text())
    # the manifest's required fields (docs.platformio.org, library.json) and what the registry shows
    assert {"name", "version", "description", "keywords", "homepage", "authors", "license"} <= set(manifest)
    assert manifest["name"] == "bep_net" and manifest["version"] == bep_mcu.__version__
    assert manifest["homepage"] == package.DEFAULT_URL.format(name="net")
    # what the code is built and tested for: Cortex-M platforms and the host, never every platform
    assert manifest["platforms"] == list(package.PLATFORMIO_PLATFORMS) and "atmelavr" not in manifest["platforms"]
    build = manifest["build"]
    src = gen.directory / build["srcDir"]
    assert src == gen.src and (gen.directory / build["includeDir"]) == gen.src
    assert build["srcFilter"][0] == "-<*>"
    built = [re.fullmatch(r"\+<(.+)>", f).group(1) for f in build["srcFilter"][1:]]
    every = codegen.every_part("net")
    assert sorted(f"src/{f}" for f in built) == sorted({f for part in ("training", "board", "link", "inference")
                                                        for f in every[part] if f.endswith(".c")})
    assert set(library_sources(gen)) <= {f"src/{f}" for f in built}
    assert build["flags"] == ["-ffunction-sections", "-fdata-sections"]


def read_properties(path: Path) -> dict[str, str]:
    """Java-style properties as the Arduino IDE reads them: key=value lines."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string("[library]\n" + path.read_text())
    return dict(parser["library"])


def test_arduino_library_properties_and_layout(gen):
    props = read_properties(gen.directory / "library.properties")
    # every field the Library Manager requires (the 1.5 library specification, rev. 2.2)
    assert {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
            "architectures"} == set(props)
    assert props["version"] == bep_mcu.__version__
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9 _.\-]{0,62}", props["name"]) and props["name"] == "bep_net"
    assert props["category"] in ("Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
                                 "Timing", "Data Storage", "Data Processing", "Other")
    assert re.fullmatch(r"https?://[^\s]+", props["url"])
    architectures = props["architectures"].split(",")
    assert architectures == list(package.ARDUINO_ARCHITECTURES) and "*" not in props["architectures"]
    assert "avr" not in architectures  # the README says 8-bit AVR is not supported
    # 1.5 layout: every source in src/, each example in a folder named as its .ino
    assert all(f.startswith("src/") for part in gen.parts if part != "example" for f in gen.parts[part])
    (sketch,) = [Path(f) for f in gen.parts["example"] if f.endswith(".ino")]
    assert sketch.parent.parent.as_posix() == "examples" and sketch.parent.name == sketch.stem


def test_generate_url_reaches_both_manifests_and_a_bad_one_is_one_line(model, tmp_path):
    path = tmp_path / "m.npz"
    modelio.save(model, path)
    assert_ok(invoke("generate", path, "--out", tmp_path / "g", "--url", "https://example.org/kws-lib"))
    assert read_properties(tmp_path / "g" / "library.properties")["url"] == "https://example.org/kws-lib"
    assert json.loads((tmp_path / "g" / "library.json").read_text())["homepage"] == "https://example.org/kws-lib"
    for bad in ("ftp://x.org", "https://x.org/a b", 'https://x.org/"', "https://x.org/?q=1"):
        assert_user_error(invoke("generate", path, "--out", tmp_path / "bad", "--url", bad), "--url")
    assert not (tmp_path / "bad").exists()


def test_cmake_lists_name_every_part_file(gen):
    text = (gen.directory / "CMakeLists.txt").read_text()
    named = re.findall(r"\$\{CMAKE_CURRENT_LIST_DIR\}/([^\s)]+)", text)
    files = {f for f in named if "." in Path(f).name}
    every = codegen.every_part("net")
    assert files == {f for part in every.values() for f in part if f.endswith((".c", ".h"))}
    assert {f for f in gen.files if f.endswith((".c", ".h"))} <= files
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "file(" not in code.lower() and "glob" not in code.lower()
    assert "add_library(bep_net STATIC" in text and "add_library(bep_net_link STATIC" in text
    assert "add_library(bep_net_infer STATIC" in text
    assert "target_include_directories(bep_net PUBLIC" in text and "c_std_99" in text


# ---------------------------------------------------------------------- training and inference in one directory


def test_training_and_inference_output_share_a_directory(both, gen, model, work):
    training, inference = both
    shared = set(training.files) & set(inference.files)
    assert {"CMakeLists.txt", "library.json", "library.properties", "zephyr/module.yml", "zephyr/Kconfig",
            "src/bep_status.c", "src/bep_encode.c"} <= shared
    alone = generate(model, work / "inference-alone", "net", inference_only=True)
    for f in shared:  # one text, whichever output wrote it last
        assert (gen.directory / f).read_text() == (alone.directory / f).read_text(), f
    # the rest carry their own names: nothing of one overwrote the other
    assert not any(f.startswith("src/bep_net.") for f in inference.files)
    assert {"src/bep_net_infer.c", "src/bep_net_infer.h", "INFERENCE.md",
            "examples/net_predict/net_predict.ino"} <= set(inference.files) - set(training.files)
    for f in set(training.files) | set(inference.files):
        assert (training.directory / f).is_file(), f
    assert (training.directory / "README.md").read_text() == (gen.directory / "README.md").read_text()


@needs_cmake
def test_cmake_one_program_links_training_and_inference_and_predicts_like_numpy(both, model, case, work):
    training, _ = both
    build = work / "cmake-both"
    cmake(HERE, build, f"BEP_GEN={training.directory}", f"BEP_CASE={case['include']}", "CMAKE_C_COMPILER=gcc",
          "CMAKE_CXX_COMPILER=g++")
    assert (build / "bep_net" / "libbep_net_infer.a").is_file()
    raw = load_dataset(DATASET)
    x = encoded(model, raw.X_train[:N], raw.y_train[:N]).x
    net = model.network()
    want = [f"sample {p} {p} {' '.join(str(int(v)) for v in logits)}"
            for p, logits in zip(net.predict(x).tolist(), net.logits(x))]
    assert run_ok([build / "infer_c"], timeout=120).stdout.splitlines() == want + ["done"]


@needs_cmake
def test_zephyr_module_adds_the_inference_sources(both, work):
    training, inference = both

    def files(paths):
        return sorted(Path(p).relative_to(training.directory).as_posix() for p in paths)

    sources, _ = zephyr_configure(training, work / "zephyr-infer", "CONFIG_BEP_NET_INFER=y")
    assert files(sources) == sorted(inference.parts["inference"])
    run_ok(["cmake", "--build", work / "zephyr-infer", "--parallel", "2"])
    sources, _ = zephyr_configure(training, work / "zephyr-both", "CONFIG_BEP_NET=y", "CONFIG_BEP_NET_INFER=y")
    assert files(sources) == sorted(set(training.parts["training"]) | set(inference.parts["inference"]))
    run_ok(["cmake", "--build", work / "zephyr-both", "--parallel", "2"])


@pytest.mark.parametrize("name", codegen.SHARED_NAMES)
def test_a_name_cannot_overwrite_a_shared_file(model, tmp_path, name):
    with pytest.raises(BEPError, match="shared files"):
        generate(model, tmp_path / "gen", name)
    assert not (tmp_path / "gen").exists()


@pytest.mark.parametrize("filename", [*codegen.RUNTIME_FILES, *codegen.LINK_FILES, *codegen.ENCODE_FILES,
                                      *codegen.STANDALONE_FILES, *codegen.STORE_FILES, *codegen.INFERENCE_FILES])
def test_every_shared_file_reserves_its_name(model, tmp_path, filename):
    """A network named after a shipped file (bep_kernels.c: "kernels") would overwrite it."""
    name = Path(filename).stem.removeprefix("bep_")
    with pytest.raises(BEPError, match="shared files"):
        generate(model, tmp_path / "gen", name)


def test_readme_names_existing_files_and_every_build_system(gen):
    readme = (gen.directory / "README.md").read_text()
    for path in re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE):
        for one in path.split("`, `"):
            assert (gen.directory / one).is_file(), one
    for word in ("add_subdirectory", "CMAKE_TOOLCHAIN_FILE", "ZEPHYR_EXTRA_MODULES", "CONFIG_BEP_NET=y",
                 "lib_deps", "libraries/", "bep-mcu stream", "bep-mcu size"):
        assert word in readme, word


# ---------------------------------------------------------------------- the Arduino example


@needs_arm
@needs_arm_gxx
@pytest.mark.parametrize("from_serial", [1, 0], ids=["serial-link", "sensor-trainer"])
def test_arduino_example_compiles_as_cxx_for_cortex_m4(gen, work, from_serial):
    """The sketch as arduino-cli would compile it (C++, Arduino.h included first), for
    Cortex-M4, against the library compiled as C; then linked freestanding. The sketch is
    compiled at -Os (as Arduino does) and at -O0: its placeholder sensor never has a
    sample, so at -Os the training calls are optimised away, and at -O0 every call the
    chosen mode makes must resolve. At -Os the mode not chosen is not in the image."""
    out = work / f"arduino-{from_serial}"
    out.mkdir()
    arch = ["-mcpu=cortex-m4", "-mthumb", "-ffunction-sections", "-fdata-sections"]
    warn = ["-Wall", "-Wextra", "-Werror"]
    cxx = ["arm-none-eabi-g++", *arch, *warn, "-std=gnu++11", "-fno-exceptions", "-fno-rtti", "-I", HERE / "arduino",
           "-I", gen.src]
    (sketch,) = [gen.directory / f for f in gen.parts["example"] if f.endswith(".ino")]
    sketch_cxx = [*cxx, f"-DBEP_EXAMPLE_FROM_SERIAL={from_serial}", "-x", "c++", "-include", "Arduino.h", "-c", sketch]
    run_ok([*sketch_cxx, "-Os", "-o", out / "sketch_os.o"])
    objects = [out / "sketch.o", out / "arduino_stub.o"]
    run_ok([*sketch_cxx, "-O0", "-o", objects[0]])
    run_ok([*cxx, "-Os", "-c", HERE / "arduino" / "arduino_stub.cpp", "-o", objects[1]])
    # an Arduino core brings a C library; here bep_mcu/fw/mem.c gives the memset/memcpy gcc may call
    for src in [*gen.sources(tuple(gen.parts)), fw_dir() / "mem.c"]:
        obj = out / (src.stem + ".o")
        run_ok(["arm-none-eabi-gcc", *arch, *warn, "-Os", "-std=c99", "-I", gen.src, "-c", src, "-o", obj])
        objects.append(obj)
    link = ["arm-none-eabi-g++", *arch, "-nostdlib", "-nostartfiles", "-Wl,-e,main", "-Wl,--gc-sections"]
    run_ok([*link, *objects, "-lgcc", "-o", out / "sketch_o0.elf"])
    symbols = run_ok(["arm-none-eabi-nm", out / "sketch_o0.elf"]).stdout
    used = ("bep_link_init", "bep_link_rx", "bep_train_sample") if from_serial else \
        ("bep_net_trainer_init", "bep_net_trainer_sample", "bep_net_trainer_info", "bep_net_train_sample",
         "bep_net_encode", "bep_end_epoch")
    for symbol in used:
        assert re.search(rf" T {symbol}\b", symbols), symbol
    run_ok([*link, out / "sketch_os.o", *objects[1:], "-lgcc", "-o", out / "sketch_os.elf"])
    symbols = run_ok(["arm-none-eabi-nm", out / "sketch_os.elf"]).stdout
    chosen, dropped = ("bep_link_rx", "bep_net_trainer_init") if from_serial else ("bep_net_trainer_init", "bep_link_rx")
    assert re.search(rf" T {chosen}\b", symbols) and not re.search(rf"\b{dropped}\b", symbols)


@needs_arm
@needs_arm_gxx
def test_arduino_inference_example_compiles_and_links_for_cortex_m4(both, work):
    """The inference output's sketch as arduino-cli would compile it (C++, Arduino.h first),
    at -O0 so that every call it makes must resolve, linked freestanding with the inference
    library alone (compiled as C)."""
    _, inference = both
    out = work / "arduino-predict"
    out.mkdir()
    arch = ["-mcpu=cortex-m4", "-mthumb", "-ffunction-sections", "-fdata-sections"]
    warn = ["-Wall", "-Wextra", "-Werror"]
    (sketch,) = [inference.directory / f for f in inference.parts["example"]]
    assert sketch.name == "net_predict.ino" and sketch.parent.name == "net_predict"
    cxx = ["arm-none-eabi-g++", *arch, *warn, "-std=gnu++11", "-fno-exceptions", "-fno-rtti", "-I", HERE / "arduino",
           "-I", inference.src]
    objects = [out / "sketch.o", out / "arduino_stub.o"]
    run_ok([*cxx, "-O0", "-x", "c++", "-include", "Arduino.h", "-c", sketch, "-o", objects[0]])
    run_ok([*cxx, "-Os", "-c", HERE / "arduino" / "arduino_stub.cpp", "-o", objects[1]])
    for src in [*inference.sources(), fw_dir() / "mem.c"]:
        obj = out / (src.stem + ".o")
        run_ok(["arm-none-eabi-gcc", *arch, *warn, "-Os", "-std=c99", "-I", inference.src, "-c", src, "-o", obj])
        objects.append(obj)
    link = ["arm-none-eabi-g++", *arch, "-nostdlib", "-nostartfiles", "-Wl,-e,main", "-Wl,--gc-sections"]
    run_ok([*link, *objects, "-lgcc", "-o", out / "predict.elf"])
    symbols = run_ok(["arm-none-eabi-nm", out / "predict.elf"]).stdout
    for symbol in ("bep_net_infer_scores_raw", "bep_infer_scores", "bep_net_infer_label"):
        assert re.search(rf" T {symbol}\b", symbols), symbol


# ---------------------------------------------------------------------- formatters


@pytest.mark.parametrize("good", ["src", "src/bep_net.c", "examples/net_train/net_train.ino", "zephyr/Kconfig",
                                  "a-b_c.d/e"])
def test_cpath_accepts_relative_paths(good):
    assert cformat.cpath(good) == good


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "src/../x", "a b", 'a"b', "a;b", "$(x)", "${X}", "a\nb",
                                 "-x", "src/-x", "a//b", "src/", "./x", "a\\b", 'a"', "é", 1, None])
def test_cpath_refuses_anything_else(bad):
    with pytest.raises((ValueError, TypeError)):
        cformat.cpath(bad)


@pytest.mark.parametrize("good, ok", [("0.1.0", True), ("1.2.3rc1", True), ("2.0.0.dev4+g1a2b", True),
                                      ("1", True), ("", False), ("v1.0", False), ("1.0 beta", False),
                                      ('1"', False), ("1.0\n", False)])
def test_cversion(good, ok):
    if ok:
        assert cformat.cversion(good) == good
    else:
        with pytest.raises(ValueError):
            cformat.cversion(good)


def test_build_files_print_only_through_formatters(tmp_path):
    """The package templates render in codegen's environment, whose finalize refuses a raw
    value; hostile labels (quotes, newlines, $, braces) reach only the README, through ctext,
    and the board part's label table, through cstr (every character a letter, digit, space
    or an octal escape inside one string literal), and every build file still parses."""
    with pytest.raises(TypeError, match="without a formatter"):
        environment().from_string("{{ name }}").render(name="net")
    X, y = blobs(90, features=6, classes=3)
    hostile = np.array(['a"b', "c\n$(rm -rf x)", "}{;%"])[y]
    gen = generate(fit(X, hostile, hidden=(16,), epochs=1), tmp_path / "gen", "kws")
    json.loads((gen.directory / "library.json").read_text())
    yaml.safe_load((gen.directory / "zephyr" / "module.yml").read_text())
    assert read_properties(gen.directory / "library.properties")["name"] == "bep_kws"
    for f in gen.files:
        if f != "README.md":
            text = (gen.directory / f).read_text()
            if f == "src/bep_kws_board.c":
                assert '"c\\012\\044(rm -rf x)"' in text and '"a\\042b"' in text
                text = text.replace('"c\\012\\044(rm -rf x)"', "")
            assert "rm -rf" not in text and 'a"b' not in text, f
    readme = (gen.directory / "README.md").read_text()
    assert "a_b" in readme and "c__(rm -rf x)" in readme and "$(rm" not in readme and "__;%" in readme
