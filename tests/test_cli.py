"""The ``plateflow`` command: exit codes and what it prints."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.cli import main
from plateflow.plate import generate_sample_plate

PIPELINE = """\
plateflow: 1
name: nuclei
steps:
- name: Normalize
  function: numpy.normalize_percentile
  variable_components: [z_index]
- name: Background
  function: [numpy.top_hat, {radius: 10}]
  variable_components: [z_index]
- name: Project
  function: numpy.max_projection
  variable_components: [z_index]
- name: Measure
  function: numpy.measure_nuclei
  variable_components: [site]
"""

# Loads fine, but no step produces the positions that assemble_tiles needs: a compile error.
BROKEN = PIPELINE.replace("function: numpy.max_projection", "function: numpy.assemble_tiles")


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    return generate_sample_plate(tmp_path_factory.mktemp("cli") / "plate", wells=("A01", "B02"), sites=2, channels=1, z_planes=3, size=(64, 64))


@pytest.fixture
def pipeline_file(tmp_path) -> Path:
    path = tmp_path / "nuclei.yaml"
    path.write_text(PIPELINE)
    return path


def _tiffs(root: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(root).as_posix(): tifffile.imread(p) for p in sorted(root.rglob("*.tif")) if ".plateflow" not in p.parts}


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "plateflow run nuclei.yaml my_plate -o results" in text
    for command in ("run", "check", "sample-plate", "functions", "demo"):
        assert command in text


def test_run_ok(plate, pipeline_file, tmp_path, capsys, plate_hashes):
    before = plate_hashes(plate)
    code = main(["run", str(pipeline_file), str(plate), "-o", str(tmp_path / "out"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "2 well(s) done, 0 failed" in text and "object_counts.csv" in text
    with open(tmp_path / "out" / "object_counts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["well"], r["site"]) for r in rows] == [("A01", "1"), ("A01", "2"), ("B02", "1"), ("B02", "2")]
    assert plate_hashes(plate) == before


def test_run_selected_wells_as_zarr(plate, pipeline_file, tmp_path, capsys):
    code = main(["run", str(pipeline_file), str(plate), "-o", str(tmp_path / "out"), "--wells", "B02", "--format", "zarr", "--workers", "2", "--quiet"])
    assert code == 0, capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "plateflow-manifest.json").read_text())
    assert list(manifest["wells"]) == ["B02"] and manifest["output_format"] == "zarr"
    assert (tmp_path / "out" / "plate.zarr" / "zarr.json").is_file()


def test_run_with_compile_errors_prints_every_diagnostic(plate, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    code = main(["run", str(broken), str(plate), "-o", str(tmp_path / "out"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 1
    assert "nothing was run" in text
    assert "error [special-input-missing] step 3 'Project', special_inputs.positions" in text
    assert not (tmp_path / "out").exists()


def test_run_with_a_failing_well(tmp_path, pipeline_file, capsys):
    plate_root = generate_sample_plate(tmp_path / "plate", wells=("A01", "A02"), sites=1, channels=1, z_planes=3, size=(64, 64))
    victim = plate_root / "TimePoint_1" / "ZStep_2" / "A02_s1_w1.tif"
    victim.write_bytes(victim.read_bytes()[:100])
    code = main(["run", str(pipeline_file), str(plate_root), "-o", str(tmp_path / "out"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 1
    assert "1 well(s) done, 1 failed" in text
    assert "A02 FAILED at step 1 'Normalize'" in text and "A02_s1_w1.tif" in text
    assert "Traceback" in text


def test_check(plate, pipeline_file, tmp_path, capsys):
    assert main(["check", str(pipeline_file)]) == 0
    assert main(["check", str(pipeline_file), str(plate)]) == 0
    assert "0 errors" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    assert main(["check", str(broken), str(plate)]) == 1
    text = capsys.readouterr().out
    assert "error [special-input-missing]" in text and "hint:" in text and "1 error" in text


def test_check_reports_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(PIPELINE.replace("numpy.max_projection", "numpy.max_projectoin").replace("{radius: 10}", "{radiuss: 10}"))
    assert main(["check", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "max_projectoin" in text and "radiuss" in text
    assert main(["check", str(tmp_path / "missing.yaml")]) == 1
    assert "not found" in capsys.readouterr().out


def test_sample_plate_and_functions(tmp_path, capsys):
    assert main(["sample-plate", str(tmp_path / "p"), "--wells", "A01,C03", "--sites", "1", "--channels", "1", "--z", "2", "--size", "64", "--seed", "3"]) == 0
    assert (tmp_path / "p" / "ground_truth.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "p").rglob("*.tif")) == ["A01_s1_w1.tif", "A01_s1_w1.tif", "C03_s1_w1.tif", "C03_s1_w1.tif"]
    assert main(["sample-plate", str(tmp_path / "p")]) == 1  # exists already
    capsys.readouterr()
    assert main(["functions", "--memory-type", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "numpy.top_hat" in text and "torch." not in text


def test_demo(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "demo"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "counted" in text and "truth" in text
    for well in ("A01", "A02", "B01", "B02"):
        assert well in text
    assert (tmp_path / "demo" / "object_counts.csv").is_file()


def _manifest_done(out: Path) -> int:
    try:
        manifest = json.loads((out / "plateflow-manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return sum(1 for entry in manifest["wells"].values() if entry["status"] == "done")


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, pipeline_file):
    wells = [f"{row}{col:02d}" for row in "AB" for col in range(1, 6)]
    plate_root = generate_sample_plate(tmp_path / "plate", wells=wells, sites=1, channels=1, z_planes=3, size=(256, 256))
    command = [sys.executable, "-m", "plateflow", "run", str(pipeline_file), str(plate_root), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([*command, "-o", str(tmp_path / "clean")], env=env, capture_output=True, timeout=120).returncode == 0

    out = tmp_path / "killed"
    process = subprocess.Popen([*command, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _manifest_done(out) < 1 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    done = _manifest_done(out)
    assert 1 <= done < len(wells), f"the kill came at {done} of {len(wells)} wells done"

    result = subprocess.run([*command, "-o", str(out), "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{done} skipped" in result.stdout
    clean, resumed = _tiffs(tmp_path / "clean"), _tiffs(out)
    assert clean.keys() == resumed.keys()
    for name in clean:
        np.testing.assert_array_equal(resumed[name], clean[name])
    for table in ("object_counts.csv", "object_measurements.csv"):
        assert (out / table).read_bytes() == (tmp_path / "clean" / table).read_bytes()
