"""One training loop for the teacher (notebook 02) and the distilled student (notebook 05).

The engine knows nothing about what it trains. It gets a model, an *objective* (a callable
``objective(model, images, masks) -> (loss, output, parts)``) and two datasets, and does the
rest the same way for both networks:

* **device and precision**: CUDA, then Apple MPS, then CPU. On CUDA it trains in mixed
  precision (bf16 where the GPU supports it, else fp16 with a gradient scaler) and in the
  channels-last memory format; elsewhere in fp32.
* **the paper's recipe**: AdamW (lr 1e-4, weight decay 1e-4), constant or cosine learning
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

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .losses import deep_supervision_loss

CHECKPOINT_FORMAT = "kdas-checkpoint/1"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. :meth:`from_profile` fills it from a config profile.

    Attributes:
        epochs: passes over the training set.
        batch_size: images per batch.
        image_size: training size (square, a multiple of 32).
        lr, weight_decay: AdamW's (1e-4 and 1e-4 in the paper).
        schedule: ``"constant"`` (the released code in effect) or ``"cosine"`` (to 0 at the end).
        multi_scale: train each batch at every size of ``scales`` x ``image_size``.
        scales: the multi-scale rates (0.75, 1, 1.25 in the paper).
        clip_value: clamp every gradient element to [-v, v] (0.5 in the paper); ``None``: off.
        clip_norm: rescale the gradient to this global L2 norm at most; ``None``: off.
        max_steps_per_epoch: cap on batches per epoch (``None``: the whole training set).
        num_workers: data-loader worker processes.
        seed: seeds the weights' training order, augmentation and RNGs.
        amp: ``"auto"`` (bf16/fp16 on CUDA, fp32 elsewhere), ``"bf16"``, ``"fp16"`` or ``"off"``.
        channels_last: ``None`` means on CUDA only.
        checkpoint_every: also write ``last.pt`` every this many steps (0: end of epoch only).
        progress: show tqdm bars and a log line per epoch.
        sync_bn: under ``torchrun`` with several processes, synchronise BatchNorm statistics
            across them (``None``: on CUDA; torch's SyncBatchNorm needs a GPU).
        compile: run the training forward passes (the network's, and a distillation
            objective's teacher) through ``torch.compile``. The first step pays the compilation
            (about 2 minutes for the student on a CPU); validation and checkpoints use the
            uncompiled network. Off by default; ``python -m kdas_utils.bench --compile``
            measures whether it helps.
    """

    epochs: int = 1
    batch_size: int = 8
    image_size: int = 352
    lr: float = 1e-4
    weight_decay: float = 1e-4
    schedule: str = "constant"
    multi_scale: bool = False
    scales: tuple[float, ...] = (0.75, 1.0, 1.25)
    clip_value: float | None = 0.5
    clip_norm: float | None = None
    max_steps_per_epoch: int | None = None
    num_workers: int = 0
    seed: int = 0
    amp: str = "auto"
    channels_last: bool | None = None
    checkpoint_every: int = 0
    progress: bool = True
    sync_bn: bool | None = None
    compile: bool = False

    def __post_init__(self):
        if self.image_size % 32:
            raise ValueError(f"image_size={self.image_size}: must be a multiple of 32 (PVTv2 strides), e.g. 352")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule={self.schedule!r}: choose 'constant' or 'cosine'")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp={self.amp!r}: choose 'auto', 'bf16', 'fp16' or 'off'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}: both must be at least 1")

    @classmethod
    def from_profile(cls, profile, **changes) -> "TrainConfig":
        """The settings of a :class:`~kdas_utils.config.Profile`, with ``changes`` on top."""
        values = dict(
            epochs=profile.epochs, batch_size=profile.batch_size, image_size=profile.image_size,
            multi_scale=profile.multi_scale, max_steps_per_epoch=profile.max_steps_per_epoch,
            num_workers=profile.num_workers,
        )
        values.update(changes)
        return cls(**values)

    def sizes(self) -> list[int]:
        """Training sizes of one batch: ``round(image_size * rate / 32) * 32`` per rate."""
        if not self.multi_scale:
            return [self.image_size]
        return [int(round(self.image_size * rate / 32) * 32) for rate in self.scales]


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """``preference`` if given (checked), else CUDA, then Apple MPS, then CPU."""
    if preference is not None:
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={preference!r} but torch sees no CUDA GPU; use 'cpu' or leave device=None")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: ``dtype`` for autocast (``None``: fp32) and whether a
    gradient scaler is needed (fp16 only)."""

    dtype: torch.dtype | None
    scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def choose_precision(device: torch.device, amp: str = "auto") -> Precision:
    """bf16 autocast on CUDA GPUs that support it, fp16 + scaler on older ones, fp32 elsewhere."""
    if amp == "off" or device.type != "cuda":
        return Precision(None, False)
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``. Under ``torchrun`` (``WORLD_SIZE`` > 1) this starts the process
    group once (NCCL on CUDA, gloo on CPU); in a plain process it returns ``(0, 1)``."""
    import torch.distributed as dist

    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _distributed_device(preference) -> torch.device:
    """Under ``torchrun`` on CUDA each process takes the GPU of its ``LOCAL_RANK``."""
    device = select_device(preference)
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


