import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdas_utils import engine
from kdas_utils.config import get_profile
from kdas_utils.data import PolypDataset, eval_transforms, find_pairs, train_transforms
from kdas_utils.engine import (
    CheckpointError,
    EpochSampler,
    NonFiniteLossError,
    SeededItems,
    TrainConfig,
    Trainer,
    choose_precision,
    load_checkpoint,
    save_checkpoint,
    select_device,
)
from kdas_utils.kdas import SegmentationObjective
from kdas_utils.models import build_student, load_trained

SCRIPT = Path(__file__).parent / "helpers" / "train_script.py"


@pytest.fixture(scope="module")
def sets(small_synthetic):
    pairs = find_pairs(small_synthetic / "TrainDataset")
    return PolypDataset(pairs[:16], train_transforms(64)), PolypDataset(pairs[16:], eval_transforms(64))


def tiny(**changes):
    values = dict(epochs=1, batch_size=4, image_size=64, max_steps_per_epoch=2, progress=False)
    values.update(changes)
    return TrainConfig(**values)


def trainer_for(sets, tmp_path, objective=None, **changes):
    torch.manual_seed(0)
    return Trainer(build_student(), *sets, tiny(**changes), tmp_path / "ckpt", objective=objective, device="cpu")


# ----------------------------------------------------------------- settings


def test_multi_scale_sizes_are_rounded_to_32():
    assert TrainConfig(image_size=352, multi_scale=True).sizes() == [256, 352, 448]
    assert TrainConfig(image_size=192, multi_scale=True).sizes() == [128, 192, 256]
    assert TrainConfig(image_size=352).sizes() == [352]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("image_size", 100, "image_size=100: must be a multiple of 32"),
        ("schedule", "step", "schedule='step'"),
        ("amp", "fp8", "amp='fp8'"),
        ("epochs", 0, "epochs=0"),
    ],
)
def test_bad_settings_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_config_from_profile_takes_its_fields_and_overrides():
    quick = get_profile("quick")
    config = TrainConfig.from_profile(quick, epochs=5)
    assert (config.image_size, config.batch_size, config.max_steps_per_epoch, config.lr) == (64, 16, 8, 3e-4)
    assert config.epochs == 5 and config.weight_decay == 1e-4 and config.clip_value == 0.5


def test_precision_per_device(monkeypatch):
    cpu = torch.device("cpu")
    # a CPU that only emulates bf16 (slower than fp32): fp32 unless bf16 is asked for by name
    monkeypatch.setattr(engine.runtime, "cpu_has_native_bf16", lambda: False)
    assert choose_precision(cpu).name == "fp32" and choose_precision(cpu, "bf16").name == "bf16"
    # AVX512-BF16 or AMX (Zen 4, Sapphire Rapids): bf16 autocast, no scaler
    monkeypatch.setattr(engine.runtime, "cpu_has_native_bf16", lambda: True)
    assert (choose_precision(cpu).name, choose_precision(cpu).scaler) == ("bf16", False)
    assert choose_precision(cpu, "off").name == "fp32" and choose_precision(torch.device("mps")).name == "fp32"
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and later
    assert (choose_precision(cuda).name, choose_precision(cuda).scaler) == ("bf16", False)
    # a T4 (Colab): bf16 only emulated, slowly, so fp16 with a gradient scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert (choose_precision(cuda).name, choose_precision(cuda).scaler) == ("fp16", True)
    assert choose_precision(cuda, "off").name == "fp32"


def test_native_bf16_is_read_from_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    assert engine.runtime.cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_a_missing_gpu_says_what_to_use():
    assert select_device().type in ("cpu", "mps")
    with pytest.raises(RuntimeError, match="no CUDA GPU; use 'cpu'"):
        select_device("cuda")


# ----------------------------------------------------------------- data order


def test_sampler_order_depends_on_seed_and_epoch_only():
    keys = list(EpochSampler(10, seed=1, epoch=0))
    assert sorted(i for i, _ in keys) == list(range(10))
    assert keys == list(EpochSampler(10, seed=1, epoch=0))
    assert keys[4:] == list(EpochSampler(10, seed=1, epoch=0, start=4))
    assert keys != list(EpochSampler(10, seed=1, epoch=1))
    assert len({seed for _, seed in keys}) == 10


