"""Compile speed: a 10-step pipeline for 96/192/384 wells, and check() without a plate.

Targets (issue 5): 384 wells in under 0.5 s, linear in wells; check() of a
10-step pipeline without a plate under 5 ms (issue 14: also a 10-step pipeline of
bundled functions whose declared rules are checked, with and without a plate). The plate is a real index of
placeholder files (one tiny TIFF hard-linked everywhere), opened once.

Run: .venv/bin/python benchmarks/bench_compile.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from plateflow import FunctionStep, Pipeline, check, compile_pipeline, special_inputs, special_outputs
from plateflow.memory import numpy
from plateflow.plate import open_plate


@numpy
def normalize(stack, low: float = 1.0, high: float = 99.0):
    return stack


@numpy
def blur(stack, sigma: float = 1.0):
    return stack


@special_outputs("positions")
@numpy
def find_positions(stack):
    return stack, []


@special_inputs("positions")
@numpy
def assemble(stack, positions):
    return stack


@special_outputs("counts", materialize=True)
@numpy
def count(stack, min_size: int = 10):
    return stack, []


def ten_step_pipeline() -> Pipeline:
    return Pipeline(
        [
            FunctionStep(func=(normalize, {"low": 2.0}), name="normalize"),
            FunctionStep(func=(blur, {"sigma": 2.0}), name="blur"),
            FunctionStep(func={"1": blur, "2": [blur, blur]}, group_by="channel", name="per channel"),
            FunctionStep(func=find_positions, name="find"),
            FunctionStep(func=[blur, (blur, {"sigma": 3.0})], name="chain"),
            FunctionStep(func=blur, variable_components=("z_index",), name="z"),
            FunctionStep(func=assemble, name="assemble"),
            FunctionStep(func=blur, force_disk_output=True, name="saved"),
            FunctionStep(func=normalize, name="renormalize"),
            FunctionStep(func=count, name="count"),
        ]
    )


def bundled_pipeline() -> Pipeline:
    """Ten bundled functions with rules to check (odd windows, percentile order, one weight per channel)."""
    from plateflow.library import registry

    get = registry.get
    return Pipeline(
        [
            FunctionStep(func=(get("numpy.normalize_percentile"), {"low_percentile": 2.0, "high_percentile": 98.0})),
            FunctionStep(func=(get("numpy.median_filter"), {"size": 5})),
            FunctionStep(func=(get("numpy.gaussian_filter"), {"sigma": 1.5})),
            FunctionStep(func=[get("numpy.top_hat"), (get("numpy.threshold_local"), {"block_size": 35})]),
            FunctionStep(func=(get("numpy.composite_channels"), {"weights": (1.0, 0.5, 0.5, 1.0)}), variable_components=("channel",)),
            FunctionStep(func=(get("numpy.unsharp_mask"), {"radius": 1.0, "amount": 0.5})),
            FunctionStep(func=get("numpy.max_projection"), variable_components=("z_index",)),
            FunctionStep(func=(get("numpy.threshold_otsu"), {"per_slice": True})),
            FunctionStep(func=(get("numpy.label"), {"connectivity": 2})),
            FunctionStep(func=(get("numpy.segment_nuclei"), {"sigma": 1.0, "min_size": 20})),
        ]
    )


def median_ms(fn, runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def make_plate(root: Path, rows: int, cols: int, sites: int = 9, channels: int = 4) -> Path:
    template = root / "template.tif"
    tifffile.imwrite(template, np.zeros((8, 8), np.uint16))
    plate = root / f"plate_{rows * cols}"
    plate.mkdir()
    for r in range(rows):
        for c in range(cols):
            well = f"{chr(65 + r)}{c + 1:02d}"
            for s in range(1, sites + 1):
                for w in range(1, channels + 1):
                    os.link(template, plate / f"{well}_s{s}_w{w}.tif")
    return plate


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    pipeline = ten_step_pipeline()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        plates = {n: make_plate(Path(tmp), r, c) for n, (r, c) in {96: (8, 12), 192: (16, 12), 384: (16, 24)}.items()}
        print("compile a 10-step pipeline (plate indexed once, not timed):")
        per_well = {}
        for wells, path in plates.items():
            plate = open_plate(path)
            seconds = best_of(5, lambda: compile_pipeline(pipeline, plate, output_root=Path(tmp) / "out"))
            per_well[wells] = seconds / wells
            print(f"  {wells:4d} wells: {seconds * 1000:7.1f} ms  ({seconds / wells * 1e6:6.1f} us per well)")
        total_384 = per_well[384] * 384
        spread = max(per_well.values()) / min(per_well.values())
        print(f"  384 wells in {total_384:.3f} s (target < 0.5 s): {'ok' if total_384 < 0.5 else 'MISSED'}")
        print(f"  per-well time ratio max/min across sizes: {spread:.2f} (1.0 = perfectly linear)")
        ok &= total_384 < 0.5

        bundled = bundled_pipeline()
        small = open_plate(plates[96])
        check(bundled, small)  # load the registry and warm the caches
        assert [d for d in check(bundled, small) if d.severity == "error"] == [], check(bundled, small)
        with_plate = median_ms(lambda: check(bundled, small))
        print(f"check() of 10 bundled functions with their rules, 96-well plate: median {with_plate:.2f} ms")

    without_plate = median_ms(lambda: check(bundled))
    print(f"check() of 10 bundled functions with their rules, no plate: median {without_plate:.2f} ms (target < 5 ms): {'ok' if without_plate < 5 else 'MISSED'}")
    ok &= without_plate < 5

    runs = []
    for _ in range(200):
        start = time.perf_counter()
        check(pipeline)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    print(f"check() of the 10-step pipeline without a plate: median {median * 1000:.2f} ms (target < 5 ms): {'ok' if median < 0.005 else 'MISSED'}")
    ok &= median < 0.005
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
