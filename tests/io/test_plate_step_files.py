"""Plate steps in pipeline files and exported scripts: scope and sample round-trip; bad values are diagnostics."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, Pipeline
from plateflow.io import dump_pipeline, parse_pipeline
from plateflow.io.pipeline_file import PipelineFileError
from plateflow.library import registry


def _pipeline() -> Pipeline:
    return Pipeline([
        FunctionStep((registry.get("numpy.estimate_illumination"), {"dark_offset": 100.0}), name="Field", scope="plate", group_by="channel",
                     sample_wells=("A01", "B03"), sample_sites=("1",)),
        FunctionStep(registry.get("numpy.correct_illumination"), name="Correct"),
    ])


def test_plate_step_round_trips_and_per_well_steps_are_unchanged():
    text = dump_pipeline(_pipeline())
    assert "scope: plate" in text and text.count("scope:") == 1
    field, correct = parse_pipeline(text)
    assert (field.scope, field.sample_wells, field.sample_sites, field.group_by) == ("plate", ("A01", "B03"), ("1",), "channel")
    assert (correct.scope, correct.sample_wells, correct.sample_sites) == ("well", None, None)


def test_script_export_keeps_the_scope(tmp_path):
    from plateflow.io import export_script

    path = tmp_path / "pipeline.py"
    export_script(_pipeline(), path)
    source = path.read_text()
    assert "scope='plate'" in source and "sample_wells=('A01', 'B03')" in source and "sample_sites=('1',)" in source


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ("scope: plates", "scope", "unknown scope 'plates'"),
        ("sample_wells: A01", "sample_wells", "expected a list of well ids"),
        ("sample_sites: [1]", "sample_sites", "sample_sites is only for plate steps"),
    ],
)
def test_bad_plate_keys_are_file_diagnostics(entry, field, message):
    text = f"plateflow: 1\nname: p\nsteps:\n  - function: numpy.correct_illumination\n    {entry}\n"
    with pytest.raises(PipelineFileError) as info:
        parse_pipeline(text)
    (d,) = info.value.diagnostics
    assert d.field == field and d.message.startswith(message) and d.line == 5
