"""kdas_utils: the code behind the KDAS notebook series.

The notebooks in ``notebooks/`` teach; the logic they use lives here and is unit-tested
in ``tests/``. Sub-modules:

- :mod:`kdas_utils.config`: profiles (``quick`` / ``standard`` / ``paper``) and paths.
- :mod:`kdas_utils.data`: finding image/mask pairs, the synthetic generator, transforms,
  the torch dataset, download helpers and dataset statistics.
- :mod:`kdas_utils.plots`: the figures the notebooks draw.
- :mod:`kdas_utils.notebook`: notebook chores (environment report, saving figures).
"""

import os as _os

# albumentations asks PyPI for a newer version at import time; this series must work
# offline (tests, CI, air-gapped hospitals), so the check is switched off before any import.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
