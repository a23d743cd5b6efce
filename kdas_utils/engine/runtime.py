"""Where and how a run computes: the device, the precision, the processes of a distributed run,
and the network as the objective calls it (channels-last, SyncBatchNorm, DDP, ``torch.compile``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .train_config import TrainConfig


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


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 numbers in hardware (AVX512-BF16 or AMX: e.g. AMD Zen 4,
    Intel Sapphire Rapids and later). Elsewhere oneDNN only emulates bf16, slower than fp32. Read with
    torch's own CPU checks (private names; a torch without them counts as no)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_precision(device: torch.device, amp: str = "auto") -> Precision:
    """bf16 autocast on CUDA GPUs that support it natively (Ampere and later), fp16 + scaler on
    older ones such as Colab's T4 (which only emulates bf16, slowly); on the CPU bf16 autocast where
    the CPU does bf16 in hardware (:func:`cpu_has_native_bf16`; about 1.45x faster steps measured on
    a 2-core AMD EPYC with AVX512-BF16, see docs/results.md; ``amp="off"`` switches it off) and fp32
    elsewhere; fp32 on Apple MPS. ``amp="bf16"`` asks for bf16 on any CPU, ``"off"`` for fp32."""
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return Precision(None, False)
    if device.type == "cpu":
        native = amp == "auto" and cpu_has_native_bf16()
        return Precision(torch.bfloat16, False) if amp == "bf16" or native else Precision(None, False)
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported(including_emulation=False)):
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``. Under ``torchrun`` (``WORLD_SIZE`` > 1) this starts the process
    group once (NCCL on CUDA, gloo on CPU); in a plain process it returns ``(0, 1)``."""
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


@dataclass
class Runtime:
    """The device, precision and processes of one run, and how the network is wrapped for them.

    Attributes:
        device: where the run computes.
        rank, world: this process and the number of processes (``(0, 1)`` outside ``torchrun``).
        precision: the autocast dtype and whether a gradient scaler is needed.
        channels_last: whether images and weights use the channels-last memory format.
        sync_bn: whether BatchNorm statistics are synchronised across processes.
    """

    device: torch.device
    rank: int
    world: int
    precision: Precision
    channels_last: bool
    sync_bn: bool

    @classmethod
    def setup(cls, config: TrainConfig, device=None) -> Runtime:
        """Choose the device (each ``torchrun`` process its own GPU), start the process group under
        ``torchrun``, and choose the precision and memory format of ``config``."""
        device = _distributed_device(device)
        rank, world = init_distributed(device)
        channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
        sync_bn = device.type == "cuda" if config.sync_bn is None else config.sync_bn
        return cls(device, rank, world, choose_precision(device, config.amp), channels_last, world > 1 and sync_bn)

    @property
    def is_main(self) -> bool:
        """Process 0: the one that validates, writes checkpoints and logs."""
        return self.rank == 0

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the device, in the memory format, with SyncBatchNorm where asked: the network
        that is saved and validated."""
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)

    def wrap(self, model: nn.Module, compile: bool = False) -> nn.Module:
        """What the objective calls in training: ``model``, in DDP across processes, compiled on request."""
        network = model
        if self.world > 1:
            network = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        return torch.compile(network) if compile else network

    def autocast(self):
        """The autocast context of the precision (a null context in fp32)."""
        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.dtype)

    def to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, masks)`` of a batch on the device (images channels-last where asked)."""
        non_blocking = self.device.type == "cuda"
        images = batch["image"].to(self.device, non_blocking=non_blocking)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, batch["mask"].to(self.device, non_blocking=non_blocking)

    def mean_over_processes(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ``torchrun`` processes (itself in a single process)."""
        if self.world == 1:
            return value

        value = value.clone()
        dist.all_reduce(value)
        return value / self.world

    def barrier(self) -> None:
        """Wait for every process (nothing in a single process)."""
        if self.world > 1:
            dist.barrier()
