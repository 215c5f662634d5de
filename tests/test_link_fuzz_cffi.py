"""Fuzzing bep_link_rx through cffi, under AddressSanitizer and UndefinedBehaviorSanitizer.

The cffi counterpart of ``test_link_fuzz.py`` (same corpus, same checks): there a
standalone C driver replays the corpus; here the device is a cffi extension (API mode)
driven from Python, as ``test_link.py``'s "device in process" is.

How: the generated directory (runtime, network, bep_link.c; the strict flag set) is
compiled with ``-fsanitize=address,undefined -fno-sanitize-recover=all
-fno-omit-frame-pointer -g`` and linked with ``-fsanitize=address,undefined`` into a
cffi extension with a C byte sink (``SHIM``). An uninstrumented Python cannot load an
ASan-instrumented extension unless the ASan runtime comes first, so the replay runs in
a child interpreter (``CHILD``, a script in tmp_path) started with ``LD_PRELOAD`` set
to gcc's libasan and libubsan, ``ASAN_OPTIONS=detect_leaks=0:abort_on_error=1`` and
``UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1``: any report aborts the child.

The child allocates the link, the state buffer and every input chunk with malloc
through a cffi allocator (``ffi.new_allocator(lib.malloc, lib.free)``), each exactly
its size, so ASan sees any access outside bep_link_t, the state or a chunk (memory
from ``ffi.new`` or a ``bytes`` object would come from Python's allocator, whose blocks
ASan does not bound). It initialises the network (``bep_net_init``) and the link
(``bep_link_init`` with the C sink), feeds the corpus prelude (HELLO, INIT, SET_EPOCH),
snapshots the state, then feeds every input between two 0x00 bytes through
``lib.bep_link_rx`` in chunks of random sizes (by the input's corpus seed: whole, byte
by byte for inputs up to 1 KiB, 1..97 bytes, or log-uniform up to 4 KiB). After each
input it compares the learnable state bytes (header, hidden and packed weights, dirty
bits) with the snapshot, stops at once if an input that cannot be valid changed them,
checks the receiver is idle with one delimited frame cached, and restores the state.
Last, the whole corpus as one stream (log-uniform chunks): about 3.2 million
bep_link_rx calls, 66 MB, in 8 s. The child writes the standalone driver's output
format, so the parent checks it with
``test_link_fuzz.check_results``: every reply decodes as well-formed frames, invalid
inputs get error replies only and change nothing, every state change was acknowledged,
and the corpus reached every error code and an OK reply of every message type.

Negative controls plant bugs in a copy of bep_link.c and show the sanitizers report
them through cffi: a receive loop reading one byte past the chunk it was given, a
receive bound checked against the size of the whole link instead of its receive
buffer (a long COBS run writes past the end of bep_link_t), the READ_HIDDEN reply bound
off (as in test_link_fuzz), and a signed shift overflow in bep_rd32 (UBSan).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bep_mcu.cgen import protocol as P
from bep_mcu.twin.cffi_twin import build_extension, generated_cdef

from .test_link import data, net_model, trained  # noqa: F401  (module fixtures)
from tests.conftest import SANITIZE, planted_library
from tests.test_link_fuzz import (N_INPUTS, PLANTED, check_results, make_corpus, parse_output, prelude_frames,
                             write_corpus)

LINK_SANITIZE = ["-fsanitize=address,undefined"]

SHIM = r"""
#include <stdlib.h>
#include <string.h>

#include "bep_{name}.h"
#include "bep_link.h"

typedef struct {{ uint8_t *buf; size_t cap; size_t len; }} bep_sink_t;

static void bep_sink_write(void *ctx, const uint8_t *data, size_t n)
{{
    bep_sink_t *s = (bep_sink_t *)ctx;
    if (s->len + n > s->cap) {{
        s->cap = 2u * (s->len + n);
        s->buf = (uint8_t *)realloc(s->buf, s->cap);
        if (s->buf == NULL) abort();
    }}
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}}

