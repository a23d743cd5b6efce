"""kdas_utils: the code behind the KDAS notebook series.

The notebooks in ``notebooks/`` teach; the logic they use lives here and is unit-tested in
``tests/``. Read it from the bottom floor up:

- :mod:`kdas_utils.kdas`: **the method**, whole and alone (torch, timm and numpy only): the
  teacher and student networks, the structure loss, Attention-KD, the Symmetrical Guiding Module,
  the logit baselines, ``KDASLoss``, the distillation step and the arms. Its docstring maps each term
  of the paper's objective to the code and says where it comes from (paper / release / this series);
  ``docs/method-in-code.md`` is the same map as a page of the book.
- What the lessons use around it: :mod:`kdas_utils.data` (pairs, synthetic frames, transforms,
  datasets, partial labels), :mod:`kdas_utils.models` (the networks with ImageNet backbones, weight
  files), :mod:`kdas_utils.engine` (the one training loop), :mod:`kdas_utils.metrics` and
  :mod:`kdas_utils.evaluate` (the PraNet protocol), :mod:`kdas_utils.plots`, :mod:`kdas_utils.widgets`,
  :mod:`kdas_utils.distill` (the attention maps drawn), :mod:`kdas_utils.runs` (a run per recipe).
- Tools: :mod:`kdas_utils.cli` (``kdas``), :mod:`kdas_utils.study`, :mod:`kdas_utils.bench`,
  :mod:`kdas_utils.predict` and :mod:`kdas_utils.export`, downloads, Colab and Drive, the book and
  the tutorial runner.
"""

import os as _os

# albumentations asks PyPI for a newer version at import time; this series must work
# offline (tests, CI, air-gapped hospitals), so the check is switched off before any import.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
