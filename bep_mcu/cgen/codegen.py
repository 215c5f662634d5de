"""``bep-mcu generate``: render a :class:`~bep_mcu.model.Model` into a self-contained C99 library.

The generator emits data only (sizes, offsets, integer constants, const tables) through
Jinja templates; the learning rule is the hand-written runtime copied verbatim from
``templates/runtime``, the board side of the serial protocol from ``templates/link``
(with ``bep_proto.h`` rendered from ``cgen/protocol.py``). ``cgen/package`` places the
C in ``src/``, part by part, and adds the example and the build files (CMake,
PlatformIO, Arduino, Zephyr). Output is reproducible byte for byte: no timestamps.

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
from bep_mcu.cgen.layout import InferencePlan, StatePlan, plan_inference, plan_model
from bep_mcu.cgen.snapshot import snapshot_bytes
from bep_mcu.cgen.status import STATUS
from bep_mcu.cgen import protocol
from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.binarize import PassthroughBinarizer
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.engine import bits
from bep_mcu.engine.network import centre_offsets
from bep_mcu.engine.spec import HIDDEN_CTYPE, HIDDEN_DTYPE
from bep_mcu.engine.schedule import Q_LEVELS, gamma_caps, q_table, rate_level
from bep_mcu.errors import BEPError
from bep_mcu.model import Model

# the training runtime: public API, internal header, learning rule, kernels (bep_runtime_internal.h)
RUNTIME_FILES = ("bep_runtime.h", "bep_runtime_internal.h", "bep_kernels_arm.h", "bep_runtime.c", "bep_kernels.c")
LINK_FILES = ("bep_link.h", "bep_link.c")  # the board side of the serial protocol (docs/protocol.md)
ENCODE_FILES = ("bep_encode.h", "bep_encode.c")  # raw device values → packed input (bep_encode.h)
STANDALONE_FILES = ("bep_standalone.h", "bep_standalone.c")  # epoch schedule, sample order, snapshots
CALIBRATE_FILES = ("bep_calibrate.h", "bep_calibrate.c")  # input thresholds that follow the raw values
STORE_FILES = ("bep_store.h", "bep_store.c")  # snapshots in flash slots that survive a power cut
INFERENCE_FILES = ("bep_infer.h", "bep_infer.c")  # generate --inference-only: prediction from flash weights
STANDALONE_DATA_C = "bep_sa_data.c"  # a standalone image's training and test sets (bep_mcu/fw/standalone.c)
STATUS_FILES = {"bep_status.h": "status.h.j2", "bep_status.c": "status.c.j2"}
# bep_<name>.[ch] of these would be a shared file of the library
SHARED_NAMES = ("runtime", "runtime_internal", "kernels", "kernels_arm", "status", "proto", "link", "encode",
                "standalone", "store", "infer", "calibrate")
MAX_NAME = 32
# Upper bounds of the generated code's deepest stack use on Cortex-M (M0 and M4, -Os and -O2),
# printed in the README and checked against GCC's call graphs by tests/test_standalone_firmware.py.
STACK_BYTES = {"training": 512, "inference": 256}


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
    inference: InferencePlan | None = None  # set for inference-only output (plan then sizes nothing it holds)

    @property
    def c_name(self) -> str:
        """What the network's C is named by: ``bep_<c_name>.h``, ``bep_<c_name>_*``."""
        return self.name if self.inference is None else inference_name(self.name)

    @property
    def src(self) -> Path:
        """The library's one include directory (every part compiles with just this on the path:
        the example's sources find their own header beside them)."""
        return self.directory / package.SRC_DIR

    def sources(self, parts: tuple[str, ...] | None = None) -> list[Path]:
        """The ``.c`` files of ``parts`` (default: the library's, what a firmware links; not the example)."""
        parts = tuple(p for p in self.parts if p != "example") if parts is None else parts
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
    dtype = np.dtype(HIDDEN_DTYPE[hidden_bits])
    return model.replace(spec=replace(model.spec, hidden_bits=hidden_bits),
                         hidden=tuple(h.astype(dtype) for h in model.hidden))


