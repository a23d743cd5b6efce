"""The teacher as a labeller: partial labels, the loss that skips unlabelled frames, and the runs."""

import math

import pytest
import torch

from kdas_utils.data import PartialLabels, PolypDataset, eval_transforms, find_pairs, labelled_indices
from kdas_utils.engine import CheckpointError, TrainConfig, Trainer, load_checkpoint
from kdas_utils.engine.checkpoint import settings_changed
from kdas_utils.kdas import DistillationObjective, KDASLoss, SegmentationObjective
from kdas_utils.kdas.losses import deep_supervision_loss, is_labelled, structure_loss
from kdas_utils.kdas.polyp_pvt import PolypOutput
from kdas_utils.models import build_student, build_teacher


@pytest.fixture(scope="module")
def sets(small_synthetic):
    pairs = find_pairs(small_synthetic / "TrainDataset")
    return PolypDataset(pairs[:16], eval_transforms(64)), PolypDataset(pairs[16:], eval_transforms(64))


def _heads(batch=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    p1 = torch.randn(batch, 1, size, size, generator=g, requires_grad=True)
    p2 = torch.randn(batch, 1, size, size, generator=g, requires_grad=True)
    return PolypOutput(p1=p1, p2=p2, stages=(), prenorm=(), cim=None, cfm=None, sam=None)


def _masks(batch=4, size=32):
    masks = torch.zeros(batch, 1, size, size)
    masks[:, :, 8:20, 6:22] = 1
    masks[1, :, :4] = 1
    return masks


# ----------------------------------------------------------------- which frames keep their mask


def test_labelled_frames_are_drawn_from_the_seed():
    chosen = labelled_indices(40, 0.25, seed=3)
    assert len(chosen) == 10 and chosen == sorted(set(chosen)) and all(0 <= i < 40 for i in chosen)
    assert chosen == labelled_indices(40, 0.25, seed=3)
    assert chosen != labelled_indices(40, 0.25, seed=4)
    assert len(labelled_indices(10, 0.25, 0)) == 3  # ceil(2.5): never fewer masks than asked for
    assert labelled_indices(3, 0.01, 0) and labelled_indices(5, 1.0, 0) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, math.nan])
def test_a_fraction_outside_zero_to_one_is_named(fraction):
    with pytest.raises(ValueError, match=f"label fraction {fraction}: must lie in \\(0, 1\\]"):
        labelled_indices(10, fraction, 0)
    with pytest.raises(ValueError, match="label_fraction=.*must lie in \\(0, 1\\]"):
        TrainConfig(label_fraction=fraction)


def test_partial_labels_keep_the_chosen_masks_and_mark_the_others(sets):
    full = sets[0]
    partial = PartialLabels(full, 0.25, seed=1)
    assert len(partial) == len(full) == 16 and partial.transform is full.transform
    assert partial.labelled == labelled_indices(16, 0.25, 1)
    assert partial.names == [full.pairs[i][0].stem for i in partial.labelled]
    for i in range(len(full)):
        item, original = partial[i], full[i]
        assert torch.equal(item["image"], original["image"]) and item["name"] == original["name"]
        if i in partial.labelled:
            assert torch.equal(item["mask"], original["mask"])
        else:
            assert item["mask"].shape == original["mask"].shape and torch.isnan(item["mask"]).all()


# ----------------------------------------------------------------- L_seg over the labelled frames


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_seg_loss_of_a_partly_labelled_batch_is_that_of_its_labelled_frames(variant):
    out, masks = _heads(), _masks()
    known = torch.tensor([True, False, True, False])
    marked = masks.clone()
    marked[~known] = float("nan")
    assert is_labelled(marked).tolist() == known.tolist()
    loss = deep_supervision_loss(out, marked, variant)
    loss.backward()
    subset = PolypOutput(p1=out.p1[known], p2=out.p2[known], stages=(), prenorm=(), cim=None, cfm=None, sam=None)
    assert loss.item() == pytest.approx(deep_supervision_loss(subset, masks[known], variant).item(), rel=1e-6)
    assert out.p1.grad[~known].abs().max() == 0 and out.p1.grad[known].abs().max() > 0  # nothing from unlabelled


def test_a_batch_without_labels_gives_zero_seg_loss_and_zero_gradient():
    out = _heads()
    loss = deep_supervision_loss(out, torch.full((4, 1, 32, 32), float("nan")))
    loss.backward()
    assert loss.item() == 0 and out.p1.grad.abs().max() == 0 and out.p2.grad.abs().max() == 0


def test_structure_loss_refuses_an_unlabelled_mask():
    masks = _masks()
    masks[2] = float("nan")
    with pytest.raises(ValueError, match="mask holds NaN.*deep_supervision_loss leaves unlabelled frames out"):
        structure_loss(_heads().p1, masks)


