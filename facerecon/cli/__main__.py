"""``python -m facerecon.cli …`` (and ``torchrun -m facerecon.cli …``): the ``facerecon`` command."""

import sys

from facerecon.cli import main

sys.exit(main())
