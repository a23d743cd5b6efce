"""Data-parallel training under torchrun: two CPU processes (gloo) against one process with the
same global batch."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdas_utils.engine import EpochSampler, load_checkpoint

pytestmark = pytest.mark.slow  # two processes train under torchrun

SCRIPT = Path(__file__).parent / "helpers" / "ddp_script.py"


def test_ranks_split_each_global_batch_and_pad_instead_of_dropping():
    single = [i for i, _ in EpochSampler(10, seed=3, epoch=1)]
    ranks = [[i for i, _ in EpochSampler(10, seed=3, epoch=1, rank=r, world=2, batch_size=2)] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 6  # 10 items in global batches of 4: padded to 12
    for k in range(3):  # global batch k = rank 0's slice, then rank 1's
        assert ranks[0][2 * k : 2 * k + 2] + ranks[1][2 * k : 2 * k + 2] == (single + single)[4 * k : 4 * k + 4]
    assert set(ranks[0]) | set(ranks[1]) == set(range(10))


def _run(command, cwd):
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_two_processes_match_one_process_with_the_same_global_batch(small_synthetic, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(SCRIPT), str(small_synthetic), str(one), "4"], tmp_path)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(SCRIPT),
            str(small_synthetic),
            str(two),
            "2",
        ],
        tmp_path,
    )
    rank0, rank1 = (torch.load(two / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks stay in step
    single = torch.load(one / "rank0.pt", weights_only=True)
    assert all(torch.allclose(single[k], rank0[k], rtol=1e-4, atol=1e-6) for k in single)
    steps_one, steps_two = (load_checkpoint(d / "last.pt")["steps"] for d in (one, two))
    assert [s["step"] for s in steps_two] == [s["step"] for s in steps_one] == list(range(1, 9))
    assert [s["images"] for s in steps_two] == [s["images"] for s in steps_one] == [4] * 8
    for a, b in zip(steps_one, steps_two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert (two / "world2-rank1.txt").read_text().split() == ["1", "2", "8"]
    assert not (two / "last.pt.part").exists()
