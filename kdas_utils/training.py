"""The former name of :mod:`kdas_utils.runs`, kept so that notebooks and scripts written against it
keep working (``from kdas_utils.training import train_student``, ``kdas_utils.training.ARMS``).

It was renamed because ``training.py`` beside ``engine/trainer.py`` did not say which is which:
:mod:`kdas_utils.engine` is the training loop, :mod:`kdas_utils.runs` decides which run to train or
load for a profile. New code imports :mod:`kdas_utils.runs`.
"""

from .runs import *  # noqa: F403  (every public name of kdas_utils.runs)
from .runs import ARMS, StudentRecipe, run_ablation, train_student, train_teacher  # noqa: F401
