"""Peak memory of each worker process against the size of one well's input images.

Two workers run 4 wells (2 sites x 2 channels x 3 Z of 1024 x 1024 uint16,
24 MiB of pixels per well) through top-hat -> Z max projection -> Otsu
threshold -> count, with intermediates in memory. A thread samples every
worker's RSS (psutil) every 10 ms. A worker's baseline is its smallest RSS
(the interpreter and libraries, before any well); what a well adds is the
peak above it.

    python benchmarks/bench_memory.py       # prints (peak - baseline) / well input (target < 2)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from scipy import ndimage

from plateflow import FunctionStep, special_outputs
from plateflow.execution import run
from plateflow.library import registry
from plateflow.memory import numpy as numpy_type
from plateflow.plate import generate_sample_plate, open_plate

WELLS = ("A01", "A02", "B01", "B02")
MiB = 1024 * 1024


@special_outputs("counts", materialize=True)
@numpy_type
def count_objects(stack):
    return stack, [{"slice": i, "objects": int(ndimage.label(plane)[1])} for i, plane in enumerate(stack)]


def pipeline():
    return [
        FunctionStep((registry.get("numpy.top_hat"), {"radius": 5}), variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), variable_components=("z_index",)),
        FunctionStep((registry.get("numpy.threshold_otsu"), {"per_slice": True}), variable_components=("site",)),
        FunctionStep(count_objects, variable_components=("site",)),
    ]


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="plateflow-bench-"))
    try:
        plate_root = generate_sample_plate(scratch / "plate", wells=WELLS, sites=2, channels=2, z_planes=3, size=(1024, 1024), compression=None)
        plate = open_plate(plate_root)
        well_bytes = len(plate.files_for_well(WELLS[0])) * plate.image_shape[0] * plate.image_shape[1] * plate.dtype.itemsize

        samples: dict[int, list[int]] = {}
        parents: dict[int, int] = {}
        stop = threading.Event()
        me = psutil.Process()

        def sample() -> None:
            while not stop.is_set():
                for child in me.children(recursive=True):
                    try:
                        if "resource_tracker" in " ".join(child.cmdline()):
                            continue
                        rss = child.memory_info().rss
                        parents[child.pid] = child.ppid()
                    except psutil.Error:
                        continue
                    if rss:
                        samples.setdefault(child.pid, []).append(rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        report = run(pipeline(), plate_root, scratch / "out", workers=2, progress=False)
        stop.set()
        sampler.join()
        assert report.ok, report.summary()

        # Workers are the processes with no child of their own (not the fork server or resource tracker)
        # that grew while running wells.
        has_children = set(parents.values())
        workers = {pid: v for pid, v in samples.items() if pid not in has_children and max(v) - min(v) > 4 * MiB}
        print(f"plate: {len(WELLS)} wells x 2 sites x 2 channels x 3 Z, 1024 x 1024 uint16; one well's input = {well_bytes / MiB:.1f} MiB; 2 workers")
        worst = 0.0
        for pid, values in sorted(workers.items()):
            peak, base = max(values), min(values)
            ratio = (peak - base) / well_bytes
            worst = max(worst, ratio)
            print(f"worker {pid}: baseline {base / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, peak - baseline = {(peak - base) / MiB:.1f} MiB = {ratio:.2f} x one well's input")
        print(f"worst (peak - baseline) / well input = {worst:.2f}  (target < 2)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