static void dev_init(bep_link_t *link, void *state, size_t state_len, bep_sink_t *sink, const bep_board_info_t *info)
{{
    bep_link_init(link, &bep_{name}_config, state, state_len, info, bep_sink_write, sink);
}}

/* after a closing 0x00: the receiver is idle and the cached reply is one delimited frame */
static int dev_idle(const bep_link_t *link)
{{
    if (link->rx_len != 0u || link->rx_left != 0u || link->rx_flags != 0u || link->tx_len > BEP_LINK_TX_BYTES) return 0;
    if (link->tx_len == 0u) return 1;
    return link->tx[0] == 0u && link->tx[link->tx_len - 1u] == 0u && memchr(link->tx + 1, 0, link->tx_len - 2u) == NULL;
}}
"""

# Only the shim and libc's allocator are declared here; the library's come from its headers.
SHIM_CDEF = """
typedef struct { uint8_t *buf; size_t cap; size_t len; } bep_sink_t;
void *malloc(size_t n);
void free(void *p);
void dev_init(bep_link_t *link, void *state, size_t state_len, bep_sink_t *sink, const bep_board_info_t *info);
int dev_idle(const bep_link_t *link);
"""

# The replay, run by a child interpreter with the sanitizer runtimes preloaded. Reads the
# corpus of test_link_fuzz.write_corpus, writes what test_link_fuzz.parse_output reads.
CHILD = r'''
import importlib.util
import json
import random
import struct
import sys
import time

so, module_name, net, net_seed, corpus_path, out_path = sys.argv[1:7]
spec = importlib.util.spec_from_file_location(module_name, so)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ffi, lib = module.ffi, module.lib
exact = ffi.new_allocator(alloc=lib.malloc, free=lib.free, should_clear_after_alloc=False)

raw = open(corpus_path, "rb").read()
assert raw[:8] == b"BEPFUZZ1"
state_bytes, n_regions = struct.unpack_from("<II", raw, 8)
pos = 16
regions = [struct.unpack_from("<II", raw, pos + 8 * r) for r in range(n_regions)]
pos += 8 * n_regions
(prelude_len,) = struct.unpack_from("<I", raw, pos)
prelude = raw[pos + 4:pos + 4 + prelude_len]
pos += 4 + prelude_len
(n_inputs,) = struct.unpack_from("<I", raw, pos)
pos += 4
inputs_start = pos

link = exact("bep_link_t *")
state = exact("uint8_t[]", state_bytes)
ffi.memmove(state, b"\xa5" * state_bytes, state_bytes)
zero = exact("uint8_t[]", 1)
zero[0] = 0
board = ffi.new("char[]", b"fuzz")
info = ffi.new("bep_board_info_t *", {"board": board, "ram_bytes": 1 << 20, "flash_bytes": 1 << 20, "fw_version": 1})
sink = ffi.new("bep_sink_t *")
rx = lib.bep_link_rx
status = getattr(lib, "bep_%s_init" % net)(state, state_bytes, int(net_seed), 0)
assert status == 0, status
lib.dev_init(link, state, state_bytes, sink, info)
stats = {"rx_calls": 0, "bytes": 0}


def take():
    out = bytes(ffi.buffer(sink.buf, sink.len)) if sink.len else b""
    sink.len = 0
    return out


def feed(data, seed, big=False):
    """Feed data through bep_link_rx, each chunk an exact-size malloc block."""
    n, i, calls = len(data), 0, 0
    mode = 3 if big else seed % 4
    rnd = random.Random(seed)
    while i < n:
        if mode == 0:
            k = n - i
        elif mode == 1 and n <= 1024:
            k = 1
        elif mode == 3:
            k = rnd.randint(1, 1 << rnd.randint(0, 12))
        else:
            k = rnd.randint(1, 97)
        k = min(k, n - i)
        chunk = exact("uint8_t[]", k)
        ffi.memmove(chunk, data[i:i + k], k)
        rx(link, chunk, k)
        del chunk
        i += k
        calls += 1
    stats["rx_calls"] += calls
    stats["bytes"] += n


t0 = time.perf_counter()
out = []
feed(prelude, 0)
reply = take()
out.append(struct.pack("<I", len(reply)) + reply)
state_buf = ffi.buffer(state)
snapshot = state_buf[:]
slices = [(off, off + n) for off, n in regions]
changed_total = 0
for k in range(n_inputs):
    kind, seed, length = struct.unpack_from("<BII", raw, pos)
    pos += 9
    data = raw[pos:pos + length]
    pos += length
    rx(link, zero, 1)
    feed(data, seed)
    rx(link, zero, 1)
    stats["rx_calls"] += 2
    now = state_buf[:]
    changed = any(now[a:b] != snapshot[a:b] for a, b in slices)
    if kind == 0 and changed:
        sys.stderr.write("input %d: an invalid input changed the learnable state: %s\n" % (k, data[:64].hex()))
        sys.exit(6)
    if not lib.dev_idle(link):
        sys.stderr.write("link invariant broken after input %d\n" % k)
        sys.exit(5)
    if changed or (k & 255) == 0:
        ffi.memmove(state, snapshot, state_bytes)
    changed_total += changed
    reply = take()
    out.append(struct.pack("<BI", changed, len(reply)) + reply)
# the whole corpus as one stream: no separators, random chunks
feed(raw[inputs_start:pos], 12345, big=True)
rx(link, zero, 1)
reply = take()
out.append(struct.pack("<I", len(reply)) + reply)
with open(out_path, "wb") as f:
    f.write(b"".join(out))
stats.update(inputs=n_inputs, changed=changed_total, seconds=round(time.perf_counter() - t0, 2))
print(json.dumps(stats))
'''


def sanitizer_runtimes() -> list[str]:
    """gcc's ASan and UBSan shared runtimes (ASan first: it must be the first DSO loaded)."""
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc not found")
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True,
                              check=False).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            pytest.skip(f"{name} not available from {cc}")
        libs.append(os.path.realpath(path))
    return libs


