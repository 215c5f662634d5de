"""Options and output shared by the commands.

Every command takes ``--json``: then the last line of standard output is one JSON
object and progress goes to standard error. User mistakes raise ``BEPError`` and are
printed by ``main`` as one line. Only the CLI opens files: models through ``modelio``,
data through ``data.datasets``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any, Callable

import click

from bep_mcu import modelio, training, validate
from bep_mcu.data import inputformat
from bep_mcu.data.datasets import Dataset, load_dataset, load_files
from bep_mcu.errors import BEPError
from bep_mcu.model import Model
from bep_mcu.settings import SETTINGS, Setting

class Integer(click.types.IntParamType):
    """click's INT, in ASCII digits only (it calls int(), which reads '٣' or '３' as 3)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not validate.INTEGER_TEXT.fullmatch(value.strip()):
            self.fail(f"{value!r} is not an integer (ASCII digits 0-9)", param, ctx)
        return super().convert(value, param, ctx)


class IntegerRange(Integer, click.IntRange):
    """click's IntRange, in ASCII digits only."""


class Number(click.types.FloatParamType):
    """click's FLOAT, in ASCII only (it calls float(), which reads '٣' as 3.0)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not validate.NUMBER_TEXT.fullmatch(value.strip()):
            self.fail(f"{value!r} is not a number (ASCII digits 0-9)", param, ctx)
        return super().convert(value, param, ctx)


INTEGER, NUMBER = Integer(), Number()

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line of stdout.")


def setting_option(setting: Setting, **changes: Any) -> Callable:
    """The option of one setting (bep_mcu/settings.py); ``changes``: a command's own default.
    ``training.Settings`` checks the value, so the errors are the estimator's too."""
    flag = setting.option
    if setting.kind == "flag":
        return click.option(f"{flag}/--no-{flag[2:]}", setting.name,
                            **{"default": setting.default, "help": setting.help, **changes})
    types = {"choice": click.Choice(list(setting.choices)), "int": INTEGER, "number": NUMBER, "fraction": NUMBER,
             "growth": NUMBER}
    # a list is comma-separated text (settings_from_options parses it)
    default = ",".join(map(str, setting.default)) if setting.kind == "ints" and setting.default else setting.default
    return click.option(flag, setting.name,
                        **{"type": types.get(setting.kind), "default": default, "help": setting.help, **changes})


def setting_options(f: Callable) -> Callable:
    """An option for every setting of a new model, in the table's order."""
    for setting in reversed(SETTINGS):
        f = setting_option(setting)(f)
    return f


def settings_from_options(values: dict[str, Any]) -> dict[str, Any]:
    """The settings options' values (by name) as ``training.Settings`` takes them."""
    return {s.name: parse_int_list(values[s.name], s.option) if s.kind == "ints" else values[s.name]
            for s in SETTINGS}


def new_settings(values: dict[str, Any]) -> training.Settings:
    """``training.Settings`` from the settings options' values: a ``--preset`` fills those left
    at their defaults, and an option given on the command line keeps its value, even where that
    is the default (the settings then name no preset: every value is resolved)."""
    ctx = click.get_current_context()
    values = settings_from_options(values)
    settings = training.Settings(**values)
    given = {name: value for name, value in values.items() if value != getattr(settings, name)
             and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    return replace(settings, preset=None, **given) if given else settings


def model_argument(f: Callable) -> Callable:
    return click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))(f)


def load_model(path: str) -> Model:
    return modelio.load(path)


def data_options(f: Callable) -> Callable:
    """--dataset NAME | --data PATH [--test-data PATH]."""
    f = click.option("--test-data", "test_data", type=click.Path(dir_okay=False),
                     help="Test set file (same format) for a --data file without its own test part.")(f)
    f = click.option("--data", "data_path", type=click.Path(),
                     help="CSV (header; label column 'label' or last); NPZ (X_train, y_train, X_test, y_test | X, y); "
                          "X.npy or X_train.npy (the other arrays beside it); an IDX images file "
                          "(train-images-idx3-ubyte[.gz], its labels beside it); or a folder of .npy or the four "
                          "IDX files.")(f)
    f = click.option("--dataset", "dataset", metavar="NAME",
                     help="Built-in: prototypes[:key=value,...], digits, ucr:<Name>.")(f)
    return f


def port_options(f: Callable) -> Callable:
    """--port URL (anything pyserial opens) and --timeout SECONDS (per attempt)."""
    f = click.option("--timeout", type=NUMBER, default=2.0,
                     help="Seconds to wait for each reply before resending (8 attempts); a number > 0.")(f)
    f = click.option("--port", "port", required=True, metavar="URL",
                     help="Serial port or pyserial URL: socket://127.0.0.1:PORT, /dev/ttyACM0, COM3.")(f)
    return f


