"""Outputs on the bundled sample plate stay exactly what they were (issue 19's refactor guard).

A fixed pipeline, every parameter given explicitly, runs in-process on
``sample_data/plate``. Each output image's decoded pixels (dtype, shape and
bytes) and each table's parsed rows are hashed and compared with constants
recorded from the code before the compiled plan drove execution. Hashing
decoded arrays and parsed rows (not file bytes) keeps the guard independent of
TIFF compression and CSV number formatting.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

import plateflow
from plateflow import FunctionStep, Pipeline
from plateflow.library import registry

SAMPLE_PLATE = Path(__file__).resolve().parents[2] / "sample_data" / "plate"


def fingerprint_pipeline() -> Pipeline:
    get = registry.get
    return Pipeline(
        [
            # A projection over z: the next step reads one plane per (site, channel).
            FunctionStep(func=get("numpy.max_projection"), variable_components=("z_index",), name="project"),
            FunctionStep(
                func={
                    "1": (get("numpy.gaussian_filter"), {"sigma": 1.5}),
                    "2": [(get("numpy.top_hat"), {"radius": 5}), (get("numpy.gaussian_filter"), {"sigma": 1.0})],
                },
                group_by="channel",
                name="per channel",
            ),
            # Written to disk mid-pipeline; the next step reads that folder.
            FunctionStep(
                func=(get("numpy.normalize_percentile"), {"low_percentile": 1.0, "high_percentile": 99.5, "target_min": 0.0, "target_max": 1.0, "clip": True}),
                force_disk_output=True,
                name="normalize",
            ),
            FunctionStep(
                func={"1": (get("numpy.measure_nuclei"), {"sigma": 1.0, "min_size": 20, "min_distance": 4})},
                group_by="channel",
                name="measure",
            ),
            FunctionStep(
                func=[(get("numpy.threshold_otsu"), {"per_slice": True}), (get("numpy.label"), {"connectivity": 1})],
                variable_components=("site",),
                name="label",
            ),
        ],
        name="fingerprint",
    )


def _array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _cell(text: str) -> str:
    """A CSV cell as a canonical value: numbers by value (so formatting may change), the rest as text."""
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(round(number, 6))


def _table_digest(path: Path) -> str:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    canonical = [sorted((key, _cell(value)) for key, value in row.items()) for row in rows]
    return hashlib.sha256(repr(canonical).encode()).hexdigest()


def output_fingerprints(out: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(out):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(out).as_posix()
            if name.endswith(".tif"):
                found[relative] = _array_digest(tifffile.imread(path))
            elif name.endswith(".csv"):
                found[relative] = _table_digest(path)
    return found


def combined(fingerprints: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(fingerprints.items())).encode()).hexdigest()


# Recorded from the code before issue 19 (plans drive execution); must never change.
EXPECTED_FILE_COUNT = 50
EXPECTED_COMBINED = "93fedfc801f794206e0bff5a55c8778456402a0526c6ddc55cc60da3ae286e4e"
EXPECTED_SAMPLES: dict[str, str] = {
    "TimePoint_1/ZStep_1/A01_s1_w1.tif": "4bbebb574fe991a4ed9cd2a5f37baa5a68a21cb9d262b175b3f0d69cf5e6c20e",
    "steps/03_normalize/TimePoint_1/ZStep_1/B02_s4_w2.tif": "f6a3f08e4fb8661f933ba0c02719463586d5d8d59d14810214a6aabc1d788d88",
    "object_counts.csv": "1ffcfdaeebf7dd6f62d98cc79d207d3814d79fe2e73fc09d09afa3eb317eb913",
    "object_measurements.csv": "8fee1ce6468e88ebdb02fef6264141d585b131a5336183f66259c34a4dffe3d3",
}


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("fingerprint") / "out"
    report = plateflow.run(fingerprint_pipeline(), SAMPLE_PLATE, out, workers=1)
    assert report.ok, report.summary()
    return output_fingerprints(out)


def test_every_output_file_is_fingerprinted(fingerprints):
    images = [p for p in fingerprints if p.endswith(".tif")]
    tables = [p for p in fingerprints if p.endswith(".csv")]
    # 4 wells x 4 sites x 2 channels, projected over z: 32 planes in the force_disk_output folder;
    # the dict step after it names channel 1 only, so the last step writes 16 planes.
    assert len([p for p in images if p.startswith("steps/03_normalize/")]) == 32
    assert len([p for p in images if not p.startswith("steps/")]) == 16
    assert all(p.endswith("_w1.tif") for p in images if not p.startswith("steps/"))
    assert sorted(tables) == ["object_counts.csv", "object_measurements.csv"]
    assert len(fingerprints) == EXPECTED_FILE_COUNT


def test_outputs_are_unchanged(fingerprints):
    for path, digest in EXPECTED_SAMPLES.items():
        assert fingerprints.get(path) == digest, path
    assert combined(fingerprints) == EXPECTED_COMBINED