def test_augmentation_is_a_function_of_the_key(sets):
    items = SeededItems(sets[0])
    first, again, other = items[(3, 11)], items[(3, 11)], items[(3, 12)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert not torch.equal(first["image"], other["image"])


# ----------------------------------------------------------------- checkpoints


def test_interrupted_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint({"format": engine.CHECKPOINT_FORMAT, "value": torch.ones(3)}, tmp_path / "last.pt")
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"format": engine.CHECKPOINT_FORMAT, "value": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot be read"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt: not a KDAS engine checkpoint.*load_polyp_pvt"):
        load_checkpoint(tmp_path / "foreign.pt")


def _run(data, out, stop_at):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(data), str(out), str(stop_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process):
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output


@pytest.mark.slow
def test_resume_after_a_real_kill_matches_an_uninterrupted_run(small_synthetic, tmp_path):
    """SIGKILL in the middle of epoch 2 (after step 7 of 10), resume, and compare with a run
    that was never interrupted: same steps, same losses, bit-identical final weights."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _run(small_synthetic, straight, 0)
    victim = _run(small_synthetic, killed, 7)
    deadline = time.monotonic() + 300
    while not (killed / "stopped").exists():
        assert victim.poll() is None, victim.communicate()[0]
        assert time.monotonic() < deadline, "the training process never reached step 7"
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    _finish(reference)

    saved = load_checkpoint(killed / "last.pt")
    assert (saved["step"], saved["epoch"], saved["batch_in_epoch"]) == (7, 1, 2)  # no completed step lost
    assert not list(killed.glob("*.part")) and not (killed / "final.pt").exists()

    _finish(_run(small_synthetic, killed, 0))
    final_a = torch.load(straight / "final.pt", weights_only=True)
    final_b = torch.load(killed / "final.pt", weights_only=True)
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    steps_a, steps_b = (load_checkpoint(d / "last.pt")["steps"] for d in (straight, killed))
    assert [s["step"] for s in steps_b] == list(range(1, 11))
    assert steps_a == steps_b
    hist_a, hist_b = (load_checkpoint(d / "last.pt")["history"] for d in (straight, killed))
    timing = {"seconds", "images_per_s"}
    assert [{k: v for k, v in h.items() if k not in timing} for h in hist_a] == [
        {k: v for k, v in h.items() if k not in timing} for h in hist_b
    ]


def test_resume_refuses_other_settings(sets, tmp_path):
    trainer_for(sets, tmp_path).fit()
    with pytest.raises(CheckpointError, match="batch_size: 4 there, 2 here.*resume=False"):
        trainer_for(sets, tmp_path, batch_size=2).fit()
    trainer_for(sets, tmp_path, batch_size=2).fit(resume=False)  # starting afresh is allowed


def test_resume_refuses_another_objective(sets, tmp_path):

    trainer_for(sets, tmp_path).fit()
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["objective_settings"] == {
        "objective": "segmentation",
        "variant": "paper",
    }
    more = dict(epochs=2)  # an unfinished run, so fit() resumes it
    with pytest.raises(CheckpointError, match="objective variant: paper there, released here.*resume=False"):
        trainer_for(sets, tmp_path, objective=SegmentationObjective("released"), **more).fit()
    assert len(trainer_for(sets, tmp_path, objective=SegmentationObjective("paper"), **more).fit().history) == 2


# ----------------------------------------------------------------- training behaviour


class Poisoned(PolypDataset):
    """Returns NaN images once ``active`` is set."""

    active = False

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if self.active:
            item["image"] = torch.full_like(item["image"], float("nan"))
        return item


def test_non_finite_loss_stops_with_the_step_and_keeps_good_checkpoints(sets, tmp_path):
    train = Poisoned(sets[0].pairs, sets[0].transform)
    torch.manual_seed(0)
    trainer = Trainer(build_student(), train, sets[1], tiny(epochs=3), tmp_path, device="cpu", name="student")
    best_after_epoch_1 = {}

    def poison_after_step_3(trainer, record):  # epoch 1 = steps 1-2; step 4's batch gets NaN images
        if trainer.step == 3:
            best_after_epoch_1["bytes"] = trainer.best_path.read_bytes()
            train.active = True

    with pytest.raises(NonFiniteLossError, match=r"student: loss is nan at epoch 2, step 4 .*frames \w+.*saved in"):
        trainer.fit(on_step=poison_after_step_3)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["step"] == 3 and (saved["epoch"], saved["batch_in_epoch"]) == (1, 1)
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    assert (tmp_path / "best.pt").read_bytes() == best_after_epoch_1["bytes"]
    assert not list(tmp_path.glob("*.part"))


class Scaled(SegmentationObjective):
    """The segmentation loss times a large factor, recording the sizes it sees."""

    def __init__(self, factor):
        super().__init__()
        self.factor, self.sizes = factor, []

    def forward(self, model, images, masks):
        self.sizes.append(images.shape[-1])
        loss, out, parts = super().forward(model, images, masks)
        return loss * self.factor, out, parts


def _batch(sets):
    return next(iter(torch.utils.data.DataLoader(sets[0], batch_size=4)))


def test_gradients_are_clipped_element_wise_at_half(sets, tmp_path):
    trainer = trainer_for(sets, tmp_path, objective=Scaled(1e4))
    trainer.train_step(_batch(sets))
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    assert grads.abs().max().item() == pytest.approx(0.5)


def test_norm_clipping(sets, tmp_path):
    trainer = trainer_for(sets, tmp_path, objective=Scaled(1e4), clip_value=None, clip_norm=1.0)
    trainer.train_step(_batch(sets))
    norm = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    )
    assert norm.item() == pytest.approx(1.0, rel=1e-3)  # the raw norm is in the thousands


def test_multi_scale_steps_once_per_size(sets, tmp_path):
    objective = Scaled(1.0)
    at_128 = (PolypDataset(sets[0].pairs, train_transforms(128)), sets[1])
    trainer = trainer_for(at_128, tmp_path, objective=objective, multi_scale=True, image_size=128)
    record = trainer.train_step(_batch(at_128))
    assert objective.sizes == [96, 128, 160]  # 0.75, 1, 1.25 of 128, rounded to multiples of 32
    assert trainer.scheduler.last_epoch == 3
    assert set(record) == {"loss", "dice", "seg"}


def test_cosine_schedule_ends_near_zero(sets, tmp_path):
    result = trainer_for(sets, tmp_path, schedule="cosine", epochs=2).fit()
    lrs = [s["lr"] for s in result.steps]  # after each of the 4 steps
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-4
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_selection_on_validation_and_reloading(sets, tmp_path):
    result = trainer_for(sets, tmp_path, epochs=3).fit()
    dices = [h["val_dice"] for h in result.history]
    assert result.best_epoch == 1 + dices.index(max(dices)) and result.best_val_dice == max(dices)
    assert load_checkpoint(result.best_path)["epoch"] == result.best_epoch
    assert {"train_loss", "train_dice", "train_seg", "val_loss", "val_dice", "lr", "seconds"} <= set(result.history[0])
    model = load_trained(result.best_path)
    assert model.backbone_name == "pvt_v2_b0" and not model.training
    x = torch.randn(1, 3, 64, 64)
    state = load_checkpoint(result.best_path)["model"]
    twin = build_student().eval()
    twin.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(model(x).logits, twin(x).logits)


def test_worker_processes_see_the_same_batches(sets, tmp_path):
    """Data order and augmentation do not depend on the number of loader workers (which persist
    across epochs)."""
    results = []
    for workers in (0, 2):
        torch.manual_seed(0)
        trainer = Trainer(
            build_student(), *sets, tiny(epochs=2, num_workers=workers), tmp_path / f"w{workers}", device="cpu"
        )
        results.append(trainer.fit())
    assert results[0].steps == results[1].steps


def test_compiled_training_matches_eager_and_saves_plain_weights(sets, tmp_path):
    """``compile=True`` trains through torch.compile (slow to compile: one step here) with the
    eager run's losses, and its checkpoint holds the plain network (no ``_orig_mod.`` keys)."""
    # fp32 (amp="off"): on a CPU with native bf16, bf16's rounding would hide what compile changes
    eager = trainer_for(sets, tmp_path / "eager", max_steps_per_epoch=1, amp="off").fit()
    compiled_trainer = trainer_for(sets, tmp_path / "compiled", max_steps_per_epoch=1, compile=True, amp="off")
    assert compiled_trainer.network is not compiled_trainer.model
    compiled = compiled_trainer.fit()
    assert compiled.steps[0]["loss"] == pytest.approx(eager.steps[0]["loss"], rel=1e-4)
    state = load_checkpoint(compiled.best_path)["model"]
    assert not any(key.startswith("_orig_mod.") for key in state)
    torch.manual_seed(0)
    start = torch.cat([p.flatten() for p in build_student().parameters()])
    moved = [
        torch.cat([p.flatten() for p in load_trained(r.best_path).parameters()]) - start for r in (eager, compiled)
    ]
    assert moved[0].norm() > 0 and (moved[1] - moved[0]).norm() < 0.05 * moved[0].norm()  # the same step