# --------------------------------------------------------------------------- data order


def _seed(*keys: int) -> int:
    """A 32-bit seed that depends on every key (NumPy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Keys ``(index, augmentation_seed)`` in an order fixed by ``(seed, epoch)``.

    Both the shuffle and each sample's augmentation seed depend only on the seed, the epoch
    and the sample, so a run resumed at item ``start`` sees exactly what an uninterrupted
    run sees from there on, with any number of data-loader workers.

    With ``world`` processes, global batch ``k`` is items ``k B W`` to ``(k + 1) B W`` of the order
    (``B`` = ``batch_size`` per process) and process ``rank`` takes its ``rank``-th slice of ``B``;
    the order is first padded by repeating its start so that every process gets full batches
    (no sample is dropped; a few are seen twice). ``start`` counts this process's items.
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True,
                 rank: int = 0, world: int = 1, batch_size: int = 1):
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle
        self.rank, self.world, self.batch_size = rank, world, batch_size

    def _order(self) -> np.ndarray:
        order = np.random.default_rng(_seed(self.seed, self.epoch)).permutation(self.n) if self.shuffle \
            else np.arange(self.n)
        if self.world == 1:
            return order
        chunk = self.batch_size * self.world
        padded = np.resize(order, math.ceil(self.n / chunk) * chunk)  # np.resize repeats from the start
        return padded.reshape(-1, self.world, self.batch_size)[:, self.rank].reshape(-1)

    def __iter__(self):
        for index in self._order()[self.start:]:
            yield int(index), _seed(self.seed, self.epoch, int(index), 1)

    def __len__(self) -> int:
        return max(0, len(self._order()) - self.start)


class SeededItems(Dataset):
    """A view of a dataset with an albumentations ``transform`` whose items are fetched by
    :class:`EpochSampler` keys: the transform is re-seeded with the key's seed first."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        self.dataset.transform.set_random_seed(seed)
        return self.dataset[index]


# --------------------------------------------------------------------------- objective


class SegmentationObjective(nn.Module):
    """The teacher's objective, deep supervision with the structure loss:
    ``L_seg = L_st(P1, G) + L_st(P2, G)``.

    An objective is called as ``objective(model, images, masks)`` with ``(B, 3, H, W)`` images
    and ``(B, 1, H, W)`` masks and returns ``(loss, output, parts)``: the scalar to minimise,
    the model's :class:`~kdas_utils.models.PolypOutput`, and a dict of named scalar terms for
    the log. An objective that is an ``nn.Module`` with parameters is trained with the model.
    """

    def __init__(self, variant: str = "paper"):
        super().__init__()
        self.variant = variant

    def settings(self) -> dict:
        """What this objective computes, as plain values (see :func:`objective_settings`)."""
        return {"objective": "segmentation", "variant": self.variant}

    def forward(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor):
        out = model(images)
        loss = deep_supervision_loss(out, masks, self.variant)
        return loss, out, {"seg": loss.detach()}


