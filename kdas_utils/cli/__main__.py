"""``python -m kdas_utils.cli``: the ``kdas`` command."""

import sys

from . import main

sys.exit(main())
