"""The evaluation runner: any model, every test set, the field's metrics, tables and PNGs.

    from kdas_utils.evaluate import evaluate_models
    table, per_image = evaluate_models({"teacher": teacher, "KDAS student": student}, splits.test, image_size=352)

Each frame is predicted at the training size, its logits upsampled (bilinear) to the mask's
original size, passed through the sigmoid, and scored by :mod:`kdas_utils.metrics` (which
min-max normalises the map). Predictions can be saved as 8-bit PNGs in the layout PraNet's
MATLAB evaluator and pysodmetrics-based scripts read: ``<out>/<model>/<test set>/<frame>.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import PolypDataset, denormalize, eval_transforms, read_mask
from .data.pairs import Pair
from .engine import select_device
from .environment import progress_bars
from .intervals import mean_interval, paired_difference
from .metrics import KEYS, dice_at, image_scores, normalize_map, summarize

if TYPE_CHECKING:
    import pandas

# The published mean Dice of the KDAS student and the Polyp-PVT teacher (KDAS paper, Table 1;
# Polyp-PVT paper). CVC-300 is not reported for the KDAS student.
PAPER_MEAN_DICE = {
    "KDAS student (paper)": {"Kvasir": 0.913, "CVC-ClinicDB": 0.925, "CVC-ColonDB": 0.759, "ETIS-LaribPolypDB": 0.755},
    "Polyp-PVT teacher (paper)": {
        "Kvasir": 0.917,
        "CVC-ClinicDB": 0.937,
        "CVC-ColonDB": 0.808,
        "CVC-300": 0.900,
        "ETIS-LaribPolypDB": 0.787,
    },
}


@torch.inference_mode()
def logits_at_mask_size(
    model, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8, progress: bool = False, desc: str = ""
):
    """Yield ``(1, 1, H, W)`` float32 logits per pair, in order: predicted at ``image_size`` and
    upsampled (bilinear) to the size of the pair's mask."""
    device = select_device(device)
    model = model.to(device).eval()
    loader = DataLoader(PolypDataset(pairs, eval_transforms(image_size)), batch_size=batch_size)
    index = 0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        for row in model(batch["image"].to(device)).logits.float():
            height, width = Image.open(pairs[index][1]).size[::-1]
            yield F.interpolate(row[None], size=(height, width), mode="bilinear", align_corners=False)
            index += 1


def predict_maps(
    model,
    pairs: list[Pair],
    image_size: int,
    device=None,
    batch_size: int = 8,
    save_dir: str | Path | None = None,
    progress: bool = False,
    desc: str = "",
) -> list[np.ndarray]:
    """``(H, W)`` float32 probability maps at each mask's original size, in the order of ``pairs``;
    with ``save_dir``, also ``<save_dir>/<frame>.png`` (min-max normalised, 8-bit)."""
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    maps = []
    for (image_path, _), logits in zip(
        pairs, logits_at_mask_size(model, pairs, image_size, device, batch_size, progress, desc)
    ):
        prob = torch.sigmoid(logits)[0, 0].cpu().numpy()
        maps.append(prob)
        if save_dir is not None:
            png = np.round(normalize_map(prob) * 255).astype(np.uint8)
            Image.fromarray(png).save(Path(save_dir) / f"{Path(image_path).stem}.png")
    return maps


def evaluate_models(
    models: dict,
    test_sets: dict[str, list[Pair]],
    image_size: int,
    device=None,
    save_dir: str | Path | None = None,
    progress: bool | None = None,
):
    """Score every model on every test set, with a progress bar per (model, test set) when
    ``progress`` (``None``: unless ``$KDAS_PROGRESS`` is 0, see :func:`kdas_utils.notebook.progress_bars`).

    Returns:
        ``(table, per_image)``: a DataFrame with one row per (model, test set) and the columns of
        :data:`kdas_utils.metrics.KEYS` plus ``images``; and ``{(model, test set): [scores of
        each image]}`` (with ``name``), for curves and best/worst cases.
    """
    progress = progress_bars() if progress is None else progress
    rows, per_image = [], {}
    for label, model in models.items():
        for name, pairs in test_sets.items():
            out = Path(save_dir) / label / name if save_dir is not None else None
            maps = predict_maps(
                model, pairs, image_size, device, save_dir=out, progress=progress, desc=f"{label} / {name}"
            )
            scores = []
            for prob, (image_path, mask_path) in zip(maps, pairs):
                score = image_scores(prob, read_mask(mask_path).astype(bool))
                score["name"] = Path(image_path).stem
                scores.append(score)
            per_image[(label, name)] = scores
            rows.append({"model": label, "test set": name, "images": len(pairs), **summarize(scores)})
    return pd.DataFrame(rows).set_index(["model", "test set"]), per_image


