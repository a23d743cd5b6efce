"""The objective as a picture: which tensors of teacher and student each term of the loss attaches to.

:func:`show_objective` draws it from a :class:`~kdas_utils.kdas.KDASLoss` (its ``settings()``), so the
figure follows the loss: the covariance SGM's features, the released SGM's ``Sym(P1)``, a disabled term
left out. Notebooks 03 to 05 draw it once each, with the term they teach highlighted.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# one colour per term, the same in every lesson
TERM_COLOURS = {"seg": "#2ca02c", "at": "#d62728", "sgm": "#1f77b4", "kd": "#9467bd"}
_GREY = "#bbbbbb"
# columns of the two networks' tensors, left to right (x of each box's centre)
_TENSORS = {"stage1": 2.3, "stage2": 3.2, "stage3": 4.1, "stage4": 5.0, "cim": 6.0, "cfm": 6.9, "sam": 7.8}
_HEADS = {"p1": 8.9, "p2": 9.8}
_ROW = {"teacher": 5.2, "student": 0.8}


def _box(ax, x, y, text, colour="#f2f2f2", edge="#666666", width=0.8, height=0.55, size=7):
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.03", fc=colour, ec=edge, lw=1
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start, end, colour, width=1.2, style="-|>"):
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=8, color=colour, lw=width, shrinkA=6, shrinkB=6)
    )


def _term(label: str, formula: str, tensors, teacher: bool = True, mask: bool = False) -> dict:
    return {"label": label, "formula": formula, "tensors": list(tensors), "teacher": teacher, "mask": mask}


def objective_terms(settings: dict) -> dict[str, dict]:
    """``{term: {"label", "formula", "tensors", "teacher", "mask"}}`` for the terms that ``settings``
    (:meth:`~kdas_utils.kdas.KDASLoss.settings`) switches on: what the figure draws. ``tensors``: the maps of
    each network the term compares (the teacher's too where ``teacher``); ``mask``: whether it reads G."""
    alpha, tau = settings["alpha"], settings["tau"]
    variant = settings.get("seg_variant", "paper")
    seg = f"structure loss (weighted BCE + weighted IoU) of P1 and P2 against G, the {variant} form"
    terms = {"seg": _term(f"L_seg  x (1 - alpha) = {1 - alpha:g}", seg, ["p1", "p2"], teacher=False, mask=True)}
    if settings.get("at") == "paper":
        formula = "KL between the pixel distributions softmax(A(P)/tau) of student and teacher, A(P) = SDPA(P, P, P)"
        terms["at"] = _term(
            f"L_AT  x alpha tau^2 = {alpha * tau**2:g}", formula + " (the series' reading of the paper)", ["p1", "p2"]
        )
    elif settings.get("at") == "released":
        formula = "the release's KL: softmax over P_s's single channel (constant: zero gradient) against A(P_t)/tau"
        terms["at"] = _term(f"L_AT  x alpha tau^2 = {alpha * tau**2:g}", formula, ["p1", "p2"])
    elif settings.get("at") == "feature":
        stages = [f"stage{i}" for i in range(1, 5)]
        terms["at"] = _term(
            f"L_AT (feature)  x alpha = {alpha:g}", "attention maps sum_c |F_c|^2 of the stages", stages
        )
    if settings.get("sgm") == "covariance":
        features = settings.get("covariance_features") or []
        formula = "channel covariances S of each feature, || S_s/|S_s| - S_t/|S_t| ||^2"
        formula += " (the student's stage4 via a learned 1x1 conv)" if "stage4" in features else ""
        terms["sgm"] = _term(
            f"L_SGM  x alpha = {alpha:g}", formula + " (the series' definition of the paper's guidance)", features
        )
    elif settings.get("sgm") == "released":
        terms["sgm"] = _term(f"L_SGM  x alpha = {alpha:g}", "MSE of Sym(P1) = P1 + P1^T (the release's form)", ["p1"])
    if settings.get("kd"):
        label = f"L_KD ({settings['kd']})  x alpha = {alpha:g}"
        terms["kd"] = _term(label, "logit distillation (a baseline, not KDAS)", ["p1", "p2"])
    return terms


def show_objective(loss_fn, highlight: str | None = None):
    """The KDAS objective of ``loss_fn`` as a diagram: the frozen teacher (PVTv2-B2) above, the student
    (PVTv2-B0) below, their backbone stages, decoder maps (CIM, CFM, SAM) and heads (P1, P2); a line from
    each tensor a term uses to that term's box, between them; the mask G feeds L_seg only. Each term's
    weight is printed in its box and its formula below the networks. ``highlight``: ``"seg"``, ``"at"``,
    ``"sgm"`` or ``"kd"``; the other terms are drawn in grey."""
    terms = objective_terms(loss_fn.settings())
    if highlight is not None and highlight not in terms:
        raise ValueError(f"highlight={highlight!r}: this loss has the terms {list(terms)}")
    where = {**_TENSORS, **_HEADS}
    fig, ax = plt.subplots(figsize=(10.5, 5.6))
    ax.set(xlim=(0, 11.7), ylim=(-1.2 - 0.32 * len(terms), 6.1))
    ax.axis("off")
    _box(ax, 0.6, 3.0, "frame x\n(B, 3, H, W)", width=1.0, height=0.8)
    for role, y in _ROW.items():
        frozen = role == "teacher"
        title = (
            "teacher: PVTv2-B2 + decoder, frozen (no gradient)" if frozen else "student: PVTv2-B0 + decoder, trained"
        )
        ax.text(1.85, y + 0.4, title, fontsize=8, weight="bold", va="bottom")
        _arrow(ax, (1.1, 3.0 + (0.2 if frozen else -0.2)), (1.85, y), "#666666", width=0.8)
        for name, x in where.items():
            _box(
                ax,
                x,
                y,
                name.upper() if name in ("cim", "cfm", "sam", "p1", "p2") else name,
                colour="#e8eef7" if frozen else "#fdf1e3",
            )
        stages = [where[f"stage{i}"] for i in range(1, 5)]
        for x0, x1 in zip(stages[:-1], stages[1:]):  # the backbone's chain; the decoder reads several stages
            _arrow(ax, (x0 + 0.4, y), (x1 - 0.4, y), "#999999", width=0.6)
        for label, names in (
            ("backbone stages", ("stage1", "stage4")),
            ("decoder", ("cim", "sam")),
            ("heads (logits)", ("p1", "p2")),
        ):
            middle = (where[names[0]] + where[names[1]]) / 2
            ax.text(
                middle, y - 0.42 if frozen else y - 0.42, label, fontsize=6.5, ha="center", va="top", color="#777777"
            )
    # each term's box in the band between the networks
    places = {"sgm": None, "at": (9.35, 3.0), "seg": (10.9, 1.9), "kd": (8.15, 3.9)}
    if "sgm" in terms:
        xs = [where[n] for n in terms["sgm"]["tensors"]] or [6.0]
        places["sgm"] = (sum(xs) / len(xs), 3.0) if terms["sgm"]["tensors"] != ["p1"] else (7.9, 3.0)
    _box(ax, 10.9, 3.1, "mask G\n(B, 1, H, W)", width=0.9, height=0.6)
    for i, (term, spec) in enumerate(terms.items()):
        colour = TERM_COLOURS[term] if highlight in (None, term) else _GREY
        x, y = places[term]
        for name in spec["tensors"]:
            ax.plot([where[name], x], [_ROW["student"] + 0.28, y - 0.3], color=colour, lw=1.2)
            if spec["teacher"]:
                ax.plot([where[name], x], [_ROW["teacher"] - 0.28, y + 0.3], color=colour, lw=1.2)
        if spec["mask"]:
            ax.plot([10.9, x], [2.8, y + 0.3], color=colour, lw=1.2)
        name, weight = spec["label"].split("  ")
        _box(ax, x, y, f"{name}\n{weight}", colour="white", edge=colour, width=1.3, height=0.62, size=7)
        ax.text(
            0.05,
            -0.9 - 0.32 * i,
            f"{name}: {spec['formula']}",
            fontsize=7.5,
            color=colour,
            weight="bold" if highlight == term else "normal",
        )
    ax.text(
        0.05,
        -0.5,
        "L = (1 - alpha) L_seg + alpha (w_AT L_AT + L_SGM"
        + (" + L_KD" if "kd" in terms else "")
        + "), alpha and tau as this loss has them",
        fontsize=8,
    )
    fig.tight_layout()
    return fig
