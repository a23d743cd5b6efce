"""A small real training run, driven by tests/test_engine.py in a separate process.

    python tests/helpers/train_script.py DATA OUT STOP_AT_STEP

Trains the student for 2 epochs of 5 steps on 20 synthetic frames (64 px, augmented,
checkpoint after every step) and saves the final weights to OUT/final.pt. With
STOP_AT_STEP > 0 it writes OUT/stopped once that step is done and then waits, so that the
test can kill it with SIGKILL in the middle of epoch 2.
"""

import sys
import time
from pathlib import Path

import torch

from kdas_utils.data import PolypDataset, eval_transforms, find_pairs, train_transforms
from kdas_utils.engine import TrainConfig, Trainer
from kdas_utils.models import build_student

data, out, stop_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
pairs = find_pairs(data / "TrainDataset")
torch.manual_seed(0)
trainer = Trainer(
    build_student(),
    PolypDataset(pairs[:20], train_transforms(64)),
    PolypDataset(pairs[20:], eval_transforms(64)),
    TrainConfig(epochs=2, batch_size=4, image_size=64, checkpoint_every=1, progress=False, seed=3),
    out,
    device="cpu",
)


def stop(trainer, record):
    if trainer.step == stop_at:
        (out / "stopped").write_text(str(trainer.step))
        time.sleep(600)


trainer.fit(resume=True, on_step=stop)
torch.save(trainer.model.state_dict(), out / "final.pt")
