"""The generated directory as a library that build systems take as it is.

``bep-mcu generate`` writes::

    README.md                 how to use it with each build system
    CMakeLists.txt            targets bep_<net>, bep_<net>_link, bep_<net>_trainer; a zephyr_library()
                              when ZEPHYR_BASE is defined
    library.json              PlatformIO
    library.properties        Arduino (1.5 library format)
    zephyr/module.yml         Zephyr module (build: the CMakeLists.txt above; options: zephyr/Kconfig)
    zephyr/Kconfig
    src/                      the C library: every source and header, one include directory
    examples/<net>_train/     <net>_train.ino (Arduino sketch) and bep_<net>_trainer.[ch] (example code)

(``generate --inference-only`` writes ``src/`` and the README alone: one part, ``inference``.)

The sources live in ``src/`` because the Arduino library format compiles that folder
and puts it on the include path; CMake, PlatformIO and Zephyr point there too. ``src/``
stays flat, so one include directory serves every build and every part. The parts are
lists rather than folders:

* ``training``: the network's tables and API, the runtime, the status strings: what
  learning from a host needs;
* ``board``: what learning on the board alone adds: the input encoder, the epoch
  schedule, the sample order and snapshots (``bep_<net>_board.h``);
* ``link``: the board side of the serial protocol (``bep-mcu stream``/``pull``);
* ``example``: the Arduino sketch and the on-device trainer it uses (example code, not
  part of the library: the ``.c`` is compiled by the sketch's build, by CMake's
  ``bep_<net>_trainer`` target, and measured by ``size``).

Every build file names its files from these lists, never by a glob, so a source that
``codegen`` adds to a part reaches every build file when regenerated. Values reach the
files through ``cformat``'s formatters only (the environment's ``finalize``), as in the C.
"""

from __future__ import annotations

import jinja2

from bep_mcu.cgen import protocol
from bep_mcu.model import Model

SRC_DIR = "src"
PARTS = ("training", "board", "link", "example")
KCONFIG = "zephyr/Kconfig"
EPOCH_BATCHES = 10  # the example trainer's default epoch, in batches
# (template, path) of the build files and of the example's files ({name}: the network's name).
BUILD_FILES = (("package/CMakeLists.txt.j2", "CMakeLists.txt"), ("package/library.json.j2", "library.json"),
               ("package/library.properties.j2", "library.properties"), ("package/module.yml.j2", "zephyr/module.yml"),
               ("package/Kconfig.j2", KCONFIG), ("README.md.j2", "README.md"))
EXAMPLE_FILES = (("example/trainer.h.j2", "bep_{name}_trainer.h"), ("example/trainer.c.j2", "bep_{name}_trainer.c"),
                 ("example/train.ino.j2", "{name}_train.ino"))


def example_dir(name: str) -> str:
    """The sketch folder: Arduino wants the folder named as its .ino."""
    return f"examples/{name}_train"


def in_src(library: dict[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """{src/<file>: text} of the library ({part: {filename: text}}) and {part: [src/<file>, ...]}."""
    out = {f"{SRC_DIR}/{f}": text for files in library.values() for f, text in files.items()}
    if len(out) != sum(len(files) for files in library.values()):
        raise AssertionError("a library file is in two parts")
    return out, {part: [f"{SRC_DIR}/{f}" for f in sorted(files)] for part, files in library.items()}


def render(env: jinja2.Environment, ctx: dict, model: Model,
           library: dict[str, dict[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The tree around the library: ``library`` ({part: {filename: text}}, the C ``codegen``
    rendered) placed in ``src/``, the example and the build files. Returns ({path: text},
    {part: [path, ...]}); paths are relative, '/'-separated."""
    name = ctx["name"]
    example = example_dir(name)
    example_names = [pattern.format(name=name) for _, pattern in EXAMPLE_FILES]
    out, parts = in_src(library)
    parts["example"] = [f"{example}/{f}" for f in example_names]
    ctx = {**ctx, "parts": parts, "src_dir": SRC_DIR, "example_dir": example, "kconfig": KCONFIG,
           "library_sources": [f.split("/", 1)[1] for p in library for f in parts[p] if f.endswith(".c")],
           "example_files": example_names, "epoch_batches": EPOCH_BATCHES,
           "link_bytes": protocol.link_bytes(protocol.MAX_PAYLOAD, 4)}
    for (template, _), path in zip(EXAMPLE_FILES, parts["example"]):
        out[path] = env.get_template(template).render(template=template, **ctx)
    for template, path in BUILD_FILES:
        out[path] = env.get_template(template).render(template=template, **ctx)
    return out, parts


def render_inference(env: jinja2.Environment, ctx: dict,
                     library: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Inference-only output: ``library`` ({filename: text}) in ``src/``, one part
    (``inference``), and the README."""
    out, parts = in_src({"inference": library})
    out["README.md"] = env.get_template("README.md.j2").render(template="README.md.j2", parts=parts,
                                                               src_dir=SRC_DIR, **ctx)
    return out, parts
