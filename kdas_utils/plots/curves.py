"""Figures of numbers: training curves, the ablation and the study's tables, Dice curves, efficiency."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ..evaluate import score_columns


def _finish_epoch_axes(fig, axes, title: str = ""):
    """Integer epoch ticks, a light grid and a legend on each axis; the title; a tight layout."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], steps: list[dict] | None = None, title: str = ""):
    """Training curves from :class:`~kdas_utils.engine.TrainResult`: the loss per step (faint)
    and per epoch with the validation loss (left), and train / validation Dice per epoch (right)."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = [h["epoch"] for h in history]
    if steps:
        per_epoch = max(s["step"] for s in steps) / max(epochs)
        loss_ax.plot(
            [s["step"] / per_epoch for s in steps],
            [s["loss"] for s in steps],
            color="tab:blue",
            alpha=0.25,
            lw=0.8,
            label="train (step)",
        )
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train (epoch mean)")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "s-", color="tab:orange", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="L_st(P1) + L_st(P2)", title="loss")
    dice_ax.plot(epochs, [h["train_dice"] for h in history], "o-", color="tab:blue", label="train")
    dice_ax.plot(epochs, [h["val_dice"] for h in history], "s-", color="tab:orange", label="validation")
    best = max(history, key=lambda h: h["val_dice"])
    dice_ax.axvline(best["epoch"], color="grey", ls=":", lw=1)
    dice_ax.annotate(
        f"selected: epoch {best['epoch']}\nval Dice {best['val_dice']:.3f}",
        (best["epoch"], best["val_dice"]),
        textcoords="offset points",
        xytext=(-10, -30),
        ha="right",
        fontsize=8,
    )
    dice_ax.set(xlabel="epoch", ylabel="mean Dice at 0.5", title="Dice", ylim=(0, 1))
    return _finish_epoch_axes(fig, (loss_ax, dice_ax), title)


def plot_runs(histories: dict[str, list[dict]], title: str = ""):
    """Validation Dice and the segmentation part of the training loss per epoch, one line per run."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        loss_ax.plot(epochs, [h["train_seg"] for h in history], "o-", label=name)
        dice_ax.plot(epochs, [h["val_dice"] for h in history], "o-", label=name)
    loss_ax.set(xlabel="epoch", ylabel="L_seg (train)", title="segmentation loss")
    dice_ax.set(xlabel="epoch", ylabel="validation mean Dice at 0.5", title="validation Dice", ylim=(0, 1))
    return _finish_epoch_axes(fig, (loss_ax, dice_ax), title)


