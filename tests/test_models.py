import pytest
import torch

from kdas_utils.kdas import PolypOutput, count_parameters
from kdas_utils.models import build_student, build_teacher


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_teacher().eval()


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_student().eval()


def test_parameter_counts_match_the_paper(teacher, student):
    assert abs(count_parameters(teacher) - 25.11e6) <= 0.05e6
    assert abs(count_parameters(student) - 3.65e6) <= 0.05e6
    assert abs(count_parameters(teacher.backbone) - 24.85e6) <= 0.01e6
    assert abs(count_parameters(student.backbone) - 3.41e6) <= 0.01e6
    # The released code measures exactly these (shared/DESIGN.md):
    assert (count_parameters(teacher), count_parameters(student)) == (25_107_604, 3_650_740)


@pytest.mark.parametrize("name, widths", [("teacher", (64, 128, 320, 512)), ("student", (32, 64, 160, 256))])
def test_shapes_at_352(name, widths, request):
    model = request.getfixturevalue(name)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 352, 352))
    assert isinstance(out, PolypOutput)
    assert out.p1.shape == out.p2.shape == (2, 1, 352, 352)
    assert [tuple(s.shape) for s in out.stages] == [(2, c, 352 // s, 352 // s) for c, s in zip(widths, (4, 8, 16, 32))]
    assert out.cim.shape == (2, widths[0], 88, 88)
    assert out.cfm.shape == out.sam.shape == (2, 32, 44, 44)
    assert torch.isfinite(out.logits).all()


def test_predict_is_sigmoid_of_p1_plus_p2(student):
    x = torch.randn(1, 3, 128, 96)
    probability = student.predict(x)
    with torch.no_grad():
        out = student(x)
    assert probability.shape == (1, 1, 128, 96)
    assert torch.allclose(probability, torch.sigmoid(out.p1 + out.p2))


def test_gradient_reaches_backbone_and_both_heads():
    torch.manual_seed(0)
    model = build_student().train()
    out = model(torch.randn(2, 3, 64, 64))
    (out.p1.mean() + out.p2.mean()).backward()
    for name in (
        "backbone.patch_embed.proj.weight",
        "cim.sa.conv1.weight",
        "sam.gcn.conv1.weight",
        "head_p1.weight",
        "head_p2.weight",
        "cfm.conv4.conv.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_pretrained_offline_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is not tried (tests/test_pretrained.py has the rest)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("KDAS_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    with pytest.raises(RuntimeError, match=r"pvt_v2_b0.*KDAS_WEIGHTS_DIR.*needs the internet.*load_backbone_weights"):
        build_student(pretrained=True)


def test_feature_lookup_and_channels_from_the_backbone(student):
    from kdas_utils.kdas import feature_channels

    out = student(torch.randn(1, 3, 64, 64))
    assert out.feature("stage2") is out.stages[1] and out.feature("cfm") is out.cfm and out.feature("p1") is out.p1
    with pytest.raises(ValueError, match="feature 'stage5'"):
        out.feature("stage5")
    channels = feature_channels("pvt_v2_b0")
    assert all(out.feature(name).shape[1] == c for name, c in channels.items())
    assert feature_channels("pvt_v2_b2")["stage4"] == 512


def test_stochastic_depth_acts_in_training_only():
    torch.manual_seed(0)
    plain = build_student()
    deep = build_student(drop_path_rate=0.1)
    deep.load_state_dict(plain.state_dict())
    rates = [m.drop_prob for m in deep.backbone.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.1) and rates == sorted(rates)  # timm's linear rule
    x = torch.randn(2, 3, 64, 64)
    plain.eval(), deep.eval()
    with torch.no_grad():
        assert torch.equal(plain(x).logits, deep(x).logits)  # eval: deterministic and unchanged
        assert torch.equal(deep(x).logits, deep(x).logits)
        deep.train()
        torch.manual_seed(1)
        first = deep(x).logits
        torch.manual_seed(2)
        assert not torch.equal(first, deep(x).logits)  # train: blocks dropped at random
