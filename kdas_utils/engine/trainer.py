"""The training loop: :class:`Trainer` (``fit``, ``train_step``, ``validate``) and its :class:`TrainResult`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.partial import PartialLabels
from ..environment import progress_bars
from ..kdas.losses import is_labelled
from ..kdas.objective import SegmentationObjective, objective_settings
from ..metrics import dice_at
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    NonFiniteLossError,
    architecture,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    settings_changed,
)
from .lock import RunLock
from .runtime import Runtime
from .sampling import EpochSampler, SeededItems
from .step import training_step, validation_pass
from .train_config import TrainConfig


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


def _mean(values: list[float]) -> float:
    """The mean of the finite values, for the training Dice (a step without a labelled frame has
    none); NaN if there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


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

    def __init__(
        self,
        model: nn.Module,
        train_set,
        val_set,
        config: TrainConfig,
        out_dir: str | Path,
        objective: Callable | None = None,
        device=None,
        name: str = "model",
    ):
        self.config, self.name = config, name
        self.out_dir = Path(out_dir)
        self.runtime = Runtime.setup(config, device)
        self.model = self.runtime.place(model)  # the network itself (saved, validated)
        self.objective = objective if objective is not None else SegmentationObjective()
        if isinstance(self.objective, nn.Module):
            self.objective.to(self.device)
        self.network = self.runtime.wrap(self.model, compile=config.compile)  # what the objective calls in training
        if config.compile and hasattr(self.objective, "compile_teacher"):
            self.objective.compile_teacher()
        if config.label_fraction < 1:  # only these frames keep their mask (see TrainConfig.label_fraction)
            train_set = PartialLabels(train_set, config.label_fraction, config.seed)
        self.train_set, self.val_set = train_set, val_set
        self.trainable = self._parameters()  # the model's and the objective's, in the optimiser's order
        self.optimizer = torch.optim.AdamW(
            self.trainable,
            lr=config.lr,
            weight_decay=config.weight_decay,
            # one kernel for all parameters (torch >= 2.4 on the CPU); fused_adamw=False: the loop over tensors
            fused=self.device.type in ("cuda", "cpu") and config.fused_adamw,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.scaler)
        # what training_step does besides the forward and backward passes
        self.step_settings = dict(parameters=self.trainable, clip_value=config.clip_value, clip_norm=config.clip_norm)
        self.step_settings |= dict(precision=self.runtime.autocast, scaler=self.scaler)
        self.steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * self.world))
        if config.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        total = config.epochs * self.steps_per_epoch * len(config.sizes())
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
            if config.schedule == "cosine"
            else torch.optim.lr_scheduler.ConstantLR(self.optimizer, 1.0, 0)
        )
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self._train_loader: DataLoader | None = None
        self.history: list[dict] = []
        self.steps: list[dict] = []
        self.best = {"val_dice": -1.0, "epoch": -1}

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def precision(self):
        return self.runtime.precision

    @property
    def world(self) -> int:
        return self.runtime.world

    @property
    def is_main(self) -> bool:
        return self.runtime.is_main

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
            "format": CHECKPOINT_FORMAT,
            "kind": "last",
            "name": self.name,
            "arch": architecture(self.model),
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict() if isinstance(self.objective, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "rng": rng_state(),
            "history": self.history,
            "steps": self.steps,
            "best": self.best,
            "config": dataclasses.asdict(self.config),
            "precision": self.precision.name,
            "objective_settings": objective_settings(self.objective),
            "labelled": self.train_set.names if isinstance(self.train_set, PartialLabels) else None,
        }

    def save_last(self) -> Path:
        """Write ``last.pt`` (process 0 only; the others wait for it)."""
        if self.is_main:
            save_checkpoint(self.state_dict(), self.last_path)
        self.runtime.barrier()
        return self.last_path

    def _save_weights(self, path: Path, kind: str, val_dice: float) -> None:
        """The network's weights with what rebuilds and describes them (``best.pt``, ``epoch-<n>.pt``)."""
        if not self.is_main:
            return
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "kind": kind,
                "name": self.name,
                "arch": architecture(self.model),
                "model": self.model.state_dict(),
                "epoch": self.epoch + 1,
                "step": self.step,
                "val_dice": val_dice,
                "config": dataclasses.asdict(self.config),
                "objective_settings": objective_settings(self.objective),
            },
            path,
        )

    def _save_best(self, val_dice: float) -> None:
        self.best = {"val_dice": val_dice, "epoch": self.epoch + 1}
        self._save_weights(self.best_path, "best", val_dice)

    def load_state_dict(self, state: dict, source: Path | str = "checkpoint") -> None:
        """Restore a :meth:`state_dict`; refuses one made with a different data order, size or objective."""
        changed = settings_changed(state, self.config, self.objective)
        if changed:
            raise CheckpointError(
                f"{source}: was made with other settings ({'; '.join(changed)}); resume with the "
                f"same settings, or pass resume=False (or another out_dir) to start afresh"
            )
        self.model.load_state_dict(state["model"])
        if isinstance(self.objective, nn.Module):
            self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.history, self.steps, self.best = list(state["history"]), list(state["steps"]), dict(state["best"])
        set_rng_state(state["rng"])

    # ----------------------------------------------------------------- steps

    def _check_finite(self, loss: torch.Tensor, batch: dict, scale_index: int) -> None:
        loss = self.runtime.mean_over_processes(loss.detach())  # every process stops, or none
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
        """One batch: at each training size, :func:`~kdas_utils.engine.step.training_step` (forward, loss,
        backward, clip, optimiser step) and the schedule's step; returns the logged values."""
        self.network.train()
        images, masks = self.runtime.to_device(batch)
        record = {}
        with torch.no_grad():
            self._buffers_before = [b.clone() for b in self._float_buffers()]
        for scale_index, size in enumerate(self.config.sizes()):
            x, y = images, masks
            if size != images.shape[-1]:
                x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=True)
                y = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=True)
            check = functools.partial(self._check_finite, batch=batch, scale_index=scale_index)
            loss, out, parts = training_step(
                self.network, self.objective, self.optimizer, x, y, **self.step_settings, check=check
            )
            self.scheduler.step()
            if size == images.shape[-1] or not record:
                values = torch.stack(
                    [
                        loss.detach().float(),
                        dice_at(torch.sigmoid(out.logits.detach().float()), y)[is_labelled(y)].mean().float(),
                        *[v.float() for v in parts.values()],
                    ]
                )
                values = self.runtime.mean_over_processes(values).tolist()
                record = {"loss": values[0], "dice": values[1], **dict(zip(parts, values[2:]))}
        return record

    @torch.inference_mode()
    def validate(self) -> dict:
        """The mean loss and the mean Dice at 0.5 (:func:`kdas_utils.metrics.dice_at`) over the
        validation images, with the network in ``eval()`` mode. The loss is the objective's, except
        that an objective with a ``validation_objective()`` (a distilled student's: ``L_seg`` without
        the teacher) uses that one, unless ``TrainConfig(lean_validation=False)``."""
        objective = self.objective
        if self.config.lean_validation and hasattr(objective, "validation_objective"):
            objective = objective.validation_objective()
        loader = DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        return validation_pass(self.model, objective, loader, self.runtime.autocast, self.runtime.to_device)

    # ----------------------------------------------------------------- the loop

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        """The training loader positioned at ``(epoch, start_batch)``. It is made once per
        :meth:`fit` (worker processes persist across epochs); each epoch only moves its sampler."""
        if self._train_loader is None:
            workers = self.config.num_workers
            sampler = EpochSampler(
                len(self.train_set),
                self.config.seed,
                epoch,
                rank=self.runtime.rank,
                world=self.world,
                batch_size=self.config.batch_size,
            )
            self._train_loader = DataLoader(
                SeededItems(self.train_set),
                batch_size=self.config.batch_size,
                sampler=sampler,
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=workers > 0,
                prefetch_factor=4 if workers else None,
            )
        self._train_loader.sampler.epoch = epoch
        self._train_loader.sampler.start = start_batch * self.config.batch_size
        return self._train_loader

    def _log(self, message: str) -> None:
        if self.config.progress and self.is_main:
            tqdm.write(message)

    def fit(self, resume: bool = True, on_step: Callable[[Trainer, dict], None] | None = None) -> TrainResult:
        """Train to ``config.epochs``; with ``resume`` continue from ``out_dir/last.pt`` if it exists.

        ``on_step(trainer, record)`` is called after every step (after any checkpoint of that step).
        The run folder is held for the whole fit (:class:`~kdas_utils.engine.lock.RunLock`): a second
        process that trains into it gets :class:`~kdas_utils.engine.lock.RunLockedError`.
        """
        with RunLock(self.out_dir) if self.is_main else contextlib.nullcontext():
            return self._fit(resume, on_step)

    def _fit(self, resume: bool, on_step: Callable[[Trainer, dict], None] | None) -> TrainResult:
        if resume and self.last_path.exists():
            self.load_state_dict(load_checkpoint(self.last_path), self.last_path)
            where = f"{self.last_path.parent.name}/{self.last_path.name}"
            self._log(f"{self.name}: resumed from {where} at epoch {self.epoch + 1}, step {self.step}")
        else:
            torch.manual_seed(self.config.seed)
        cfg = self.config
        bars = cfg.progress and self.is_main and progress_bars()  # the per-epoch log line follows cfg.progress only
        epochs = tqdm(total=cfg.epochs, initial=self.epoch, desc=self.name, unit="epoch", disable=not bars)
        while self.epoch < cfg.epochs:
            started = time.perf_counter()
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.batch_in_epoch,
                leave=False,
                unit="step",
                desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                disable=not bars,
            )
            done_before = self.batch_in_epoch
            for batch in self._loader(self.epoch, self.batch_in_epoch):
                if self.batch_in_epoch >= self.steps_per_epoch:
                    break
                record = self.train_step(batch)
                self.batch_in_epoch += 1
                self.step += 1
                record = {
                    "epoch": self.epoch + 1,
                    "step": self.step,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "images": len(batch["name"]) * self.world,
                    **record,
                }
                self.steps.append(record)
                bar.update()
                bar.set_postfix(loss=f"{record['loss']:.3f}", dice=f"{record['dice']:.3f}")
                if (
                    cfg.checkpoint_every
                    and self.step % cfg.checkpoint_every == 0
                    and self.batch_in_epoch < self.steps_per_epoch
                ):
                    self.save_last()
                if on_step is not None:
                    on_step(self, record)
            bar.close()
            self._end_epoch(started, done_before)
            epochs.update()
        epochs.close()
        return TrainResult(
            self.history, self.steps, self.best["val_dice"], self.best["epoch"], self.best_path, self.last_path
        )

    def _end_epoch(self, started: float, done_before: int) -> None:
        seconds = time.perf_counter() - started
        this_epoch = [s for s in self.steps if s["epoch"] == self.epoch + 1]
        summary = {"epoch": self.epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"]}
        for key in this_epoch[0]:
            if key not in ("epoch", "step", "lr", "images"):
                values = [s[key] for s in this_epoch]  # a NaN term (the released L_AT) stays NaN in the mean
                summary["train_" + key] = _mean(values) if key == "dice" else float(np.mean(values))
        summary.update(self.validate() if self.is_main else {"val_loss": float("nan"), "val_dice": float("nan")})
        images_done = sum(s["images"] for s in this_epoch[done_before:])
        summary.update(seconds=round(seconds, 2), images_per_s=round(images_done / seconds, 2))
        self.history.append(summary)
        improved = summary["val_dice"] > self.best["val_dice"]
        if improved:
            self._save_best(summary["val_dice"])
        if self.epoch + 1 in self.config.keep_epochs:
            self._save_weights(self.out_dir / f"epoch-{self.epoch + 1}.pt", "snapshot", summary["val_dice"])
        self.epoch += 1
        self.batch_in_epoch = 0
        self.save_last()
        self._log(
            f"{self.name} epoch {summary['epoch']}/{self.config.epochs}: loss {summary['train_loss']:.4f}, "
            f"val loss {summary['val_loss']:.4f}, val Dice {summary['val_dice']:.4f}"
            f"{' (best so far)' if improved else ''}; {seconds:.1f} s, {summary['images_per_s']:.1f} img/s"
            f"{self._time_left(seconds)}"
        )

    def _time_left(self, seconds: float) -> str:
        """``"; about 3 min to go"`` from this epoch's time, or ``""`` after the last epoch."""
        left = self.config.epochs - self.epoch
        return f"; about {self.config.minutes_left(seconds, self.epoch)} min to go" if left > 0 else ""