def to_markdown(table, digits: int = 3) -> str:
    """A GitHub Markdown table of a DataFrame (index included)."""
    frame = table.reset_index()
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    lines = [header, "| " + " | ".join("---" for _ in frame.columns) + " |"]
    for _, row in frame.iterrows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(table, out_dir: str | Path, name: str = "evaluation") -> tuple[Path, Path]:
    """Write ``<name>.csv`` and ``<name>.md`` under ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    table.to_csv(csv)
    md.write_text(to_markdown(table))
    return csv, md


def beside_paper(table, metric: str = "meanDice"):
    """Our ``metric`` per model (rows) and test set (columns), above the published mean Dice."""
    return pd.concat([table[metric].unstack("test set"), pd.DataFrame(PAPER_MEAN_DICE).T])


@torch.inference_mode()
def predict_samples(model, dataset, indices: list[int], device=None) -> list[dict]:
    """Predictions on some items of an evaluation dataset, for figures: dicts with ``name``,
    ``image`` ``(H, W, 3) uint8``, ``mask`` ``(H, W)`` {0, 1}, ``probability`` ``(H, W)`` and ``dice``."""
    device = select_device(device)
    model = model.to(device).eval()
    samples = []
    for index in indices:
        item = dataset[index]
        logits = model(item["image"][None].to(device)).logits.float().cpu()
        samples.append(
            {
                "name": item["name"],
                "image": denormalize(item["image"]),
                "mask": item["mask"][0].numpy().astype(np.uint8),
                "probability": torch.sigmoid(logits)[0, 0].numpy(),
                "dice": dice_at(torch.sigmoid(logits), item["mask"][None]).item(),
            }
        )
    return samples


# --------------------------------------------------------------------------- scores of training runs


def frame_dice(model, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8) -> np.ndarray:
    """Per frame, in the order of ``pairs``: :func:`~kdas_utils.metrics.dice_at` (Dice at 0.5),
    predicted at ``image_size`` and compared at each mask's own size."""
    return np.array(
        [
            dice_at(torch.sigmoid(logits.cpu()), torch.from_numpy(read_mask(mask_path)).float()[None, None]).item()
            for (_, mask_path), logits in zip(pairs, logits_at_mask_size(model, pairs, image_size, device, batch_size))
        ]
    )


def mean_dice(model, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8) -> float:
    """Mean over images of :func:`frame_dice`: the score of validation, the ablation and the
    ``Dice@0.5`` column of :func:`evaluate_models` (the full metrics are in :mod:`kdas_utils.metrics`)."""
    return float(frame_dice(model, pairs, image_size, device, batch_size).mean())


# --------------------------------------------------------------------------- seen and unseen domains


def domain_frames(models: dict, splits, image_size: int, device=None) -> dict[str, dict[str, np.ndarray]]:
    """``{model label: {test set: per-frame Dice at 0.5}}`` on every test set of ``splits`` (a
    :class:`~kdas_utils.runs.Splits`, whose ``domains`` say which sets are seen)."""
    return {
        label: {name: frame_dice(model, pairs, image_size, device) for name, pairs in splits.test.items()}
        for label, model in models.items()
    }


