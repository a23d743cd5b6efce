import numpy as np
import pytest
import torch
from PIL import Image

from kdas_utils.data import find_pairs, read_mask
from kdas_utils.efficiency import count_flops, efficiency_table, explicit_attention
from kdas_utils.evaluate import beside_paper, evaluate_models, predict_maps, to_markdown, write_table
from kdas_utils.metrics import KEYS, evaluate_maps
from kdas_utils.models import build_student, build_teacher


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_student().eval()


@pytest.fixture(scope="module")
def real_sets(real_root):
    return {name: find_pairs(real_root / "TestDataset" / name)[:4] for name in ("Kvasir", "CVC-ClinicDB")}


def test_runner_on_real_frames(student, real_sets, tmp_path):
    table, per_image = evaluate_models(
        {"student": student}, real_sets, image_size=64, device="cpu", save_dir=tmp_path, progress=False
    )
    assert list(table.index) == [("student", "Kvasir"), ("student", "CVC-ClinicDB")]
    assert set(KEYS) <= set(table.columns) and (table["images"] == 4).all()
    # the table is evaluate_maps of the predictions at each mask's size
    pairs = real_sets["Kvasir"]
    maps = predict_maps(student, pairs, 64, "cpu")
    masks = [read_mask(m).astype(bool) for _, m in pairs]
    assert [m.shape for m in maps] == [m.shape for m in masks]
    expected = evaluate_maps(maps, masks)
    for key in KEYS:
        assert table.loc[("student", "Kvasir"), key] == pytest.approx(expected[key], abs=1e-9)
    assert [s["name"] for s in per_image[("student", "Kvasir")]] == [p[0].stem for p in pairs]
    # 8-bit PNGs in the PraNet evaluator's layout, min-max normalised
    png = tmp_path / "student" / "Kvasir" / f"{pairs[0][0].stem}.png"
    saved = np.asarray(Image.open(png))
    assert saved.dtype == np.uint8 and saved.shape == masks[0].shape and saved.min() == 0 and saved.max() == 255
    assert len(list((tmp_path / "student" / "CVC-ClinicDB").glob("*.png"))) == 4


def test_tables_are_written_as_csv_and_markdown(student, real_sets, tmp_path):
    table, _ = evaluate_models({"student": student}, {"Kvasir": real_sets["Kvasir"][:2]}, 64, "cpu", progress=False)
    csv, md = write_table(table, tmp_path, "results")
    text = md.read_text()
    assert text.splitlines()[0].startswith("| model | test set | images | meanDice")
    assert f"{table.iloc[0]['meanDice']:.3f}" in text and csv.read_text().startswith("model,test set,images,meanDice")
    both = beside_paper(table)
    assert (
        both.loc["KDAS student (paper)", "Kvasir"] == 0.913
        and both.loc["student", "Kvasir"] == table.iloc[0]["meanDice"]
    )
    assert to_markdown(table).count("\n") == 3


def test_flops_and_efficiency_table(student):
    teacher = build_teacher()
    ratio = count_flops(teacher, 352) / count_flops(student, 352)
    assert count_flops(student, 352) == pytest.approx(3.81e9, rel=0.01)  # 1.9 GMAC, as the paper's 1.92
    assert ratio == pytest.approx(5.7, rel=0.02)
    table = efficiency_table({"student": student}, image_size=64, device="cpu", throughput_batch=2, warmup=1, repeats=2)
    row = table.loc["student"]
    assert row["parameters (M)"] == pytest.approx(3.65074) and row["latency bs1 (ms)"] > 0
    assert row["throughput bs2 (img/s)"] > 0 and table.attrs["device"] == "cpu"


def test_explicit_attention_gives_the_same_maps_and_puts_the_flags_back(student):
    layers = [m for m in student.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    assert len(layers) == 8  # one per block: PVTv2-B0 has two blocks in each of its four stages
    x = torch.randn(1, 3, 64, 64)
    flags = [layer.fused_attn for layer in layers]
    with torch.no_grad():
        fused = student(x).p1
        with explicit_attention(student):
            assert not any(layer.fused_attn for layer in layers)
            explicit = student(x).p1
    assert [layer.fused_attn for layer in layers] == flags
    assert torch.allclose(fused, explicit, atol=1e-5)
    with pytest.raises(RuntimeError), explicit_attention(student):
        raise RuntimeError("an error inside")
    assert [layer.fused_attn for layer in layers] == flags  # restored on an error too
