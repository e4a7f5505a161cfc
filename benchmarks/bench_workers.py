"""Speed-up of 2 worker processes over 1 on a plate of 8 wells.

Each well is 2 sites x 2 channels x 3 Z planes of 512 x 512, through the demo
pipeline (normalize, top-hat, Z max projection, nucleus count), so process
start-up is small next to the work. Both runs write identical outputs.

    python benchmarks/bench_workers.py      # prints the speed-up (target >= 1.7 on 2 cores)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from plateflow.execution import run
from plateflow.execution.demo import demo_pipeline
from plateflow.plate import generate_sample_plate

WELLS = tuple(f"{row}{col:02d}" for row in "AB" for col in range(1, 5))


def _outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file() and ".plateflow" not in p.parts and p.suffix in (".tif", ".csv")}


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="plateflow-bench-"))
    try:
        plate_root = generate_sample_plate(scratch / "plate", wells=WELLS, sites=2, channels=2, z_planes=3, size=(512, 512))
        times = {}
        for workers in (1, 2):
            started = time.perf_counter()
            report = run(demo_pipeline(), plate_root, scratch / f"out{workers}", workers=workers, progress=False)
            times[workers] = time.perf_counter() - started
            assert report.ok, report.summary()
        assert _outputs(scratch / "out1") == _outputs(scratch / "out2")
        print(f"plate: {len(WELLS)} wells x 2 sites x 2 channels x 3 Z, 512 x 512 uint16; {os.cpu_count()} CPUs")
        print(f"1 worker  {times[1]:.2f} s")
        print(f"2 workers {times[2]:.2f} s (process start-up included)")
        print(f"speed-up = {times[1] / times[2]:.2f}  (target >= 1.7)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
