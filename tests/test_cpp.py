"""The generated code from C++ projects: C linkage in every header, and the C compiling as C++.

Asserted:

* every header that ships (the generated ones, the runtime, the link, the example
  trainer, bep_mcu/fw) wraps
  its declarations in ``extern "C"`` for C++ callers;
* host: tests/cpp/train_main.cpp, a C++ program using the generated network, builds
  with g++ (and clang++) against the generated ``.c`` files compiled as C (the usual
  drop-in) and compiled as C++ (``-x c++``, C++11 to C++20, ``-Wall -Wextra -Werror``,
  ``-pedantic`` with C++20); it trains, and its predictions after every batch, every
  hidden weight, the counters and an inference equal the numpy engine's; it prints the
  status strings and answers a HELLO frame through bep_link that the host's protocol
  code parses. Control: the same build with the ``extern "C"`` blocks stripped from the
  headers fails to link;
* Cortex-M4: the netduinoplus2 firmware with ``main.c``, the STM32 port and the whole
  generated C compiled as C++20 by arm-none-eabi-g++ (``-fno-exceptions -fno-rtti`` and
  the firmware's strict warning set), linked with the C start-up code and ``mem.c``,
  runs in QEMU and trains bit-exact with numpy over the serial link.

Designated initialisers (the generated ``bep_config_t``) are standard C++ from C++20;
GCC and Clang accept them in C++11..17 as an extension, so those builds go without
``-pedantic``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import generate
from bep_mcu.data.datasets import load_dataset
from bep_mcu.cgen import protocol
from bep_mcu.device import boards
from bep_mcu.device.firmware import FW_SOURCES, build_flags, fw_dir
from bep_mcu.engine.schedule import FixedSchedule
from bep_mcu.training import NumpyTrainer, Plan, encoded, first_difference, run_epochs, schedule_for

from .conftest import assert_ok, invoke, our_qemus, run_ok
from .test_firmware import berkeley, train_over_link

CPP_MAIN = Path(__file__).parent / "cpp" / "train_main.cpp"
DATASET = "prototypes:classes=4,features=100,samples=600"
MODELS = {
    "mlp8": ["--dataset", DATASET, "--hidden", "32", "--hidden-bits", "8", "--epochs", "1"],
    "mlp16": ["--dataset", DATASET, "--hidden", "48,32", "--hidden-bits", "16", "--epochs", "1"],
}
N_SAMPLES, BATCH = 60, 10
WARN = ["-Wall", "-Wextra", "-Werror"]
# name: (C++ compiler, standard, extra flags, whether the library is compiled as C++ too)
VARIANTS = {
    "c-library-cxx11-main": ("g++", "c++11", [], False),
    "cxx17": ("g++", "c++17", [], True),
    "cxx20-pedantic": ("g++", "c++20", ["-Wundef", "-Wshadow", "-pedantic"], True),
    "clang-cxx20-pedantic": ("clang++", "c++20", ["-Wundef", "-Wshadow", "-pedantic"], True),
}
EXTERN_C_BLOCK = re.compile(r'#ifdef __cplusplus\nextern "C" \{[^\n]*\n#endif\n|#ifdef __cplusplus\n\}\n#endif\n')

HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size"))
HAVE_QEMU = shutil.which("qemu-system-arm") is not None


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} not installed")
    return path


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cpp")


@pytest.fixture(scope="module")
def models(work) -> dict[str, Path]:
    out = {}
    for kind, args in MODELS.items():
        out[kind] = work / f"{kind}.npz"
        assert_ok(invoke("train", *args, "--out", out[kind]))
    return out


@pytest.fixture(scope="module")
def cases(work, models) -> dict[str, dict]:
    """Per model: its generated C, the rendered cpp_case.h and numpy's results on the same batches."""
    data = load_dataset(DATASET)
    out = {}
    for kind, path in models.items():
        model = modelio.load(path)
        gen = generate(model, work / kind / "gen", "net")
        data_part = encoded(model, data.X_train[:N_SAMPLES], data.y_train[:N_SAMPLES])
        # One epoch in batches of BATCH with the first epoch's γ and Q, through the one
        # driver; the C++ main replays the same samples in the order they were trained.
        plan = Plan.continuing(model, 1, BATCH, error_rate=1.0)
        trainer = NumpyTrainer(model)
        order, preds = [], []
        report = run_epochs([trainer], data_part, plan, schedule=schedule_for(plan, FixedSchedule),
                            on_batch=lambda _, index, p: (order.append(index), preds.append(p[0])))
        gamma, q = report.history[0]["gamma"], report.history[0]["reinforce_q"]
        assert any(q), "the case must exercise reinforcement"
        trained = data_part.take(np.concatenate(order))
        session = 0x5EED1234
        hello = protocol.encode_frame(protocol.Msg.HELLO, 7, protocol.HELLO_REQ.pack(session=session))
        include = work / kind / "case"
        include.mkdir()
        (include / "cpp_case.h").write_text(render_case(trained.packed, trained.y, gamma, q, hello))
        out[kind] = {"gen": gen, "include": include, "preds": preds, "hidden": trainer.hidden_weights(),
                     "infer": int(trainer.net.predict(trained.x[:1])[0]), "session": session,
                     "config_hash": gen.config_hash, "counters": trainer.counters().as_dict()}
    return out