def build_asan_module(gen, build_dir: Path, tag: str) -> tuple[Path, str]:
    """The generated directory (strict flags + sanitizers) + the sink shim as a cffi module: (.so, module name)."""
    if "clang" in os.environ.get("CC", ""):
        pytest.skip("the sanitizer runtimes preloaded are gcc's")
    # SANITIZE comes after the strict set and -O3, so its -O1 wins
    return build_extension(gen, f"_bep_link_asan_{tag}", generated_cdef(gen, link=True) + SHIM_CDEF,
                           SHIM.format(name=gen.name),
                           extra_flags=SANITIZE, link_args=LINK_SANITIZE, build_root=build_dir, load=False)


def run_child(gen, work: Path, inputs, net_seed: int, rng, tag: str) -> tuple[subprocess.CompletedProcess, object]:
    """Build the sanitized module for ``gen``, replay ``inputs`` in a child interpreter: (process, parsed or None)."""
    work.mkdir(parents=True, exist_ok=True)
    so, module_name = build_asan_module(gen, work / "build", tag)
    seeds = rng.integers(0, 2**32, size=len(inputs), dtype="uint64")
    corpus, out = work / "corpus.bin", work / "out.bin"
    write_corpus(corpus, gen, inputs, prelude_frames(net_seed), seeds)
    script = work / "replay.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    env.update(LD_PRELOAD=" ".join(sanitizer_runtimes()), ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, str(script), str(so), module_name, gen.name, str(net_seed), str(corpus),
                           str(out)], capture_output=True, text=True, timeout=300, env=env, cwd=str(work), check=False)
    return proc, (parse_output(out, len(inputs)) if proc.returncode == 0 else None)


