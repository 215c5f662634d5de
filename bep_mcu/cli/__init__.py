"""The ``bep-mcu`` command line: one module per command, registered in ``main``."""
