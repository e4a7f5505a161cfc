"""Compiling against a real (generated) ImageXpress plate, opened once."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, check, compile_pipeline
from plateflow.compiler import CompileError
from plateflow.config import GlobalConfig
from plateflow.plate import open_plate

from .functions import blur, count, project


@pytest.fixture(scope="module")
def real_plate(sample_plate_dir):
    return open_plate(sample_plate_dir)


def test_compile_every_well_of_a_real_plate(real_plate, tmp_path):
    pipeline = [
        FunctionStep(func={"1": (blur, {"sigma": 2.0}), "2": blur}, group_by="channel", name="Blur"),
        FunctionStep(func=project, variable_components=("z_index",), name="Project"),
        FunctionStep(func=count, name="Count"),
    ]
    contexts = compile_pipeline(pipeline, real_plate, output_root=tmp_path / "out")
    assert list(contexts) == ["A01", "B02"]
    first = contexts["B02"].plans()[0]
    assert first["input_dir"] == str(real_plate.root) and first["well_id"] == "B02"
    assert first["func"].keys == ("1", "2")
    assert contexts["B02"].plans()[2]["output_dir"] == str(tmp_path / "out")


def test_group_keys_checked_against_the_real_channels(real_plate):
    diagnostics = check([FunctionStep(func={"1": blur, "4": blur}, group_by="channel")], real_plate)
    assert [(d.code, d.field, d.hint) for d in diagnostics if d.severity == "error"] == [
        ("unknown-group-key", "func['4']", "values of channel on this plate: 1, 2"),
    ]


def test_zarr_config_describes_the_plate(real_plate, tmp_path):
    contexts = compile_pipeline([FunctionStep(func=blur)], real_plate, config=GlobalConfig(output_format="zarr"), output_root=tmp_path)
    zarr_config = contexts["A01"].plans()[0]["zarr_config"]
    assert zarr_config["store_path"] == f"{tmp_path}/plate.zarr"
    assert zarr_config["wells"] == ("A01", "B02") and zarr_config["sites"] == ("1", "2")
    assert zarr_config["channels"] == ("1", "2")


def test_path_to_plate_is_opened_for_you(sample_plate_dir):
    contexts = compile_pipeline([FunctionStep(func=blur)], sample_plate_dir, wells=["A01"])
    assert list(contexts) == ["A01"]
    with pytest.raises(CompileError):
        compile_pipeline([FunctionStep(func=blur)], sample_plate_dir, wells=["H12"])
