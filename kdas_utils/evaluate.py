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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import PolypDataset, eval_transforms, read_mask
from .data.pairs import Pair
from .engine import select_device
from .metrics import KEYS, image_scores, normalize_map, summarize

# The published mean Dice of the KDAS student and the Polyp-PVT teacher (KDAS paper, Table 1;
# Polyp-PVT paper). CVC-300 is not reported for the KDAS student.
PAPER_MEAN_DICE = {
    "KDAS student (paper)": {"Kvasir": 0.913, "CVC-ClinicDB": 0.925, "CVC-ColonDB": 0.759, "ETIS-LaribPolypDB": 0.755},
    "Polyp-PVT teacher (paper)": {"Kvasir": 0.917, "CVC-ClinicDB": 0.937, "CVC-ColonDB": 0.808, "CVC-300": 0.900,
                                  "ETIS-LaribPolypDB": 0.787},
}


@torch.inference_mode()
def logits_at_mask_size(model, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8,
                        progress: bool = False, desc: str = ""):
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


def predict_maps(model, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8,
                 save_dir: str | Path | None = None, progress: bool = False, desc: str = "") -> list[np.ndarray]:
    """``(H, W)`` float32 probability maps at each mask's original size, in the order of ``pairs``;
    with ``save_dir``, also ``<save_dir>/<frame>.png`` (min-max normalised, 8-bit)."""
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    maps = []
    for (image_path, _), logits in zip(pairs, logits_at_mask_size(model, pairs, image_size, device, batch_size,
                                                                  progress, desc)):
        prob = torch.sigmoid(logits)[0, 0].cpu().numpy()
        maps.append(prob)
        if save_dir is not None:
            png = np.round(normalize_map(prob) * 255).astype(np.uint8)
            Image.fromarray(png).save(Path(save_dir) / f"{Path(image_path).stem}.png")
    return maps


def evaluate_models(models: dict, test_sets: dict[str, list[Pair]], image_size: int, device=None,
                    save_dir: str | Path | None = None, progress: bool = True):
    """Score every model on every test set.

    Returns:
        ``(table, per_image)``: a DataFrame with one row per (model, test set) and the columns of
        :data:`kdas_utils.metrics.KEYS` plus ``images``; and ``{(model, test set): [scores of
        each image]}`` (with ``name``), for curves and best/worst cases.
    """
    import pandas as pd

    rows, per_image = [], {}
    for label, model in models.items():
        for name, pairs in test_sets.items():
            out = Path(save_dir) / label / name if save_dir is not None else None
            maps = predict_maps(model, pairs, image_size, device, save_dir=out, progress=progress, desc=f"{label} / {name}")
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
    import pandas as pd

    return pd.concat([table[metric].unstack("test set"), pd.DataFrame(PAPER_MEAN_DICE).T])


__all__ = ["KEYS", "PAPER_MEAN_DICE", "beside_paper", "evaluate_models", "logits_at_mask_size", "predict_maps", "to_markdown", "write_table"]
