"""ImageNet backbones from KDAS_WEIGHTS_DIR (files the tests write, in the PVTv2 release and timm
formats), the profiles that ask for them, and the official teacher of the paper and colab profiles.
timm's hub is never reached: where it would be tried, the tests replace it."""

import pytest
import torch
from helpers.mirror import Mirror, polyp_pvt_checkpoint, release_backbone, saved
from safetensors.torch import save_file

from kdas_utils import runs
from kdas_utils.config import get_profile
from kdas_utils.models import MissingWeightsError, WeightLoadError, build_student, build_teacher
from kdas_utils.models import pretrained as pretrained_module
from kdas_utils.models.pretrained import prepare_pvt_v2


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """An empty KDAS_WEIGHTS_DIR, and a hub that must not be reached."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("KDAS_WEIGHTS_DIR", str(folder))

    def no_hub(*args):
        raise AssertionError("timm's hub was tried")

    monkeypatch.setattr(pretrained_module, "hub_backbone_state", no_hub)
    monkeypatch.setattr(pretrained_module, "hub_reachable", lambda timeout=3.0: False)
    return folder


def same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def random_model(builder, seed):
    torch.manual_seed(seed)
    return builder()


def test_profiles_that_ask_for_pretrained_backbones():
    assert {name: get_profile(name).pretrained for name in ("quick", "standard", "colab", "paper")} == {
        "quick": False,
        "standard": False,
        "colab": True,
        "paper": True,
    }


@pytest.mark.parametrize("builder", [build_student, build_teacher], ids=["student B0", "teacher B2"])
def test_release_file_gives_exactly_its_tensors(weights, builder):
    source = random_model(builder, 1)
    (weights / f"{source.backbone_name}.pth").write_bytes(release_backbone(source))
    model = builder(pretrained=True)
    assert same(model.backbone, source.backbone)
    assert model.weights_source.startswith(f"ImageNet {source.backbone_name}: {weights}")
    assert "PVTv2 release format" in model.weights_source


def test_timm_files_give_exactly_their_tensors(weights):
    source = random_model(build_student, 2)
    timm_names = {k.replace("stages_", "stages.", 1): v for k, v in source.backbone.state_dict().items()}
    (weights / "pvt_v2_b0.in1k").mkdir()
    save_file({k: v.contiguous() for k, v in timm_names.items()}, weights / "pvt_v2_b0.in1k" / "model.safetensors")
    model = build_student(pretrained=True)
    assert same(model.backbone, source.backbone) and "timm format" in model.weights_source
    other = random_model(build_student, 3)  # a .pth in timm's names comes first
    (weights / "pvt_v2_b0.pth").write_bytes(saved(other.backbone.state_dict()))
    assert same(build_student(pretrained=True).backbone, other.backbone)


def test_the_profiles_build_path_loads_them(weights, monkeypatch):
    """runs.train_or_load builds with the profile's `pretrained`; its Trainer is replaced here by
    one that keeps the network it is given."""
    source = random_model(build_student, 4)
    (weights / "pvt_v2_b0.pth").write_bytes(release_backbone(source))
    built = {}

    class Built(Exception):
        pass

    class Keep:
        def __init__(self, model, *args, **kwargs):
            built["model"] = model
            raise Built

    monkeypatch.setattr(runs.store, "Trainer", Keep)
    monkeypatch.setattr(runs.store, "profile_datasets", lambda profile, augment=True: (None, None))
    for name, pretrained in (("colab", True), ("paper", True), ("standard", False)):
        with pytest.raises(Built):
            runs.train_or_load("student", weights / name, build_student, get_profile(name))
        assert same(built["model"].backbone, source.backbone) is pretrained, name


def test_offline_without_files_names_the_folder_and_files(weights):
    with pytest.raises(MissingWeightsError) as caught:
        build_student(pretrained=True)
    message = str(caught.value)
    assert f"KDAS_WEIGHTS_DIR ({weights}" in message and "pvt_v2_b0.pth" in message
    assert "pvt_v2_b0.in1k/model.safetensors" in message and "needs the internet" in message
    assert "kdas prepare-weights pvt-v2" in message and isinstance(caught.value, WeightLoadError)


def test_hub_failure_is_reported_not_hidden(weights, monkeypatch):
    def offline(name):
        raise OSError("Name or service not known")

    monkeypatch.setattr(pretrained_module, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(pretrained_module, "hub_backbone_state", offline)
    with pytest.raises(MissingWeightsError, match=r"OSError: Name or service not known.*KDAS_WEIGHTS_DIR"):
        build_teacher(pretrained=True)


def test_hub_weights_when_online(weights, monkeypatch):
    source = random_model(build_student, 6)
    monkeypatch.setattr(pretrained_module, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(pretrained_module, "hub_backbone_state", lambda name: source.backbone.state_dict())
    model = build_student(pretrained=True)
    assert (
        same(model.backbone, source.backbone) and model.weights_source == "ImageNet pvt_v2_b0: timm hub pvt_v2_b0.in1k"
    )


def test_a_file_for_the_other_backbone_is_refused(weights):
    (weights / "pvt_v2_b0.pth").write_bytes(release_backbone(random_model(build_teacher, 7)))
    with pytest.raises(WeightLoadError, match=r"wrong shape.*pvt_v2_b0: is this its file"):
        build_student(pretrained=True)


def test_hub_is_skipped_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pretrained_module.hub_reachable() is False


def test_official_teacher_of_each_profile(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(MissingWeightsError, match=r"'colab' profile distils from the official.*kdas prepare-weights"):
        runs.train_teacher(get_profile("colab"))
    assert pretrained_module.official_teacher_file(get_profile("paper")) is None  # paper trains one instead
    teacher = random_model(build_teacher, 8).eval()
    (weights / "PolypPVT.pth").write_bytes(polyp_pvt_checkpoint(teacher))
    for name in ("colab", "paper"):
        run = runs.train_teacher(get_profile(name))
        assert run.source == "weights" and run.path == weights / "PolypPVT.pth" and same(run.model, teacher)
        assert run.model.weights_source.startswith("official Polyp-PVT checkpoint")
    assert pretrained_module.official_teacher_file(get_profile("standard")) is None


def test_the_evaluation_table_takes_the_official_teacher(weights, tmp_path, monkeypatch):
    from kdas_utils.engine import save_checkpoint
    from kdas_utils.engine.checkpoint import CHECKPOINT_FORMAT, architecture
    from kdas_utils.models import load_network

    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    assert runs.trained_checkpoints(get_profile("colab")) == {}  # nothing prepared, nothing trained
    teacher = random_model(build_teacher, 8).eval()
    (weights / "PolypPVT.pth").write_bytes(polyp_pvt_checkpoint(teacher))
    found = runs.trained_checkpoints(get_profile("colab"))
    assert found == {"teacher": weights / "PolypPVT.pth"}
    assert same(load_network(found["teacher"]), teacher)  # the Polyp-PVT format
    student = random_model(build_student, 9).eval()
    engine_file = tmp_path / "best.pt"
    save_checkpoint(
        {"format": CHECKPOINT_FORMAT, "model": student.state_dict(), "arch": architecture(student)}, engine_file
    )
    assert same(load_network(engine_file), student)  # the engine's format
    with pytest.raises(WeightLoadError, match="notes.txt: not a PyTorch weight file"):
        (tmp_path / "notes.txt").write_text("not weights")
        load_network(tmp_path / "notes.txt")


def test_prepare_pvt_v2_fetches_checks_and_records(weights):
    mirror = Mirror()
    try:
        source = random_model(build_student, 9)
        mirror.files["pvt_v2_b0.pth"] = release_backbone(random_model(build_teacher, 10))  # the wrong network
        with pytest.raises(WeightLoadError, match="wrong shape"):
            prepare_pvt_v2(("pvt_v2_b0",), url=mirror.url)
        assert sorted(p.name for p in weights.iterdir()) == []  # not kept
        mirror.files["pvt_v2_b0.pth"] = release_backbone(source)
        assert prepare_pvt_v2(("pvt_v2_b0",), url=mirror.url) == [weights / "pvt_v2_b0.pth"]
        assert sorted(p.name for p in weights.iterdir()) == ["pvt_v2_b0.pth", "pvt_v2_b0.pth.sha256"]
        assert same(build_student(pretrained=True).backbone, source.backbone)
    finally:
        mirror.close()