def test_validation_and_evaluation_score_the_same_frames_alike(tmp_path):
    """The Dice that selects checkpoints is the evaluation's ``Dice@0.5``: frames already at the
    training size, so that nothing is resized, score the same in both, empty masks included."""
    from kdas_utils.data import PolypDataset, eval_transforms, find_dataset, make_synthetic
    from kdas_utils.evaluate import evaluate_models, mean_dice

    root = make_synthetic(tmp_path / "data", seed=3, n_train=4, n_test=12, size=64)
    pairs = find_dataset(root)["test"]["Synthetic"]
    dataset = PolypDataset(pairs, eval_transforms(64))
    torch.manual_seed(0)
    model = build_student()
    trainer = Trainer(model, dataset, dataset, tiny(image_size=64), tmp_path / "ckpt", device="cpu")
    validated = trainer.validate()["val_dice"]
    table, _ = evaluate_models({"m": model}, {"Synthetic": pairs}, 64, "cpu", progress=False)
    assert validated == pytest.approx(mean_dice(model, pairs, 64, "cpu"), abs=1e-6)
    assert validated == pytest.approx(table.loc[("m", "Synthetic"), "Dice@0.5"], abs=1e-6)


def test_validation_asks_the_objective_for_its_loss(sets, tmp_path):
    plain = trainer_for(sets, tmp_path / "a").validate()
    scaled = trainer_for(sets, tmp_path / "b", objective=Scaled(3)).validate()
    assert scaled["val_loss"] == pytest.approx(3 * plain["val_loss"], rel=1e-5)
    assert scaled["val_dice"] == plain["val_dice"]


