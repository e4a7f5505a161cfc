"""Exported scripts rebuild the same pipeline and run from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plateflow.io import UnregisteredFunctionError, export_script
from plateflow.memory import numpy as numpy_type
from plateflow.patterns import normalize_pattern
from plateflow import FunctionStep

from .test_pipeline_file import _assert_same, _pipeline


def test_exec_of_the_builder_reproduces_the_pipeline() -> None:
    original = _pipeline()
    text = export_script(original)
    assert "from plateflow.library.numpy_functions import gaussian_filter as numpy_gaussian_filter" in text
    assert "from plateflow.library.torch_functions import top_hat as torch_top_hat" in text
    namespace: dict = {"__name__": "exported"}
    exec(compile(text, "exported.py", "exec"), namespace)  # noqa: S102 - the test's own generated code
    rebuilt = namespace["build_pipeline"]()
    _assert_same(rebuilt, original)
    assert normalize_pattern(rebuilt[3].func).chain_for("3")[0].kwargs["weights"] == (0.5, 1.5)


def test_script_check_only_prints_the_steps(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.py"
    export_script(_pipeline(), path)
    done = subprocess.run([sys.executable, str(path), "--check-only"], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[:4] == ["1. Project (z_index)", "2. Blur (site)", "3. Chain (site)", "4. Per channel (site, z_index)"]
    help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--workers" in help_text and "plate" in help_text and "-o OUT" in help_text


def test_unregistered_functions_cannot_be_exported() -> None:
    @numpy_type
    def local(stack):
        return stack

    with pytest.raises(UnregisteredFunctionError, match="step 1 'local'"):
        export_script([FunctionStep(local)])


def test_script_runs_a_plate_in_worker_processes_and_prints_a_summary(tmp_path: Path) -> None:
    from plateflow.execution.demo import demo_pipeline
    from plateflow.plate import generate_sample_plate

    plate = generate_sample_plate(tmp_path / "plate", wells=("A01", "B02"), sites=1, channels=2, z_planes=2, size=(64, 64))
    path = tmp_path / "count nuclei.py"
    export_script(demo_pipeline(), path)
    assert 'if __name__ == "__main__":' in path.read_text()  # worker processes re-import the script
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(path), str(plate), "-o", str(out), "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("2 well(s) done, 0 failed, 0 skipped in ") and f"outputs in {out}" in first
    assert "RunReport(" not in done.stdout
    assert (out / "object_counts.csv").is_file()
