"""The PipelineModel without Qt: edits, signals, building and reading core pipelines, field locations."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plateflow
from plateflow import FunctionStep, Pipeline
from plateflow.execution.demo import demo_pipeline
from plateflow.library import registry
from plateflow.napari._model import FieldLocation, PipelineModel, StepModel, locate_field
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


def test_chain_and_per_group_patterns_use_the_compiler_field_grammar(plate):
    model = PipelineModel()
    step = model.add_step("numpy.top_hat", {"radius": 5}, name="Chain")
    model.add_to_chain(step.step_id, "numpy.gaussian_filter", kwargs={"sigm": 1.0})
    pipeline = model.to_pipeline()
    calls = list(normalize_pattern(pipeline[0].func).calls())
    assert [c.place for c in calls] == ["func[0]", "func[1]"]
    diagnostics = plateflow.check(pipeline, plate)
    assert [(d.code, d.field) for d in diagnostics] == [("unknown-kwarg", "func[1].kwargs.sigm")]
    assert locate_field(step, "func[1].kwargs.sigm") == FieldLocation("kwarg", None, 1, "sigm")

    model.set_group_by(step.step_id, "channel")
    model.set_variable_components(step.step_id, ["site"])
    model.set_per_group(step.step_id, plate.components["channel"])
    assert list(step.chains) == ["1", "2"]
    model.remove_from_chain(step.step_id, "2", 1)
    func = model.to_pipeline()[0].func
    assert set(func) == {"1", "2"} and isinstance(func["1"], list) and isinstance(func["2"], tuple)
    fields = {d.field for d in plateflow.check(model.to_pipeline(), plate)}
    assert fields == {"func['1'][1].kwargs.sigm"}
    assert locate_field(step, "func['1'][1].kwargs.sigm") == FieldLocation("kwarg", "1", 1, "sigm")
    assert locate_field(step, "func['2'].kwargs.radius") == FieldLocation("kwarg", "2", 0, "radius")
    assert locate_field(step, "func['2']") == FieldLocation("entry", "2")
    assert locate_field(step, "func['9']") == FieldLocation("pattern")
    assert locate_field(step, "func") == FieldLocation("pattern")
    model.set_per_group(step.step_id, None)
    assert list(step.chains) == [None] and len(step.chains[None]) == 2


def test_locate_field_on_a_single_function_step():
    model = PipelineModel()
    step = model.add_step("numpy.gaussian_filter")
    assert locate_field(step, "kwargs.sigmaa") == FieldLocation("kwarg", None, 0, "sigmaa")
    assert locate_field(step, "func") == FieldLocation("call", None, 0)
    assert locate_field(step, "") == FieldLocation("step")
    assert locate_field(step, "variable_components") == FieldLocation("variable_components")
    assert locate_field(step, "group_by") == FieldLocation("group_by")
    assert locate_field(step, "special_inputs.positions") == FieldLocation("special_inputs", name="positions")
    assert locate_field(step, "something else") == FieldLocation("step")


def test_data_flow_shows_conversions_and_special_input_links():
    model = PipelineModel()
    find = model.add_step("numpy.find_tile_positions")
    torch_step = model.add_step("torch.gaussian_filter")
    assemble = model.add_step("numpy.assemble_tiles")
    flows = model.data_flow()
    assert flows[find.step_id].outputs == ("positions",)
    assert flows[torch_step.step_id].conversion == ("numpy", "torch")
    assert flows[assemble.step_id].conversion == ("torch", "numpy")
    assert dict(flows[assemble.step_id].inputs_from) == {"positions": 0}
    model.set_enabled(find.step_id, False)
    flows = model.data_flow()
    assert find.step_id not in flows
    assert dict(flows[assemble.step_id].inputs_from) == {"positions": None}
    assert flows[assemble.step_id].index == 1


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