def objective_settings(objective) -> dict | None:
    """``objective.settings()``: the values that decide what an objective computes (its terms
    and weights), or ``None`` for an objective without the method. Checkpoints record them so
    that a run is never resumed, or loaded as finished, under other settings."""
    settings = getattr(objective, "settings", None)
    return settings() if callable(settings) else None


# --------------------------------------------------------------------------- checkpoints


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the step and the batch."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the run."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a ``.part`` file, flushed to disk, then
    renamed over ``path``. An interrupted write leaves the old file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by the engine (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train first or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({error}); delete it and train again") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a KDAS engine checkpoint (format {state.get('format') if isinstance(state, dict) else None!r}, "
            f"expected {CHECKPOINT_FORMAT!r}); official PolypPVT.pth files load with "
            f"kdas_utils.models.load_polyp_pvt"
        )
    return state


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _architecture(model: nn.Module) -> dict:
    """What is needed to rebuild the network (see :func:`load_trained`)."""
    return {"backbone": getattr(model, "backbone_name", None), "channels": getattr(model, "channels", None)}


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the Polyp-PVT network stored in an engine checkpoint (``best.pt`` or
    ``last.pt``) and load its weights; returned in ``eval()`` mode on ``device``."""
    from .models import PolypPVT

    state = load_checkpoint(path)
    arch = state.get("arch") or {}
    if not arch.get("backbone"):
        raise CheckpointError(f"{path}: records no backbone name, so the network cannot be rebuilt")
    model = PolypPVT(arch["backbone"], channels=arch.get("channels") or 32)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        history: one dict per finished epoch (train loss and Dice, validation loss and Dice,
            learning rate, seconds, images/s, and each objective term).
        steps: one dict per step (epoch, step, loss, Dice, lr).
        best_val_dice, best_epoch: the model selected on the validation split.
        best_path, last_path: ``best.pt`` (selected weights) and ``last.pt`` (resumable state).
    """

    history: list[dict]
    steps: list[dict]
    best_val_dice: float
    best_epoch: int
    best_path: Path
    last_path: Path

    def history_frame(self):
        """The epoch history as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.history)

    def steps_frame(self):
        """The step history as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.steps)