def render_case(x: np.ndarray, y: np.ndarray, gamma: list[int], q: list[int], hello: bytes) -> str:
    words = ", ".join(f"0x{int(w):08X}u" for w in x.reshape(-1))
    return "\n".join([
        "/* cpp_case.h: rendered by tests/test_cpp.py */",
        f"#define CASE_N {len(y)}u",
        f"#define CASE_BATCH {BATCH}u",
        f"static const uint32_t case_x[] = {{{words}}};",
        f"static const uint16_t case_y[] = {{{', '.join(f'{int(v)}u' for v in y)}}};",
        f"static const uint16_t case_gamma[] = {{{', '.join(f'{int(v)}u' for v in gamma)}}};",
        f"static const uint32_t case_q[] = {{{', '.join(f'{int(v)}u' for v in q)}}};",
        f"static const uint8_t case_hello[] = {{{', '.join(f'0x{b:02X}u' for b in hello)}}};",
        "",
    ])


def build_host(case: dict, out: Path, cxx: str, std: str, extra: list[str], library_as_cxx: bool,
               headers: Path | None = None) -> tuple[Path | None, str]:
    """Compile the library (as C, or as C++) and train_main.cpp, link with the C++ driver.
    Returns (program, "") or (None, the linker's complaint) when only the link fails."""
    out.mkdir(parents=True)
    gen = case["gen"]
    include = ["-I", str(headers or gen.src), "-I", str(case["include"])]
    cxxflags = [f"-std={std}", *WARN, *extra, "-O2"]
    objects = []
    for src in gen.sources():
        obj = out / (src.stem + ".o")
        if library_as_cxx:
            run_ok([cxx, "-x", "c++", *cxxflags, *include, "-c", src, "-o", obj])
        else:
            run_ok(["gcc", *toolchain.cflags("host", "O2", strict=True), *include, "-c", src, "-o", obj])
        objects.append(obj)
    main_obj = out / "train_main.o"
    run_ok([cxx, *cxxflags, *include, "-c", CPP_MAIN, "-o", main_obj])
    program = out / "train_main"
    proc = subprocess.run([cxx, main_obj, *objects, "-o", program], capture_output=True, text=True)
    return (program, "") if proc.returncode == 0 else (None, proc.stderr)


def check_output(stdout: str, case: dict) -> None:
    """Everything train_main printed, against numpy and the protocol."""
    lines = stdout.splitlines()
    status = next(line for line in lines if line.startswith("status "))
    assert status.startswith("status BEP_OK") and "| BEP_ERR_SIZE" in status, status
    batches = [np.array(line.split()[1:], dtype=np.int64) for line in lines if line.startswith("batch ")]
    assert len(batches) == len(case["preds"])
    for i, (got, want) in enumerate(zip(batches, case["preds"])):
        assert np.array_equal(got, want), f"batch {i}: C++ {got.tolist()}, numpy {list(want)}"
    hidden = []
    for k, want in enumerate(case["hidden"]):
        line = next(line for line in lines if line.startswith(f"hidden {k} "))
        hidden.append(np.array(line.split()[2:], dtype=np.int64).reshape(want.shape))
    assert first_difference(case["hidden"], hidden) is None, first_difference(case["hidden"], hidden)
    assert f"infer {case['infer']}" in lines
    counters = next(line for line in lines if line.startswith("counters ")).split()[1:]
    assert dict(zip(("samples", "triggered", "errors", "updates", "batches"), map(int, counters))) == case["counters"]
    assert case["counters"]["updates"] > 0
    reply = bytes.fromhex("".join(next(line for line in lines if line.startswith("reply")).split()[1:]))
    frames = protocol.FrameReader(1024).feed(reply)
    assert len(frames) == 1 and isinstance(frames[0], protocol.Frame), frames
    frame = frames[0]
    assert frame.type == protocol.Msg.HELLO | protocol.REPLY_BIT and frame.seq == 7
    info = protocol.parse_hello(frame.payload)
    assert info.session == case["session"] and info.board == "c++ host"
    assert info.config_hash == int(case["config_hash"][:8], 16)


# ---------------------------------------------------------------------- headers


