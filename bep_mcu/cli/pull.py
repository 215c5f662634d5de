"""``bep-mcu pull``: read the board's trained weights back into a model file."""

from __future__ import annotations

import click

from bep_mcu.estimator import BEPClassifier
from bep_mcu.modelio import check_writable
from bep_mcu.device.stream import connect, pull_model
from bep_mcu.cli.common import emit, json_option, port_options


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@port_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@json_option
def pull(model_path, port, timeout, out, as_json) -> None:
    """Copy the hidden weights of the board (running MODEL's network) into a new model file OUT."""
    check_writable(out)
    clf = BEPClassifier.load(model_path)
    with connect(port, clf, model_path, timeout) as link:
        result = pull_model(link, clf, out, port)
    emit(result, as_json, lambda d: f"pulled {d['synapses']} hidden weights from {d['board']} into {d['model']}")
