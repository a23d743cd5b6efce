"""``python -m kdas_utils.bench``."""

from .command import main

raise SystemExit(main())