def test_every_shipped_header_has_c_linkage_for_cxx(cases):
    headers = [case["gen"].directory / f for case in cases.values() for f in case["gen"].files if f.endswith(".h")]
    headers += sorted(fw_dir().glob("*.h"))
    assert len(headers) >= 2 * 6 + 7  # per network: net, runtime, status, proto, link, the example trainer
    for h in headers:
        text = h.read_text()
        assert len(EXTERN_C_BLOCK.findall(text)) == 2, f"{h.name}: no (or an unbalanced) extern \"C\" block"
        # closed last, just inside the include guard
        assert re.search(r"#ifdef __cplusplus\n\}\n#endif\n\n#endif /\*[^\n]*\*/\n?$", text), h.name


# ---------------------------------------------------------------------- host


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cxx_program_trains_bit_exact_with_numpy(cases, tmp_path, variant):
    cxx, std, extra, library_as_cxx = VARIANTS[variant]
    need(cxx)
    case = cases["mlp16"]
    program, error = build_host(case, tmp_path / "build", cxx, std, extra, library_as_cxx)
    assert program is not None, error
    check_output(run_ok([program], timeout=60).stdout, case)


def test_cxx_program_int8_network(cases, tmp_path):
    need("g++")
    program, error = build_host(cases["mlp8"], tmp_path / "build", "g++", "c++11", [], False)
    assert program is not None, error
    check_output(run_ok([program], timeout=60).stdout, cases["mlp8"])


def test_without_extern_c_the_cxx_program_does_not_link(cases, tmp_path):
    """Control: strip the extern "C" blocks and C++ looks for mangled names the C objects lack."""
    need("g++")
    case = cases["mlp16"]
    stripped = tmp_path / "headers"
    stripped.mkdir()
    for h in case["gen"].src.glob("*.h"):
        text, n = EXTERN_C_BLOCK.subn("", h.read_text())
        assert n == 2, h.name
        (stripped / h.name).write_text(text)
    program, error = build_host(case, tmp_path / "build", "g++", "c++11", [], False, headers=stripped)
    assert program is None
    assert re.search(r"undefined reference to `bep_net_init\(void\*, (unsigned long|size_t)", error), error


# ---------------------------------------------------------------------- Cortex-M, C++ firmware


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-g++ not installed (apt-get install gcc-arm-none-eabi)")
@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm not installed (apt-get install qemu-system-arm)")
def test_cxx_firmware_trains_bit_exact_on_netduinoplus2(models, cases, work):
    """main.c, port_stm32.c and the generated C as C++20 on a Cortex-M4, start-up and mem.c
    as C: the image links with -nostdlib (no C++ runtime needed) and trains bit-exact."""
    board = boards.board("netduinoplus2")
    case = cases["mlp8"]
    out = work / "fw-cxx"
    build = out / "build"
    build.mkdir(parents=True)
    (build / "memory.ld").write_text(boards.memory_script(board))
    cflags, _ = build_flags(board, "net")
    cxxflags = [f if f != "-std=c99" else "-std=c++20" for f in cflags] + ["-fno-exceptions", "-fno-rtti"]
    assert "-std=c++20" in cxxflags and "-pedantic" in cxxflags and "-Wconversion" in cxxflags
    as_c = {board.startup_file, "mem.c"}  # board support only: array designators and void * conversions are C
    sources = [fw_dir() / s for s in (*FW_SOURCES, board.startup_file, board.port_file)] + case["gen"].sources()
    objects = []
    for src in sources:
        obj = build / (src.stem + ".o")
        if src.name in as_c:
            run_ok(["arm-none-eabi-gcc", *cflags, "-I", case["gen"].src, "-c", src, "-o", obj])
        else:
            run_ok(["arm-none-eabi-g++", "-x", "c++", *cxxflags, "-I", case["gen"].src, "-c", src, "-o", obj])
        objects.append(obj)
    elf = out / "firmware.elf"
    run_ok(["arm-none-eabi-g++", f"-mcpu={board.cpu}", "-mthumb", "-nostdlib", "-Wl,--gc-sections",
         "-Wl,--fatal-warnings", "-T", fw_dir() / "ld" / board.linker_script, "-L", build, *objects, "-lgcc",
         "-o", elf])
    # the same RAM as the C image: C++ added no static data, no guard variables, no heap
    c_build = invoke("firmware", models["mlp8"], "--board", board.name, "--out", work / "fw-c", "--json")
    assert_ok(c_build)
    _, data, bss = berkeley(elf)
    assert data + bss == int(re.search(r'"ram_bytes": (\d+)', c_build.stdout).group(1))
    train_over_link(str(elf), board.name, models["mlp8"], DATASET, epochs=1, batch_size=20, n=200)
    assert our_qemus() == []