def average_seeds(frames: dict[str, list[dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """``{arm: [per-seed {set: frames}]}`` -> ``{arm: {set: frames}}``, each frame's Dice averaged over
    the arm's seeds (the frames are the same for every seed), for :func:`domain_table`."""
    return {
        arm: {name: np.mean([seed[name] for seed in seeds], axis=0) for name in seeds[0]}
        for arm, seeds in frames.items()
    }


def domain_table(
    frames: dict[str, dict[str, np.ndarray]], domains: dict[str, str], baseline: str | None = None, seed: int = 0
) -> pandas.DataFrame:
    """Seen against unseen, with 95% intervals (:mod:`kdas_utils.intervals`, percentile bootstrap over frames).

    One row per model and *scope*: each test set, then ``seen`` and ``unseen`` (the frames of a
    domain's sets pooled, so each frame weighs the same). Columns ``mean``, ``low``, ``high``,
    ``frames``, ``domain``; ``drop`` on the ``unseen`` row (seen mean minus unseen mean); with
    ``baseline`` (e.g. ``"student alone"``), ``gain``, ``gain_low``, ``gain_high``: the mean
    per-frame difference from the baseline on the same frames, with its paired interval.
    """

    def scopes(per_set):
        out = {name: (per_set[name], domains.get(name, "seen")) for name in per_set}
        for which in ("seen", "unseen"):
            parts = [per_set[name] for name in per_set if domains.get(name, "seen") == which]
            if parts:
                out[which] = (np.concatenate(parts), which)
        return out

    rows = []
    base = scopes(frames[baseline]) if baseline is not None else {}
    for label, per_set in frames.items():
        mine = scopes(per_set)
        for scope, (values, which) in mine.items():
            interval = mean_interval(values, seed=seed)
            row = {"model": label, "scope": scope, "domain": which, "frames": interval.n}
            row |= {"mean": interval.mean, "low": interval.low, "high": interval.high}
            if scope == "unseen" and "seen" in mine:
                row["drop"] = mine["seen"][0].mean() - values.mean()
            if baseline is not None and label != baseline:
                gain = paired_difference(values, base[scope][0], seed=seed)
                row |= {"gain": gain.mean, "gain_low": gain.low, "gain_high": gain.high}
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "scope"])


def paper_style(table: pandas.DataFrame, column: str = "mean") -> pandas.DataFrame:
    """The paper's layout of a :func:`domain_table`: one row per model, the seen sets, then the
    unseen ones, then the pooled ``seen``, ``unseen`` and the drop; cells ``mean [low, high]``."""
    cells = table.apply(lambda r: f"{r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}]", axis=1)
    wide = cells.unstack("scope")
    sets = [s for s in dict.fromkeys(table.index.get_level_values("scope")) if s not in ("seen", "unseen")]
    kind = table.reset_index().drop_duplicates("scope").set_index("scope")["domain"]
    order = [s for s in sets if kind[s] == "seen"] + [s for s in sets if kind[s] == "unseen"]
    order += [s for s in ("seen", "unseen") if s in wide.columns]
    wide = wide[order]
    if "drop" in table.columns:
        wide["drop"] = pd.Series(
            {m: table.loc[(m, "unseen"), "drop"] for m in wide.index if (m, "unseen") in table.index}
        ).map(lambda v: f"{v:.3f}")
    wide.columns = [f"{c} ({kind[c]})" if c in kind.index and c not in ("seen", "unseen") else c for c in wide.columns]
    return wide.reindex(list(dict.fromkeys(table.index.get_level_values("model"))))


def score_run(run, splits, image_size: int, device=None) -> dict:
    """A trained run's row of an ablation table: its best epoch, :func:`mean_dice` on the
    validation split and on every test set, and its training seconds."""
    return score_frames(run, splits, image_size, device)[0]


def score_frames(run, splits, image_size: int, device=None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(row, frames)``: :func:`score_run`'s row, and ``{test set: per-frame Dice}``
    (:func:`frame_dice`) whose means the row holds."""
    best = max(run.history, key=lambda h: h["val_dice"])["epoch"] if run.history else None
    frames = {name: frame_dice(run.model, pairs, image_size, device) for name, pairs in splits.test.items()}
    row = {"best_epoch": best, "validation": mean_dice(run.model, splits.val, image_size, device)}
    row |= {name: float(values.mean()) for name, values in frames.items()}
    return row | {"train_seconds": round(sum(h["seconds"] for h in run.history), 1)}, frames


def teacher_summary(profile, run, splits, device=None) -> dict:
    """What ``kdas train-teacher`` prints and saves: the run's epochs and mean Dice at 0.5 on
    the validation split and every test set of ``splits`` (:func:`kdas_utils.runs.profile_splits`)."""
    return {
        "profile": profile.name,
        "image_size": profile.image_size,
        "epochs": len(run.history),
        "best_epoch": max(run.history, key=lambda h: h["val_dice"])["epoch"] if run.history else None,
        "val_mean_dice": mean_dice(run.model, splits.val, profile.image_size, device),
        "test_mean_dice": {
            name: mean_dice(run.model, pairs, profile.image_size, device) for name, pairs in splits.test.items()
        },
        "train_seconds": round(sum(h["seconds"] for h in run.history), 1),
        "torch": torch.__version__,
        "device": str(next(run.model.parameters()).device),
    }


def summarize_ablation(table: pandas.DataFrame) -> pandas.DataFrame:
    """Mean +- std over seeds per arm, as strings, with the number of seeds (std needs 2)."""
    scores = score_columns(table)
    grouped = table.groupby("arm", sort=False)[scores]
    mean, std, count = grouped.mean(), grouped.std(), grouped.size()
    out = mean.copy().astype(object)
    for column in scores:
        out[column] = [
            f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}" for m, s, n in zip(mean[column], std[column], count)
        ]
    out.insert(0, "seeds", count)
    return out


def score_columns(table) -> list[str]:
    """The score columns of an ablation table (validation and the test sets)."""
    return [c for c in table.columns if c not in ("arm", "seed", "best_epoch", "train_seconds")]


def gap_closed(table, teacher: dict[str, float], baseline: str = "no-kd") -> pandas.DataFrame:
    """The share of the teacher-student gap that each arm closes, per score column:
    ``(student - no-KD) / (teacher - no-KD)``, from the mean over seeds of each arm.

    ``teacher`` maps the score columns to the teacher's scores (e.g. ``teacher_summary``'s).
    1 means the student reached the teacher, 0 no gain, negative a loss."""
    scores = [c for c in score_columns(table) if c in teacher]
    mean = table.groupby("arm", sort=False)[scores].mean()
    if baseline not in mean.index:
        raise ValueError(f"no {baseline!r} rows in the table: the gap is measured from the student alone")
    return (mean - mean.loc[baseline]) / (_series(teacher, scores) - mean.loc[baseline])


def _series(values: dict, keys: list[str]):
    return pd.Series({k: values[k] for k in keys})


__all__ = [
    "KEYS",
    "PAPER_MEAN_DICE",
    "beside_paper",
    "average_seeds",
    "domain_frames",
    "domain_table",
    "evaluate_models",
    "frame_dice",
    "gap_closed",
    "logits_at_mask_size",
    "mean_dice",
    "paper_style",
    "predict_maps",
    "score_run",
    "summarize_ablation",
    "teacher_summary",
    "to_markdown",
    "write_table",
]