def test_snapshots_of_chosen_epochs_load_as_networks(sets, tmp_path):
    result = trainer_for(sets, tmp_path, epochs=2, keep_epochs=(1,)).fit()
    snapshot = load_checkpoint(tmp_path / "ckpt" / "epoch-1.pt")
    assert snapshot["kind"] == "snapshot" and snapshot["epoch"] == 1
    assert snapshot["val_dice"] == result.history[0]["val_dice"]
    assert not (tmp_path / "ckpt" / "epoch-2.pt").exists()
    assert isinstance(load_trained(tmp_path / "ckpt" / "epoch-1.pt"), torch.nn.Module)
    # every checkpoint records where the network's starting weights came from
    assert {
        load_checkpoint(tmp_path / "ckpt" / name)["arch"]["weights_source"] for name in ("epoch-1.pt", "best.pt")
    } == {"random initialisation"}


def test_the_engine_is_a_package_of_rooms():
    import kdas_utils.engine as package

    assert Path(package.__file__).name == "__init__.py"
    rooms = {p.stem for p in Path(package.__file__).parent.glob("*.py")} - {"__init__"}
    assert rooms == {"train_config", "runtime", "sampling", "step", "checkpoint", "lock", "int8", "trainer"}
    from kdas_utils.engine import TrainConfig as C
    from kdas_utils.engine import Trainer as T

    assert T is Trainer and C is TrainConfig


def test_the_trainer_steps_through_the_function_notebook_02_prints(sets, tmp_path, monkeypatch):
    """The loop a learner reads is the loop that runs: ``Trainer.train_step`` calls
    ``engine.step.training_step`` once per batch and size, and ``validate`` calls ``validation_pass``."""
    from kdas_utils.engine import step, trainer

    calls = []
    original = step.training_step
    monkeypatch.setattr(trainer, "training_step", lambda *a, **k: calls.append(a[3].shape) or original(*a, **k))
    run = trainer_for(sets, tmp_path, epochs=1)
    batch = next(iter(torch.utils.data.DataLoader(run.train_set, batch_size=2)))
    record = run.train_step(batch)
    assert calls == [batch["image"].shape] and set(record) >= {"loss", "dice"}
