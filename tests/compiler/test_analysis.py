"""``plateflow.analyze``: the diagnostics and the data flow the compiler found, step by step."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plateflow
from plateflow import FunctionStep, Pipeline, analyze, check
from plateflow.compiler import Analysis, CallFlow, SpecialLink, StepFlow

from .functions import assemble, blur, count, find_positions, project, scale, to_torch, torch_blur, torch_to_numpy, undecorated


def test_memory_types_of_every_step_and_call_without_a_plate():
    analysis = analyze([FunctionStep(func=blur), FunctionStep(func=[to_torch, (torch_blur, {"sigma": 2.0})]), FunctionStep(func=torch_to_numpy)])
    assert isinstance(analysis, Analysis) and analysis.ok and analysis.diagnostics == ()
    assert [(s.step_index, s.input_memory_type, s.output_memory_type) for s in analysis.steps] == [
        (0, "numpy", "numpy"), (1, "numpy", "torch"), (2, "torch", "numpy"),
    ]
    chain = analysis.step(1).calls
    assert [(c.path, c.place, c.function_name, c.input_memory_type, c.output_memory_type) for c in chain] == [
        (("func", 0), "func[0]", "to_torch", "numpy", "torch"),
        (("func", 1), "func[1]", "torch_blur", "torch", "torch"),
    ]
    single = analysis.step(0).calls[0]
    assert isinstance(single, CallFlow) and (single.path, single.place) == ((), "")
    # Handed over in memory in the same type: nothing to convert between these steps.
    assert [s.conversion for s in analysis.steps] == [None, None, None]
    assert [s.reads_plate for s in analysis.steps] == [True, False, False]


def test_registry_functions_are_named_by_their_registry_name():
    from plateflow.library import registry

    (step,) = analyze([FunctionStep(func=(registry.get("numpy.gaussian_filter"), {"sigma": 2.0}))]).steps
    assert step.calls[0].function_name == "numpy.gaussian_filter"


def test_a_planned_conversion_between_steps():
    steps = [
        FunctionStep(func=torch_blur, name="Torch on the plate"),
        FunctionStep(func=torch_blur, force_disk_output=True, name="Saved"),
        FunctionStep(func=[torch_blur, torch_to_numpy], name="After the saved step"),
        FunctionStep(func=blur, name="Numpy"),
    ]
    flows = analyze(steps).steps
    # The plate and a saved step are read as numpy; torch in memory stays torch.
    assert [f.conversion for f in flows] == [("numpy", "torch"), None, ("numpy", "torch"), None]


def test_a_special_link_across_steps():
    analysis = analyze(Pipeline([FunctionStep(func=find_positions, name="Find"), FunctionStep(func=blur), FunctionStep(func=assemble, name="Assemble")]))
    assert analysis.diagnostics == ()
    find, _, assemble_flow = analysis.steps
    assert find.special_outputs == {"positions": (2,)}
    assert find.calls[0].special_outputs == ("positions",)
    link = SpecialLink("positions", 0, (), False)
    assert assemble_flow.special_inputs == {"positions": link}
    assert assemble_flow.calls[0].special_inputs == {"positions": link}
    assert analysis.step(1).special_inputs == {} and analysis.step(1).special_outputs == {}


def test_a_producer_inside_a_dict_pattern_is_named_by_its_place():
    steps = [FunctionStep(func={"1": find_positions, "2": blur}, group_by="channel"), FunctionStep(func=assemble)]
    flows = analyze(steps).steps
    assert flows[1].special_inputs["positions"] == SpecialLink("positions", 0, ("func", "1"), False)
    assert flows[0].special_outputs == {"positions": (1,)}


def test_a_special_link_within_one_chain():
    analysis = analyze([FunctionStep(func=[blur, find_positions, (scale, {"factor": 2.0}), assemble])])
    # Produced and consumed in the same chain: no "later step" error and no "unused" warning.
    assert analysis.diagnostics == ()
    (step,) = analysis.steps
    consumer = step.calls[3]
    assert consumer.path == ("func", 3)
    assert consumer.special_inputs == {"positions": SpecialLink("positions", 0, ("func", 1), True)}
    assert step.special_inputs == {}  # nothing comes from another step
    assert step.special_outputs == {"positions": ()}


def test_an_unknown_producer():
    analysis = analyze([FunctionStep(func=blur), FunctionStep(func=assemble, name="Assemble")])
    assert not analysis.ok
    (error,) = analysis.errors
    assert (error.code, error.step_index, error.step_name, error.field, error.path) == (
        "special-input-missing", 1, "Assemble", "special_inputs.positions", ("special_inputs", "positions"),
    )
    missing = SpecialLink("positions", None, (), False)
    assert analysis.step(1).special_inputs == {"positions": missing}
    assert analysis.step(1).calls[0].special_inputs == {"positions": missing}


def test_a_producer_after_its_consumer_is_not_a_link():
    analysis = analyze([FunctionStep(func=assemble), FunctionStep(func=find_positions)])
    assert [(d.code, d.step_index) for d in analysis.errors] == [("special-input-later", 0)]
    assert analysis.step(0).special_inputs["positions"].producer_step_index is None


def test_every_step_is_described_also_when_there_are_errors():
    steps = [FunctionStep(func=blur, name="Fine"), FunctionStep(func=undecorated, name="No memory type"), FunctionStep(func=count, name="Count")]
    analysis = analyze(steps)
    assert [(d.code, d.step_index) for d in analysis.errors] == [("missing-memory-type", 1)]
    assert [s.step_name for s in analysis.steps] == ["Fine", "No memory type", "Count"]
    assert (analysis.step(0).input_memory_type, analysis.step(2).output_memory_type) == ("numpy", "numpy")
    broken = analysis.step(1)
    assert broken.calls[0].function_name == "undecorated" and broken.calls[0].input_memory_type == ""
    assert analysis.step(2).special_outputs == {"counts": ()}  # materialized: a result of the run, no consumer needed


def test_a_step_without_a_plan_keeps_its_place():
    repeated = FunctionStep(func=blur, name="Twice")
    analysis = analyze([repeated, FunctionStep(func=(scale, {"factor": 2.0}), name="Scale"), repeated, "not a step"])
    assert [(d.code, d.step_index) for d in analysis.errors] == [("duplicate-step", 2), ("not-a-step", 3)]
    assert [(s.step_index, s.step_name) for s in analysis.steps] == [(0, "Twice"), (1, "Scale"), (2, "Twice"), (3, "str")]
    assert analysis.step(0).calls[0].function_name == "blur"  # the first appearance is planned
    assert analysis.step(2).calls == () and analysis.step(2).device == "" and analysis.step(3).input_memory_type == ""


def test_with_a_plate_devices_and_plate_reads(plate):
    analysis = analyze([FunctionStep(func=blur), FunctionStep(func=project, variable_components=("z_index",)), FunctionStep(func=[to_torch, torch_blur, torch_to_numpy])], plate)
    assert analysis.ok, analysis.diagnostics
    assert [s.reads_plate for s in analysis.steps] == [True, False, True]  # a chain breaker sends the next step to the plate
    assert [s.device for s in analysis.steps] == ["cpu", "cpu", "cpu"]
    assert analysis.step(1).variable_components == ("z_index",) and analysis.step(1).group_by is None


def test_check_returns_the_diagnostics_of_analyze():
    steps = [FunctionStep(func=blur), FunctionStep(func=assemble)]
    assert check(steps) == list(analyze(steps).diagnostics) and len(check(steps)) == 1


def test_analyze_never_raises(monkeypatch):
    from plateflow.compiler import PipelineCompiler

    def broken_compile(self):
        raise RuntimeError("a bug in a phase")

    monkeypatch.setattr(PipelineCompiler, "check_context", broken_compile)
    broken = analyze([FunctionStep(func=blur, name="Blur")])
    (internal,) = broken.diagnostics
    assert internal.code == "internal-error" and "RuntimeError: a bug in a phase" in internal.message
    assert [(s.step_name, s.calls) for s in broken.steps] == [("Blur", ())]  # still one flow per step
    monkeypatch.undo()
    not_a_pipeline = analyze(42)
    assert [d.code for d in not_a_pipeline.diagnostics] == ["not-a-step"] and len(not_a_pipeline.steps) == 1
    missing_plate = analyze([FunctionStep(func=blur)], "/no/such/plate/folder")
    assert missing_plate.diagnostics[0].code == "plate-error" and "/no/such/plate/folder" in missing_plate.diagnostics[0].message
    assert missing_plate.step(0).input_memory_type == "numpy"  # still described, as without a plate
    with pytest.raises(IndexError, match="out of range; the analysis has 1 step"):
        missing_plate.step(1)


def test_the_records_are_frozen():
    flow = analyze([FunctionStep(func=blur)]).step(0)
    assert isinstance(flow, StepFlow)
    with pytest.raises(AttributeError):
        flow.step_name = "x"  # type: ignore[misc]  # the point of the test: frozen records refuse it
    with pytest.raises(TypeError):
        flow.special_inputs["x"] = None  # type: ignore[index]  # a read-only mapping


def test_analyze_is_exported_lazily():
    code = (
        "import sys, plateflow\n"
        "assert 'plateflow.compiler' not in sys.modules, 'import plateflow loaded the compiler'\n"
        "from plateflow.compiler import analysis\n"
        "assert plateflow.analyze is analysis.analyze and plateflow.Analysis is analysis.Analysis\n"
        "assert plateflow.check is analysis.check\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "analyze" in plateflow.__all__ and "Analysis" in plateflow.__all__
