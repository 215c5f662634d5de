"""``python -m bep_mcu`` is the ``bep-mcu`` command."""

from bep_mcu.cli.main import main

main()
