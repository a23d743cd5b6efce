"""The attention maps the lessons draw (:mod:`.maps`), and the distillation names of the method by the
package name they had before it had a home: the method itself is :mod:`kdas_utils.kdas`.

from kdas_utils.distill import KDASLoss, DistillationObjective   # = from kdas_utils.kdas import ...
loss_fn = KDASLoss()                                  # KDAS as the series teaches it (alpha 0.3, tau 2)
parts = loss_fn(student(x), teacher(x), mask)         # {"total", "seg", "at", "sgm", "kd"}
"""

from ..kdas import DistillationObjective, KDASLoss

__all__ = ["DistillationObjective", "KDASLoss"]
