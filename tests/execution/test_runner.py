"""Whole plates: processes, failures, tables, zarr output, manifest and resume."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import tifffile

from plateflow import CompileError, FunctionStep, GlobalConfig
from plateflow.execution import run
from plateflow.execution.demo import demo_pipeline
from plateflow.library import registry

from . import functions as f
from .conftest import make_plate, read_tree, tree_bytes


def _pipeline():
    return [
        FunctionStep(registry.get("numpy.normalize_percentile"), variable_components=("z_index",)),
        FunctionStep(registry.get("numpy.max_projection"), variable_components=("z_index",)),
        FunctionStep(f.site_stats, variable_components=("site",)),
    ]


@pytest.fixture(scope="module")
def reference(four_well_plate, tmp_path_factory):
    """The pipeline run in this process, one well after another."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = run(_pipeline(), four_well_plate, out, workers=1, progress=False)
    assert report.ok, report.summary()
    return out


def test_workers_give_identical_outputs(four_well_plate, reference, tmp_path, plate_hashes):
    before = plate_hashes(four_well_plate)
    report = run(_pipeline(), four_well_plate, tmp_path / "out", workers=2, progress=False)
    assert report.ok and report.succeeded == ["A01", "A02", "B01", "B02"]
    assert tree_bytes(tmp_path / "out") == tree_bytes(reference)
    assert plate_hashes(four_well_plate) == before


