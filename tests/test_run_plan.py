"""What a run says before it starts: its plan and, once measured here, how long it will take."""

from kdas_utils.config import get_profile
from kdas_utils.engine import CHECKPOINT_FORMAT, TrainConfig, save_checkpoint
from kdas_utils.runs import epoch_seconds, plan_line


def finished(folder, seconds, image_size=64):
    state = {
        "format": CHECKPOINT_FORMAT,
        "history": [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)],
        "config": {"image_size": image_size},
    }
    save_checkpoint(state, folder / "last.pt")


def test_the_time_comes_from_runs_of_the_same_kind(tmp_path):
    finished(tmp_path / "student-kdas-s0-quick", [30.0, 10.0, 20.0])
    finished(tmp_path / "student-no-kd-s0-quick", [2.0, 2.0])
    assert epoch_seconds(tmp_path / "student-kdas-s1-quick", 64) == 20.0  # another seed of the same arm
    assert epoch_seconds(tmp_path / "student-no-kd-s1-quick", 64) == 2.0
    assert epoch_seconds(tmp_path / "student-pixel-s0-quick", 64) is None  # nothing of that arm measured
    assert epoch_seconds(tmp_path / "student-kdas-s1-quick", 352) is None  # another size is another cost


def test_theplan_line(tmp_path):
    profile, folder = get_profile("quick"), tmp_path / "checkpoints" / "teacher-quick"
    config = TrainConfig.from_profile(profile, epochs=8)
    line = plan_line("teacher", folder, profile, config)
    assert line == (
        "teacher: training 8 epochs (quick profile, 64 px) into checkpoints/teacher-quick; "
        "each epoch's time is printed as it ends"
    )
    finished(folder, [15.0, 15.0])
    line = plan_line("teacher", folder, profile, config)
    assert line.startswith("teacher: resuming at epoch 3 of 8") and line.endswith(
        "about 2 minutes, as measured by earlier epochs here"
    )
    retrain = plan_line("teacher", folder, profile, config, resume=False)
    assert retrain.startswith("teacher: training 8 epochs") and retrain.endswith(
        "about 2 minutes, as measured by earlier epochs here"
    )
