"""torch.compile with and without bf16 on this CPU: two standard-profile epochs (capped at STEPS
steps) of the teacher and the KDAS student per setting; the first epoch holds the compilation.

    KDAS_DATA_ROOT=../shared/data/polyp256 python benchmarks/compile_bf16.py [STEPS] [OUT.json]

Result of 2026-12-04: benchmarks/results/checks/compile-cpu-20261204-190500.json (docs/results.md)."""

import json
import sys
from dataclasses import replace

import torch

from kdas_utils import bench, speed
from kdas_utils.config import get_profile

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
OUT = sys.argv[2] if len(sys.argv) > 2 else "compile-cpu.json"
profile = get_profile("standard")
sets = bench._warm_datasets(profile)
settings = [
    ("baseline", speed.BASELINE, False),
    ("new-fp32", replace(speed.NEW, cpu_bf16=False), False),
    ("new-fp32-compiled", replace(speed.NEW, cpu_bf16=False), True),
    ("new-bf16", speed.NEW, False),
    ("new-bf16-compiled", speed.NEW, True),
]
out = {"steps_cap": STEPS, "threads": torch.get_num_threads(), "torch": torch.__version__, "runs": []}
for role in ("teacher", "student"):
    for label, path, compiled in settings:
        tr, _, wall = bench._timed_fit(role, profile, sets, path, epochs=2, max_steps_per_epoch=STEPS, compile=compiled)
        first, second = (h["seconds"] for h in tr.history)
        row = {
            "role": role,
            "setting": label,
            "precision": tr.precision.name,
            "wall_s": wall,
            "first_train_s": first,
            "second_train_s": second,
            "step_s": second / tr.steps_per_epoch,
            "val_dice": [h["val_dice"] for h in tr.history],
        }
        out["runs"].append(row)
        print(json.dumps(row), flush=True)
        with open(OUT, "w") as f:
            json.dump(out, f, indent=2)
