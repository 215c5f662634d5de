"""The generated directory as a library that build systems take as it is.

``bep-mcu generate`` writes::

    README.md                 how to use it with each build system
    CMakeLists.txt            targets bep_<net>, bep_<net>_board, bep_<net>_link, bep_<net>_trainer and
                              bep_<net>_infer, each when its files are there; a zephyr_library() when
                              ZEPHYR_BASE is defined
    library.json              PlatformIO
    library.properties        Arduino (1.5 library format)
    zephyr/module.yml         Zephyr module (build: the CMakeLists.txt above; options: zephyr/Kconfig)
    zephyr/Kconfig
    src/                      the C library: every source and header, one include directory
    examples/<net>_train/     <net>_train.ino (Arduino sketch) and bep_<net>_trainer.[ch] (example code)

``generate --inference-only`` writes the inference part instead: ``src/bep_<net>_infer.[ch]``
and the runtime it needs, ``examples/<net>_predict/<net>_predict.ino``, ``INFERENCE.md`` and
the same build files. The two outputs of one network fit one directory (train on the board
and predict elsewhere, or both in one firmware): every file both write has one text (the
build files list every part, and each build system builds the parts whose files are
there), and the inference files and C symbols carry their own names
(``codegen.inference_name``).

The sources live in ``src/`` because the Arduino library format compiles that folder
and puts it on the include path; CMake, PlatformIO and Zephyr point there too. ``src/``
stays flat, so one include directory serves every build and every part. The parts are
lists rather than folders:

* ``training``: the network's tables and API, the runtime, the status strings: what
  learning from a host needs;
* ``board``: what learning on the board alone adds: the input encoder, the epoch
  schedule, the sample order and snapshots (``bep_<net>_board.h``);
* ``link``: the board side of the serial protocol (``bep-mcu stream``/``pull``);
* ``inference``: prediction from the packed visible weights (``bep_<net>_infer.h``);
* ``example``: the Arduino sketch and the on-device trainer it uses, or the inference
  output's sketch (example code, not part of the library: the trainer's ``.c`` is compiled by
  the sketch's build, by CMake's ``bep_<net>_trainer`` target, and measured by ``size``).

Every build file names its files from these lists, never by a glob, so a source that
``codegen`` adds to a part reaches every build file when regenerated. Values reach the
files through ``cformat``'s formatters only (the environment's ``finalize``), as in the C.
"""

from __future__ import annotations

from collections.abc import Iterable

import jinja2

from bep_mcu.cgen import protocol

SRC_DIR = "src"
TRAINING_PARTS = ("training", "board", "link")
PARTS = (*TRAINING_PARTS, "example")  # the parts of training output (``size`` measures each)
KCONFIG = "zephyr/Kconfig"
EPOCH_BATCHES = 10  # the example trainer's default epoch, in batches
# (template, path) of the build files: one text for training and inference output.
BUILD_FILES = (("package/CMakeLists.txt.j2", "CMakeLists.txt"), ("package/library.json.j2", "library.json"),
               ("package/library.properties.j2", "library.properties"), ("package/module.yml.j2", "zephyr/module.yml"),
               ("package/Kconfig.j2", KCONFIG))
README = {"training": "README.md", "inference": "INFERENCE.md"}  # each output's own, rendered from README.md.j2
# (template, path) of each example's files ({name}: the network's name).
EXAMPLE_FILES = (("example/trainer.h.j2", "bep_{name}_trainer.h"), ("example/trainer.c.j2", "bep_{name}_trainer.c"),
                 ("example/train.ino.j2", "{name}_train.ino"))
INFERENCE_EXAMPLE_FILES = (("example/predict.ino.j2", "{name}_predict.ino"),)
# What the library.properties and library.json admit: the Arduino cores and PlatformIO
# platforms of 32-bit Cortex-M parts and, for PlatformIO, the host. The C is built and run for
# Cortex-M0/M3/M4/M7/M33 (QEMU: the nRF51 of the micro:bit, an STM32F405 and Arm's MPS2
# boards) and on the host by bep-mcu's tests; it needs a 32-bit int, so 8-bit AVR is left out.
ARDUINO_ARCHITECTURES = ("samd", "sam", "stm32", "nrf52", "mbed_nano", "renesas_uno")
PLATFORMIO_PLATFORMS = ("ststm32", "nordicnrf51", "nordicnrf52", "atmelsam", "native")
# library.properties' url and library.json's homepage until ``generate --url`` gives the
# library's own page (a reserved documentation domain: nothing lives there).
DEFAULT_URL = "https://example.com/bep-mcu/{name}"