def load_data(dataset: str | None, data_path: str | None, test_data: str | None, split_seed: int = 0) -> Dataset:
    if (dataset is None) == (data_path is None):
        raise BEPError("give exactly one of --dataset NAME or --data PATH")
    if dataset is not None:
        if test_data is not None:
            raise BEPError("--test-data goes with --data, not with --dataset")
        return load_dataset(dataset)
    return load_files(data_path, test_data, split_seed)


def progress(message: str) -> None:
    """Human progress on standard error (standard output stays machine-readable)."""
    click.echo(message, err=True)


class LineProgress:
    """Progress as plain lines, for standard error that is not a terminal (a CI log, a file),
    where a bar would print nothing: a line at each tenth of ``total``, or, without a total,
    at the first update and every ``every`` after; ``tqdm``'s calls that the commands use."""

    def __init__(self, desc: str, total: int | None = None, every: int = 10) -> None:
        self.desc, self.total, self.every = desc, total, every
        self.n, self.postfix, self.shown = 0, "", 0

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total:
            due = self.n * 10 // self.total > self.shown * 10 // self.total or self.n >= self.total > self.shown
        else:
            due = self.n == 1 or self.n // self.every > self.shown // self.every
        if due:
            self.shown = self.n
            of = f"/{self.total}" if self.total else ""
            progress(f"{self.desc}: {self.n}{of}" + (f" ({self.postfix})" if self.postfix else ""))

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(desc: str, unit: str, total: int | None = None, leave: bool = True):
    """A tqdm bar on standard error when it is a terminal, else :class:`LineProgress`."""
    stderr = click.get_text_stream("stderr")
    if not stderr.isatty():
        return LineProgress(desc, total)
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, total=total, file=stderr, leave=leave)


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    else:
        click.echo(human(result))


def check_positive(**values: int | None) -> None:
    """One-line errors for counts that must be >= 1 (None means "not given")."""
    for name, value in values.items():
        if value is not None:
            validate.integer(value, f"--{name.replace('_', '-')}", 1, 1 << 31)


def check_timeout(value: float) -> float:
    return validate.timeout(value)


def _integers(value: str) -> tuple[int, ...]:
    """'256,256' → (256, 256); () if any part is not an integer in ASCII digits."""
    try:
        return tuple(validate.int_text(p.strip()) for p in str(value).split(","))
    except ValueError:
        return ()


def parse_int_list(value: str | None, name: str) -> tuple[int, ...] | None:
    """'256,256' → (256, 256); anything else is a one-line error naming the option."""
    if value is None:
        return None
    numbers = _integers(value)
    if not numbers or any(n <= 0 for n in numbers):
        raise BEPError(f"{name} must be a comma-separated list of positive integers, got '{value}'")
    return numbers


def input_format_options(f: Callable) -> Callable:
    """--input-type TYPE and --input-scale N[,N...]: the device's raw inputs (data.inputformat)."""
    f = click.option("--input-scale", "input_scale", metavar="N[,N...]", default=None,
                     help="Device value = round(x * N) of a feature's real value x: one integer for every feature, "
                          "or one per feature.  [default: 1 for integer data, else the largest power of ten that "
                          "keeps the training data in range]")(f)
    f = click.option("--input-type", "input_type", type=click.Choice(list(inputformat.INPUT_TYPES)), default=None,
                     help="Integer type of the device's raw values.  [default: the narrowest signed type that holds "
                          "the data and every threshold; int16 for non-integer data]")(f)
    return f


def parse_scale(value: str | None, n_values: int) -> tuple[int, ...] | None:
    """``--input-scale``: one integer for every feature, or one per feature, comma-separated."""
    if value is None:
        return None
    scales = _integers(value)
    if not scales or any(not 1 <= s <= inputformat.MAX_SCALE for s in scales) or len(scales) not in (1, n_values):
        raise BEPError(f"--input-scale must be one integer in 1..{inputformat.MAX_SCALE} or {n_values} of them "
                       f"(one per feature), comma-separated, got {validate.show(value)}")
    return scales * n_values if len(scales) == 1 else scales


def input_format(model: Model, X, input_type: str | None, input_scale: str | None) -> inputformat.InputFormat:
    """The device input format from the options (``X``: training data, or None)."""
    scales = parse_scale(input_scale, model.encoder.n_features)
    return inputformat.choose(model.encoder, X, input_type, scales)
