"""The settings of a training run: :class:`TrainConfig`, filled from a profile."""

from __future__ import annotations

from dataclasses import dataclass


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
        amp: ``"auto"`` (bf16/fp16 on CUDA, bf16 on a CPU with native bf16, fp32 elsewhere), ``"bf16"``,
            ``"fp16"`` or ``"off"``.
        channels_last: ``None`` means on CUDA only.
        checkpoint_every: also write ``last.pt`` every this many steps (0: end of epoch only).
        progress: show tqdm bars and a log line per epoch.
        sync_bn: under ``torchrun`` with several processes, synchronise BatchNorm statistics
            across them (``None``: on CUDA; torch's SyncBatchNorm needs a GPU).
        drop_path_rate: stochastic depth of the backbone the network was built with (the
            released code's 0.1); recorded here so that a run is resumed only with the same.
        keep_epochs: after these epochs, also save the weights as ``epoch-<n>.pt`` (same format
            as ``best.pt``), e.g. to distil from teachers of different strength.
        label_fraction: the share of training frames whose masks the run sees (1: all). Below 1,
            the trainer keeps the masks of ``ceil(label_fraction n)`` frames drawn from ``seed``
            and gives the others a NaN mask, which ``L_seg`` leaves out while distillation terms
            still see the frame (:class:`~kdas_utils.data.PartialLabels`); the frames that kept
            their mask are recorded in ``last.pt`` (``labelled``).
        compile: run the training forward passes (the network's, and a distillation
            objective's teacher) through ``torch.compile``. The first step pays the compilation
            (about 2 minutes for the student on a CPU); validation and checkpoints use the
            uncompiled network. Off by default; ``python -m kdas_utils.bench --compile``
            measures whether it helps.
        fused_adamw: AdamW's single kernel for all parameters (torch >= 2.4 on CUDA and the CPU);
            ``False``: its loop over tensors, as before the CPU speed-ups (same numbers to rounding).
        lean_validation: a distilled student validates without the teacher's forward (its
            ``val_loss`` is ``L_seg``; ``val_dice`` and the choice of ``best.pt`` do not change);
            ``False``: the objective's own loss, teacher included, as before the speed-ups.
        Neither is part of a run's identity; ``python -m kdas_utils.bench --epoch-times`` times both
        settings (:mod:`kdas_utils.speed`).
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
    drop_path_rate: float = 0.0
    keep_epochs: tuple[int, ...] = ()
    label_fraction: float = 1.0
    fused_adamw: bool = True
    lean_validation: bool = True

    def __post_init__(self):
        if self.image_size % 32:
            raise ValueError(f"image_size={self.image_size}: must be a multiple of 32 (PVTv2 strides), e.g. 352")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule={self.schedule!r}: choose 'constant' or 'cosine'")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp={self.amp!r}: choose 'auto', 'bf16', 'fp16' or 'off'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}: both must be at least 1")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(
                f"label_fraction={self.label_fraction}: must lie in (0, 1], e.g. 0.25 for a quarter of the masks"
            )

    @classmethod
    def from_profile(cls, profile, **changes) -> TrainConfig:
        """The settings of a :class:`~kdas_utils.config.Profile`, with ``changes`` on top."""
        values = dict(
            epochs=profile.epochs,
            batch_size=profile.batch_size,
            image_size=profile.image_size,
            multi_scale=profile.multi_scale,
            max_steps_per_epoch=profile.max_steps_per_epoch,
            num_workers=profile.num_workers,
            drop_path_rate=profile.drop_path_rate,
        )
        if profile.lr is not None:
            values["lr"] = profile.lr
        values.update(changes)
        return cls(**values)

    def minutes_left(self, seconds_per_epoch: float, epochs_done: int) -> int:
        """The whole minutes, at least 1, that the epochs after ``epochs_done`` take at this pace (the
        "about N min" of the epoch log and of the line a run prints before it starts)."""
        return max(1, round(seconds_per_epoch * (self.epochs - epochs_done) / 60))

    def sizes(self) -> list[int]:
        """Training sizes of one batch: ``round(image_size * rate / 32) * 32`` per rate."""
        if not self.multi_scale:
            return [self.image_size]
        return [int(round(self.image_size * rate / 32) * 32) for rate in self.scales]
