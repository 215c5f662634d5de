"""bep-mcu: Binary Error Propagation (BEP) for fully-binary networks, host and Cortex-M."""

__version__ = "0.1.0"