def test_distillation_terms_still_see_unlabelled_frames():
    torch.manual_seed(0)
    student, teacher = build_student().train(), build_teacher()
    objective = DistillationObjective(teacher, KDASLoss(alpha=0.5, at=None, sgm=None, kd="pixel"))
    images = torch.randn(2, 3, 64, 64)
    loss, _, parts = objective(student, images, torch.full((2, 1, 64, 64), float("nan")))
    loss.backward()
    assert parts["seg"].item() == 0 and parts["kd"].item() > 0
    assert loss.item() == pytest.approx(0.5 * parts["kd"].item(), rel=1e-6)
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in student.parameters())


# ----------------------------------------------------------------- the engine and the runs


def _trainer(sets, out, **changes):
    config = TrainConfig(
        **{"epochs": 1, "batch_size": 4, "image_size": 64, "max_steps_per_epoch": 4, "progress": False} | changes
    )
    torch.manual_seed(0)
    return Trainer(build_student(), *sets, config, out, device="cpu")


def test_a_run_with_part_of_the_masks_records_them_and_ignores_the_others(sets, tmp_path):
    trainer = _trainer(sets, tmp_path / "a", label_fraction=0.25)
    assert isinstance(trainer.train_set, PartialLabels)
    result = trainer.fit()
    saved = load_checkpoint(tmp_path / "a" / "last.pt")
    assert saved["labelled"] == trainer.train_set.names and len(saved["labelled"]) == 4
    assert saved["config"]["label_fraction"] == 0.25
    assert math.isfinite(result.history[0]["train_dice"]) and math.isfinite(result.history[0]["val_dice"])

    # the masks of the unlabelled frames do not matter: invert them and the run is the same
    class Inverted(PolypDataset):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            return item if index in keep else {**item, "mask": 1 - item["mask"]}

    keep = set(trainer.train_set.labelled)
    other = _trainer((Inverted(sets[0].pairs, sets[0].transform), sets[1]), tmp_path / "b", label_fraction=0.25)
    other.fit()
    for a, b in zip(trainer.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["labelled"] == saved["labelled"]

    # and it is not resumed as a run with every mask
    with pytest.raises(CheckpointError, match="label_fraction: 0.25 there, 1.0 here"):
        _trainer(sets, tmp_path / "a", epochs=2).fit()


def test_checkpoints_older_than_the_label_fraction_count_as_every_mask(sets, tmp_path):
    _trainer(sets, tmp_path, max_steps_per_epoch=1).fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["labelled"] is None
    del state["config"]["label_fraction"]
    config = TrainConfig(batch_size=4, image_size=64, max_steps_per_epoch=1)
    assert settings_changed(state, config, SegmentationObjective()) == []
    changed = settings_changed(
        state, TrainConfig(batch_size=4, image_size=64, max_steps_per_epoch=1, label_fraction=0.5)
    )
    assert changed == ["label_fraction: 1.0 there, 0.5 here"]


def test_partly_labelled_students_train_apart_and_are_scored(tmp_path, monkeypatch):
    from kdas_utils.config import get_profile
    from kdas_utils.runs import StudentRecipe, finished_plan, run_ablation

    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(tmp_path / "synthetic"))
    profile = get_profile("quick").replace(
        image_size=64, epochs=1, max_steps_per_epoch=1, synthetic_train=16, synthetic_test=4
    )
    quarter = StudentRecipe("pixel", alpha=0.1, label_fraction=0.25)
    assert quarter.but(arm="no-kd").folder(profile, 1).name == "student-no-kd-l0.25-s1-quick"
    assert quarter.but(label_fraction=0.5).folder(profile, 0).name == "student-pixel-a0.1-l0.5-s0-quick"
    assert quarter.table(profile).name == "ablation-quick-a0.1-l0.25.csv"
    table = run_ablation(profile, {"no-kd": 1, "pixel": 1}, quarter, teacher=build_teacher(), progress=False)
    assert list(table.arm) == ["no-kd", "pixel"] and table.validation.notna().all()
    assert finished_plan(profile, quarter) == {"no-kd": 1, "pixel": 1}
    assert finished_plan(profile, quarter.but(label_fraction=1.0)) == {}  # every mask: nothing trained yet
    saved = load_checkpoint(quarter.folder(profile, 0) / "last.pt")
    alone = load_checkpoint(quarter.but(arm="no-kd").folder(profile, 0) / "last.pt")
    assert saved["labelled"] == alone["labelled"] and len(saved["labelled"]) == math.ceil(0.25 * 14)
