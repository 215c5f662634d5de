"""bep-mcu: Binary Error Propagation (BEP) for fully-binary networks, host and Cortex-M.

``from bep_mcu import BEPClassifier`` gives the scikit-learn estimator; it is imported
on first use so that the command line does not pay for scikit-learn's import.
"""

__version__ = "0.1.0"
__all__ = ["BEPClassifier", "__version__"]


def __getattr__(name: str):
    if name == "BEPClassifier":
        from bep_mcu.estimator import BEPClassifier

        return BEPClassifier
    raise AttributeError(f"module 'bep_mcu' has no attribute {name!r}")
