"""``BEPClassifier``: a scikit-learn estimator over :class:`~bep_mcu.model.Model`.

A thin face: parameters are stored as given (``get_params``/``set_params``/``clone``
work), ``fit`` validates them and the data and delegates to ``training``; the fitted
network is ``model_`` (the same value ``generate``, ``firmware`` and ``stream`` take).
``partial_fit`` trains on each new chunk, every sample of it, one pass a call: the host
twin of learning on a device (the encoder is fitted on the first chunk, from one sample up).

Example::

    from bep_mcu import BEPClassifier
    clf = BEPClassifier(hidden=(512,)).fit(X_train, y_train)
    clf.score(X_test, y_test); clf.save("m.npz"); BEPClassifier.load("m.npz").predict(X_test)

``X`` is (n, features) for an MLP, (n, T) or (n, T, channels) for an RNN.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bep_mcu import modelio, training
from bep_mcu.engine.spec import MAX_CLASSES
from bep_mcu.errors import BEPError
from bep_mcu.model import Model, encode_labels, new_labels
from bep_mcu.settings import SETTINGS, of_model

# Checks of scikit-learn's estimator suite that a binary network cannot pass, with the
# reason for each: none today (all 54 that run pass; check_array_api_input is skipped
# unless SCIPY_ARRAY_API is set). fit has no sample_weight: BEP has no per-sample
# weights (a sample either triggers an update or not), so those checks do not run.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


# The parameters are the settings of bep_mcu/settings.py, in its order. scikit-learn reads an
# estimator's parameters from its __init__ signature (get_params, set_params, clone, repr), so
# the signature is built from the table and __init__ stores each argument as given.
PARAMETERS = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
    inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=s.default, annotation=s.annotation)
    for s in SETTINGS], return_annotation=None)


class BEPClassifier(ClassifierMixin, BaseEstimator):
    """Binary MLP or RNN trained with BEP, on raw numeric features (module docstring).

    Parameters mirror ``bep-mcu train``'s options; ``None`` means the documented default
    for the data (epochs, batch size, r). ``preset="paper"`` (``bep-mcu presets``) gives the
    parameters left at their defaults the preset's values; ``get_params`` keeps them as given."""

    def __init__(self, *args, **kwargs) -> None:
        arguments = PARAMETERS.bind(self, *args, **kwargs)  # a TypeError for an unknown name, as any __init__
        arguments.apply_defaults()
        for name, value in list(arguments.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = PARAMETERS

    # ------------------------------------------------------------ helpers
    def _settings(self) -> training.Settings:
        try:
            hidden = None if self.hidden is None else tuple(int(h) for h in np.atleast_1d(self.hidden))
            gamma = None if self.gamma is None else tuple(int(g) for g in np.atleast_1d(self.gamma))
        except (TypeError, ValueError):
            raise BEPError(f"hidden and gamma must be integers, got {self.hidden!r}, {self.gamma!r}") from None
        params = {**self.get_params(), "hidden": hidden, "gamma": gamma}
        for s in SETTINGS:  # each under its parameter's name (training.Settings' errors name the CLI's options)
            s.check(params[s.name], label=s.name, model=params["model"])
        return training.Settings(**params)

    def _validate(self, X, reset: bool = False):
        return validate_data(self, X, reset=reset, allow_nd=self.model == "rnn", dtype=np.float64)

    def _validate_xy(self, X, y, reset: bool = True):
        X, y = validate_data(self, X, y, reset=reset, allow_nd=self.model == "rnn", dtype=np.float64)
        check_classification_targets(y)
        return X, y

    def _adopt(self, model: Model) -> "BEPClassifier":
        self.model_ = model
        self.classes_ = model.labels
        self.history_ = list(model.training.history)
        return self

    # ------------------------------------------------------------ training
    def fit(self, X, y) -> "BEPClassifier":
        settings = self._settings()
        X, y = self._validate_xy(X, y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise BEPError(f"only one class ({classes[0]!r}) in the training data; a classifier needs 2 or more")
        if len(classes) > MAX_CLASSES:
            raise BEPError(f"{len(classes)} classes; bep-mcu supports at most {MAX_CLASSES}")
        model = training.fit(X, y, settings)
        warning = training.one_class_warning(model, X, y)
        if warning:  # as `bep-mcu train` says it: a collapsed model is saved, not hidden
            warnings.warn(f"BEPClassifier: {warning}", RuntimeWarning, stacklevel=2)
        return self._adopt(model)

    def partial_fit(self, X, y, classes=None, end_epoch: bool = False) -> "BEPClassifier":
        """Online learning, as scikit-learn's incremental estimators do it: one pass over
        (X, y) that trains on every sample given (none is held out for validation), as a
        board trains on what its sensor gives it.

        The first call creates the model and needs ``classes`` (every label it will ever
        see, unless ``max_classes`` reserves prototypes: a later label takes the next one);
        its encoder is fitted on that first chunk, which may be a single sample. Each
        call is one pass, not an epoch: γ and the reinforcement count Q stay as they are
        until a call with ``end_epoch=True``, whose pass closes the epoch and sets the next γ
        and Q from its training errors (the board's rule, ``bep_<net>_end_epoch``). Passes
        follow ``model_.training.batch_size``; a chunk smaller than a batch is one batch."""
        first = not hasattr(self, "model_")
        X, y = self._validate_xy(X, y, reset=first)
        if first:
            if classes is None:
                raise BEPError("the first partial_fit needs classes= (every label the model will see)")
            settings = self._settings()
            model = training.new_model(X, y, settings, classes=np.unique(np.asarray(classes)),
                                       encoder=training.chunk_encoder(X, settings))
        else:  # a label without a prototype takes the next reserved one (max_classes), appended
            model = self.model_
            for label in new_labels(y, model.labels) if len(model.reserved) else ():
                model = model.with_class(label)
        return self._adopt(training.train_pass(model, X, y, end_epoch=bool(end_epoch)))

    # ------------------------------------------------------------ inference
    def decision_function(self, X) -> np.ndarray:
        """The integer logits P·a_L (binary problems: logit of class 1 minus class 0)."""
        check_is_fitted(self, "model_")
        X = self._validate(X)
        logits = self.model_.network().logits(self.model_.encode(X))
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._validate(X)
        return self.model_.predict(X)

    def encode_labels(self, y) -> np.ndarray:
        """Labels → class indices 0..C-1 (the order of ``classes_``)."""
        check_is_fitted(self, "model_")
        return encode_labels(np.asarray(y), self.classes_)

    # ------------------------------------------------------------ files
    def save(self, path) -> None:
        check_is_fitted(self, "model_")
        modelio.save(self.model_, path)

    @classmethod
    def from_model(cls, model: Model) -> "BEPClassifier":
        """An estimator around a model (loaded, pulled from a board, ...)."""
        clf = cls(**of_model(model))
        clf.n_features_in_ = model.encoder.n_features if model.spec.model == "mlp" else model.encoder.length
        return clf._adopt(model)

    @classmethod
    def load(cls, path) -> "BEPClassifier":
        return cls.from_model(modelio.load(path))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
