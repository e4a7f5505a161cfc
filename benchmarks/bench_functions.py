"""Per-function times on a 512 x 512 x 4 stack for each memory type, and the sample pipelines' time per well.

Run: ``.venv/bin/python benchmarks/bench_functions.py [--memory-types numpy torch ...] [--repeats 3]``

Every registered bundled function whose library runs here is called with its
default options (plus the cases named in ``EXTRA_CASES``) on a synthetic
fluorescence stack: 4 images of 512 x 512 ``uint16`` with nuclei-like blobs on
a slowly varying background. Functions that take masks or labels get the
stack's Otsu mask or nucleus labels; the assay steps get their special inputs.
A time is the best of ``--repeats`` calls, after one warm-up call (which
compiles OpenCL kernels and fills caches), or the first call alone when it
takes over 2 s; for torch, pyclesperanto and cupy it
includes moving the result back to the host, which is what waits for the device.

Then the demo pipeline (``plateflow demo``) and the assay pipeline (nuclei,
cells, measurements) run in-process on the bundled sample plate, and the wall
time per well is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (4, 512, 512)

#: Extra (function, options) cases timed besides the defaults.
EXTRA_CASES: dict[str, list[dict[str, Any]]] = {
    "top_hat": [{"radius": 50, "downsample": 4}, {"radius": 50, "downsample": 8}],
}
#: A call slower than this is timed once (its first call) instead of best of the repeats.
SLOW_SECONDS = 2.0
#: Cases too slow to repeat on a 2-core machine: timed once on one image.
ONE_IMAGE_CASES: dict[str, list[dict[str, Any]]] = {"top_hat": [{"radius": 50, "downsample": 1}]}

MASK_INPUT = {"label", "binary_erosion", "binary_dilation", "binary_opening", "binary_closing", "fill_holes", "remove_small_objects"}
LABEL_INPUT = {"expand_labels", "remove_border_objects"}


def synthetic_stack(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    images = []
    for _ in range(SHAPE[0]):
        image = 200 + 150 * np.sin(yy / 140.0) + 100 * np.cos(xx / 170.0)
        for _ in range(120):
            cy, cx = rng.integers(0, SHAPE[1], 2)
            radius = rng.uniform(6, 12)
            image += rng.uniform(600, 1500) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (radius / 1.5) ** 2))
        images.append(rng.poisson(np.clip(image, 0, None)).astype(np.uint16))
    return np.stack(images)


def inputs(stack: np.ndarray) -> dict[str, Any]:
    from plateflow.library import numpy_functions as nf

    mask = nf.threshold_otsu(stack)
    labels = nf.segment_nuclei(stack)
    _, nuclei = nf.identify_nuclei(stack, nuclei_channel=0)
    _, cells, cytoplasm = nf.identify_cells(stack, nuclei_labels=nuclei, cell_channel=1)
    tiles = stack[:, :256, :256]
    # The plate operations' values, estimated from this stack as a plate step would from its sample.
    _, illumination = nf.estimate_illumination(stack)
    _, percentiles = nf.estimate_plate_percentiles(stack)
    return {"mask": mask, "labels": labels, "nuclei": nuclei, "cells": cells, "cytoplasm": cytoplasm, "tiles": tiles,
            "illumination": illumination, "percentiles": percentiles}


def arguments(operation: str, stack: np.ndarray, data: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """The stack and the special inputs one operation is timed with."""
    if operation in MASK_INPUT:
        return data["mask"], {}
    if operation in LABEL_INPUT:
        return data["labels"], {}
    if operation == "identify_cells":
        return stack, {"nuclei_labels": data["nuclei"]}
    if operation == "measure_objects":
        return stack, {"nuclei_labels": data["nuclei"], "cell_labels": data["cells"], "cytoplasm_labels": data["cytoplasm"]}
    if operation == "assemble_tiles":
        return data["tiles"], {"positions": [(0, 0), (0, 230), (230, 0), (230, 230)]}
    if operation == "find_tile_positions":
        return data["tiles"], {}
    if operation == "correct_illumination":
        return stack, {"illumination": data["illumination"]}
    if operation == "normalize_plate_percentiles":
        return stack, {"percentiles": data["percentiles"]}
    return stack, {}


def converters(memory_type: str) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], Any]]:
    from plateflow.memory import convert

    if memory_type == "numpy":
        return (lambda a: a), (lambda r: r)

    def to_host(result: Any) -> Any:
        values = result if isinstance(result, tuple) else (result,)
        return [convert(v, memory_type, "numpy") if hasattr(v, "shape") else v for v in values]

    return (lambda a: convert(a, "numpy", memory_type)), to_host


def best_time(call: Callable[[], Any], repeats: int) -> float:
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    if first > SLOW_SECONDS:  # slow enough that warm-up effects do not matter: do not repeat it
        return first
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_functions(memory_types: list[str], repeats: int) -> None:
    from plateflow.library import registry

    stack = synthetic_stack()
    data = inputs(stack)
    print(f"per-function time on a {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]} uint16 stack (best of {repeats}, ms)")
    for memory_type in memory_types:
        names = [n for n in registry.names(memory_type=memory_type) if registry.info(n).plugin is None]
        if not names:
            continue
        if not registry.info(names[0]).available:
            print(f"\n{memory_type}: skipped ({registry.info(names[0]).unavailable_reason})")
            continue
        to_device, to_host = converters(memory_type)
        print(f"\n{memory_type} ({len(names)} functions)")
        for name in names:
            operation = name.split(".", 1)[1]
            func = registry.get(name)
            image, specials = arguments(operation, stack, data)
            device_image = to_device(image)
            device_specials = {k: to_device(v) if isinstance(v, np.ndarray) else v for k, v in specials.items()}
            for options in [{}, *EXTRA_CASES.get(operation, [])]:
                seconds = best_time(lambda: to_host(func(device_image, **device_specials, **options)), repeats)
                shown = ", ".join(f"{k}={v}" for k, v in options.items())
                print(f"  {operation + (f' ({shown})' if shown else ''):52s} {seconds * 1000:10.1f}")
            for options in ONE_IMAGE_CASES.get(operation, []):
                one = to_device(image[:1])
                start = time.perf_counter()
                to_host(func(one, **options))
                shown = ", ".join(f"{k}={v}" for k, v in options.items())
                print(f"  {operation} ({shown}) [1 image, once]{'':10s} {(time.perf_counter() - start) * 1000:10.1f}")


def assay_pipeline() -> Any:
    from plateflow import FunctionStep, Pipeline
    from plateflow.library import registry

    get = registry.get
    per_site = ("channel",)
    return Pipeline(
        [
            FunctionStep(func=get("numpy.max_projection"), variable_components=("z_index",), name="project"),
            FunctionStep(func=get("numpy.identify_nuclei"), variable_components=per_site, name="nuclei"),
            FunctionStep(func=get("numpy.identify_cells"), variable_components=per_site, name="cells"),
            FunctionStep(func=get("numpy.measure_objects"), variable_components=per_site, name="measure"),
        ],
        name="assay",
    )


def bench_pipelines() -> None:
    import plateflow
    from plateflow.execution.demo import demo_pipeline
    from plateflow.plate import open_plate

    plate_dir = ROOT / "sample_data" / "plate"
    if not plate_dir.is_dir():
        print(f"\nno sample plate at {plate_dir}: pipelines skipped")
        return
    wells = len(open_plate(plate_dir).wells)
    print(f"\nsample pipelines on {plate_dir.relative_to(ROOT)} ({wells} wells), in-process (workers=1)")
    for label, pipeline in (("demo", demo_pipeline()), ("assay", assay_pipeline())):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            report = plateflow.run(pipeline, plate_dir, Path(out) / "out", workers=1, progress=False)
            seconds = time.perf_counter() - start
        failed = f", {len(report.failed)} failed" if report.failed else ""
        print(f"  {label:8s} {seconds / wells * 1000:10.1f} ms per well ({seconds:.2f} s in all{failed})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-types", nargs="*", default=["numpy", "torch", "pyclesperanto", "cupy"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pipelines", action="store_true")
    args = parser.parse_args(argv)
    bench_functions(args.memory_types, args.repeats)
    if not args.no_pipelines:
        bench_pipelines()
    return 0


if __name__ == "__main__":
    sys.exit(main())
