"""The arms of the series' ablation, as data: each a :class:`~kdas_utils.kdas.KDASLoss` setting, or
``None`` for the student trained alone (``L_seg`` only). Which terms each arm keeps, and where each
form comes from (paper / release / this series), is the table of :mod:`kdas_utils.kdas.loss`.
"""

from __future__ import annotations

from .loss import KDAS_TERMS

ARMS: dict[str, dict | None] = {
    "no-kd": None,  # the student alone
    "at": {"at": KDAS_TERMS["at"], "sgm": None},  # + Attention-KD only
    "sgm": {"at": None, "sgm": KDAS_TERMS["sgm"]},  # + SGM only
    "kdas": dict(KDAS_TERMS),  # KDAS as the series implements it
    "released": {"at": "released", "sgm": "released", "seg_variant": "released"},  # the released code's terms
    "pixel": {"at": None, "sgm": None, "kd": "pixel"},  # classic pixel-wise KD (baseline)
}