def input_context(model: Model, fmt: InputFormat | None) -> dict:
    """What the encoder templates print: the device input format (default
    ``inputformat.choose``) and the encoder's integer tables, validated there."""
    enc = model.encoder
    fmt = fmt or inputformat.choose(enc)
    kept, threshold = inputformat.device_thresholds(enc, fmt)
    kept_stride, threshold_stride = int(len(set(kept.tolist())) > 1), int(len(set(threshold.tolist())) > 1)
    return {"type": fmt.input_type, "ctype": fmt.ctype, "scales": list(fmt.scales),
            "kept": kept if kept_stride else kept[:1], "kept_stride": kept_stride,
            "threshold": threshold if threshold_stride else threshold[:1], "threshold_stride": threshold_stride,
            "threshold_per_point": int(enc.per_point),
            "equal": isinstance(enc.binarizer, PassthroughBinarizer),
            "features": enc.n_features, "length": enc.length or 1, "window": enc.window or 1,
            "point_bits": enc.kept_bits, "bias_bits": enc.bias_bits, "step_words": bits.n_words(model.spec.n_inputs),
            "binarizer": enc.binarizer.describe()}


def calibration_context(model: Model, fmt: InputFormat, plan: StatePlan, window: int) -> dict:
    """How the board follows its input thresholds (data/recalibration.py: the plan's tables)."""
    cal = recalibration.plan(model.encoder, fmt, window)
    assert cal.count == plan.followed, "the state plan and the calibration count the same thresholds"
    return {"count": cal.count, "one": recalibration.ONE, "state_off": plan.calib_off, "lo": cal.lo, "hi": cal.hi,
            "below": cal.below, "step": cal.step, "window": cal.window, "adaptation": cal.adaptation}


def schedule_context(model: Model, plan: StatePlan) -> dict:
    """The on-device schedule's constants (engine/schedule.py:IntegerSchedule's parameters)."""
    growth = model.hyper.growth
    return {"levels": Q_LEVELS, "q_table": np.array(q_table(model.spec, model.hyper.p_r), dtype=np.int64),
            "growth_num": growth.numerator, "growth_den": growth.denominator, "patience": model.hyper.patience,
            "epoch0": model.training.epochs, "level0": rate_level(model.training.error_rate),
            "gamma0": list(model.training.gamma), "cap": gamma_caps(model.spec, model.hyper, model.params.gamma),
            "snapshot_bytes": snapshot_bytes(plan)}


def inference_name(name: str) -> str:
    """What inference-only code of network ``name`` is called in C (``bep_<name>_infer_*``,
    ``bep_<name>_infer.[ch]``): never a name of the training library, so one project, one
    firmware even, holds both."""
    return f"{name}_infer"


def library_files(name: str) -> dict[str, dict[str, str]]:
    """The files of every part of network ``name``'s library, {part: {filename: source}}: a
    template (``.j2``, rendered) or a file of ``templates/runtime``/``templates/link``
    (copied). ``generate`` writes the training parts, ``--inference-only`` the inference
    part; a file two parts hold has one text (bep_status, bep_encode), so both outputs fit
    one directory, and the build files, which list every part, are the same for both."""
    def copied(folder: str, filenames: tuple[str, ...]) -> dict[str, str]:
        return {f: f"{folder}/{f}" for f in filenames}

    infer = inference_name(name)
    return {
        "training": {f"bep_{name}.h": "net.h.j2", f"bep_{name}.c": "net.c.j2", **STATUS_FILES,
                     **copied("runtime", RUNTIME_FILES)},
        "board": {f"bep_{name}_board.h": "board.h.j2", f"bep_{name}_board.c": "board.c.j2",
                  **copied("runtime", ENCODE_FILES + STANDALONE_FILES + STORE_FILES + CALIBRATE_FILES)},
        "link": {"bep_proto.h": "proto.h.j2", **copied("link", LINK_FILES)},
        "inference": {f"bep_{infer}.h": "infer.h.j2", f"bep_{infer}.c": "infer.c.j2", **STATUS_FILES,
                      **copied("runtime", INFERENCE_FILES + ENCODE_FILES)},
    }


