"""Fixtures for the reliability corpus: small plates to break, a clean reference run, and a plate guard.

Every test here runs under ``plate_guard`` (autouse): it hashes the pristine
plate, and every plate a test registers with ``plate_guard.watch``, before the
test, and checks byte for byte after it that no input file changed.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.library import registry
from plateflow.plate import generate_sample_plate
from tests.conftest import hash_tree

from . import functions as f

WELLS = ("A01", "A02", "B01")


def pipeline(*extra: FunctionStep) -> list[FunctionStep]:
    """Scale, project Z, measure; ``extra`` steps (fault injectors, identity otherwise) go before the measurement."""
    return [
        FunctionStep(f.half, name="Half", variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), name="Project", variable_components=("z_index",)),
        *extra,
        FunctionStep(f.site_stats, name="Measure", variable_components=("site",)),
    ]


class PlateGuard:
    """Remembers the hashes of watched plates; the fixture checks them after the test."""

    def __init__(self) -> None:
        self.hashes: dict[Path, dict[str, str]] = {}

    def watch(self, root: Path) -> Path:
        self.hashes[Path(root)] = hash_tree(root)
        return Path(root)

    def check(self) -> None:
        for root, before in self.hashes.items():
            assert root.is_dir(), f"the input plate {root} is gone"
            assert hash_tree(root) == before, f"the input plate {root} changed"


@pytest.fixture(scope="session")
def pristine_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 wells x 2 sites x 2 channels x 2 Z, 64 x 64 uint16; never modified (the guard checks)."""
    return generate_sample_plate(tmp_path_factory.mktemp("pristine") / "plate", wells=WELLS, sites=2, channels=2, z_planes=2, size=(64, 64))


@pytest.fixture(autouse=True)
def plate_guard(pristine_plate: Path):
    guard = PlateGuard()
    guard.watch(pristine_plate)
    yield guard
    guard.check()


@pytest.fixture
def make_plate(pristine_plate: Path, tmp_path: Path, plate_guard: PlateGuard) -> Callable[..., Path]:
    """``make_plate(name="plate", damage=None)``: a copy of the pristine plate, damaged, then watched by the guard."""

    def make(name: str = "plate", damage: Callable[[Path], None] | None = None) -> Path:
        root = tmp_path / name
        shutil.copytree(pristine_plate, root)
        if damage is not None:
            damage(root)
        return plate_guard.watch(root)

    return make


@pytest.fixture(scope="session")
def reference(pristine_plate: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean run of ``pipeline()`` on the pristine plate, in this process."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run(pipeline(), pristine_plate, out, workers=1, progress=False)
    assert report.ok, report.summary()
    return out


# -- comparing outputs ---------------------------------------------------------------


def images(root: Path, wells: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """TIFF outputs under ``root`` by relative path (bookkeeping and zarr folders left out)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".zarr")]
        for name in files:
            if name.endswith(".tif") and (wells is None or name.split("_", 1)[0] in wells):
                path = Path(folder) / name
                found[path.relative_to(root).as_posix()] = tifffile.imread(path)
    return found


def table(path: Path, wells: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if wells is None or row["well"] in wells]


def assert_wells_match(out: Path, reference: Path, wells: tuple[str, ...]) -> None:
    """The outputs of ``wells`` in ``out`` are complete and equal to the clean run's."""
    got, expected = images(out, wells), images(reference, wells)
    assert sorted(got) == sorted(expected)
    for relpath, data in expected.items():
        assert got[relpath].dtype == data.dtype
        np.testing.assert_array_equal(got[relpath], data, err_msg=relpath)
    assert table(out / "site_stats.csv", wells) == table(reference / "site_stats.csv", wells)


def assert_same_as_clean_run(out: Path, reference: Path) -> None:
    """Every well's outputs and the merged table equal the clean run's, and no temporary file is left."""
    assert_wells_match(out, reference, WELLS)
    assert (out / "site_stats.csv").read_bytes() == (reference / "site_stats.csv").read_bytes()
    assert not leftovers(out)


def leftovers(out: Path) -> list[str]:
    """Temporary files of unfinished atomic writes under ``out``."""
    return [str(p) for p in out.rglob("*.part")]


def deny_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path, error: int) -> None:
    """Make every atomic write into ``folder`` fail with ``error`` (an errno) when its temp file is created.

    Simulated in this process: tests run as root, where a 0o555 folder does not
    stop writes, so the disk backend's ``tempfile.mkstemp`` is what refuses.
    """
    real = tempfile.mkstemp
    folder = folder.resolve()

    def mkstemp(*args, **kwargs):
        target = Path(kwargs.get("dir") or ".").resolve()
        if target == folder or folder in target.parents:
            raise OSError(error, os.strerror(error), str(target))
        return real(*args, **kwargs)

    from plateflow.vfs.backends import disk

    monkeypatch.setattr(disk.tempfile, "mkstemp", mkstemp)


def wait_for(condition, timeout: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` every 20 ms until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
