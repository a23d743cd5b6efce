"""The speed-ups of :mod:`kdas_utils.speed` compute what the code of before computed, and
:data:`~kdas_utils.speed.BASELINE`'s settings really bring that code back (the bench's "today's path")."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from kdas_utils import speed
from kdas_utils.data import PolypDataset, eval_transforms, find_pairs, train_transforms
from kdas_utils.engine import TrainConfig, Trainer, int8_teacher
from kdas_utils.kdas import DistillationObjective, KDASLoss, SegmentationObjective
from kdas_utils.kdas.losses import boundary_weights
from kdas_utils.models import build_student, build_teacher


@pytest.fixture(scope="module")
def sets(small_synthetic):
    pairs = find_pairs(small_synthetic / "TrainDataset")
    return PolypDataset(pairs[:8], train_transforms(64)), PolypDataset(pairs[8:14], eval_transforms(64))


class CountingTeacher(torch.nn.Module):
    """The teacher network, counting its calls."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net, self.calls = build_teacher(), 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def distilled_trainer(sets, folder, **changes):
    torch.manual_seed(0)
    teacher = CountingTeacher()
    objective = DistillationObjective(teacher, KDASLoss(alpha=0.5))
    config = TrainConfig(epochs=1, batch_size=4, image_size=64, max_steps_per_epoch=1, progress=False, **changes)
    return Trainer(build_student(), *sets, config, folder, objective=objective, device="cpu"), teacher


def test_the_separable_boundary_equals_the_31_by_31_mean():
    masks = (torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    reference = 1 + 5 * torch.abs(F.avg_pool2d(masks, 31, stride=1, padding=15) - masks)  # the released code's
    assert torch.allclose(boundary_weights(masks), reference, atol=1e-6)


def test_the_baseline_builds_the_loop_adamw(sets, tmp_path):
    old, _ = distilled_trainer(sets, tmp_path / "old", **speed.BASELINE.changes(cpu=True))
    new, _ = distilled_trainer(sets, tmp_path / "new", **speed.NEW.changes(cpu=True))
    assert old.optimizer.defaults["fused"] is False and new.optimizer.defaults["fused"] is True
    assert old.config.amp == "off" and new.config.amp == "auto"  # fp32 on the old path, whatever the CPU


def test_lean_validation_skips_the_teacher_and_scores_alike(sets, tmp_path):
    trainer, teacher = distilled_trainer(sets, tmp_path / "run", lean_validation=False)
    before = trainer.validate()
    calls = teacher.calls
    assert calls == 2  # 6 frames in batches of 4: the teacher ran on each batch
    trainer.config = dataclasses.replace(trainer.config, lean_validation=True)  # the default
    lean = trainer.validate()
    assert teacher.calls == calls  # not once more
    assert lean["val_dice"] == before["val_dice"]  # what selects the checkpoint does not move
    alone = Trainer(trainer.model, *sets, trainer.config, tmp_path / "alone", objective=SegmentationObjective())
    assert lean["val_loss"] == pytest.approx(alone.validate()["val_loss"], rel=1e-6)  # L_seg
    assert lean["val_loss"] != pytest.approx(before["val_loss"], rel=1e-3)  # not the distillation total


def test_switched_off_speed_ups_are_named():
    assert speed.NEW.off() == [] and set(speed.BASELINE.off()) == {"fused_adamw", "lean_validation", "cpu_bf16"}
    assert speed.NEW.changes(cpu=False) == {"fused_adamw": True, "lean_validation": True}
    assert speed.BASELINE.changes(cpu=False) == {"fused_adamw": False, "lean_validation": False}  # a GPU's own amp


def test_the_int8_teacher_is_recorded_close_to_fp32_and_cpu_only(real_pair):
    from kdas_utils.data import eval_transforms
    from kdas_utils.data.pairs import read_image
    from kdas_utils.engine import settings_changed

    torch.manual_seed(2)
    teacher = build_teacher().eval()
    objective = DistillationObjective(int8_teacher(teacher), KDASLoss())
    assert (
        objective.settings()["teacher"] == "int8"
        and "teacher" not in DistillationObjective(teacher, KDASLoss()).settings()
    )
    linear = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, linear) for m in objective.teacher.modules())
    assert not any(isinstance(m, linear) for m in teacher.modules())  # the fp32 teacher is left as it was
    image = read_image(real_pair[0])
    x = eval_transforms(128)(image=image)["image"][None]
    with torch.inference_mode():
        a, b = teacher(x), objective.teacher(x)
    for name in ("p1", "cim", "sam"):  # a real frame through both: the int8 teacher's targets are close
        u, v = getattr(a, name), getattr(b, name)
        assert 0 < ((v - u).norm() / u.norm()).item() < 0.05, name
    state = {"config": {}, "objective_settings": DistillationObjective(teacher, KDASLoss()).settings()}
    config = TrainConfig()
    assert settings_changed(state, config, objective) == ["objective teacher: None there, int8 here"]
    with pytest.raises(ValueError, match="CPU only"):
        objective.to("meta")


def test_an_int8_run_has_its_own_folder():
    from kdas_utils.config import get_profile
    from kdas_utils.runs import StudentRecipe, run_ablation

    profile = get_profile("standard")
    assert StudentRecipe("kdas", teacher_int8=True).folder(profile, 0).name == "student-kdas-int8-s0-standard"
    assert StudentRecipe("kdas").folder(profile, 0).name == "student-kdas-s0-standard"
    with pytest.raises(ValueError, match="teacher_int8 trains one run"):
        run_ablation(profile, {"kdas": 1}, StudentRecipe(teacher_int8=True))


def test_the_int8_check_compares_both_teachers_on_the_validation_split(tmp_path, monkeypatch, small_synthetic):
    from kdas_utils import bench
    from kdas_utils.config import get_profile
    from kdas_utils.engine import CHECKPOINT_FORMAT, save_checkpoint
    from kdas_utils.engine.checkpoint import architecture
    from kdas_utils.runs import profile_splits

    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(small_synthetic))
    profile = get_profile("quick").replace(synthetic_train=24, synthetic_test=6, image_size=64)
    torch.manual_seed(4)
    teacher = build_teacher()
    path = save_checkpoint(
        {"format": CHECKPOINT_FORMAT, "model": teacher.state_dict(), "arch": architecture(teacher)}, tmp_path / "t.pt"
    )
    report = bench.int8_check(path, profile, batch_size=2, bf16=True)
    assert report["frames"] == len(profile_splits(profile).val) > 0
    assert report["val_dice_difference"] == report["val_dice_int8"] - report["val_dice_fp32"]
    assert set(report["target_relative_error"]) == {
        "p1",
        "p2",
        "cim",
        "cfm",
        "sam",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
    }
    assert all(0 < e["mean"] <= e["max"] < 0.1 for e in report["target_relative_error"].values())
    # the fp32 teacher under bf16 autocast, against the fp32 one (the int8 teacher never runs under it)
    assert report["val_dice_difference_bf16"] == report["val_dice_bf16"] - report["val_dice_fp32"]
    errors = report["target_relative_error_bf16"]
    assert set(errors) == set(report["target_relative_error"])
    assert all(0 < e["mean"] <= e["max"] < 0.2 for e in errors.values())
    assert report["forward_speedup_int8_over_bf16"] > 0
