"""A model on drifting inputs, adapted without labels: the host's simulation of a board that
lets its input thresholds follow the raw values it sees (docs/adaptation.md).

A sensor's gain or offset changes over months; a frozen quantile code then gives the network
bits it never saw. :class:`Recalibrated` does on the host, bit for bit, what a board does with
``bep_<net>_calibrate`` and ``bep_<net>_encode_calibrated`` (data/recalibration.py): real
values become the board's integers (its input format), every point moves its feature's
thresholds, and the network reads the bits of the thresholds where they stand::

    board = adapt.recalibrate(model, X_unlabelled_drifted, X_train=X_train)
    board.score(X_test_drifted, y_test)     # the frozen model: adapt.Recalibrated(model, ...).score
"""

from __future__ import annotations

import numpy as np

from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.encoder import as_model_shape
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.data.recalibration import Calibration
from bep_mcu.errors import BEPError
from bep_mcu.model import Model, plain_labels


class Recalibrated:
    """``model`` on a board whose input thresholds follow its raw values.

    ``fmt``: the board's input format (default: ``inputformat.choose`` on ``X_train``, what
    ``bep-mcu generate --data`` picks); ``window``: the adaptation rate, values of a feature in
    which a threshold moves one training standard deviation when all fall on one side."""

    def __init__(self, model: Model, fmt: InputFormat | None = None, X_train=None,
                 window: int = recalibration.DEFAULT_WINDOW) -> None:
        if not recalibration.follows(model.encoder):
            raise BEPError("the model's inputs have no thresholds to follow: binary inputs, or a model file written "
                           "before the training statistics recalibration needs (train it again)")
        self.model = model
        self.fmt = fmt or inputformat.choose(model.encoder, X_train)
        self.calibration = Calibration(recalibration.plan(model.encoder, self.fmt, window))

    def _device(self, X) -> np.ndarray:
        """Real values in the model's shape → the board's integers (saturating, as its ADC)."""
        return self.fmt.to_device(as_model_shape(X, self.model.encoder.model))

    def observe(self, X) -> "Recalibrated":
        """Let the thresholds follow unlabelled samples ``X`` (real values), in their order
        (a series' points in time order). Returns self."""
        self.calibration.observe(self._device(X))
        return self

    def encode(self, X) -> np.ndarray:
        """The ±1 network input of ``X`` with the thresholds where they stand."""
        return self.calibration.encode(self.model.encoder, self.fmt, self._device(X))

    def predict(self, X) -> np.ndarray:
        return self.model.labels[self.model.network().predict(self.encode(X))]

    def score(self, X, y) -> float:
        y = plain_labels(np.asarray(y))
        if len(y) == 0:
            raise BEPError("no samples to score")
        return float((self.predict(X) == y).mean())


def recalibrate(model: Model, X, fmt: InputFormat | None = None, X_train=None,
                window: int = recalibration.DEFAULT_WINDOW) -> Recalibrated:
    """``model`` after its board has followed the unlabelled samples ``X`` (see :class:`Recalibrated`)."""
    return Recalibrated(model, fmt, X_train, window).observe(X)
