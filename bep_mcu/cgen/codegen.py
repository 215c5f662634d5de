"""``bep-mcu generate``: render a model into a self-contained C99 directory.

The generator emits data only (sizes, offsets, integer constants, const tables) through
Jinja templates; the learning rule is the hand-written runtime copied verbatim from
``templates/runtime``, the board side of the serial protocol from ``templates/link``
(with ``bep_proto.h`` rendered from ``protocol.py``). Output is reproducible byte for
byte: no timestamps, numbers formatted by the filters below.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from bep_mcu import __version__
from bep_mcu.engine import bits
from bep_mcu.device import protocol
from bep_mcu.errors import BEPError
from bep_mcu.estimator import BEPClassifier
from bep_mcu.cgen.layout import StatePlan, plan_state
from bep_mcu.engine.spec import config_hash
from bep_mcu.cgen.status import STATUS

RUNTIME_FILES = ("bep_runtime.h", "bep_runtime.c")
LINK_FILES = ("bep_link.h", "bep_link.c")  # the board side of the serial protocol (docs/protocol.md)
RUNTIME_ABI = 1  # must equal BEP_RUNTIME_ABI in bep_runtime.h (a test checks)
C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while _Bool _Complex _Imaginary".split()
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> str:
    """A network name becomes part of C symbols: a C identifier, not a keyword."""
    if not _IDENT.match(name or ""):
        raise BEPError(f"--name '{name}' is not a valid C identifier (letters, digits, _; not starting with a digit)")
    if name in C_KEYWORDS:
        raise BEPError(f"--name '{name}' is a C keyword")
    if name.startswith("_") or keyword.iskeyword(name):
        raise BEPError(f"--name '{name}' is reserved (leading underscore or a Python keyword)")
    return name


def _hex_words(values, per_line: int = 6) -> str:
    vals = [f"0x{int(v):08X}u" for v in np.asarray(values, dtype=np.uint32).reshape(-1)]
    return ",\n    ".join(", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line))


def _ints(values, per_line: int = 16) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return ",\n    ".join(", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bep_mcu", "templates"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False,
    )
    env.filters["hex_words"] = _hex_words
    env.filters["ints"] = _ints
    return env


@dataclass
class Generated:
    """What ``generate`` wrote: the directory, the network name and its plan."""

    directory: Path
    name: str
    plan: StatePlan
    config_hash: str
    files: list[str]


def render(clf: BEPClassifier, name: str, hidden_bits: int | None = None) -> tuple[dict[str, str], StatePlan, str]:
    """All files of the C directory as {filename: text}."""
    check_name(name)
    spec = clf.spec_
    hidden = clf.network.hidden_weights()
    if hidden_bits is not None and hidden_bits != spec.hidden_bits:
        if hidden_bits not in (8, 16):
            raise BEPError(f"--hidden-bits must be 8 or 16, got {hidden_bits}")
        if hidden_bits == 8 and any(h.min() < -128 or h.max() > 127 for h in hidden):
            raise BEPError("--hidden-bits 8: the model's hidden weights do not fit in 8 bits")
        from dataclasses import replace

        spec = replace(spec, hidden_bits=hidden_bits)
        hidden = [h.astype(np.int8 if hidden_bits == 8 else np.int16) for h in hidden]
    try:
        plan = plan_state(spec, clf.params_.gate)
    except ValueError as e:
        raise BEPError(str(e)) from None
    chash = config_hash(spec, clf.params_)
    ctx = {
        "name": name, "NAME": name.upper(), "version": __version__, "abi": RUNTIME_ABI,
        "config_hash": chash, "config_hash32": int(chash[:8], 16), "spec": spec, "plan": plan,
        "trigger_margin": clf.params_.trigger_margin, "gamma": list(clf.params_.gamma),
        "seed": clf.network.seed, "batches": clf.network.batch_counter,
        "classifier": bits.pack(clf.network.P), "hidden": hidden,
        "hidden_ctype": "int8_t" if spec.hidden_bits == 8 else "int16_t",
        "status": STATUS, "labels": [str(c) for c in clf.classes_.tolist()],
    }
    env = _environment()
    out = {}
    for template, filename in (("net.h.j2", f"bep_{name}.h"), ("net.c.j2", f"bep_{name}.c"),
                               ("status.h.j2", "bep_status.h"), ("status.c.j2", "bep_status.c"),
                               ("README.md.j2", "README.md")):
        out[filename] = env.get_template(template).render(template=template, **ctx)
    out["bep_proto.h"] = env.get_template("proto.h.j2").render(template="proto.h.j2", version=__version__,
                                                              **protocol.c_context())
    templates = resources.files("bep_mcu") / "templates"
    for folder, filenames in (("runtime", RUNTIME_FILES), ("link", LINK_FILES)):
        for filename in filenames:
            out[filename] = (templates / folder / filename).read_text()
    return out, plan, chash


def generate(model_path: str, out_dir: str, name: str = "net", hidden_bits: int | None = None) -> Generated:
    """Render ``model_path`` into ``out_dir`` (created if needed; only our files are written)."""
    check_name(name)
    if hidden_bits is not None and hidden_bits not in (8, 16):
        raise BEPError(f"--hidden-bits must be 8 or 16, got {hidden_bits}")
    clf = BEPClassifier.load(model_path)
    files, plan, chash = render(clf, name, hidden_bits)
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise BEPError(f"--out '{out_dir}' exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        target = directory / filename
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return Generated(directory, name, plan, chash, sorted(files))


def source_digest(directory: Path, files: list[str]) -> str:
    """Hash of a generated directory's sources (the twin's cache key)."""
    h = hashlib.sha256()
    for filename in sorted(files):
        h.update(filename.encode() + b"\0" + (directory / filename).read_bytes() + b"\0")
    return h.hexdigest()[:16]
