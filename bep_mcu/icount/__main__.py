import sys

from bep_mcu.icount.report import main

sys.exit(main())
