"""``bep-mcu sweep``: the most accurate network that fits a board, searched on Ray Tune.

A sweep samples ``trials`` network configurations (widths, r, ν, γ0, binariser, RNN
window) from a seeded search space, plans each one on the board with the project's own
planners before training it, and trains those that fit as Ray Tune trials, in this
process's Ray instance (the default) or on an existing Ray cluster (``address``).

- Sampling: configuration i is drawn from the space (Tune's ``tune.choice`` domains)
  with a generator seeded by ``(seed, i)``, so the same seed gives the same trials,
  and a larger ``trials`` extends a sweep instead of changing it.
- The space is sized to the board: hidden widths are sampled from those with which a
  one-layer network of the leanest encoding fits it (:func:`fitting_widths`), so a 16 KB
  board is not offered 512 neurons.
- Fitting: each (configuration, training seed) is built untrained exactly as training
  builds it (``training.initial_model``: the encoder fitted on the training part), then
  planned: RAM from ``device.firmware.plan_memory`` (exact), flash from the network's
  tables plus the firmware's code (:data:`CODE_BYTES`, measured), instructions per
  training sample from ``cgen.cost`` (a model calibrated on icount's figures), the
  bytes an inference-only image would hold (``cgen.layout.describe``); with
  ``standalone``, the image that learns the sweep's data alone must fit too (its RAM plan,
  exact, and flash: tables, the data as device values and :data:`STANDALONE_CODE_BYTES`).
  A trial that does not fit is recorded as skipped with the reason, and never run.
- Scoring: every trial trains on the training data minus a stratified validation part
  (``val_fraction``, carved by ``training.fit`` itself and seeded by the training seed)
  and is scored by its validation accuracy after the last epoch; the test split is
  never seen by the search. ``training.fit``'s ``on_epoch`` reports the validation
  accuracy to Tune after every epoch; with ``early_stop``, ASHA stops trials that trail
  their peers (a stopped trial never wins: its accuracy is of fewer epochs), else every
  trial trains every epoch.
- Records: one JSON object per finished (trial, repeat), handed to ``on_record`` as it
  finishes (the CLI appends it to a JSONL file), keyed by the sweep's fingerprint (data,
  board and settings). Given the records of an interrupted run, a sweep runs only what
  is missing; it takes from them only what trials measured, checked (:class:`Records`).
- The result: per configuration the mean validation accuracy over its training seeds,
  the Pareto fronts of accuracy vs RAM and vs instructions, and the best configuration
  (highest accuracy, then least RAM), retrained on the driver with its best seed (bit for
  bit the trial's model: training is deterministic) and scored once on the test split.

Ray Tune is an optional extra (``pip install 'bep-mcu[sweep]'``); it is imported only
when a sweep runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from bep_mcu import training, validate
from bep_mcu.cgen import cost
from bep_mcu.cgen.layout import describe, plan_model
from bep_mcu.data import inputformat
from bep_mcu.data.binarize import is_binary
from bep_mcu.data.datasets import Dataset
from bep_mcu.data.encoder import as_model_shape
from bep_mcu.device import boards
from bep_mcu.device.firmware import plan_memory, plan_standalone_memory, refuse_if_too_big, \
    refuse_standalone_if_too_big
from bep_mcu.device.standalone import standalone_data
from bep_mcu.errors import BEPError, DoesNotFit
from bep_mcu.model import Model, plain_labels
from bep_mcu.settings import BY_NAME, SETTINGS

INSTALL_HINT = "pip install 'bep-mcu[sweep]'"
MAX_TRIALS = 100_000
MAX_SEEDS = 100
CONNECT_TIMEOUT = 30  # seconds until --address gives up on a cluster that does not answer (prepare_ray)

# The search space: the settings with values to search (bep_mcu/settings.py: r and ν) and these.
# Widths and γ0 = width // divisor scale together (the default divisors are spec.GAMMA0_DIV:
# 16 for an MLP, 4 for an RNN).
WIDTHS = (8, 16, 32, 64, 128, 256, 512)  # candidates: those that fit the board are sampled
MLP_LAYERS = (1, 2)
SEARCHED = [s for s in SETTINGS if s.search]
GAMMA_DIVISORS = (4, 8, 16, 32)
BINARIZERS = {"mlp": ("median", "thermometer:2", "thermometer:4", "thermometer:8"),
              "rnn": ("median", "thermometer:4", "thermometer:8")}
# Binary data passes through, or (an MLP's rows) as k copies of each bit, a thermometer of a 0/1
# feature: more input bits, and each bit's weight takes k + 1 values (docs/accuracy.md, "Sixth
# held-out check: binary features"; the default for fewer than 256 features).
BINARY_BINARIZERS = {"mlp": ("passthrough", "thermometer:2", "thermometer:4", "thermometer:8"),
                     "rnn": ("passthrough",)}
RNN_STEPS = (1, 2, 4, 8)
SPACE_VERSION = 3  # in the fingerprint: a results file of another space's draws is another sweep's
MAX_DRAWS = 16  # draws of one trial's configuration until one fits the board (sample_configs)  # window = ceil(series length / steps); 2 is the default (docs/accuracy.md §2)

CODE_BYTES = {
    # Flash of the training firmware besides the network's tables (code, the runtime's
    # own tables, data), measured with `bep-mcu firmware` (arm-none-eabi-gcc 12.2, -Os):
    # the same for every network on a board. tests/test_sweep.py checks it against a build.
    "mps2-an385": 12520, "mps2-an386": 12612, "mps2-an500": 12600, "mps2-an505": 12748,
    "microbit": 13460, "nucleo-f401re": 13084, "netduinoplus2": 13104,
    "nano33ble": 12732, "nrf52840dk": 12728, "bluepill": 12904, "stm32vldiscovery": 12936,
    # riscv64-unknown-elf-gcc 12.2, -Os, rv32imac / rv32imc
    "riscv32-virt": 14808, "esp32c3": 14920,
}

# Flash of the standalone image (``firmware --standalone-data``) besides the network's tables,
# the data, the Q tables and the recalibration tables (standalone_code_bytes): code and the
# rest, measured like CODE_BYTES (an upper bound within 128 B: alignment and the input type
# vary; tests/test_sweep.py builds them).
STANDALONE_CODE_BYTES = {"mps2-an385": 14588, "mps2-an386": 14668, "mps2-an500": 14664, "mps2-an505": 14848,
                         "microbit": 15336, "netduinoplus2": 14816, "stm32vldiscovery": 14740,
                         "riscv32-virt": 16744}
# Each hidden layer's code and Q table, per architecture (rv32's code is larger than Thumb-2's).
STANDALONE_LAYER_BYTES = {"arm": 1100, "riscv": 1280}

STATUSES = ("done", "stopped", "skipped", "error")
FINISHED = ("done", "stopped", "skipped")  # an errored trial runs again when the sweep resumes


def require_ray():
    """``ray.tune``, or a one-line error saying how to install it."""
    try:
        from ray import tune
    except ImportError:
        raise BEPError(f"bep-mcu sweep runs on Ray Tune, which is not installed: {INSTALL_HINT}") from None
    return tune


def prepare_ray(address: str | None) -> None:
    """Set Ray's environment, then check it is installed. Ray reads its environment when
    first imported, so this comes first: Tune's classic console output (it honours
    ``verbose=0``, the newer one does not, and standard output belongs to the CLI) and,
    for a local instance (no ``address``), addresses on 127.0.0.1 only instead of the
    machine's network address (the variable also reaches the workers Ray starts), with
    token authentication asked for (Ray's default, which it otherwise announces each time).

    For a cluster, ``ray.init`` would try 20 times to reach its head's GCS, each time
    waiting 5 s for the connection, 5 s for its pubsub, 30 s for the cluster's id and a
    1 s pause: about 15 minutes for a wrong address, printing warnings. One attempt with
    the id wait cut to 19 s gives up after :data:`CONNECT_TIMEOUT` s (both variables
    bound only connecting to the GCS; an operator's own values win)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address is None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Token authentication, which a new local instance turns on by default, printing a notice
        # on every sweep: asked for explicitly, it is the same protection without the notice.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    else:
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "1")  # Ray's number of attempts
        os.environ.setdefault("RAY_py_gcs_connect_timeout_s", str(CONNECT_TIMEOUT - 5 - 5 - 1))
    require_ray()


# ---------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep searches for (the CLI's options)."""

    board: str
    model: str = "mlp"
    trials: int = 16
    seeds: int = 1  # training seeds per configuration: seed, seed + 1, ...
    seed: int = 0  # seeds the sampling of configurations and the first training seed
    epochs: int = 10
    val_fraction: float = BY_NAME["val_fraction"].default  # train's: the same split a trained model records
    preset: str | None = None  # the trials' other settings (settings.PRESETS), the searched ones excepted
    max_instructions: int | None = None  # per training sample on the board's core
    early_stop: bool = False  # ASHA stops trials that trail their peers
    standalone: bool = False  # the image that learns the data alone must fit too

    def __post_init__(self) -> None:
        boards.board(self.board)
        validate.choice(self.model, "--model", ("mlp", "rnn"))
        BY_NAME["preset"].check(self.preset)
        validate.integer(self.trials, "--trials", 1, MAX_TRIALS)
        validate.integer(self.seeds, "--seeds", 1, MAX_SEEDS)
        validate.seed(self.seed)
        validate.seed(self.seed + self.seeds - 1, "--seed + --seeds - 1")
        validate.integer(self.epochs, "--epochs", 1, 10_000)
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 0.5:
            raise BEPError(f"--val-fraction must be in (0, 0.5), got {validate.show(self.val_fraction)}")
        if self.max_instructions is not None:
            validate.integer(self.max_instructions, "--max-instructions", 1, 1 << 40)
        if self.standalone and self.board not in STANDALONE_CODE_BYTES:
            raise BEPError(f"--standalone: {self.board} runs no standalone image (boards that do: "
                           f"{', '.join(STANDALONE_CODE_BYTES)})")

    @property
    def board_info(self) -> boards.Board:
        return boards.board(self.board)

    def training_settings(self, config: dict, seed: int) -> training.Settings:
        """A trial's settings: its configuration (settings by name, from :func:`sample_configs`)."""
        return training.Settings(**{**config, "hidden": tuple(config["hidden"]), "gamma": tuple(config["gamma"])},
                                 epochs=self.epochs, seed=seed, val_fraction=self.val_fraction, preset=self.preset)


# ---------------------------------------------------------------------- the space


def search_space(model: str, binary_data: bool, widths: Sequence[int] = WIDTHS) -> dict:
    """Tune's domains of one configuration (binary data: ``BINARY_BINARIZERS``)."""
    tune = require_ray()
    widths = list(widths)
    # the order of the domains is the order of the draws: it fixes each trial's configuration
    space = {"width1": tune.choice(widths), **{s.name: tune.choice(s.search) for s in SEARCHED},
             "gamma_divisor": tune.choice(GAMMA_DIVISORS),
             "binarize": tune.choice((BINARY_BINARIZERS if binary_data else BINARIZERS)[model])}
    if model == "mlp":
        space.update(layers=tune.choice(MLP_LAYERS), width2=tune.choice(widths))
    else:
        space.update(steps=tune.choice(RNN_STEPS))
    return space


def _plain(value):
    """Tune samples numpy scalars; records hold plain JSON values."""
    return value.item() if isinstance(value, np.generic) else value


def binary(X: np.ndarray, model: str) -> bool:
    return bool(is_binary(X.reshape(-1, X.shape[-1]) if model == "rnn" else X))


def sample_configs(model: str, trials: int, seed: int, X: np.ndarray, widths: Sequence[int] = WIDTHS,
                   fits: Callable[[dict], bool] | None = None) -> list[dict]:
    """The configurations of trials 0..trials-1; trial i depends only on (seed, i), the
    widths to sample from and ``fits``: a trial draws again (up to :data:`MAX_DRAWS`
    times, each draw seeded by (seed, i, draw)) until ``fits`` accepts its configuration;
    the last draw stands if none does."""
    space = search_space(model, binary(X, model), widths)
    configs = []
    for i in range(trials):
        for draw in range(MAX_DRAWS if fits else 1):
            rng = np.random.default_rng([seed, i, draw])
            v = {name: _plain(domain.sample(random_state=rng)) for name, domain in space.items()}
            hidden = [v["width1"], v["width2"]][:v["layers"]] if model == "mlp" else [v["width1"]]
            config = {"model": model, "hidden": hidden, **{s.name: v[s.name] for s in SEARCHED},
                      "gamma": [max(1, w // v["gamma_divisor"]) for w in hidden], "binarize": v["binarize"],
                      "window": math.ceil(X.shape[1] / v["steps"]) if model == "rnn" else None}
            if fits is None or fits(config):
                break
        configs.append(config)
    return configs


# ---------------------------------------------------------------------- fitting the board


def assess(model: Model, settings: SweepSettings, data: Dataset | None = None) -> tuple[dict, str | None]:
    """What ``model``'s network needs on the sweep's board (the module docstring), and
    why it does not fit (None when it does); ``data``: the sweep's, for ``standalone``."""
    board = settings.board_info
    state = plan_model(model)
    mem = plan_memory(state, model.spec, board)
    fp = {"ram_bytes": mem.ram_bytes, "flash_bytes": mem.tables_bytes + CODE_BYTES[board.name],
          "state_bytes": mem.state_bytes, "tables_bytes": mem.tables_bytes,
          "inference_bytes": describe(model)["inference_state_bytes"],
          "instructions": cost.instructions_per_sample(model.spec, model.params.gamma, board.cpu,
                                                       model.training.batch_size)}
    reason = None
    try:
        refuse_if_too_big(mem, board, "net")
        if settings.standalone:
            reason = _standalone_reason(model, state, board, data, fp)
    except BEPError as e:
        reason = str(e)
    if reason is None and fp["flash_bytes"] > board.flash_bytes:
        reason = (f"flash {fp['flash_bytes']} B (tables {fp['tables_bytes']} + code {CODE_BYTES[board.name]}) "
                  f"exceeds {board.name}'s {board.flash_bytes} B")
    if reason is None and settings.max_instructions is not None and fp["instructions"] > settings.max_instructions:
        reason = (f"{fp['instructions']} instructions per training sample on {board.cpu} exceed "
                  f"--max-instructions {settings.max_instructions}")
    return fp, reason


def standalone_code_bytes(model: Model, state, board: boards.Board) -> int:
    """The standalone image's flash besides the network's tables and the data: the measured
    code, 1 KB of Q table a layer, and the recalibration tables (bep_<net>_board.c: 2 B a
    followed threshold, 8 B a feature)."""
    calibration = 2 * state.followed + 8 * model.encoder.n_features if state.followed else 0
    return STANDALONE_CODE_BYTES[board.name] + STANDALONE_LAYER_BYTES[board.arch] * model.spec.n_layers + calibration


def _standalone_reason(model: Model, state, board: boards.Board, data: Dataset, fp: dict) -> str | None:
    """Adds the standalone image's RAM and flash to ``fp``; why it does not fit, if it does not."""
    sa_data = standalone_data(model, data, inputformat.choose(model.encoder, data.X_train))
    plan = plan_standalone_memory(state, model.spec, board)
    refuse_standalone_if_too_big(plan, sa_data, board, "net")
    code = standalone_code_bytes(model, state, board)
    fp.update(standalone_ram_bytes=plan.ram_bytes,
              standalone_flash_bytes=plan.tables_bytes + sa_data.flash_bytes + code)
    if fp["standalone_flash_bytes"] > board.flash_bytes:
        return (f"the standalone image's flash {fp['standalone_flash_bytes']} B (tables {plan.tables_bytes} + data "
                f"{sa_data.flash_bytes} + code {code}) exceeds {board.name}'s {board.flash_bytes} B")
    return None


def fitting_widths(X: np.ndarray, y: np.ndarray, settings: SweepSettings, data: Dataset | None = None
                   ) -> tuple[int, ...]:
    """The widths of :data:`WIDTHS` with which a one-layer network fits the board in its
    leanest form (the fewest input bits the space offers: passthrough or median, an RNN's
    shortest window), as :func:`assess` judges it; a width that does not fit even so would
    only be skipped. None fits: ``DoesNotFit`` with the smallest's reason."""
    lean = {"model": settings.model, "hidden": [0], "binarize": "passthrough" if binary(X, settings.model) else
            "median", "window": math.ceil(X.shape[1] / max(RNN_STEPS)) if settings.model == "rnn" else None}
    fits, reason = [], None
    for width in WIDTHS:
        config = {**lean, "hidden": [width], "gamma": [max(1, width // max(GAMMA_DIVISORS))]}
        try:
            model = training.initial_model(X, y, settings.training_settings(config, settings.seed))
        except BEPError:  # the leanest encoding leaves no bit: each configuration's own draw judges it
            return WIDTHS
        fp, reason = assess(model, settings, data)
        if reason is not None:
            break  # a wider one needs more
        fits.append(width)
    if not fits:
        raise DoesNotFit(f"no network fits {settings.board}: even {WIDTHS[0]} hidden neurons do not ({reason})")
    return tuple(fits)


def fingerprint(name: str, X: np.ndarray, y: np.ndarray, settings: SweepSettings,
                test: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """Identifies a sweep: its data (the test part too where the standalone image holds
    it) and every setting that changes a trial's record."""
    h = hashlib.sha256()
    arrays = (X, y, *(test if settings.standalone and test is not None else ()))
    for a in (np.ascontiguousarray(a, dtype=np.float64) if i % 2 == 0 else np.asarray(a).astype(str)
              for i, a in enumerate(arrays)):
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps([name, settings.board, settings.model, settings.seed, settings.epochs, settings.val_fraction,
                         settings.max_instructions, settings.preset, sorted(CODE_BYTES.items()), SPACE_VERSION,
                         settings.standalone,
                         sorted(STANDALONE_CODE_BYTES.items()) if settings.standalone else None]).encode())
    return h.hexdigest()[:16]


def plan_trials(X: np.ndarray, y: np.ndarray, settings: SweepSettings, sweep_id: str,
                data: Dataset | None = None) -> list[dict]:
    """Every (trial, repeat) of the sweep with its configuration, footprint and, when it
    does not fit the board, the reason (deterministic: no training happens here);
    ``data``: the whole data set, for ``standalone`` (its test part goes in the image)."""
    if settings.standalone and data is None:
        raise ValueError("a standalone sweep plans with the whole data set")
    X = as_model_shape(X, settings.model)
    y = plain_labels(np.asarray(y))
    _, val = training.split_validation(y, settings.val_fraction, settings.seed)
    # Trials are scored on the split, so the sweep cannot do without it where fit would
    # (classes too small to give it a sample: training.too_small_to_split).
    if len(val) == 0 or training.too_small_to_split(y, settings.val_fraction):
        need = training.smallest_split_class(settings.val_fraction)
        raise BEPError(f"{len(y)} training samples of {len(np.unique(y))} classes are too few to carve a validation "
                       f"split from to score trials on (at least 4 per class, and a class of {need} for "
                       f"--val-fraction {settings.val_fraction:g} to take a sample from it)")
    def plan(trial: int, repeat: int, config: dict) -> dict:
        seed = settings.seed + repeat
        head = {"sweep": sweep_id, "trial": trial, "repeat": repeat, "seed": seed, "config": config}
        try:
            model = training.initial_model(X, y, settings.training_settings(config, seed))
        except BEPError as e:  # e.g. a binariser that leaves no varying bit
            return {**head, "reason": str(e)}
        fp, reason = assess(model, settings, data)
        return {**head, "network": [model.spec.n_inputs, *model.spec.hidden, model.spec.n_classes], **fp,
                "reason": reason}

    # widths from those that fit, then each trial drawn again until its whole network fits
    configs = sample_configs(settings.model, settings.trials, settings.seed, X, fitting_widths(X, y, settings, data),
                             fits=lambda config: plan(0, 0, config)["reason"] is None)
    return [plan(i, k, config) for i, config in enumerate(configs) for k in range(settings.seeds)]


def key(record: dict) -> tuple[int, int]:
    return record["trial"], record["repeat"]


# ---------------------------------------------------------------------- records


def _digest(value: object) -> bytes:
    """What a record's config or network is, in 32 bytes (the record may be a hostile
    megabyte; only whether it equals the plan's matters)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()


def _flat_config(value: object, field: str) -> dict:
    """A configuration as records hold it: names to numbers, strings or lists of numbers
    (so nothing in it nests, and comparing it with the plan's cannot recurse)."""
    config = validate.mapping(value, field)
    for name, v in config.items():
        if not all(x is None or isinstance(x, (str, int, float)) for x in (v if isinstance(v, list) else [v])):
            raise BEPError(f"{field} must map names to numbers, strings or lists of numbers, got {validate.show(v)} "
                           f"for {validate.show(name)}")
    return config


class Records:
    """The records of a results file, checked line by line as they are read.

    A record is trusted only for what a trial measured: its status, validation
    accuracy and node. Everything else is the sweep's own plan: a finished record must
    name a trial of this sweep with the plan's configuration, seed and network
    (:meth:`match`), and footprints, configurations and reasons always come from the
    plan. A record that names a trial of the plan and disagrees with it is refused, as
    a record of another sweep is: one results file holds one sweep, and a file that
    contradicts the plan was edited or written by another bep-mcu, so neither its
    results nor more appended to it can be told apart from this sweep's.

    Only the finished records of this sweep's (trial, repeat)s are kept, each in a few
    fields, so memory grows with the plan, not with the file."""

    def __init__(self, settings: SweepSettings, sweep_id: str, where: str) -> None:
        self.settings, self.sweep_id, self.where = settings, sweep_id, where
        self.finished: dict[tuple[int, int], dict] = {}

    def add(self, n: int, line: bytes) -> None:
        """Check line ``n`` of the file and keep it if it is a finished trial of the plan."""
        at = f"{self.where} line {n}"
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; nesting beyond Python's limit
            raise BEPError(f"{at} is not JSON (not a bep-mcu sweep results file?)") from None
        if not isinstance(rec, dict):
            raise BEPError(f"{at} is not a bep-mcu sweep record")

        def field(name: str) -> tuple[object, str]:
            if name not in rec:
                raise BEPError(f"{at}: field '{name}' is missing (not a bep-mcu sweep record?)")
            return rec[name], f"{at}: field '{name}'"

        sweep_id = field("sweep")[0]
        if sweep_id != self.sweep_id:
            raise BEPError(f"{self.where} holds another sweep (other data, board or settings: line {n} is of sweep "
                           f"{validate.show(sweep_id)}, this one is {self.sweep_id}); give another --results file")
        trial = validate.integer(*field("trial"), 0, MAX_TRIALS - 1)
        repeat = validate.integer(*field("repeat"), 0, MAX_SEEDS - 1)
        status = validate.choice(*field("status"), STATUSES)
        if status not in FINISHED or trial >= self.settings.trials or repeat >= self.settings.seeds:
            return  # an errored trial runs again; a larger sweep's trials are not this one's
        if status == "stopped" and not self.settings.early_stop:
            return  # stopped early by a run with --early-stop: this one trains it to the end
        network = validate.integers(*field("network"), 1, 1 << 31) if "network" in rec else None
        kept = {"line": n, "status": status, "seed": validate.seed(*field("seed")),
                "config": _digest(_flat_config(*field("config"))), "network": _digest(network)}
        if status != "skipped":
            epochs = validate.integer(*field("epochs"), 1, self.settings.epochs)
            if (status == "done") != (epochs == self.settings.epochs):
                want = "" if status == "done" else "below "
                raise BEPError(f"{at}: field 'epochs' of a {status} trial must be {want}{self.settings.epochs}, "
                               f"got {epochs}")
            kept.update(val_accuracy=validate.number(*field("val_accuracy"), 0.0, 1.0),
                        node_id=validate.text(*field("node_id"), 128))
        self.finished[(trial, repeat)] = kept  # the last record of a trial is its outcome

    def match(self, planned: Sequence[dict]) -> dict[tuple[int, int], dict]:
        """The measured results of the planned trials that finished, by (trial, repeat);
        a record that disagrees with its planned trial is refused (class docstring)."""
        finished = {}
        for p in planned:
            rec = self.finished.get(key(p))
            if rec is None:
                continue
            reason = p["reason"]
            for name, same, plan in (
                    ("seed", rec["seed"] == p["seed"], p["seed"]),
                    ("config", rec["config"] == _digest(p["config"]), p["config"]),
                    ("network", rec["network"] == _digest(p.get("network")), p.get("network")),
                    ("status", (rec["status"] == "skipped") == (reason is not None),
                     f"skipped: {reason}" if reason else "trained")):
                if not same:
                    raise BEPError(f"{self.where} line {rec['line']}: field '{name}' is not this sweep's trial "
                                   f"{p['trial']} repeat {p['repeat']} (its plan: {validate.show(plan, 120)}): the "
                                   f"file was edited or written by another bep-mcu; give another --results file")
            finished[key(p)] = {name: rec[name] for name in ("status", "val_accuracy", "node_id") if name in rec}
        return finished


# ---------------------------------------------------------------------- Ray


@contextlib.contextmanager
def _stderr_to(file: BinaryIO) -> Iterator[None]:
    """File descriptor 2 into ``file``: Ray's core writes its warnings there, not
    through Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _join(address: str) -> str:
    """``ray.init`` on the cluster at ``address`` (returns the address it joined); if it
    cannot, one line, without the warnings Ray printed while it retried (they are shown
    when it succeeds)."""
    import ray
    from ray.exceptions import RayError

    with tempfile.TemporaryFile() as log:
        try:
            with _stderr_to(log):
                context = ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError, RayError) as e:
            ray.shutdown()
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BEPError(f"cannot reach a Ray cluster at {address} within {CONNECT_TIMEOUT} s: {reason[:300]} "
                           f"(is its head running? `ray start --head` prints its address)") from None
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace"))
    return context.address_info["address"]


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[str]:
    """A Ray driver for the sweep: a new local instance on this machine's cores, or a
    connection to the cluster at ``address``. Yields the address of the Ray it joined."""
    prepare_ray(address)
    import ray

    if address is None:
        # "local" starts a new instance even where `ray start` left one running.
        joined = ray.init(address="local", include_dashboard=False, log_to_driver=False,
                          configure_logging=False).address_info["address"]
    else:
        joined = _join(address)
    try:
        yield joined
    finally:
        ray.shutdown()


def _trial(config: dict, X: np.ndarray, y: np.ndarray, settings: SweepSettings) -> None:
    """One Tune trial: train one configuration with one seed, reporting every epoch."""
    import ray
    from ray import tune

    planned = config["planned"]
    where = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    s = settings.training_settings(planned["config"], planned["seed"])

    def on_epoch(rec: dict) -> None:
        tune.report({"val_accuracy": rec["val_accuracy"], "train_accuracy": 1.0 - rec["train_error"],
                     "gamma": rec["gamma"], **where})

    training.fit(X, y, s, on_epoch=on_epoch)


def run_trials(X: np.ndarray, y: np.ndarray, settings: SweepSettings, pending: Sequence[dict],
               on_record: Callable[[dict], None], sweep_run: str) -> None:
    """Train ``pending`` (planned trials that fit) as Tune trials on the connected Ray;
    ``on_record`` gets each one's record as it finishes (on this process)."""
    tune = require_ray()
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    history: dict[str, list] = {}

    class Recorder(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            history.setdefault(trial.trial_id, []).append(result["val_accuracy"])

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result
            epochs = r["training_iteration"]
            on_record({**trial.config["planned"], "status": "done" if epochs >= settings.epochs else "stopped",
                       "val_accuracy": r["val_accuracy"], "train_accuracy": r["train_accuracy"], "epochs": epochs,
                       "val_history": history.get(trial.trial_id, []), "node_id": r["node_id"], "host": r["host"],
                       "pid": r["pid"], "seconds": r["time_total_s"], "run": sweep_run})

        def on_trial_error(self, iteration, trials, trial, **info):
            error = str(trial.get_error() or "unknown error").strip().splitlines() or ["unknown error"]
            on_record({**trial.config["planned"], "status": "error", "error": error[-1][:500], "run": sweep_run})

    # ASHA compares trials at rungs of grace, 3·grace, ... epochs and stops the bottom two
    # thirds; below 4 epochs there is no rung before the end worth stopping at. It may stop a
    # trial that would have won, so it runs only when asked (--early-stop).
    scheduler = (ASHAScheduler(max_t=settings.epochs, grace_period=max(1, settings.epochs // 4),
                               reduction_factor=3) if settings.early_stop and settings.epochs >= 4
                 else FIFOScheduler())
    storage = tempfile.mkdtemp(prefix="bep-mcu-sweep-")  # Tune's own files: scratch, the records are the results
    try:
        tuner = tune.Tuner(
            tune.with_parameters(_trial, X=X, y=y, settings=settings),
            param_space={"planned": tune.grid_search(list(pending))},
            tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", scheduler=scheduler, reuse_actors=True),
            run_config=tune.RunConfig(name="bep-mcu-sweep", storage_path=storage, verbose=0, callbacks=[Recorder()]))
        tuner.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)


# ---------------------------------------------------------------------- results


def summarise(planned: Sequence[dict], finished: dict[tuple[int, int], dict]) -> list[dict]:
    """One summary per configuration of a finished sweep: its configuration, network and
    footprint (the largest over its seeds) from the plan, the mean validation accuracy
    of its seeds from their records, and its status: skipped (does not fit), stopped
    (by ASHA, for any seed) or done."""
    by_trial: dict[int, list[dict]] = {}
    for p in planned:
        by_trial.setdefault(p["trial"], []).append(p)
    out = []
    for trial, plans in sorted(by_trial.items()):
        recs = [finished[key(p)] for p in plans]
        statuses = {r["status"] for r in recs}
        status = next(s for s in ("skipped", "stopped", "done") if s in statuses)
        summary = {"trial": trial, "config": plans[0]["config"], "status": status, "seeds": [p["seed"] for p in plans]}
        if "ram_bytes" in plans[0]:  # a configuration whose encoding failed has no footprint
            for name in ("ram_bytes", "flash_bytes", "state_bytes", "inference_bytes", "instructions",
                         "standalone_ram_bytes", "standalone_flash_bytes"):
                if name in plans[0]:
                    summary[name] = max(p[name] for p in plans if name in p)
            summary["network"] = plans[0]["network"]
        if status == "skipped":
            summary["reason"] = next(p["reason"] for p in plans if p["reason"] is not None)
        else:
            accs = [r["val_accuracy"] for r in recs]
            summary["val_accuracy"] = float(np.mean(accs))
            summary["best_seed"] = plans[int(np.argmax(accs))]["seed"]  # the first of equals
            summary["nodes"] = sorted({r["node_id"] for r in recs})
        out.append(summary)
    return out


def pareto(summaries: Sequence[dict], cost_key: str) -> list[dict]:
    """Finished configurations no other beats on both accuracy and ``cost_key``, by cost."""
    done = sorted((s for s in summaries if s["status"] == "done"),
                  key=lambda s: (s[cost_key], -s["val_accuracy"], s["trial"]))
    front, best = [], -1.0
    for s in done:
        if s["val_accuracy"] > best:
            front.append(s)
            best = s["val_accuracy"]
    return front


def best(summaries: Sequence[dict]) -> dict | None:
    """The most accurate finished configuration; ties go to less RAM, then fewer instructions."""
    done = [s for s in summaries if s["status"] == "done"]
    if not done:
        return None
    return min(done, key=lambda s: (-s["val_accuracy"], s["ram_bytes"], s["instructions"], s["trial"]))


def retrain(X: np.ndarray, y: np.ndarray, summary: dict, settings: SweepSettings) -> Model:
    """The winner's model: its configuration trained again with its best seed (the same
    integers in the same order, so the same model the trial trained)."""
    return training.fit(X, y, settings.training_settings(summary["config"], summary["best_seed"]))


# ---------------------------------------------------------------------- the whole search


@dataclass
class Outcome:
    """What a sweep found (:func:`search`)."""

    summaries: list[dict]
    winner: dict
    fronts: dict[str, list[dict]]  # "ram_bytes", "instructions": the Pareto fronts
    model: Model  # the winner retrained
    resumed: int  # trials whose records were in the results file
    engine_address: str | None  # the Ray instance the trials ran on (None: nothing to run)


def search(name: str, X: np.ndarray, y: np.ndarray, settings: SweepSettings, sweep_id: str, records: Records,
           save: Callable[[dict], None], progress: Callable[[str], None], address: str | None = None,
           tick: Callable[[int, float | None], None] | None = None, data: Dataset | None = None) -> Outcome:
    """A sweep from plan to winner: plan every trial on the board, record those that do
    not fit as skipped, train the rest that ``records`` (a results file's) has not
    finished on Ray (``save`` gets every new record; ``tick(trials to train, best validation
    accuracy so far)`` runs as each finishes), then summarise, pick and retrain the winner. A
    trial that failed, or an interrupted run, is one ``BEPError`` line."""
    progress(f"{name}: {len(y)} training samples; planning {settings.trials} configuration(s) x {settings.seeds} seed(s) "
             f"on {settings.board}")
    planned = plan_trials(X, y, settings, sweep_id, data)
    finished = records.match(planned)
    resumed = len(finished)
    run_id = uuid.uuid4().hex[:12]  # marks the records of this invocation
    failed: list[dict] = []

    def record(rec: dict) -> None:
        save(rec)
        if rec["status"] in FINISHED:
            finished[key(rec)] = rec
        else:
            failed.append(rec)
        if tick is not None and rec["status"] != "skipped":
            tick(len(pending), max((r["val_accuracy"] for r in finished.values() if "val_accuracy" in r), default=None))

    pending = [p for p in planned if p["reason"] is None and key(p) not in finished]
    for p in planned:
        if p["reason"] is not None and key(p) not in finished:
            record({**p, "status": "skipped", "run": run_id})
    engine_address = None
    if pending:
        progress(f"training {len(pending)} trial(s) on Ray Tune " + (f"at {address}" if address else "in this process")
                 + (f", {resumed} already in the results file" if resumed else ""))
        with ray_session(address) as engine_address:
            run_trials(X, y, settings, pending, record, run_id)
    missing = [p for p in planned if key(p) not in finished]
    if missing:
        why = f"failed (trial {failed[0]['trial']}: {failed[0]['error']})" if failed else "interrupted"
        raise BEPError(f"{len(missing)} of {len(planned)} trial(s) did not finish: {why}")
    summaries = summarise(planned, finished)
    winner = best(summaries)
    if winner is None:
        raise DoesNotFit(f"none of the {settings.trials} configuration(s) fits {settings.board}: "
                       f"{next(s['reason'] for s in summaries if s['status'] == 'skipped')}")
    fronts = {cost: pareto(summaries, cost) for cost in ("ram_bytes", "instructions")}
    progress(f"retraining the best network (trial {winner['trial']}, seed {winner['best_seed']}) to test it")
    return Outcome(summaries, winner, fronts, retrain(X, y, winner, settings), resumed, engine_address)