def dice_per_image(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``(B,)`` Dice of ``sigmoid(logits) > threshold`` against ``masks > 0.5``; 1 when both are empty."""
    prediction = (torch.sigmoid(logits.float()) > threshold).flatten(1).float()
    target = (masks > 0.5).flatten(1).float()
    inter = (prediction * target).sum(1)
    total = prediction.sum(1) + target.sum(1)
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


# --------------------------------------------------------------------------- the trainer


# Settings that must be those of a checkpoint to resume it or to take it as the finished run.
MUST_MATCH = ("batch_size", "image_size", "seed", "multi_scale", "scales", "max_steps_per_epoch")


def settings_changed(state: dict, config: "TrainConfig", objective=None) -> list[str]:
    """``"<name>: <saved> there, <asked> here"`` for every setting of the checkpoint ``state``
    that differs from ``config`` (the fields of :data:`MUST_MATCH`) or from ``objective``'s
    :func:`objective_settings` (``None`` is the default :class:`SegmentationObjective`).
    Checkpoints older than the objective record are compared on ``config`` only."""
    saved = state["config"]
    changed = [f"{k}: {saved.get(k)} there, {getattr(config, k)} here" for k in MUST_MATCH
               if tuple(np.atleast_1d(saved.get(k))) != tuple(np.atleast_1d(getattr(config, k)))]
    if "objective_settings" in state:
        there = state["objective_settings"] or {}
        asked = objective_settings(objective if objective is not None else SegmentationObjective()) or {}
        changed += [f"objective {k}: {there.get(k)} there, {asked.get(k)} here"
                    for k in dict.fromkeys([*asked, *there]) if there.get(k) != asked.get(k)]
    return changed


class Trainer:
    """Trains ``model`` on ``train_set`` with ``objective`` and selects it on ``val_set``.

    Args:
        model: the network; its output must have ``.logits`` ``(B, 1, H, W)``.
        train_set: a :class:`~kdas_utils.data.PolypDataset` with a training transform.
        val_set: a :class:`~kdas_utils.data.PolypDataset` with an evaluation transform.
        config: a :class:`TrainConfig`.
        out_dir: where ``last.pt`` and ``best.pt`` go.
        objective: ``objective(model, images, masks) -> (loss, output, parts)``;
            default :class:`SegmentationObjective`.
        device: ``None`` chooses (see :func:`select_device`).
        name: a label for bars and logs.
    """

    def __init__(self, model: nn.Module, train_set, val_set, config: TrainConfig, out_dir: str | Path,
                 objective: Callable | None = None, device=None, name: str = "model"):
        self.config, self.name = config, name
        self.out_dir = Path(out_dir)
        self.device = _distributed_device(device)
        self.rank, self.world = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.precision = choose_precision(self.device, config.amp)
        self.channels_last = self.device.type == "cuda" if config.channels_last is None else config.channels_last
        memory_format = torch.channels_last if self.channels_last else torch.preserve_format
        sync_bn = self.device.type == "cuda" if config.sync_bn is None else config.sync_bn
        if self.world > 1 and sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device, memory_format=memory_format)  # the network itself (saved, validated)
        self.network = self.model  # what the objective calls: the model, or its DDP wrapper
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.network = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.objective = objective if objective is not None else SegmentationObjective()
        if isinstance(self.objective, nn.Module):
            self.objective.to(self.device)
        if config.compile:
            self.network = torch.compile(self.network)
            if hasattr(self.objective, "compile_teacher"):
                self.objective.compile_teacher()
        self.train_set, self.val_set = train_set, val_set
        self.trainable = self._parameters()  # the model's and the objective's, in the optimiser's order
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.lr, weight_decay=config.weight_decay,
                                           fused=self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.scaler)
        self.steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * self.world))
        if config.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        total = config.epochs * self.steps_per_epoch * len(config.sizes())
        self.scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
                          if config.schedule == "cosine" else torch.optim.lr_scheduler.ConstantLR(self.optimizer, 1.0, 0))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self._train_loader: DataLoader | None = None
        self.history: list[dict] = []
        self.steps: list[dict] = []
        self.best = {"val_dice": -1.0, "epoch": -1}

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def _parameters(self) -> list[nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(self.objective, nn.Module):
            params += [p for p in self.objective.parameters() if p.requires_grad]
        return params

    def _float_buffers(self) -> list[torch.Tensor]:
        """BatchNorm running statistics and other floating-point buffers of the model."""
        return [b for b in self.model.buffers() if b.is_floating_point()]

    # ----------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where the run is now."""
        return {
            "format": CHECKPOINT_FORMAT, "kind": "last", "name": self.name, "arch": _architecture(self.model),
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict() if isinstance(self.objective, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "rng": _rng_state(), "history": self.history, "steps": self.steps, "best": self.best,
            "config": dataclasses.asdict(self.config), "precision": self.precision.name,
            "objective_settings": objective_settings(self.objective),
        }

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def save_last(self) -> Path:
        """Write ``last.pt`` (process 0 only; the others wait for it)."""
        if self.is_main:
            save_checkpoint(self.state_dict(), self.last_path)
        self._barrier()
        return self.last_path

    def _save_best(self, val_dice: float) -> None:
        self.best = {"val_dice": val_dice, "epoch": self.epoch + 1}
        if not self.is_main:
            return
        save_checkpoint({
            "format": CHECKPOINT_FORMAT, "kind": "best", "name": self.name, "arch": _architecture(self.model),
            "model": self.model.state_dict(), "epoch": self.epoch + 1, "step": self.step, "val_dice": val_dice,
            "config": dataclasses.asdict(self.config), "objective_settings": objective_settings(self.objective),
        }, self.best_path)

    def load_state_dict(self, state: dict, source: Path | str = "checkpoint") -> None:
        """Restore a :meth:`state_dict`; refuses one made with a different data order, size or objective."""
        changed = settings_changed(state, self.config, self.objective)
        if changed:
            raise CheckpointError(f"{source}: was made with other settings ({'; '.join(changed)}); resume with the "
                                  f"same settings, or pass resume=False (or another out_dir) to start afresh")
        self.model.load_state_dict(state["model"])
        if isinstance(self.objective, nn.Module):
            self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.history, self.steps, self.best = list(state["history"]), list(state["steps"]), dict(state["best"])
        _set_rng_state(state["rng"])

    # ----------------------------------------------------------------- steps

    def _autocast(self):
        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.dtype)

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        images = batch["image"].to(self.device, non_blocking=non_blocking)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, batch["mask"].to(self.device, non_blocking=non_blocking)

    def _check_finite(self, loss: torch.Tensor, batch: dict, scale_index: int) -> None:
        if torch.isfinite(loss).item():
            return
        # The parameters have not been touched by this loss, but the forward pass has updated the
        # BatchNorm running statistics with it: put back their copy from before the batch. At the
        # first scale of a batch the model is then exactly the state after the previous step.
        resumable = False
        if scale_index == 0:
            with torch.no_grad():
                for buffer, before in zip(self._float_buffers(), self._buffers_before):
                    buffer.copy_(before)
            resumable = all(torch.isfinite(t).all() for t in self.model.state_dict().values() if t.is_floating_point())
        if resumable:
            saved = f"the state before it is saved in {self.save_last()}"
        elif self.last_path.exists():
            saved = f"the last good checkpoint, {self.last_path}, was kept as it was"
        else:
            saved = "no checkpoint had been written yet"
        names = ", ".join(batch["name"][:8]) + (" ..." if len(batch["name"]) > 8 else "")
        raise NonFiniteLossError(
            f"{self.name}: loss is {loss.item()} at epoch {self.epoch + 1}, step {self.step + 1} "
            f"(batch {self.batch_in_epoch + 1} of the epoch, frames {names}); {saved}. Lower the learning "
            f"rate, switch amp='off', or check those frames."
        )

    def train_step(self, batch: dict) -> dict:
        """One batch: at each training size, forward, loss, backward, clip, optimiser step."""
        self.network.train()
        images, masks = self._to_device(batch)
        record = {}
        with torch.no_grad():
            self._buffers_before = [b.clone() for b in self._float_buffers()]
        for scale_index, size in enumerate(self.config.sizes()):
            x, y = images, masks
            if size != images.shape[-1]:
                x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=True)
                y = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=True)
            with self._autocast():
                loss, out, parts = self.objective(self.network, x, y)
            self._check_finite(self._mean_over_processes(loss.detach()), batch, scale_index)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.config.clip_value is not None:
                nn.utils.clip_grad_value_(self.trainable, self.config.clip_value)
            if self.config.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.trainable, self.config.clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if size == images.shape[-1] or not record:
                values = torch.stack([loss.detach().float(), dice_per_image(out.logits.detach(), y).mean(),
                                      *[v.float() for v in parts.values()]])
                values = self._mean_over_processes(values).tolist()
                record = {"loss": values[0], "dice": values[1], **dict(zip(parts, values[2:]))}
        return record

    def _mean_over_processes(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ``torchrun`` processes (itself in a single process)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        return value / self.world

    @torch.inference_mode()
    def validate(self) -> dict:
        """Mean segmentation loss and mean Dice at 0.5 over the validation images."""
        self.model.eval()
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False,
                            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda")
        losses, dices = [], []
        for batch in loader:
            images, masks = self._to_device(batch)
            with self._autocast():
                out = self.model(images)
            losses.append(deep_supervision_loss(out, masks).item() * len(images))
            dices.append(dice_per_image(out.logits, masks))
        return {"val_loss": sum(losses) / len(self.val_set), "val_dice": torch.cat(dices).mean().item()}

    # ----------------------------------------------------------------- the loop

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        """The training loader positioned at ``(epoch, start_batch)``. It is made once per
        :meth:`fit` (worker processes persist across epochs); each epoch only moves its sampler."""
        if self._train_loader is None:
            workers = self.config.num_workers
            sampler = EpochSampler(len(self.train_set), self.config.seed, epoch, rank=self.rank, world=self.world,
                                   batch_size=self.config.batch_size)
            self._train_loader = DataLoader(
                SeededItems(self.train_set), batch_size=self.config.batch_size, sampler=sampler, num_workers=workers,
                pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                prefetch_factor=4 if workers else None)
        self._train_loader.sampler.epoch = epoch
        self._train_loader.sampler.start = start_batch * self.config.batch_size
        return self._train_loader

    def _log(self, message: str) -> None:
        if self.config.progress and self.is_main:
            tqdm.write(message)

    def fit(self, resume: bool = True, on_step: Callable[["Trainer", dict], None] | None = None) -> TrainResult:
        """Train to ``config.epochs``; with ``resume`` continue from ``out_dir/last.pt`` if it exists.

        ``on_step(trainer, record)`` is called after every step (after any checkpoint of that step).
        """
        if resume and self.last_path.exists():
            self.load_state_dict(load_checkpoint(self.last_path), self.last_path)
            self._log(f"{self.name}: resumed from {self.last_path} at epoch {self.epoch + 1}, step {self.step}")
        else:
            torch.manual_seed(self.config.seed)
        cfg = self.config
        show = cfg.progress and self.is_main
        epochs = tqdm(total=cfg.epochs, initial=self.epoch, desc=self.name, unit="epoch", disable=not show)
        while self.epoch < cfg.epochs:
            started = time.perf_counter()
            bar = tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch, leave=False, unit="step",
                       desc=f"epoch {self.epoch + 1}/{cfg.epochs}", disable=not show)
            done_before = self.batch_in_epoch
            for batch in self._loader(self.epoch, self.batch_in_epoch):
                if self.batch_in_epoch >= self.steps_per_epoch:
                    break
                record = self.train_step(batch)
                self.batch_in_epoch += 1
                self.step += 1
                record = {"epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                          "images": len(batch["name"]) * self.world, **record}
                self.steps.append(record)
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.3f}", dice=f"{record['dice']:.3f}")
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                    self.save_last()
                if on_step is not None:
                    on_step(self, record)
            bar.close()
            self._end_epoch(started, done_before)
            epochs.update()
        epochs.close()
        return TrainResult(self.history, self.steps, self.best["val_dice"], self.best["epoch"],
                           self.best_path, self.last_path)

    def _end_epoch(self, started: float, done_before: int) -> None:
        seconds = time.perf_counter() - started
        this_epoch = [s for s in self.steps if s["epoch"] == self.epoch + 1]
        summary = {"epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"]}
        for key in this_epoch[0]:
            if key not in ("epoch", "step", "lr", "images"):
                summary["train_" + key] = float(np.mean([s[key] for s in this_epoch]))
        summary.update(self.validate() if self.is_main else {"val_loss": float("nan"), "val_dice": float("nan")})
        images_done = sum(s["images"] for s in this_epoch[done_before:])
        summary.update(seconds=round(seconds, 2), images_per_s=round(images_done / seconds, 2))
        self.history.append(summary)
        improved = summary["val_dice"] > self.best["val_dice"]
        if improved:
            self._save_best(summary["val_dice"])
        self.epoch += 1
        self.batch_in_epoch = 0
        self.save_last()
        self._log(f"{self.name} epoch {summary['epoch']}/{self.config.epochs}: loss {summary['train_loss']:.4f}, "
                  f"val loss {summary['val_loss']:.4f}, val Dice {summary['val_dice']:.4f}"
                  f"{' (best so far)' if improved else ''}; {seconds:.1f} s, {summary['images_per_s']:.1f} img/s")