def _texts(env: jinja2.Environment, ctx: dict, files: dict[str, str]) -> dict[str, str]:
    """{filename: text} of one part's ``files`` ({filename: source}, ``library_files``)."""
    out = {}
    for filename, source in files.items():
        if not source.endswith(".j2"):
            out[filename] = abi.template_path(*source.split("/")).read_text()
        elif source == "proto.h.j2":  # the protocol's constants, from cgen/protocol.py alone
            out[filename] = env.get_template(source).render(template=source, version=__version__,
                                                            **protocol.c_context())
        else:
            out[filename] = env.get_template(source).render(template=source, **ctx)
    return out


def every_part(name: str) -> dict[str, list[str]]:
    """The paths of every part of network ``name``'s training and inference output (what the build files list)."""
    return package.layout(name, library_files(name))


def render(model: Model, name: str = "net", input_format: InputFormat | None = None, url: str | None = None,
           calibration_window: int = recalibration.DEFAULT_WINDOW
           ) -> tuple[dict[str, str], StatePlan, dict[str, list[str]]]:
    """All files of the directory as {relative path: text}, the state plan and the parts
    (``url``: the library's home page in its Arduino and PlatformIO metadata;
    ``calibration_window``: how fast the board's input thresholds follow its raw values)."""
    check_name(name)
    spec, params, t = model.spec, model.params, model.training
    plan = plan_model(model)
    fmt = input_format or inputformat.choose(model.encoder)
    ctx = {
        "name": name, "NAME": name.upper(), "version": __version__, "abi": abi.RUNTIME_ABI,
        "config_hash": model.config_hash, "config_hash32": model.config_hash32, "spec": spec, "plan": plan,
        "trigger_margin": params.trigger_margin, "gamma": list(t.gamma), "seed": t.seed,
        "batches": t.batch_counter, "classifier": bits.pack(model.prototypes), "hidden": model.hidden,
        "input_means": model.input_means,
        "hidden_ctype": HIDDEN_CTYPE[spec.hidden_bits], "status": STATUS,
        "labels": [str(c) for c in model.labels.tolist()], "kinds": plan.bytes_by_kind(),
        "input": input_context(model, fmt), "schedule": schedule_context(model, plan),
        "calibration": calibration_context(model, fmt, plan, calibration_window),
        "batch_size": t.batch_size, "inference_only": False, "stack": STACK_BYTES,
    }
    env = environment()
    # The C library by part, {part: {filename: text}}; cgen/package puts it in src/.
    library = {part: _texts(env, ctx, files) for part, files in library_files(name).items()
               if part in package.TRAINING_PARTS}
    out, parts = package.render(env, ctx, library, every_part(name), url)
    return out, plan, parts


def inference_context(model: Model, plan: InferencePlan) -> dict:
    """The packed visible weights, sign(H) with sign(0) = +1, a row's input part and (rnn)
    its recurrent part packed separately, as bep_infer.h reads them."""
    spec = model.spec
    layers = []
    for i, (h, (rows, cols)) in enumerate(zip(model.hidden, spec.layer_shapes())):
        in_bits = spec.n_inputs if spec.model == "rnn" else cols
        rnn = spec.model == "rnn"
        offset = None  # a centred first layer's o_j, from its constant weights (engine.network.centre_offsets)
        if i == 0 and model.input_means is not None:
            offset = centre_offsets(np.where(h >= 0, 1, -1), model.input_means).astype(np.int16)
        layers.append({"rows": rows, "in_bits": in_bits, "in_words": bits.n_words(in_bits),
                       "rec_words": bits.n_words(rows) if rnn else 0,
                       "w": bits.pack(h[:, :in_bits]), "wr": bits.pack(h[:, in_bits:]) if rnn else None,
                       "offset": offset})
    return {"layers": layers, "input_words": plan.input_words, "scratch_words": plan.scratch_words,
            "work_words": plan.work_words, "class_words": plan.class_words, "weight_bytes": plan.weight_bytes,
            "classifier_bytes": plan.classifier_bytes}


