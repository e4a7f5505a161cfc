"""Running on a Dask cluster gives the same outputs as running here."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep
from plateflow.execution import run
from plateflow.library import registry

from . import functions as f
from .conftest import tree_bytes

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as dask_client:
        yield dask_client
    cluster.close()


def _pipeline():
    return [
        FunctionStep(registry.get("numpy.normalize_percentile"), variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), variable_components=("z_index",)),
        FunctionStep(f.site_stats, variable_components=("site",)),
    ]


def test_dask_cluster_outputs_equal_local_run(client, four_well_plate, tmp_path, plate_hashes):
    before = plate_hashes(four_well_plate)
    local = run(_pipeline(), four_well_plate, tmp_path / "local", workers=1, progress=False)
    remote = run(_pipeline(), four_well_plate, tmp_path / "dask", scheduler=client, progress=False)
    assert local.ok and remote.ok, remote.summary()
    assert remote.succeeded == local.succeeded == ["A01", "A02", "B01", "B02"]
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "local")
    assert plate_hashes(four_well_plate) == before


def test_dask_by_address_and_failures(client, tmp_path):
    from .conftest import make_plate

    import numpy as np
    import tifffile

    plate_root = make_plate(tmp_path / "plate", wells=("A01", "A02"), sites=1, channels=1)
    for path in plate_root.rglob("A02_*.tif"):
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.uint16))
    report = run([FunctionStep(f.fail_on_seven)], plate_root, tmp_path / "out", scheduler=client.scheduler.address, progress=False)
    assert report.succeeded == ["A01"] and list(report.failed) == ["A02"]
    assert "all sevens" in report.failed["A02"].error
