"""One run on all the cores against one run per core, side by side: which trains more steps an hour?

Trains the standard profile's teacher and KDAS student (real frames, a teacher of random weights
for the student: the time does not depend on the weights) for two epochs capped at STEPS steps,
first alone with every thread, then as two processes at once with one thread each; the second
epoch's seconds per step, and the steps an hour of the machine in each arrangement.

    KDAS_DATA_ROOT=../shared/data/polyp256 python benchmarks/threads.py [STEPS] [OUT.json]

Result of 2026-12-04: benchmarks/results/checks/threads-cpu-20261204-*.json (docs/results.md)."""

import json
import os
import subprocess
import sys
import time

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--worker" else 30
OUT = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] != "--worker" else "threads-cpu.json"


def worker(role: str, steps: int) -> None:
    """One run in this process (threads from OMP_NUM_THREADS); prints one JSON line."""
    import torch

    from kdas_utils import bench, speed
    from kdas_utils.config import get_profile

    profile = get_profile("standard")
    sets = bench._warm_datasets(profile)
    trainer, _, wall = bench._timed_fit(role, profile, sets, speed.NEW, epochs=2, max_steps_per_epoch=steps)
    second = trainer.history[1]["seconds"]
    print(
        json.dumps(
            {
                "role": role,
                "threads": torch.get_num_threads(),
                "precision": trainer.precision.name,
                "step_s": second / trainer.steps_per_epoch,
                "wall_s": wall,
            }
        ),
        flush=True,
    )


def runs(role: str, threads: int, processes: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--worker", role, str(STEPS)]
    started = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for process in started:
        out, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed ({role}, {threads} threads): exit {process.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]))
        raise SystemExit(0)
    cores = os.cpu_count()
    report = {"steps_cap": STEPS, "cores": cores, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for role in ("teacher", "student"):
        alone = runs(role, cores, 1)
        side = runs(role, 1, cores)
        per_hour_alone = 3600 / alone[0]["step_s"]
        per_hour_side = sum(3600 / r["step_s"] for r in side)
        report[role] = {
            "alone": alone,
            "side_by_side": side,
            "steps_per_hour_alone": per_hour_alone,
            "steps_per_hour_side_by_side": per_hour_side,
            "side_by_side_gain": per_hour_side / per_hour_alone,
        }
        print(json.dumps({role: report[role]}, indent=2), flush=True)
        with open(OUT, "w") as f:
            json.dump(report, f, indent=2)