def render_inference(model: Model, name: str = "net", input_format: InputFormat | None = None,
                     url: str | None = None) -> tuple[dict[str, str], InferencePlan, dict[str, list[str]]]:
    """The files of inference-only output: the network's packed weights, the encoder,
    ``bep_<net>_infer_predict``; no training runtime. Its C is named by ``inference_name``."""
    check_name(name)
    plan = plan_inference(model.spec, model.input_means is not None)
    inp = input_context(model, input_format)
    infer = inference_context(model, plan)
    infer["encoder_bytes"] = int(inp["kept"].size + inp["threshold"].size * np.dtype(inp["type"]).itemsize)
    infer_name = inference_name(name)
    ctx = {"network": name, "name": infer_name, "NAME": infer_name.upper(), "version": __version__,
           "config_hash": model.config_hash, "config_hash32": model.config_hash32, "spec": model.spec,
           "classifier": bits.pack(model.classifier), "labels": [str(c) for c in model.labels.tolist()],
           "input": inp, "infer": infer, "status": STATUS, "inference_only": True, "stack": STACK_BYTES}
    env = environment()
    library = _texts(env, ctx, library_files(name)["inference"])
    out, parts = package.render_inference(env, ctx, library, every_part(name), url)
    return out, plan, parts


def generate(model: Model, out_dir: str | Path, name: str = "net", input_format: InputFormat | None = None,
             inference_only: bool = False, url: str | None = None,
             calibration_window: int = recalibration.DEFAULT_WINDOW) -> Generated:
    """Render ``model`` into ``out_dir`` (created if needed; only our files are written,
    each only when its text changed, all of them or none, never through a symlink:
    ``files.write_text_files``); ``input_format``: the device's raw inputs (default
    ``inputformat.choose``); ``inference_only``: prediction code alone (it may share the
    directory with the training code: ``cgen/package``); ``url``: the library's home page;
    ``calibration_window``: how fast the board's input thresholds follow its raw values
    (data/recalibration.py)."""
    state = plan_model(model)
    if inference_only:
        texts, infer, parts = render_inference(model, name, input_format, url)
        directory = files.write_text_files(out_dir, texts)
        return Generated(directory, name, state, model.config_hash, sorted(texts), parts, infer)
    texts, plan, parts = render(model, name, input_format, url, calibration_window)
    directory = files.write_text_files(out_dir, texts)
    return Generated(directory, name, plan, model.config_hash, sorted(texts), parts)


def render_standalone_data(fmt: InputFormat, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                           source: str) -> str:
    """``bep_sa_data.c``: a standalone image's training and test sets, device values of
    ``fmt`` (n, values of a sample) and class indices, as const arrays in flash."""
    ctx = {"input_type": fmt.input_type, "ctype": fmt.ctype, "source": source, "version": __version__}
    for part, (x, y) in (("train", train), ("test", test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind not in "iu" or (x.size and (x.min() < fmt.lo or x.max() > fmt.hi)):
            raise ValueError(f"{part} values must be {fmt.input_type} integers")
        if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 255)) or len(y) != len(x):
            raise ValueError(f"{part} labels must be class indices 0..255, one per sample")
        ctx.update({f"{part}_x": x.astype(np.int64), f"{part}_y": y.astype(np.int64), f"n_{part}": len(y)})
        ctx["values"] = x.shape[1]
    return environment().get_template("standalone_data.c.j2").render(template="standalone_data.c.j2", **ctx)