def assert_clean(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"replay failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    for marker in ("ERROR: AddressSanitizer", "runtime error", "Sanitizer"):
        assert marker not in proc.stderr, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fuzz_bep_link_rx_through_cffi_under_asan_ubsan(trained, net_model, data, tmp_path):  # noqa: F811
    _, gen, _ = trained
    t0 = time.perf_counter()
    inputs, rng = make_corpus(net_model, data, gen, N_INPUTS, 2024)
    proc, parsed = run_child(gen, tmp_path, inputs, int(net_model.training.seed), rng, "main")
    stats = assert_clean(proc)
    assert stats["inputs"] == len(inputs) >= 100_000
    assert stats["bytes"] > 2 * 20_000_000  # each input, then the whole corpus as one stream
    assert stats["rx_calls"] > 1_000_000
    codes, ok_types, changed_inputs = check_results(inputs, parsed)
    assert set(codes) == {e.value for e in P.ErrorCode}, codes
    assert set(ok_types) == {m.value for m in P.Msg}, ok_types
    kinds = Counter(k for k, _ in inputs)
    assert kinds[0] > 0.4 * N_INPUTS and kinds[1] > 0.4 * N_INPUTS and changed_inputs > 1000
    assert changed_inputs == stats["changed"]
    print(f"\n{len(inputs)} inputs, {stats['bytes']} bytes in {stats['rx_calls']} bep_link_rx calls: "
          f"replay {stats['seconds']} s, total {time.perf_counter() - t0:.1f} s")


CFFI_PLANTED = {
    # the receive loop reads one byte past the chunk it was given
    "rx_read_past_chunk": ("for (i = 0; i < n; ++i) {\n        uint8_t b = data[i];",
                           "for (i = 0; i <= n; ++i) {\n        uint8_t b = data[i];",
                           "AddressSanitizer: heap-buffer-overflow"),
    # the receive bound checked against the whole link, not its buffer: writes past bep_link_t
    "rx_bound_past_link": ("if (link->rx_len >= BEP_LINK_FRAME_MAX) {", "if (link->rx_len >= sizeof(bep_link_t)) {",
                           "AddressSanitizer: heap-buffer-overflow"),
    # READ_HIDDEN's reply bound off (test_link_fuzz): a long read writes past the end of bep_link_t
    "reply_overrun": PLANTED["reply_overrun"][:2] + ("AddressSanitizer: heap-buffer-overflow",),
    # a signed shift overflow: 0x80..0xFF << 24 does not fit an int
    "shift_overflow": ("((uint32_t)p[3] << 24)", "(uint32_t)(p[3] << 24)", "runtime error: left shift"),
}


@pytest.mark.parametrize("bug", sorted(CFFI_PLANTED))
def test_sanitizers_active_through_cffi(trained, net_model, data, tmp_path, bug):  # noqa: F811
    """Negative controls: the same build and replay, with a planted bug, die with a sanitizer report."""
    _, gen, _ = trained
    old, new, expected = CFFI_PLANTED[bug]
    bad_gen = planted_library(gen, tmp_path / "gen", ("bep_link.c", old, new))
    inputs, rng = make_corpus(net_model, data, gen, 300, 7)
    inputs = [(0, b"\xff" * 20000),
              (1, P.cobs_encode(P.frame_body(P.Msg.READ_HIDDEN, 9, P.READ_HIDDEN_REQ.pack(layer=0, offset=0,
                                                                                           length=2000))))] + inputs
    proc, _ = run_child(bad_gen, tmp_path / "run", inputs, int(net_model.training.seed), rng, bug)
    assert proc.returncode != 0, f"{bug}: not caught\n{proc.stderr[-2000:]}"
    assert expected in proc.stderr, proc.stderr[-3000:]
    assert "bep_link.c" in proc.stderr  # the report points into the parser
