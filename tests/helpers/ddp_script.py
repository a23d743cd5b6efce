"""Two-process (torchrun, gloo, CPU) or single-process training, driven by tests/test_ddp.py.

    python tests/helpers/ddp_script.py DATA OUT BATCH              # one process
    torchrun --nproc_per_node 2 tests/helpers/ddp_script.py DATA OUT BATCH

Trains the student for 2 epochs on 16 synthetic frames at 64 px. BatchNorm layers are kept in
eval mode: on a CPU, torch has no synchronised BatchNorm, so per-process batch statistics would
differ from one process's statistics over the global batch, and the test compares the two runs.
Each process saves its final weights to OUT/rank<r>.pt.
"""

import sys
from pathlib import Path

import torch
from torch import nn

from kdas_utils.data import PolypDataset, eval_transforms, find_pairs, train_transforms
from kdas_utils.engine import TrainConfig, Trainer
from kdas_utils.kdas import PolypPVT


class FrozenBatchNorm(PolypPVT):
    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


data, out, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
pairs = find_pairs(data / "TrainDataset")
torch.manual_seed(0)
trainer = Trainer(
    FrozenBatchNorm("pvt_v2_b0"),
    PolypDataset(pairs[:16], train_transforms(64)),
    PolypDataset(pairs[16:20], eval_transforms(64)),
    # fp32 (amp='off'): the test compares DDP's averaged gradients with one process's to 1e-4, closer
    # than bf16 (the default on a CPU with native bf16) computes either
    TrainConfig(epochs=2, batch_size=batch, image_size=64, progress=False, seed=1, amp="off"),
    out,
    device="cpu",
)
trainer.fit()
torch.save(trainer.model.state_dict(), out / f"rank{trainer.runtime.rank}.pt")
with open(out / f"world{trainer.world}-rank{trainer.runtime.rank}.txt", "w") as handle:
    handle.write(f"{trainer.runtime.rank} {trainer.world} {trainer.step}\n")
