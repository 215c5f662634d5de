"""``bep-mcu generate``: render a :class:`~bep_mcu.model.Model` into a self-contained C99 library.

The generator emits data only (sizes, offsets, integer constants, const tables) through
Jinja templates; the learning rule is the hand-written runtime copied verbatim from
``templates/runtime``, the board side of the serial protocol from ``templates/link``
(with ``bep_proto.h`` rendered from ``cgen/protocol.py``). ``cgen/package`` places the
C in ``src/`` and adds the example and the build files (CMake, PlatformIO, Arduino,
Zephyr). Output is reproducible byte for byte: no timestamps.

Every value a template prints goes through one formatter of ``cformat`` (the
environment's ``finalize`` refuses anything else), and the model it comes from was
checked when it was made (``Model``): only validated Python integers and C
identifiers reach the C.
"""

from __future__ import annotations

import hashlib
import keyword
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2
import numpy as np

from bep_mcu import __version__, files
from bep_mcu.cgen import abi, cformat, package
from bep_mcu.cgen.layout import StatePlan, plan_state
from bep_mcu.cgen.status import STATUS
from bep_mcu.cgen import protocol
from bep_mcu.engine import bits
from bep_mcu.errors import BEPError
from bep_mcu.model import Model

RUNTIME_FILES = ("bep_runtime.h", "bep_runtime.c")
LINK_FILES = ("bep_link.h", "bep_link.c")  # the board side of the serial protocol (docs/protocol.md)
# bep_<name>.[ch] of these would be the runtime's, the status strings', the protocol's or the link's files
SHARED_NAMES = ("runtime", "status", "proto", "link")
MAX_NAME = 32


def check_name(name: object) -> str:
    """A network name becomes part of C symbols: a C identifier, not a keyword."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not cformat._IDENT.fullmatch(name):
        raise BEPError(f"--name {name!r:.40} is not a valid C identifier of at most {MAX_NAME} characters "
                       "(letters, digits, _; not starting with a digit)")
    if name in cformat.C_KEYWORDS:
        raise BEPError(f"--name '{name}' is a C keyword")
    if name.startswith("_") or keyword.iskeyword(name):
        raise BEPError(f"--name '{name}' is reserved (leading underscore or a Python keyword)")
    if name in SHARED_NAMES:
        raise BEPError(f"--name '{name}' is taken: bep_{name}.c/.h are the library's shared files")
    return name


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bep_mcu", "templates"), undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, autoescape=False, finalize=cformat.finalize,
    )
    env.filters.update(cformat.FILTERS)
    return env


@dataclass
class Generated:
    """A generated directory: where, the network name, its state plan and config hash,
    its files (relative paths) and which of them form each part (``cgen/package``)."""

    directory: Path
    name: str
    plan: StatePlan
    config_hash: str
    files: list[str]
    parts: dict[str, list[str]]

    @property
    def src(self) -> Path:
        """The library's one include directory (every part compiles with just this on the path:
        the example's sources find their own header beside them)."""
        return self.directory / package.SRC_DIR

    def sources(self, parts: tuple[str, ...] = package.LIBRARY_PARTS) -> list[Path]:
        """The ``.c`` files of ``parts`` (default: the library, what a firmware links)."""
        return [self.directory / f for p in parts for f in self.parts[p] if f.endswith(".c")]

    def digest(self) -> str:
        """Hash of the directory's sources (the twin's cache key)."""
        h = hashlib.sha256()
        for filename in sorted(self.files):
            h.update(filename.encode() + b"\0" + (self.directory / filename).read_bytes() + b"\0")
        return h.hexdigest()[:16]


def with_hidden_bits(model: Model, hidden_bits: int | None) -> Model:
    """The model with 8- or 16-bit hidden weights (``--hidden-bits``)."""
    if hidden_bits is None or hidden_bits == model.spec.hidden_bits:
        return model
    if hidden_bits not in (8, 16) or isinstance(hidden_bits, bool):
        raise BEPError(f"--hidden-bits must be 8 or 16, got {hidden_bits!r}")
    if hidden_bits == 8 and any(h.min() < -128 or h.max() > 127 for h in model.hidden):
        raise BEPError("--hidden-bits 8: the model's hidden weights do not fit in 8 bits")
    dtype = np.int8 if hidden_bits == 8 else np.int16
    return model.replace(spec=replace(model.spec, hidden_bits=hidden_bits),
                         hidden=tuple(h.astype(dtype) for h in model.hidden))


def render(model: Model, name: str = "net") -> tuple[dict[str, str], StatePlan, dict[str, list[str]]]:
    """All files of the directory as {relative path: text}, the state plan and the parts."""
    check_name(name)
    spec, params, t = model.spec, model.params, model.training
    plan = plan_state(spec, params.gate)
    ctx = {
        "name": name, "NAME": name.upper(), "version": __version__, "abi": abi.RUNTIME_ABI,
        "config_hash": model.config_hash, "config_hash32": model.config_hash32, "spec": spec, "plan": plan,
        "trigger_margin": params.trigger_margin, "gamma": list(t.gamma), "seed": t.seed,
        "batches": t.batch_counter, "classifier": bits.pack(model.classifier), "hidden": model.hidden,
        "hidden_ctype": "int8_t" if spec.hidden_bits == 8 else "int16_t", "status": STATUS,
        "labels": [str(c) for c in model.labels.tolist()], "kinds": plan.bytes_by_kind(),
    }
    env = environment()
    library = {}  # the C library, {filename: text}; cgen/package puts it in src/
    for template, filename in (("net.h.j2", f"bep_{name}.h"), ("net.c.j2", f"bep_{name}.c"),
                               ("status.h.j2", "bep_status.h"), ("status.c.j2", "bep_status.c")):
        library[filename] = env.get_template(template).render(template=template, **ctx)
    library["bep_proto.h"] = env.get_template("proto.h.j2").render(template="proto.h.j2", version=__version__,
                                                                  **protocol.c_context())
    for folder, filenames in (("runtime", RUNTIME_FILES), ("link", LINK_FILES)):
        for filename in filenames:
            library[filename] = abi.template_path(folder, filename).read_text()
    out, parts = package.render(env, ctx, model, library)
    return out, plan, parts


def generate(model: Model, out_dir: str | Path, name: str = "net") -> Generated:
    """Render ``model`` into ``out_dir`` (created if needed; only our files are written,
    each only when its text changed)."""
    texts, plan, parts = render(model, name)
    directory = files.write_text_files(out_dir, texts)
    return Generated(directory, name, plan, model.config_hash, sorted(texts), parts)
