"""Several student runs at once, one process each (this series' choice, for small images on a CPU).

At the quick profile's 64 px a training step is mostly the overhead of launching many small operations,
which a second core barely shortens: two runs side by side, one core each, finish sooner than the same
two one after the other on both cores (measured here: 1.4x; docs/results.md). Each run is the same
:func:`~kdas_utils.runs.train_student` call as always, in a process of its own; this process then loads
the finished runs. Nothing about a run depends on where it trained, apart from the rounding of its
arithmetic (a run on one thread and on two agree to about 1e-6 per step).

    from kdas_utils.side_by_side import train_side_by_side
    runs_ = train_side_by_side(profile, [(StudentRecipe("kdas", alpha=0.1), 0), (StudentRecipe("no-kd"), 0)])
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch

from .config import Profile
from .kdas import ARMS
from .runs import Run, StudentRecipe, finished_state, train_student, train_teacher


def default_jobs(device=None) -> int:
    """Two processes on a CPU with two cores or more, else one (a GPU trains one run at a time)."""
    on_cpu = device in (None, "cpu") and not torch.cuda.is_available() or str(device) == "cpu"
    return min(2, os.cpu_count() or 1) if on_cpu else 1


def _use_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _train(profile: Profile, recipe: StudentRecipe, seed: int, device) -> None:
    train_student(profile, recipe, seed, device=device, progress=False)


def train_side_by_side(
    profile: Profile, plan: list[tuple[StudentRecipe, int]], jobs: int | None = None, device=None
) -> list[Run]:
    """Train the ``(recipe, seed)`` runs of ``plan`` that have not finished, ``jobs`` at a time (default
    :func:`default_jobs`), each process with its share of the CPU threads; then load every run of ``plan``
    here, in order. The teacher is trained (or loaded) first, here, when a run needs it.

    Raises:
        The first error of a run (after the others have stopped).
    """
    jobs = jobs or default_jobs(device)
    if any(recipe.uses_teacher and recipe.teacher_epoch is None for recipe, _ in plan):
        train_teacher(profile, device=device)  # before the workers, who would each wait for it
    todo = [(recipe, seed) for recipe, seed in plan if not _done(profile, recipe, seed)]
    todo.sort(key=lambda item: ARMS[item[0].arm] is None)  # the distilled (longer) runs first
    if jobs > 1 and len(todo) > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe from a notebook's kernel
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_use_threads, initargs=(threads,)) as pool:
            for future in [pool.submit(_train, profile, recipe, seed, device) for recipe, seed in todo]:
                future.result()
    return [train_student(profile, recipe, seed, device=device, progress=False) for recipe, seed in plan]


def _done(profile: Profile, recipe: StudentRecipe, seed: int) -> bool:
    return finished_state(recipe.folder(profile, seed), recipe.epochs or profile.epochs) is not None
