"""The editing document without Qt: edits, signals, undo, building and reading core pipelines, call paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plateflow
from plateflow import FunctionStep, Pipeline
from plateflow.execution.demo import demo_pipeline
from plateflow.library import registry
from plateflow import analyze
from plateflow.napari._model import PipelineModel, StepModel, default_components
from plateflow.patterns import normalize_pattern
from plateflow.plate import open_plate, sample_plate_path


@pytest.fixture(scope="module")
def plate():
    return open_plate(sample_plate_path())


def three_steps() -> PipelineModel:
    model = PipelineModel()
    model.add_step("numpy.gaussian_filter", {"sigma": 2.0}, name="Blur")
    model.add_step("numpy.threshold_otsu", name="Threshold")
    model.add_step("numpy.label", {"connectivity": 2}, name="Label")
    return model


def names_and_kwargs(pipeline: Pipeline) -> list[tuple]:
    rows = []
    for step in pipeline:
        calls = tuple((registry.name_of(c.func), dict(c.kwargs), c.place) for c in normalize_pattern(step.func).calls())
        rows.append((step.name, calls, step.variable_components, step.group_by))
    return rows


def test_model_module_imports_no_gui_library():
    code = (
        "import sys, plateflow.napari._model\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'napari', 'magicgui', 'superqt')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_edits_emit_signals_and_build_the_pipeline():
    model = PipelineModel()
    changes, structure = [], []
    model.changed.connect(lambda: changes.append(1))
    model.structure_changed.connect(lambda: structure.append(1))
    blur = model.add_step("numpy.gaussian_filter", name="Blur")
    model.set_kwarg(blur.step_id, None, 0, "sigma", 2.5)
    model.set_kwarg(blur.step_id, None, 0, "sigma", 2.5)  # no change, no signal
    assert len(changes) == 2 and len(structure) == 1
    pipeline = model.to_pipeline()
    assert names_and_kwargs(pipeline) == [("Blur", (("numpy.gaussian_filter", {"sigma": 2.5}, ""),), ("site",), None)]


def test_remove_duplicate_move_rename_enable():
    model = three_steps()
    blur, threshold, label = model.steps
    copy = model.duplicate_step(blur.step_id)
    assert [s.name for s in model.steps] == ["Blur", "Blur (copy)", "Threshold", "Label"]
    copy.chains[None][0].kwargs["sigma"] = 9.0
    assert blur.chains[None][0].kwargs == {"sigma": 2.0}  # a deep copy
    model.move_step(copy.step_id, 3)
    assert [s.name for s in model.steps] == ["Blur", "Threshold", "Label", "Blur (copy)"]
    model.reorder([label.step_id, blur.step_id, threshold.step_id, copy.step_id])
    assert [s.name for s in model.steps] == ["Label", "Blur", "Threshold", "Blur (copy)"]
    model.rename_step(copy.step_id, "Blur again")
    model.remove_step(label.step_id)
    model.set_enabled(threshold.step_id, False)
    assert [s.name for s in model.to_pipeline()] == ["Blur", "Blur again"]
    kept = model.to_pipeline(include_disabled=True)
    assert [(s.name, s.enabled) for s in kept] == [("Blur", True), ("Threshold", False), ("Blur again", True)]
    assert [(s.name, s.enabled) for s in PipelineModel.from_pipeline(kept).steps] == [("Blur", True), ("Threshold", False), ("Blur again", True)]
    assert model.step_for_pipeline_index(1) is copy
    with pytest.raises(ValueError):
        model.reorder([blur.step_id])


def test_call_paths_are_the_places_the_compiler_gives_the_functions(plate):
    model = PipelineModel()
    step = model.add_step("numpy.top_hat", {"radius": 5}, name="Chain")
    assert step.call_paths() == [((), None, 0)]
    assert [c.path for c in analyze(model.to_pipeline(), plate).steps[0].calls] == [()]
    model.add_to_chain(step.step_id, "numpy.gaussian_filter", kwargs={"sigm": 1.0})
    analysis = analyze(model.to_pipeline(), plate)
    assert [path for path, _, _ in step.call_paths()] == [c.path for c in analysis.steps[0].calls] == [("func", 0), ("func", 1)]
    assert [(d.code, d.field) for d in analysis.diagnostics] == [("unknown-kwarg", "func[1].kwargs.sigm")]

    model.set_group_by(step.step_id, "channel")
    model.set_variable_components(step.step_id, ["site"])
    model.set_per_group(step.step_id, plate.components["channel"])
    assert list(step.chains) == ["1", "2"]
    model.remove_from_chain(step.step_id, "2", 1)
    func = model.to_pipeline()[0].func
    assert set(func) == {"1", "2"} and isinstance(func["1"], list) and isinstance(func["2"], tuple)
    analysis = analyze(model.to_pipeline(), plate)
    expected = [("func", "1", 0), ("func", "1", 1), ("func", "2")]
    assert [path for path, _, _ in step.call_paths()] == [c.path for c in analysis.steps[0].calls] == expected
    assert {d.field for d in analysis.diagnostics} == {"func['1'][1].kwargs.sigm"}
    # A per-value entry can go: the step then handles channel 1 only.
    model.remove_entry(step.step_id, "2")
    assert list(model.to_pipeline()[0].func) == ["1"]
    with pytest.raises(ValueError, match="at least one entry"):
        model.remove_entry(step.step_id, "1")
    model.set_per_group(step.step_id, None)
    assert list(step.chains) == [None] and len(step.chains[None]) == 2


def test_new_steps_vary_over_what_suits_their_category():
    model = PipelineModel()
    projection = model.add_step("numpy.max_projection")
    blur = model.add_step("numpy.gaussian_filter")
    assert projection.variable_components == ("z_index",) == default_components("numpy.max_projection")
    assert blur.variable_components == ("site",)


def test_undo_and_redo_walk_through_every_edit():
    model = PipelineModel()
    blur = model.add_step("numpy.gaussian_filter", name="Blur")
    model.set_kwarg(blur.step_id, None, 0, "sigma", 2.0)
    model.rename_step(blur.step_id, "Smooth")
    label = model.add_step("numpy.label")
    model.remove_step(label.step_id)
    states = []
    while model.can_undo:
        states.append([(s.name, dict(s.chains[None][0].kwargs)) for s in model.steps])
        model.undo()
    assert states == [
        [("Smooth", {"sigma": 2.0})],
        [("Smooth", {"sigma": 2.0}), ("label", {})],
        [("Smooth", {"sigma": 2.0})],
        [("Blur", {"sigma": 2.0})],
        [("Blur", {})],
    ]
    assert model.steps == [] and not model.undo()
    while model.redo():
        pass
    assert [(s.name, s.step_id) for s in model.steps] == [("Smooth", blur.step_id)]
    # An undone state is a copy: editing after the undo does not change the history.
    model.undo()
    model.undo()
    model.set_kwarg(blur.step_id, None, 0, "sigma", 7.0)
    assert not model.can_redo
    model.undo()
    assert model.step(blur.step_id).chains[None][0].kwargs == {"sigma": 2.0}


def test_quick_edits_of_one_field_are_one_undo_step():
    model = PipelineModel()
    blur = model.add_step("numpy.gaussian_filter")
    for sigma in (1.1, 1.2, 1.3):
        model.set_kwarg(blur.step_id, None, 0, "sigma", sigma)
    model.undo()
    assert model.step(blur.step_id).chains[None][0].kwargs == {}


def test_from_pipeline_round_trip_keeps_functions_kwargs_and_components():
    pipeline = demo_pipeline()
    model = PipelineModel.from_pipeline(pipeline)
    assert model.name == pipeline.name
    assert [s.name for s in model.steps] == [s.name for s in pipeline]
    count = model.steps[3]
    assert count.per_group and list(count.chains) == ["1"] and count.group_by == "channel"
    assert count.chains["1"][0].function == "numpy.measure_nuclei"
    rebuilt = model.to_pipeline()
    for original, again in zip(pipeline, rebuilt):
        assert again.variable_components == original.variable_components
        assert again.group_by == original.group_by
        assert [(c.func, dict(c.kwargs)) for c in normalize_pattern(again.func).calls()] == [
            (c.func, dict(c.kwargs)) for c in normalize_pattern(original.func).calls()
        ]


def test_unregistered_functions_are_kept_as_themselves():
    from plateflow.memory import numpy as numpy_memory

    @numpy_memory
    def brighten(stack, factor: float = 2.0):
        return stack * factor

    model = PipelineModel.from_pipeline([FunctionStep((brighten, {"factor": 3.0}), name="Brighten")])
    call = model.steps[0].chains[None][0]
    assert not call.registered and call.function.endswith("brighten") and call.kwargs == {"factor": 3.0}
    step = model.to_pipeline()[0]
    assert step.func[0] is brighten and step.func[1] == {"factor": 3.0}


def test_add_step_rejects_unknown_functions_with_close_names():
    model = PipelineModel()
    with pytest.raises(KeyError, match="numpy.gaussian_filter"):
        model.add_step("numpy.gausian_filter")


def test_step_model_from_step_reads_a_list_of_one():
    step = StepModel.from_step(FunctionStep([registry.get("numpy.max_projection")], variable_components=("z_index",)))
    assert step.chains == {None: [step.chains[None][0]]} and step.chains[None][0].function == "numpy.max_projection"
