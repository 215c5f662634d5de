"""Numbers and declarations whose one home is a hand-written C header.

The runtime (``templates/runtime/bep_runtime.h``) and the link (``templates/link/
bep_link.h``) define their structs by hand; the sizes the host plans with are
``#define``\\ d next to the structs and pinned there by static asserts. This module
reads those defines, so Python never types them again, and extracts the declarations
cffi needs (the text between ``BEP_CDEF_BEGIN`` and ``BEP_CDEF_END`` markers) from
the headers a generated directory holds.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

_DEFINE = re.compile(r'^#define\s+([A-Z][A-Z0-9_]*)\s+(0x[0-9A-Fa-f]+u?|\d+u?|"[A-Za-z0-9_]*")\s*(?:/\*.*)?$',
                     re.MULTILINE)
_CDEF = re.compile(r"/\* BEP_CDEF_BEGIN \*/(.*?)/\* BEP_CDEF_END \*/", re.DOTALL)
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def package_path(*parts: str) -> Path:
    return Path(str(resources.files("bep_mcu").joinpath(*parts)))


def template_path(*parts: str) -> Path:
    return package_path("templates", *parts)


@cache
def header_defines(*parts: str) -> dict[str, int | str]:
    """Plain integer and string ``#define``\\ s of a shipped header, e.g.
    ``("templates", "runtime", "bep_runtime.h")``."""
    out: dict[str, int | str] = {}
    for name, value in _DEFINE.findall(package_path(*parts).read_text()):
        out[name] = value.strip('"') if value.startswith('"') else int(value.rstrip("u"), 0)
    return out


def runtime_define(name: str) -> int:
    return header_defines("templates", "runtime", "bep_runtime.h")[name]


def link_define(name: str) -> int:
    return header_defines("templates", "link", "bep_link.h")[name]


def standalone_define(name: str) -> int:
    return header_defines("templates", "runtime", "bep_standalone.h")[name]


def store_define(name: str) -> int:
    return header_defines("templates", "runtime", "bep_store.h")[name]


RUNTIME_ABI = runtime_define("BEP_RUNTIME_ABI")
STATE_HEADER_BYTES = runtime_define("BEP_STATE_HEADER_BYTES")
CONFIG_BYTES_32 = runtime_define("BEP_CONFIG_BYTES_32")  # sizeof(bep_config_t) with 32-bit pointers
MAX_LAYERS = runtime_define("BEP_MAX_LAYERS")
LINK_FIXED_BYTES = link_define("BEP_LINK_FIXED_BYTES")
SCHEDULE_STATE_BYTES = runtime_define("BEP_SCHEDULE_STATE_BYTES")
SNAPSHOT_HEADER_BYTES = standalone_define("BEP_SNAPSHOT_HEADER_BYTES")
STORE_BYTES = store_define("BEP_STORE_BYTES")  # sizeof(bep_store_t) with 32-bit pointers


def cdef(headers: list[str]) -> str:
    """The declarations cffi reads: marked regions of ``headers`` (texts), comments
    and preprocessor lines removed."""
    parts = []
    for text in headers:
        for region in _CDEF.findall(text):
            body = _COMMENT.sub("", region)
            parts.append("\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#")))
    return "\n".join(parts)
