"""plateflow against a hand-written script doing the same 5-step pipeline, one worker.

Both run normalize -> top-hat -> Z max projection -> Otsu threshold -> count
on the same generated plate, with the same kernels (the bundled numpy
functions), reading and writing the same TIFFs and one counts CSV. The ratio
is therefore plateflow's own overhead: listing, grouping, the VFS, plans.

    python benchmarks/bench_vs_script.py            # prints plateflow time / script time (target <= 1.10)
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from plateflow import FunctionStep, special_outputs
from plateflow.execution import run
from plateflow.library import registry
from plateflow.memory import numpy as numpy_type
from plateflow.plate import generate_sample_plate, open_plate

WELLS = ("A01", "A02", "B01", "B02")
RADIUS = 8
REPEATS = 3


@special_outputs("counts", materialize=True)
@numpy_type
def count_objects(stack):
    """Label each mask and count its objects: (stack, one row per image)."""
    rows = [{"slice": i, "objects": int(ndimage.label(plane)[1])} for i, plane in enumerate(stack)]
    return stack, rows


def plateflow_pipeline():
    return [
        FunctionStep(registry.get("numpy.normalize_percentile"), name="normalize", variable_components=("z_index",)),
        FunctionStep((registry.get("numpy.top_hat"), {"radius": RADIUS}), name="top-hat", variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), name="project", variable_components=("z_index",)),
        FunctionStep((registry.get("numpy.threshold_otsu"), {"per_slice": True}), name="threshold", variable_components=("site",)),
        FunctionStep(count_objects, name="count", variable_components=("site",)),
    ]


def script(plate_root: Path, out: Path) -> None:
    """The same pipeline by hand: read each Z stack, process, write the mask and a counts row."""
    normalize = registry.get("numpy.normalize_percentile")
    top_hat = registry.get("numpy.top_hat")
    project = registry.get("numpy.max_projection")
    threshold = registry.get("numpy.threshold_otsu")
    plate = open_plate(plate_root)
    rows = []
    for well in plate.wells:
        files = plate.files_for_well(well)
        for channel in plate.components["channel"]:
            projected = {}
            for site in plate.components["site"]:
                stack_files = sorted((f for f in files if f.site == site and f.channel == channel), key=lambda f: int(f.z_index))
                stack = np.stack([tifffile.imread(plate_root / f.path) for f in stack_files])
                projected[site] = (stack_files[0].path, project(top_hat(normalize(stack), radius=RADIUS))[0])
            sites = list(projected)
            masks = threshold(np.stack([projected[s][1] for s in sites]), per_slice=True)
            for site, mask in zip(sites, masks):
                target = out / projected[site][0]
                target.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(target, mask, photometric="minisblack")
                rows.append({"well": well, "site": site, "channel": channel, "objects": int(ndimage.label(mask)[1])})
    with open(out / "counts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["well", "site", "channel", "objects"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="plateflow-bench-"))
    try:
        plate_root = generate_sample_plate(scratch / "plate", wells=WELLS, sites=4, channels=2, z_planes=3, size=(256, 256))
        script_times, flow_times = [], []
        for i in range(REPEATS):
            for target in (scratch / "script", scratch / "flow"):
                shutil.rmtree(target, ignore_errors=True)
            started = time.perf_counter()
            script(plate_root, scratch / "script")
            script_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = run(plateflow_pipeline(), plate_root, scratch / "flow", workers=1, progress=False)
            flow_times.append(time.perf_counter() - started)
            assert report.ok, report.summary()

        expected = {p.relative_to(scratch / "script").as_posix(): tifffile.imread(p) for p in (scratch / "script").rglob("*.tif")}
        got = {p.relative_to(scratch / "flow").as_posix(): tifffile.imread(p) for p in (scratch / "flow").rglob("*.tif") if ".plateflow" not in p.parts}
        assert expected.keys() == got.keys(), sorted(set(expected) ^ set(got))
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
        with open(scratch / "script" / "counts.csv") as handle:
            script_counts = {(r["well"], r["site"], r["channel"]): r["objects"] for r in csv.DictReader(handle)}
        with open(scratch / "flow" / "counts.csv") as handle:
            flow_counts = {(r["well"], r["site"], r["channel"]): r["objects"] for r in csv.DictReader(handle)}
        assert script_counts == flow_counts

        best_script, best_flow = min(script_times), min(flow_times)
        print(f"plate: {len(WELLS)} wells x 4 sites x 2 channels x 3 Z, 256 x 256 uint16; 1 worker; best of {REPEATS}")
        print(f"outputs equal: {len(expected)} images, {len(flow_counts)} count rows")
        print(f"script    {best_script:.3f} s")
        print(f"plateflow {best_flow:.3f} s")
        print(f"plateflow / script = {best_flow / best_script:.3f}  (target <= 1.10)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
