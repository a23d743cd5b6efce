"""Official weight formats load exactly: files are written here, from random models."""

import pickle

import pytest
import torch

from kdas_utils.kdas.remap import to_polyp_pvt_keys, to_pvt_release_keys
from kdas_utils.models import WeightLoadError, build_student, build_teacher, load_backbone_weights, load_polyp_pvt


def _random(builder, seed):
    torch.manual_seed(seed)
    model = builder()
    with torch.no_grad():  # make BatchNorm buffers differ between models too
        for _name, buffer in model.named_buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("builder, depths", [(build_student, (2, 2, 2, 2)), (build_teacher, (3, 4, 6, 3))])
def test_pvt_release_backbone_round_trip(builder, depths, tmp_path):
    source, target = _random(builder, 1), _random(builder, 2)
    release = to_pvt_release_keys(source.backbone.state_dict())
    # The release's own names (PVTv2 repository): a classifier head rides along.
    for key in (
        "patch_embed1.proj.weight",
        "patch_embed4.norm.bias",
        "block1.0.attn.sr.weight",
        f"block4.{depths[3] - 1}.mlp.dwconv.dwconv.weight",
        "norm4.weight",
    ):
        assert key in release, key
    width = source.backbone.feature_info.channels()[-1]
    release["head.weight"], release["head.bias"] = torch.randn(1000, width), torch.randn(1000)
    path = tmp_path / f"{source.backbone_name}.pth"
    torch.save(release, path)
    assert not _same_state(source.backbone, target.backbone)
    report = load_backbone_weights(target, path)
    assert _same_state(source.backbone, target.backbone)
    assert report.missing == [] and report.unexpected == [] and report.ignored == ["head.bias", "head.weight"]
    assert report.loaded == len(source.backbone.state_dict())


def test_polyp_pvt_checkpoint_round_trip(tmp_path):
    source, target = _random(build_teacher, 3), _random(build_teacher, 4)
    official = to_polyp_pvt_keys(source.state_dict())
    for key in (
        "backbone.patch_embed1.proj.weight",
        "backbone.block3.5.attn.kv.weight",
        "Translayer2_0.conv.weight",
        "Translayer4_1.bn.running_var",
        "CFM.conv_upsample5.conv.weight",
        "ca.fc1.weight",
        "sa.conv1.weight",
        "SAM.gcn.conv1.bias",
        "SAM.conv_extend.weight",
        "out_CFM.weight",
        "out_SAM.bias",
    ):
        assert key in official, key
    path = tmp_path / "PolypPVT.pth"
    torch.save({"module." + k: v for k, v in official.items()}, path)  # saved from DataParallel
    report = load_polyp_pvt(target, path)
    assert report.missing == report.unexpected == []
    assert _same_state(source, target)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x).logits, target(x).logits)


def test_wrong_backbone_file_names_the_tensor(tmp_path):
    path = tmp_path / "pvt_v2_b0.pth"
    torch.save(to_pvt_release_keys(build_student().backbone.state_dict()), path)
    with pytest.raises(
        WeightLoadError,
        match=r"176 tensors have the wrong shape, e\.g\. \S+: file \(32,?.*\) vs model \(64,?.*\)\. "
        r"The model is built on pvt_v2_b2",
    ):
        load_backbone_weights(build_teacher(), path)


def test_missing_keys_strict_and_lenient(tmp_path):
    source, target = _random(build_student, 5), _random(build_student, 6)
    official = to_polyp_pvt_keys(source.state_dict())
    del official["out_SAM.weight"]
    official["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": official}, path)
    with pytest.raises(WeightLoadError, match=r"missing \(1\): head_p2\.weight[\s\S]*unexpected \(1\): extra\.weight"):
        load_polyp_pvt(target, path)
    report = load_polyp_pvt(target, path, strict=False)
    assert report.missing == ["head_p2.weight"] and report.unexpected == ["extra.weight"]
    assert torch.equal(target.head_p1.weight, source.head_p1.weight)
    assert not torch.equal(target.head_p2.weight, source.head_p2.weight)


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_files_load_with_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"patch_embed1.proj.weight": _Payload()}, handle, protocol=2)
    with pytest.raises(WeightLoadError, match="evil.pth: not a PyTorch weight file that can be read safely") as caught:
        load_backbone_weights(build_student(), path)
    assert isinstance(caught.value.__cause__, pickle.UnpicklingError)
    assert "this would run on load" not in capsys.readouterr().out


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth: weight file not found"):
        load_polyp_pvt(build_student(), tmp_path / "nothing.pth")


def test_official_files_are_rebuilt_as_teacher_or_student(tmp_path):
    from kdas_utils.models import load_official

    for build, _width in ((build_teacher, 64), (build_student, 32)):
        source = _random(build, 5)
        path = tmp_path / f"{build.__name__}.pth"
        torch.save(to_polyp_pvt_keys(source.state_dict()), path)
        loaded = load_official(path)
        assert loaded.backbone_name == source.backbone_name and not loaded.training
        assert _same_state(source, loaded)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(
        WeightLoadError,
        match="other.pth: not a Polyp-PVT-format checkpoint.*missing.*engine checkpoint.*state_dict of build_student",
    ):
        load_official(tmp_path / "other.pth")
