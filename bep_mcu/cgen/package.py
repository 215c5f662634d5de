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

The sources live in ``src/`` because the Arduino library format compiles that folder
and puts it on the include path; CMake, PlatformIO and Zephyr point there too. ``src/``
stays flat, so one include directory serves every build and every part. The parts are
lists rather than folders:

* ``training``: the network's tables and API, the runtime, the status strings: what
  learning needs;
* ``link``: the board side of the serial protocol (``bep-mcu stream``/``pull``);
* ``example``: the Arduino sketch and the on-device trainer it uses (example code, not
  part of the library: the ``.c`` is compiled by the sketch's build, by CMake's
  ``bep_<net>_trainer`` target, and measured by ``size``).

Every build file names its files from these lists, never by a glob, so a source that
``codegen`` adds to its output reaches every build file when regenerated: a file is in
``training`` unless it is listed in :data:`LINK_FILES`. Values reach the files through
``cformat``'s formatters only (the environment's ``finalize``), as in the C.
"""

from __future__ import annotations

import jinja2

from bep_mcu.cgen import protocol
from bep_mcu.engine.schedule import reinforcement_counts
from bep_mcu.model import Model

SRC_DIR = "src"
PARTS = ("training", "link", "example")
LIBRARY_PARTS = ("training", "link")  # what a firmware links (the twin, bep-mcu firmware); examples are not
LINK_FILES = ("bep_proto.h", "bep_link.h", "bep_link.c")
KCONFIG = "zephyr/Kconfig"
# The example trainer looks the next epoch's Q up by training error in steps of 1/ERROR_STEPS.
ERROR_STEPS = 16
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


def part_of(filename: str) -> str:
    """The part of a library file (a name in ``src/``)."""
    return "link" if filename in LINK_FILES else "training"


def library_parts(filenames) -> dict[str, list[str]]:
    """{part: [src/<file>, ...]} of the library parts, in the order given."""
    parts: dict[str, list[str]] = {p: [] for p in LIBRARY_PARTS}
    for filename in filenames:
        parts[part_of(filename)].append(f"{SRC_DIR}/{filename}")
    return parts


def render(env: jinja2.Environment, ctx: dict, model: Model,
           library: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The tree around the library: ``library`` ({filename: text}, the C ``codegen``
    rendered) placed in ``src/``, the example and the build files. Returns ({path: text},
    {part: [path, ...]}); paths are relative, '/'-separated."""
    name, t = ctx["name"], model.training
    example = example_dir(name)
    example_names = [pattern.format(name=name) for _, pattern in EXAMPLE_FILES]
    parts = {**library_parts(sorted(library)), "example": [f"{example}/{f}" for f in example_names]}
    ctx = {**ctx, "parts": parts, "src_dir": SRC_DIR, "example_dir": example, "kconfig": KCONFIG,
           "library_sources": [f for f in sorted(library) if f.endswith(".c")], "example_files": example_names,
           "batch_size": t.batch_size, "epoch_batches": EPOCH_BATCHES, "error_steps": ERROR_STEPS,
           "link_bytes": protocol.link_bytes(protocol.MAX_PAYLOAD, 4),
           "patience": model.hyper.patience, "growth": model.hyper.gamma_growth,
           "q_start": reinforcement_counts(model.spec, model.hyper.p_r, t.error_rate),
           "q_table": [reinforcement_counts(model.spec, model.hyper.p_r, k / ERROR_STEPS)
                       for k in range(ERROR_STEPS + 1)]}
    out = {f"{SRC_DIR}/{f}": text for f, text in library.items()}
    for (template, _), path in zip(EXAMPLE_FILES, parts["example"]):
        out[path] = env.get_template(template).render(template=template, **ctx)
    for template, path in BUILD_FILES:
        out[path] = env.get_template(template).render(template=template, **ctx)
    return out, parts
