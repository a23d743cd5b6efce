"""Our metrics against pysodmetrics, the field's Python reference, on real masks."""

import numpy as np
import py_sod_metrics as ref
import pytest
from scipy import ndimage

from kdas_utils.data import find_pairs, read_mask
from kdas_utils.metrics import KEYS, evaluate_maps, image_scores


def reference_scores(preds_u8, masks_u8) -> dict:
    """pysodmetrics on 8-bit maps and masks (it min-max normalises and binarises at 128 itself)."""
    fm = ref.FmeasureV2(
        metric_handlers={
            "dice": ref.DICEHandler(with_dynamic=True, with_adaptive=False, with_binary=True, sample_based=True),
            "iou": ref.IOUHandler(with_dynamic=True, with_adaptive=False),
        }
    )
    sm, wfm, em, mae = ref.Smeasure(), ref.WeightedFmeasure(), ref.Emeasure(), ref.MAE()
    for p, g in zip(preds_u8, masks_u8):
        for metric in (fm, sm, wfm, em, mae):
            metric.step(pred=p, gt=g)
    r = fm.get_results()
    curve = em.get_results()["em"]["curve"]
    return {
        "meanDice": r["dice"]["dynamic"].mean(),
        "meanIoU": r["iou"]["dynamic"].mean(),
        "maxDice": r["dice"]["dynamic"].max(),
        "Dice@0.5": r["dice"]["binary"],
        "Smeasure": sm.get_results()["sm"],
        "wFmeasure": wfm.get_results()["wfm"],
        "meanEm": curve.mean(),
        "maxEm": curve.max(),
        "MAE": mae.get_results()["mae"],
    }


def ours(preds_u8, masks_u8) -> dict:
    return evaluate_maps([p / 255.0 for p in preds_u8], [g > 128 for g in masks_u8])


def imperfect_prediction(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8-bit map like a real network's: a shifted, dilated or eroded, blurred mask, with
    noise and sometimes a false-positive blob."""
    g = mask.astype(np.float64)
    g = ndimage.shift(g, rng.integers(-8, 9, 2), order=0)
    g = (
        ndimage.binary_dilation(g, iterations=int(rng.integers(1, 6)))
        if rng.random() < 0.5
        else ndimage.binary_erosion(g, iterations=int(rng.integers(1, 6)))
    )
    p = ndimage.gaussian_filter(g.astype(np.float64), sigma=rng.uniform(1, 6))
    if rng.random() < 0.4:
        y, x = rng.integers(0, mask.shape[0]), rng.integers(0, mask.shape[1])
        yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
        p += 0.6 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(5, 20) ** 2))
    p = np.clip(0.85 * p + rng.normal(0, 0.05, p.shape), 0, 1)
    # spanning 0..255, so that the reference's min-max normalisation leaves it as it is and its binary
    # Dice (at 128 of the normalised map) is ours, which thresholds the probability itself
    return np.round((p - p.min()) / (p.max() - p.min()) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def real_maps(real_root):
    rng = np.random.default_rng(0)
    masks = []
    for name in ("Kvasir", "CVC-ClinicDB"):
        pairs = find_pairs(real_root / "TestDataset" / name)
        masks += [read_mask(m) for _, m in pairs[::10]]
    masks_u8 = [(m * 255).astype(np.uint8) for m in masks]
    return [imperfect_prediction(m, rng) for m in masks], masks_u8


def test_every_metric_agrees_with_pysodmetrics_on_real_masks(real_maps):
    preds, masks = real_maps
    assert len(preds) >= 15
    ours_, theirs = ours(preds, masks), reference_scores(preds, masks)
    assert set(ours_) == set(KEYS)
    for key in KEYS:
        assert ours_[key] == pytest.approx(theirs[key], abs=1e-4), key
    assert 0.3 < ours_["meanDice"] < 0.95  # imperfect but sensible predictions


@pytest.mark.parametrize(
    "case",
    ["empty mask", "empty prediction", "all-ones prediction", "single pixel", "empty mask and prediction", "perfect"],
)
def test_edge_cases_match_the_reference(case):
    mask = np.zeros((40, 50), np.uint8)
    mask[10:25, 15:35] = 255
    pred = np.zeros_like(mask)
    pred[12:27, 14:30] = 200
    if case == "empty mask":
        mask[:] = 0
    elif case == "empty prediction":
        pred[:] = 0
    elif case == "all-ones prediction":
        pred[:] = 255
    elif case == "single pixel":
        mask[:] = 0
        mask[20, 20] = 255
        pred[:] = 0
        pred[19:22, 19:22] = 255
    elif case == "empty mask and prediction":
        mask[:] = 0
        pred[:] = 0
    elif case == "perfect":
        pred = mask.copy()
    got, expected = ours([pred], [mask]), reference_scores([pred], [mask])
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-10), key
    assert all(np.isfinite(v) for v in got.values())


def test_edge_case_values_we_document():
    empty = np.zeros((20, 20))
    nothing = evaluate_maps([empty], [empty.astype(bool)])
    assert nothing["Smeasure"] == 1.0 and nothing["MAE"] == 0.0 and nothing["wFmeasure"] == 0.0
    assert nothing["Dice@0.5"] == 0.0  # 0 / 0 counts as 0, as in the reference
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    perfect = evaluate_maps([mask.astype(float)], [mask])
    assert perfect["Dice@0.5"] == 1.0 and perfect["maxDice"] == 1.0 and perfect["MAE"] == 0.0
    assert perfect["Smeasure"] == pytest.approx(1.0, abs=1e-6) and perfect["maxEm"] == pytest.approx(1.0, abs=1e-2)


def test_min_max_normalisation_makes_scale_irrelevant():
    rng = np.random.default_rng(1)
    mask = np.zeros((30, 30), bool)
    mask[8:20, 10:22] = True
    pred = np.clip(mask * 0.7 + rng.normal(0, 0.1, mask.shape), 0, 1)
    scaled = 0.2 + 0.5 * (pred - pred.min()) / (pred.max() - pred.min())
    a, b = evaluate_maps([pred], [mask]), evaluate_maps([scaled], [mask])
    for key in KEYS:
        if key != "Dice@0.5":  # a threshold on the probability itself, see below
            assert a[key] == pytest.approx(b[key], abs=1e-12), key


def test_dice_at_half_thresholds_the_probability_before_normalisation():
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    faint = np.where(mask, 0.4, 0.1)  # the model never says "polyp" (> 0.5), though min-max would stretch it
    assert evaluate_maps([faint], [mask])["Dice@0.5"] == 0.0 and evaluate_maps([faint], [mask])["maxDice"] == 1.0


def test_the_one_dice_rule():
    import torch

    from kdas_utils.metrics import dice_at

    probability = torch.tensor([[0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # 2 * 1 / (2 + 2); a missed polyp; and empty on empty counts 0 (PraNet's evaluator, pysodmetrics)
    assert dice_at(probability, mask).tolist() == [0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="differ in shape"):
        dice_at(probability, mask[:, :2])


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match=r"prediction \(4, 4\) and mask \(4, 5\) differ in shape"):
        image_scores(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2 predictions but 1 masks"):
        evaluate_maps([np.zeros((4, 4))] * 2, [np.zeros((4, 4))])
