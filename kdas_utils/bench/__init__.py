"""The benchmark harness: what KDAS costs and saves on this machine (``make bench``).

    python -m kdas_utils.bench [--quick-only] [--notebooks] [--repeats 5] [--out benchmarks/results]

Measures on the current device, with warm-up passes and the median of repeated runs:

1. the distillation step (teacher forward + student forward/backward/step with KDASLoss) at the
   paper's batch and size (16 x 352 px) and at the quick profile's, next to its lower bound
   measured in the same run: the teacher's forward under ``inference_mode`` plus the student's
   own training step (segmentation loss only). The ratio says what distillation adds;
2. inference latency (batch 1) and throughput (batch 16) at 352 px for teacher and student, their
   ratio, and peak memory (RSS on CPU, allocated memory on GPU);
3. data loading: images/s of one loading process, cold (decoding files) and warm (from the
   frame cache), against the images/s the training step consumes;
4. ``kdas predict`` on a video: frames per second end to end (decode, predict, write masks,
   overlays and the overlay video) and in the network alone, with PyTorch and with ONNX Runtime;
   with ``--predict``, in full (:func:`kdas_utils.bench_predict.predict_speed`: each backend and size,
   nothing written, clips of other sizes, memory, where the CPU goes, drawn in
   ``<out>/predict-cpu.png``);
5. with ``--notebooks``: the wall time of each notebook in the quick profile, and of the series;
6. today's path against the new one (:mod:`kdas_utils.speed`): the distillation step of the new
   code against the bound of the code before the speed-ups (``distill_step_ratio_to_old_bound``),
   with ``--epoch-times`` one standard-profile epoch of the teacher and of the KDAS student on
   each path (``epoch_speedup_teacher``, ``epoch_speedup_student``: today's time / the new one),
   and with ``--results-check`` a 3-epoch KDAS student on each (do the results move?).

Prints a table and writes ``<out>/<device>-<date>.json`` with, at the top level, ``device``,
``torch``, ``distill_step_ratio_to_bound``, ``distill_step_ratio_to_old_bound``,
``epoch_speedup_teacher`` and ``epoch_speedup_student`` (``null`` unless ``--epoch-times``),
``student_teacher_latency_ratio`` and ``series_quick_seconds`` (``null`` unless ``--notebooks``),
beside everything else measured. A finished run moves the earlier runs of its device to
``<out>/earlier/``, so that ``<out>`` holds the newest run of each device and nothing else of that
name; the one-off checks (``--int8-check``, ``--predict-only``, ``--profile-step``) write to
``<out>/checks/``.
"""

from .command import main
from .epochs import ROUNDING, epoch_times, int8_check, recipe_epochs, results_check
from .report import archive_earlier_runs, summary
from .steps import Synthetic as _Synthetic  # the name outside checks call
from .steps import data_loading, inference, profile_step, step_times

__all__ = [
    "ROUNDING",
    "_Synthetic",
    "archive_earlier_runs",
    "data_loading",
    "epoch_times",
    "inference",
    "int8_check",
    "main",
    "profile_step",
    "recipe_epochs",
    "results_check",
    "step_times",
    "summary",
]