def plot_validation_curves(curves: dict, title: str = "validation Dice per epoch"):
    """Validation Dice against the epoch, one line per run: ``{label: table}`` with the columns
    ``epoch`` and ``val_dice`` (a DataFrame, or a list of epoch records), such as the teacher's
    curve and the patient runs of :mod:`kdas_utils.study`."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, curve in curves.items():
        rows = _records(curve)
        ax.plot([row["epoch"] for row in rows], [row["val_dice"] for row in rows], "o-", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="validation mean Dice at 0.5", ylim=(0, 1))
    return _finish_epoch_axes(fig, (ax,), title)


def _records(curve) -> list[dict]:
    return curve.to_dict("records") if hasattr(curve, "to_dict") else list(curve)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n > 1 else ''}"


def plot_ablation(table, sets: list[str] | None = None):
    """Each arm's mean Dice *minus the student alone's* (``no-kd``), one group of bars per data split,
    from :func:`kdas_utils.runs.run_ablation`: differences of a hundredth stay visible.

    Bars: the difference of the means. Error bars: the seed spread it is read against (the larger of
    the arm's and the student alone's standard deviations over seeds, as
    :func:`kdas_utils.study.against_alone`; none where both have one seed). Dots: each seed of the arm
    minus the student alone's mean. The tick labels give the student alone's own mean. A table
    without ``no-kd`` rows (e.g. an alpha sweep's) is drawn as mean Dice on an axis zoomed to the data."""
    sets = sets or score_columns(table)
    stats = table.groupby("arm", sort=False)[sets]
    means, stds, counts = stats.mean(), stats.std(), stats.size()
    relative = "no-kd" in means.index
    base = means.loc["no-kd"] if relative else means.iloc[0] * 0
    arms = [arm for arm in means.index if not (relative and arm == "no-kd")]
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(sets) + 2), 3.8))
    for i, arm in enumerate(arms):
        x = np.arange(len(sets)) + (i - (len(arms) - 1) / 2) * width
        spread = np.fmax(stds.loc[arm], stds.loc["no-kd"]) if relative else stds.loc[arm]
        ax.bar(
            x,
            (means.loc[arm] - base).to_numpy(),
            width,
            yerr=spread.to_numpy() if spread.notna().any() else None,
            capsize=3,
            label=f"{arm} ({_seeds(counts[arm])})",
        )
        for _, row in table[table["arm"] == arm].iterrows():
            ax.plot(x, (row[sets] - base).to_numpy(dtype=float), "k.", ms=3)
    if relative:
        ax.axhline(0, color="k", lw=1, label=f"student alone ({_seeds(counts['no-kd'])})")
        ax.set_xticks(np.arange(len(sets)), [f"{name}\nalone {base[name]:.3f}" for name in sets])
        ax.set(
            ylabel="mean Dice minus the student alone's",
            title="each arm against the student alone (mean Dice at 0.5; error bars: seed spread)",
        )
    else:
        values = table[sets].to_numpy(dtype=float)
        margin = max(0.02, 0.15 * (np.nanmax(values) - np.nanmin(values)))
        ax.set_xticks(np.arange(len(sets)), sets)
        ax.set(
            ylabel="mean Dice at 0.5",
            ylim=(np.nanmin(values) - margin, np.nanmax(values) + margin),
            title="mean Dice per arm (no student alone in this table; axis zoomed)",
        )
    ax.legend(fontsize=8, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_alpha_sweep(sweep):
    """Validation Dice against the weight alpha of the distillation terms, one line per arm, from
    :func:`kdas_utils.study.alpha_sweep` (one seed per point: no error bars); each arm's chosen alpha
    (the best validation Dice) is ringed."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for arm, rows in sweep.groupby("arm", sort=False):
        rows = rows.sort_values("alpha")
        (line,) = ax.plot(rows["alpha"], rows["validation"], "o-", label=arm)
        best = rows.loc[rows["validation"].idxmax()]  # the choice of study.choose_alpha
        ax.plot(best["alpha"], best["validation"], "o", ms=12, mfc="none", color=line.get_color())
    ax.plot([], [], "o", ms=12, mfc="none", color="grey", label="chosen")
    ax.set(
        xlabel="alpha (weight of the distillation terms)",
        ylabel="validation mean Dice at 0.5",
        title="alpha, chosen on the validation split",
        xscale="log",
    )
    ax.set_xticks(sorted(set(sweep["alpha"])), [f"{a:g}" for a in sorted(set(sweep["alpha"]))])
    ax.minorticks_off()  # only the alphas tried are labelled
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_teacher_strength(table, baseline: float | None = None, spread: tuple[float, int] | None = None):
    """The student's validation Dice against its teacher's, one line per arm (its alpha and the seeds
    behind each point in the legend), from :func:`kdas_utils.study.teacher_strength`; ``baseline`` (the
    student alone) as a dashed line and ``spread`` = ``(std, seeds)``, the student alone's seed-to-seed
    standard deviation, as a band around it: a point inside the band is within one seed's noise."""
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    for arm, rows in table.groupby("arm", sort=False):
        rows = rows.sort_values("teacher_validation")
        seeds = rows.groupby("teacher_epoch")["seed"].nunique().max() if "seed" in rows else 1
        alphas = ", ".join(f"{a:g}" for a in dict.fromkeys(rows["alpha"])) if "alpha" in rows else "?"
        label = f"{arm} (alpha {alphas}; {seeds} seed{'s' if seeds > 1 else ''} per point)"
        ax.plot(rows["teacher_validation"], rows["validation"], "o-", label=label)
        for row in rows.itertuples():
            ax.annotate(
                "final" if row.teacher_epoch == "best" else f"epoch {row.teacher_epoch}",
                (row.teacher_validation, row.validation),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label="student alone (mean)")
        if spread is not None and np.isfinite(spread[0]):
            std, n = spread
            ax.axhspan(baseline - std, baseline + std, color="k", alpha=0.1, lw=0, label=f"+- its seed std ({n} seeds)")
    ax.set(xlabel="teacher's validation Dice", ylabel="student's validation Dice", title="teacher strength")
    ax.margins(x=0.15, y=0.15)  # room for the labels of the outer points
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_dice_curves(curves: dict[str, np.ndarray], title: str = "Dice against the threshold"):
    """Mean Dice against the binarisation threshold (0..255), one line per model or test set."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, curve in curves.items():
        ax.plot(np.arange(256), curve, label=f"{name} (mean {curve.mean():.3f}, max {curve.max():.3f})")
    ax.set(xlabel="threshold on the min-max normalised map (0-255)", ylabel="mean Dice", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_efficiency(table, accuracy: dict[str, float], metric: str = "meanDice", sets=None):
    """Accuracy against latency, marker area proportional to the parameter count. Labels of
    models with nearly the same accuracy (the two students) go one below, one above.
    ``accuracy``: ``{model: value}``, the mean of the test sets' ``metric`` (each set counts once,
    whatever its size); ``sets``: their names, for the axis label."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    order = sorted(table.index, key=lambda model: accuracy[model])
    span = max(accuracy[m] for m in order) - min(accuracy[m] for m in order) or 1.0
    offset = {model: (8, -4) for model in order}
    for lower, upper in zip(order, order[1:]):
        if accuracy[upper] - accuracy[lower] < 0.15 * span:
            offset[lower], offset[upper] = (8, -14), (8, 4)
    for model, row in table.iterrows():
        ax.scatter(row["latency bs1 (ms)"], accuracy[model], s=40 * row["parameters (M)"], alpha=0.6)
        ax.annotate(
            f"{model}\n{row['parameters (M)']:.2f}M, {row['GFLOPs']:.1f} GFLOPs",
            (row["latency bs1 (ms)"], accuracy[model]),
            fontsize=7,
            xytext=offset[model],
            textcoords="offset points",
        )
    ax.set(
        xlabel=f"latency at batch 1, 352 px, {table.attrs.get('device', '')} (ms)",
        ylabel=f"{metric}, mean of the test sets'\n(each set once{': ' + ', '.join(sets) if sets else ''})",
        title="accuracy, size and speed",
    )
    ax.set_xlim(0, 1.6 * table["latency bs1 (ms)"].max())  # room for the labels right of the points
    ax.margins(y=0.3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_domain_drop(table, models: list[str] | None = None):
    """Seen against unseen mean Dice per model, from :func:`kdas_utils.evaluate.domain_table`: one line
    per model from its ``seen`` mean to its ``unseen`` mean, each with its 95% interval (bootstrap over
    frames), and the drop (seen minus unseen) in the model's legend entry, where close lines cannot
    hide it, with the drop as a share of the seen Dice: a weak model sits near the floor and has little
    to lose, so its drop in Dice understates how much of its skill it loses."""
    models = models or list(dict.fromkeys(table.index.get_level_values("model")))
    fig, ax = plt.subplots(figsize=(8.2, 3.6))
    for i, model in enumerate(models):
        rows = table.loc[model].loc[["seen", "unseen"]]
        x = np.array([0, 1]) + (i - (len(models) - 1) / 2) * 0.06
        errors = np.abs(rows[["low", "high"]].to_numpy().T - rows["mean"].to_numpy())
        drop = rows.loc["unseen", "drop"]
        share = drop / rows.loc["seen", "mean"] if rows.loc["seen", "mean"] > 0 else float("nan")
        (line,) = ax.plot(x, rows["mean"], "o-", label=f"{model}: drop {drop:.3f} ({share:.0%} of seen)")
        ax.errorbar(x, rows["mean"], yerr=errors, fmt="none", ecolor=line.get_color(), capsize=3)
    frames = table.xs("seen", level="scope")["frames"].iloc[0], table.xs("unseen", level="scope")["frames"].iloc[0]
    ax.set_xticks([0, 1], [f"seen\n({frames[0]} frames)", f"unseen\n({frames[1]} frames)"])
    ax.set_xlim(-0.3, 1.3)
    ax.set(ylabel="mean Dice at 0.5", title="from seen to unseen domains (95% bootstrap intervals)")
    ax.set_ylim(0, None)  # the floor in view: a model near it can drop little
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="drop: seen minus unseen", title_fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def study_figures(tables: dict, curves: dict, profile_name: str) -> dict:
    """The study's figures from its tables that exist (:func:`kdas_utils.study.load_results`),
    ``{name: Figure}``: ``curves`` (``curves``: ``{label: per-epoch table}``, see
    :func:`kdas_utils.study.curves`), ``alpha``, ``teacher-strength`` (with the student alone as a
    dashed line and its seed spread as a band) and ``unseen`` (seen to unseen, the runs with every mask)."""
    drawn = {}
    if curves:
        drawn["curves"] = plot_validation_curves(curves, title=f"{profile_name} profile: validation Dice per epoch")
    if "alpha" in tables:
        drawn["alpha"] = plot_alpha_sweep(tables["alpha"])
    if "unseen-arms" in tables:
        arms = tables["unseen-arms"]
        full = arms[arms.label_fraction == 1]
        seeds = full.groupby("model", sort=False)["seeds"].first()
        named = {m: f"{m} ({n} seed{'s' if n > 1 else ''})" if m != "teacher" else m for m, n in seeds.items()}
        drawn["unseen"] = plot_domain_drop(full.assign(model=full.model.map(named)).set_index(["model", "scope"]))
    if "teacher-strength" in tables:
        strength = tables["teacher-strength"]
        alone = (strength.validation - strength.gain).mean()  # gain is measured against the student alone
        seeds = tables.get("seeds")
        spread = None
        if seeds is not None and (seeds.arm == "no-kd").sum() > 1:
            spread = (float(seeds[seeds.arm == "no-kd"].validation.std()), int((seeds.arm == "no-kd").sum()))
        drawn["teacher-strength"] = plot_teacher_strength(strength, baseline=alone, spread=spread)
    return drawn


CPU_SHARES = {  # the keys of kdas_utils.bench_predict.cpu_per_frame: (label, colour) of each
    "network": ("the network (its lanes)", "#4c72b0"),
    "read": ("reader", "#dd8452"),
    "write": ("writer", "#55a868"),
    "other": ("the rest", "#8c8c8c"),
}


def plot_predict_cpu(section: dict, target: float = 0.85):
    """Where a frame's CPU goes in ``kdas predict`` on a video, from the bench's ``predict`` section
    (:func:`kdas_utils.bench_predict.predict_speed`): for each ONNX Runtime row (and each clip of another size,
    ``sources``), two stacked bars of CPU ms a frame, the outputs written and nothing written (the network on its
    lanes, the reader, the writer, the rest), and a mark at the network's CPU alone divided by ``target``: on
    cores that are all busy, the pipeline runs at ``target`` of the network's speed only if the whole bar ends
    left of it."""
    rows = {key: r for key, r in section.items() if (r.get("cpu_ms_per_frame") or {}).get("network") is not None}
    rows |= {
        f"onnx-{r['size']}, {source.replace('x', ' x ')} clip": r for source, r in section.get("sources", {}).items()
    }
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * 2 * len(rows) + 1.3))
    labels = []
    for index, (key, r) in enumerate(rows.items()):
        for offset, (cpu, kind) in enumerate(
            ((r["cpu_ms_per_frame"], ""), (r["no_outputs_cpu_ms_per_frame"], ", nothing written"))
        ):
            y, left = 2 * index + offset, 0.0
            for part, (name, colour) in CPU_SHARES.items():
                ax.barh(y, cpu[part], left=left, color=colour, label=name if y == 0 else None)
                left += cpu[part]
            labels.append(f"{key}{kind}")
        bound = r["network_cpu_ms_alone"] / target
        ax.plot(
            [bound, bound],
            [2 * index - 0.45, 2 * index + 1.45],
            color="black",
            lw=1.2,
            label=f"network alone / {target:g}" if index == 0 else None,
        )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel="CPU ms a frame (all threads)", title="kdas predict: where a frame's CPU goes (1280 x 1024 unless named)"
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