def example_dir(name: str, inference: bool = False) -> str:
    """A sketch's folder: Arduino wants the folder named as its .ino."""
    return f"examples/{name}_predict" if inference else f"examples/{name}_train"


def layout(name: str, library: dict[str, Iterable[str]]) -> dict[str, list[str]]:
    """The paths of every part of both outputs, {part: [path, ...]}: the library parts
    ({part: filenames}, ``codegen.library_files``, in its order: the network's own files
    first) in ``src/`` and the two examples."""
    parts = {part: [f"{SRC_DIR}/{f}" for f in files] for part, files in library.items()}
    for part, inference, files in (("example", False, EXAMPLE_FILES), ("inference_example", True,
                                                                        INFERENCE_EXAMPLE_FILES)):
        parts[part] = [f"{example_dir(name, inference)}/{pattern.format(name=name)}" for _, pattern in files]
    return parts


def in_src(library: dict[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """{src/<file>: text} of the library ({part: {filename: text}}) and {part: [src/<file>, ...]}."""
    out = {f"{SRC_DIR}/{f}": text for files in library.values() for f, text in files.items()}
    if len(out) != sum(len(files) for files in library.values()):
        raise AssertionError("a library file is in two parts")
    return out, {part: [f"{SRC_DIR}/{f}" for f in sorted(files)] for part, files in library.items()}


def build_files(env: jinja2.Environment, name: str, version: str, url: str | None,
                every_part: dict[str, list[str]]) -> dict[str, str]:
    """The build files of network ``name``: from its name, the version and ``every_part``
    (``layout``) only, so training and inference output write the same text."""
    sources = sorted({f.split("/", 1)[1] for part in ("training", "board", "link", "inference")
                      for f in every_part[part] if f.endswith(".c")})
    # a file only that output writes, which tells the build files it is there: the part's first .c,
    # the network's own
    marker = {part: next(f for f in every_part[part] if f.endswith(".c")) for part in ("training", "inference")}
    ctx = {"name": name, "NAME": name.upper(), "version": version, "parts": every_part, "marker": marker,
           "src_dir": SRC_DIR,
           "kconfig": KCONFIG, "library_sources": sources, "url": url or DEFAULT_URL.format(name=name),
           "architectures": ARDUINO_ARCHITECTURES, "platforms": PLATFORMIO_PLATFORMS}
    return {path: env.get_template(template).render(template=template, **ctx) for template, path in BUILD_FILES}


def render(env: jinja2.Environment, ctx: dict, library: dict[str, dict[str, str]], every_part: dict[str, list[str]],
           url: str | None = None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The training output around ``library`` ({part: {filename: text}}, the C ``codegen``
    rendered): the library in ``src/``, the example, the build files and the README.
    Returns ({path: text}, {part: [path, ...]}); paths are relative, '/'-separated."""
    name = ctx["name"]
    out, parts = in_src(library)
    parts["example"] = every_part["example"]
    ctx = {**ctx, "parts": parts, "src_dir": SRC_DIR, "example_dir": example_dir(name), "kconfig": KCONFIG,
           "epoch_batches": EPOCH_BATCHES,
           "link_bytes": protocol.link_bytes(protocol.MAX_PAYLOAD, 4), "readme": README}
    for (template, _), path in zip(EXAMPLE_FILES, parts["example"]):
        out[path] = env.get_template(template).render(template=template, **ctx)
    out.update(build_files(env, name, ctx["version"], url, every_part))
    out[README["training"]] = env.get_template("README.md.j2").render(template="README.md.j2", **ctx)
    return out, parts


def render_inference(env: jinja2.Environment, ctx: dict, library: dict[str, str], every_part: dict[str, list[str]],
                     url: str | None = None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Inference-only output: ``library`` ({filename: text}) in ``src/`` (part ``inference``),
    its example (part ``example``), the build files and ``INFERENCE.md``."""
    network = ctx["network"]
    out, parts = in_src({"inference": library})
    parts["example"] = every_part["inference_example"]
    ctx = {**ctx, "parts": parts, "src_dir": SRC_DIR, "example_dir": example_dir(network, inference=True),
           "readme": README}
    for (template, _), path in zip(INFERENCE_EXAMPLE_FILES, parts["example"]):
        out[path] = env.get_template(template).render(template=template, **ctx)
    out.update(build_files(env, network, ctx["version"], url, every_part))
    out[README["inference"]] = env.get_template("README.md.j2").render(template="README.md.j2", **ctx)
    return out, parts