def test_merged_table_has_well_and_component_columns(reference):
    with open(reference / "site_stats.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames[:6] == ["well", "site", "channel", "z_index", "timepoint", "slice"]
    assert len(rows) == 4 * 2 * 2  # wells x channels x sites, one row per site
    assert [(r["well"], r["channel"], r["site"]) for r in rows[:4]] == [("A01", "1", "1"), ("A01", "1", "2"), ("A01", "2", "1"), ("A01", "2", "2")]
    assert {r["z_index"] for r in rows} == {"1"}
    image = tifffile.imread(reference / "TimePoint_1" / "ZStep_1" / "A01_s2_w1.tif")
    assert float(rows[1]["mean"]) == pytest.approx(float(image.mean()))


def test_manifest_records_each_well(reference):
    manifest = json.loads((reference / "plateflow-manifest.json").read_text())
    assert manifest["plateflow_version"]
    assert manifest["config"]["output_format"] == "tiff"
    assert set(manifest["wells"]) == {"A01", "A02", "B01", "B02"}
    entry = manifest["wells"]["A01"]
    assert entry["status"] == "done"
    assert sorted(entry["outputs"]) == sorted(p for p in read_tree(reference) if "A01_" in p)
    assert entry["tables"] == {"site_stats": ".plateflow/tables/site_stats/A01.csv"}
    assert manifest["tables"] == {"site_stats": "site_stats.csv"}


def test_failing_well_does_not_stop_the_others(tmp_path):
    plate_root = make_plate(tmp_path / "plate", wells=("A01", "A02", "B01"), sites=1, channels=1)
    for path in plate_root.rglob("A02_*.tif"):
        tifffile.imwrite(path, np.full((64, 64), 7, dtype=np.float32) / 2)
    report = run([FunctionStep(f.double), FunctionStep(f.fail_on_seven, name="Check")], plate_root, tmp_path / "out", workers=2, progress=False)
    assert report.succeeded == ["A01", "B01"]
    assert list(report.failed) == ["A02"]
    failure = report.failed["A02"]
    assert failure.step_index == 1 and failure.step_name == "Check" and failure.function == "fail_on_seven"
    assert "this well is all sevens" in failure.error
    assert "fail_on_seven" in failure.traceback and "ValueError" in failure.traceback
    manifest = json.loads((tmp_path / "out" / "plateflow-manifest.json").read_text())
    assert manifest["wells"]["A02"]["status"] == "failed"
    assert "all sevens" in manifest["wells"]["A02"]["error"]["error"]


def test_compile_errors_run_nothing(small_plate, tmp_path):
    steps = [FunctionStep((registry.get("numpy.top_hat"), {"radiuss": 3}))]
    with pytest.raises(CompileError) as caught:
        run(steps, small_plate, tmp_path / "out", progress=False)
    assert any("radiuss" in d.field for d in caught.value.diagnostics)
    assert not (tmp_path / "out").exists()


def test_output_inside_plate_is_refused(small_plate):
    with pytest.raises(ValueError, match="inside the plate"):
        run([FunctionStep(f.double)], small_plate, small_plate / "out", progress=False)


def test_zarr_output_equals_tiff_output(four_well_plate, reference, tmp_path):
    report = run(_pipeline(), four_well_plate, tmp_path / "out", workers=2, output_format="zarr", progress=False)
    assert report.ok, report.summary()
    import zarr

    store = tmp_path / "out" / "plate.zarr"
    root = zarr.open_group(str(store), mode="r")
    assert root.attrs["ome"]["plate"]["field_count"] == 2
    tiffs = read_tree(reference)
    for well in ("A01", "B02"):
        row, column = well[0], str(int(well[1:]))
        for field, site in enumerate(("1", "2")):
            array = np.asarray(root[f"{row}/{column}/{field}/0"])
            assert array.shape == (1, 2, 1, 64, 64)  # (t, c, z, y, x): Z projected away
            for c, channel in enumerate(("1", "2")):
                np.testing.assert_array_equal(array[0, c, 0], tiffs[f"TimePoint_1/ZStep_1/{well}_s{site}_w{channel}.tif"])
    with open(tmp_path / "out" / "site_stats.csv") as a, open(reference / "site_stats.csv") as b:
        assert a.read() == b.read()


def test_zarr_from_global_config(small_plate, tmp_path):
    report = run([FunctionStep(f.double)], small_plate, tmp_path / "out", config=GlobalConfig(output_format="zarr"), progress=False)
    assert report.ok, report.summary()
    import zarr

    array = np.asarray(zarr.open_array(str(tmp_path / "out" / "plate.zarr" / "A" / "1" / "0" / "0"), mode="r"))
    assert array.shape == (1, 2, 3, 64, 64)
    raw = tifffile.imread(small_plate / "TimePoint_1" / "ZStep_2" / "A01_s1_w2.tif")
    np.testing.assert_array_equal(array[0, 1, 1], raw * 2)


def test_resume_skips_done_wells_and_redoes_the_rest(tmp_path):
    plate_root = make_plate(tmp_path / "plate", wells=("A01", "A02", "B01"), sites=1, channels=1)
    out = tmp_path / "out"
    first = run(_pipeline(), plate_root, out, workers=1, progress=False)
    assert first.ok
    expected = tree_bytes(out)
    # Lose one output of A02 and pretend B01 was cut short.
    lost = out / "TimePoint_1" / "ZStep_1" / "A02_s1_w1.tif"
    lost.unlink()
    manifest_path = out / "plateflow-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["wells"]["B01"] = {"status": "running", "outputs": [], "tables": {}}
    manifest_path.write_text(json.dumps(manifest))
    (out / "site_stats.csv").unlink()
    stale = out / "steps" / "B01_s1_w1.tif"
    stale.parent.mkdir()
    stale.write_bytes(b"half a file")
    second = run(_pipeline(), plate_root, out, workers=1, resume=True, progress=False)
    assert second.skipped == ["A01"]
    assert second.succeeded == ["A02", "B01"]
    # A file no manifest recorded is not plateflow's to delete: it stays, byte for byte.
    assert stale.read_bytes() == b"half a file"
    stale.unlink()
    assert tree_bytes(out) == expected
    third = run(_pipeline(), plate_root, out, workers=1, resume=True, progress=False)
    assert third.skipped == ["A01", "A02", "B01"] and not third.succeeded
    assert tree_bytes(out) == expected


def test_resume_refuses_another_pipeline(small_plate, tmp_path):
    run([FunctionStep(f.double)], small_plate, tmp_path / "out", workers=1, progress=False)
    with pytest.raises(ValueError, match="pipeline differs"):
        run([FunctionStep(f.add_one)], small_plate, tmp_path / "out", workers=1, resume=True, progress=False)


def test_non_table_materialized_values_are_saved(small_plate, tmp_path):
    report = run([FunctionStep(f.peak_value, variable_components=("z_index",))], small_plate, tmp_path / "out", wells=["A01"], progress=False)
    assert report.ok and not report.tables
    saved = sorted((tmp_path / "out" / "peak").glob("A01_*.npy"))
    assert len(saved) == 4 and np.load(saved[0]).shape == (3,)


def test_demo_pipeline_counts_match_ground_truth(tmp_path):
    plate_root = make_plate(tmp_path / "plate", wells=("A01", "B02"), sites=2, channels=2, size=(128, 128))
    report = run(demo_pipeline(), plate_root, tmp_path / "out", workers=1, progress=False)
    assert report.ok, report.summary()
    with open(report.tables["object_counts"], newline="") as handle:
        counted = {(r["well"], r["site"]): int(r["object_count"]) for r in csv.DictReader(handle)}
    with open(plate_root / "ground_truth.csv", newline="") as handle:
        truth = {(r["well"], r["site"]): int(r["nucleus_count"]) for r in csv.DictReader(handle)}
    assert set(counted) == set(truth)
    for key, value in truth.items():
        assert abs(counted[key] - value) <= max(2, 0.1 * value)


def test_workers_that_die_idle_are_replaced(four_well_plate, tmp_path, monkeypatch):
    # Each worker ends right after sending its well's result: the parent must start
    # another for the wells still waiting, not leave them unrun (and call them cancelled).
    from plateflow.execution import executors

    monkeypatch.setattr(executors, "_worker_main", f.worker_exiting_after_each_well)
    # A slow callback: each worker has surely exited by the time the parent would give it the next well.
    report = run([FunctionStep(f.double)], four_well_plate, tmp_path / "out", workers=2, progress=False, on_well=lambda _: time.sleep(0.3))
    assert report.succeeded == ["A01", "A02", "B01", "B02"], report.summary()
    assert report.ok and not report.cancelled


def test_manifest_records_a_well_before_on_well_sees_it(small_plate, tmp_path):
    out = tmp_path / "out"

    def on_well(result):
        manifest = json.loads((out / "plateflow-manifest.json").read_text())
        assert manifest["wells"][result.well]["status"] == "done"
        raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        run([FunctionStep(f.double)], small_plate, out, workers=1, progress=False, on_well=on_well)
    manifest = json.loads((out / "plateflow-manifest.json").read_text())
    assert manifest["wells"]["A01"]["status"] == "done"


def test_new_filemanager_protects_the_plate_folder_given_as_path_str_or_plate(tmp_path):
    # A pathlib.Path has a ``root`` attribute too ("/"): it must not turn the whole file system read-only.
    from plateflow.execution.well import new_filemanager
    from plateflow.vfs import ProtectedPathError

    plate_dir = tmp_path / "plate"
    plate_dir.mkdir()
    for given in (plate_dir, str(plate_dir)):
        fm = new_filemanager(given)
        fm.save({"a": 1}, tmp_path / "out" / "ok.json", "disk")
        with pytest.raises(ProtectedPathError):
            fm.save({"a": 1}, plate_dir / "no.json", "disk")
