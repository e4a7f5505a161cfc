"""Plate steps in the builder: a badge saying so, the model keeping the scope, the estimated field as a layer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plateflow import FunctionStep
from plateflow.library import illumination as il
from plateflow.napari._model import StepModel
from plateflow.napari._step_list import BADGES_ROLE
from plateflow.napari._widget import PipelineBuilderWidget

from .conftest import wait_for_tuning

pytestmark = pytest.mark.gui


def _steps():
    return [
        FunctionStep((il.estimate_illumination, {"dark_offset": 0.0, "smoothing_sigma": 4.0}), name="Field", scope="plate",
                     sample_wells=("A01", "A02"), visualize=True),
        FunctionStep(il.correct_illumination, name="Correct", variable_components=("z_index",)),
    ]


def test_the_model_keeps_a_plate_steps_scope_and_sample():
    model = StepModel.from_step(_steps()[0])
    assert (model.scope, model.sample_wells, model.sample_sites) == ("plate", ("A01", "A02"), None)
    for step in (model.to_step(), model.clone().to_step()):
        assert (step.scope, step.sample_wells, step.sample_sites) == ("plate", ("A01", "A02"), None)


def test_builder_marks_the_plate_step_and_shows_the_field(make_napari_viewer, qtbot, tuning_plate):
    viewer = make_napari_viewer()
    builder = PipelineBuilderWidget(viewer, plate=tuning_plate)
    viewer.window.add_dock_widget(builder, name="Pipeline builder")
    builder.load_pipeline(_steps())
    wait_for_tuning(qtbot, builder)
    steps = builder.step_list
    field_badges, correct_badges = (steps.item_for(step_id).data(BADGES_ROLE) for step_id in steps.step_ids())
    assert field_badges[0][0] == "plate step: 2 wells x 2 sites"
    assert not any(text.startswith("plate step") for text, _ in correct_badges)
    # the flat-field of the whole sample (both wells, both sites, 3 Z planes per channel), one layer per channel
    names = [l.name for l in viewer.layers]
    assert "1 Field (DAPI)" in names, (names, builder.tuning.status_label.text() if hasattr(builder.tuning, "status_label") else "")
    layer = viewer.layers["1 Field (DAPI)"]
    sample = np.stack([
        tifffile.imread(tuning_plate / "TimePoint_1" / "ZStep_1" / f"{well}_s{site}_w1.tif") for well in ("A01", "A02") for site in (1, 2)
    ])
    expected = il.estimate_illumination(sample, dark_offset=0.0, smoothing_sigma=4.0)[1][0]
    data = np.asarray(layer.data)
    assert data.shape[-2:] == (64, 64)
    np.testing.assert_allclose(data.reshape(-1, 64, 64)[0], expected, rtol=1e-6)
