"""One training loop for the teacher (notebook 02) and the distilled student (notebook 05).

Its rooms follow the steps of the loop:

===================  =============================================================================
``train_config.py``  :class:`TrainConfig`, every knob of a run
``runtime.py``       :class:`Runtime`: device, precision, processes, network wrapping
``sampling.py``      :class:`EpochSampler`: the data order, a function of (seed, epoch, sample)
``checkpoint.py``    atomic save and load, RNG states, the settings check on resume
``lock.py``          :class:`RunLock`: one process per run folder
``int8.py``          :func:`int8_teacher`: the CPU's int8 teacher (an option of this series)
``step.py``          :func:`training_step`: forward, objective, backward, clip, step (notebook 02)
``trainer.py``       :class:`Trainer`: ``fit``, ``train_step``, ``validate``
===================  =============================================================================

The engine knows nothing about what it trains. It gets a model, an *objective* (a callable
``objective(model, images, masks) -> (loss, output, parts)``, :mod:`kdas_utils.kdas.objective`) and
two datasets, and does the rest the same way for both networks:

* **device and precision**: CUDA, then Apple MPS, then CPU. On CUDA it trains in mixed
  precision (bf16 where the GPU supports it, else fp16 with a gradient scaler) and in the
  channels-last memory format; elsewhere in fp32.
* **the released code's recipe**: AdamW (lr 1e-4, weight decay 1e-4), constant or cosine learning
  rate, multi-scale training at 0.75 / 1 / 1.25 of the image size rounded to multiples of 32
  (one optimiser step per scale, as the released code), gradient values clipped to
  [-0.5, 0.5] (norm clipping available).
* **model selection on a validation split** carved from the training set (mean Dice at 0.5),
  never on the test sets.
* **checkpoints that survive a crash**: written to a temporary file and renamed, holding the
  model, optimiser, scaler, schedule, position (epoch, batch in epoch, step), RNG states and
  history. ``fit()`` resumes from ``last.pt`` and continues *exactly*: the order of the
  samples and every augmentation are a function of (seed, epoch, sample), so a resumed run
  sees the very batches the uninterrupted run would have seen.
* **a non-finite loss stops training** with an error naming the step and the frames of the
  batch; the last good state is on disk and nothing saved is overwritten by a bad one.
* **progress** with ``tqdm.auto`` (bars in Jupyter, text in a terminal) and a history of
  epochs and steps that notebooks plot.
"""

from .checkpoint import (
    CHECKPOINT_FORMAT,
    MUST_MATCH,
    CheckpointError,
    NonFiniteLossError,
    load_checkpoint,
    save_checkpoint,
    settings_changed,
)
from .int8 import Int8Teacher, int8_teacher
from .lock import RunLock, RunLockedError
from .runtime import Precision, Runtime, choose_precision, cpu_has_native_bf16, init_distributed, select_device
from .sampling import EpochSampler, SeededItems
from .step import training_step, validation_pass
from .train_config import TrainConfig
from .trainer import Trainer, TrainResult

__all__ = [
    "CHECKPOINT_FORMAT",
    "MUST_MATCH",
    "CheckpointError",
    "EpochSampler",
    "Int8Teacher",
    "NonFiniteLossError",
    "Precision",
    "RunLock",
    "RunLockedError",
    "Runtime",
    "SeededItems",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "choose_precision",
    "cpu_has_native_bf16",
    "init_distributed",
    "int8_teacher",
    "load_checkpoint",
    "save_checkpoint",
    "select_device",
    "settings_changed",
    "training_step",
    "validation_pass",
]
