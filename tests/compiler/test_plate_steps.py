"""Plate-level steps in the compiler: declaration, plans across wells, links to per-well consumers, diagnostics."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, Pipeline
from plateflow.compiler import CompileError
from plateflow.compiler import compile_with_plate_steps
from plateflow.compiler.plate_steps import PLATE_DIR, plate_step_diagnostics
from plateflow.library import illumination as il
from plateflow.memory import numpy as numpy_type
from plateflow.plate import generate_sample_plate, open_plate
from plateflow.special_io import special_outputs

WELLS = ("A01", "A02", "B01", "B03")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory):
    root = generate_sample_plate(tmp_path_factory.mktemp("plate-steps") / "plate", wells=WELLS, sites=3, channels=2, z_planes=1, size=(64, 64))
    return open_plate(root)


def _estimate(**options) -> FunctionStep:
    kwargs = {"dark_offset": 100.0, "smoothing_sigma": 4.0}
    return FunctionStep((il.estimate_illumination, kwargs), name="Field", scope="plate", group_by="channel", **options)


def _pipeline(*plate_steps: FunctionStep) -> Pipeline:
    return Pipeline([*plate_steps, FunctionStep(il.correct_illumination, name="Correct"), FunctionStep(_passthrough, name="Last")])


@numpy_type
def _passthrough(stack):
    return stack


@special_outputs("positions")
@numpy_type
def _positions(stack):
    return stack, [0]


def _codes(diagnostics) -> list[tuple[str, int | None, str, tuple]]:
    return [(d.code, d.step_index, d.field, d.path) for d in diagnostics]


# -- declaration ---------------------------------------------------------------------


def test_declaration_is_validated_and_normalised():
    step = FunctionStep(_passthrough, scope="plate", sample_wells=["a1", "B3", "a01"], sample_sites=[1, "3"], variable_components=("well", "site"))
    assert (step.scope, step.sample_wells, step.sample_sites, step.variable_components) == ("plate", ("A01", "B03"), ("1", "3"), ("site",))
    copy = step.copy(name="again")
    assert (copy.scope, copy.sample_wells, copy.sample_sites) == ("plate", ("A01", "B03"), ("1", "3"))
    assert FunctionStep(_passthrough).scope == "well"
    with pytest.raises(ValueError, match=r"scope='plates' is not one of 'well', 'plate'"):
        FunctionStep(_passthrough, scope="plates")
    with pytest.raises(ValueError, match=r"sample_wells= is only for plate steps; add scope='plate'"):
        FunctionStep(_passthrough, sample_wells=("A01",))
    with pytest.raises(ValueError, match=r"sample_sites= is only for plate steps"):
        FunctionStep(_passthrough, sample_sites=("1",))
    with pytest.raises(ValueError, match=r"sample_sites holds 1.5 \(float\)"):
        FunctionStep(_passthrough, scope="plate", sample_sites=(1.5,))
    with pytest.raises(ValueError, match=r"sample_wells is empty"):
        FunctionStep(_passthrough, scope="plate", sample_wells=())


# -- plans ---------------------------------------------------------------------------


def test_plate_plan_spans_the_sample_in_stack_order(plate, tmp_path):
    field = _estimate(sample_wells=("B03", "A01"), sample_sites=("3", "1"))
    contexts, planning = compile_with_plate_steps(_pipeline(field), plate, output_root=tmp_path)
    (plate_plan,) = planning.plans
    plan = plate_plan.plan
    assert (plate_plan.sample_wells, plate_plan.sample_sites) == (("A01", "B03"), ("1", "3"))  # plate order, sorted sites
    assert plan.well_id is None and plan.reads_plate and plan.read_backend == "disk"
    assert (plan.input_memory_type, plan.device, plan.input_dir) == ("numpy", "cpu", str(plate.root))
    assert [g.group_key for g in plan.groups] == ["1", "2"]  # one stack per channel
    first = plan.groups[0]
    assert dict(first.fixed) == {"channel": "1", "z_index": "1", "timepoint": "1"}
    expected = [image.path for well in ("A01", "B03") for image in plate.files_for_well(well) if image.site in ("1", "3") and image.channel == "1"]
    assert [image.path for image in first.files] == expected and len(expected) == 4
    assert plan.input_paths(first) == tuple(f"{plate.root}/{p}" for p in expected)
    spec = plan.special_outputs["illumination"]
    assert spec["path"] == f"{tmp_path}/{PLATE_DIR}/01_field/illumination" and spec["backend"] == "memory" and spec["files"] == "disk"
    assert dict(plate_plan.consumers) == {"illumination": (1,)}
    assert [path for _, path, _ in plate_plan.value_paths()] == [
        f"{spec['path']}/channel=1&z_index=1&timepoint=1",
        f"{spec['path']}/channel=2&z_index=1&timepoint=1",
    ]


def test_per_well_plans_link_to_the_plate_step(plate, tmp_path):
    contexts, planning = compile_with_plate_steps(_pipeline(_estimate()), plate, output_root=tmp_path)
    (plate_plan,) = planning.plans
    assert list(contexts) == list(WELLS) and plate_plan.sample_wells == WELLS and plate_plan.sample_sites == ("1", "2", "3")
    shared = contexts["A01"].plate_plans
    for well, context in contexts.items():
        assert context.is_frozen() and context.plate_plans is shared  # one object for every well
        assert plate_plan.step_id not in context.step_plans
        correct, last = context.plans()
        assert correct.step_index == 1 and last.step_index == 2
        assert correct.reads_plate and correct.read_backend == "disk" and correct.input_dir == str(plate.root)
        assert correct.input_conversion is None and correct.plate_image == ((64, 64), "uint16")
        assert dict(correct.special_inputs["illumination"]) == {
            "path": plate_plan.plan.special_outputs["illumination"]["path"], "backend": "memory", "scope": "plate"
        }
        assert correct.special_sources["illumination"] == plate_plan.plan.special_sources["illumination"]
        assert [g.well for g in correct.groups] == [well] * 2 and last.input_dir == correct.output_dir


def test_wells_subset_keeps_the_whole_plate_sample(plate, tmp_path):
    contexts, planning = compile_with_plate_steps(_pipeline(_estimate()), plate, wells=["B01"], output_root=tmp_path)
    assert list(contexts) == ["B01"]
    assert planning.plans[0].sample_wells == WELLS  # the estimate is the whole plate's


def test_digest_follows_kwargs_and_sample(plate, tmp_path):
    def digest(step: FunctionStep) -> str:
        return compile_with_plate_steps(_pipeline(step), plate, output_root=tmp_path)[1].plans[0].digest

    base = digest(_estimate())
    assert digest(_estimate()) == base  # a new step object with the same declaration
    assert digest(_estimate(sample_wells=("A01", "B01"))) != base
    assert digest(_estimate(sample_sites=("1",))) != base
    other = FunctionStep((il.estimate_illumination, {"dark_offset": 90.0, "smoothing_sigma": 4.0}), name="Field", scope="plate", group_by="channel")
    assert digest(other) != base


# -- diagnostics -----------------------------------------------------------------------


def _compile_errors(pipeline, plate, tmp_path) -> list[tuple[str, int | None, str, tuple]]:
    with pytest.raises(CompileError) as info:
        compile_with_plate_steps(pipeline, plate, output_root=tmp_path)
    return _codes(info.value.diagnostics)


def test_plate_step_after_a_well_step(plate, tmp_path):
    pipeline = Pipeline([FunctionStep(_passthrough, name="Blur"), _estimate(), FunctionStep(il.correct_illumination, name="Correct")])
    found = _compile_errors(pipeline, plate, tmp_path)
    assert ("plate-step-after-well-step", 1, "scope", ("scope",)) in found
    (d,) = [d for d in plate_step_diagnostics(pipeline, plate) if d.code == "plate-step-after-well-step"]
    assert "move it before step 1 'Blur'" in d.hint and d.severity == "error"


def test_plate_input_from_a_well_step(plate, tmp_path):
    @numpy_type
    def _uses_positions(stack, positions=None):
        return stack

    from plateflow.special_io import special_inputs

    consumer = special_inputs("positions")(_uses_positions)
    pipeline = Pipeline([
        FunctionStep(_positions, name="Find"),
        FunctionStep(consumer, name="Plate use", scope="plate"),
        FunctionStep(_passthrough, name="After"),
    ])
    found = _codes(plate_step_diagnostics(pipeline, plate))
    assert ("plate-input-from-well-step", 1, "special_inputs.positions", ("special_inputs", "positions")) in found
    assert ("plate-step-after-well-step", 1, "scope", ("scope",)) in found


def test_plate_output_nobody_consumes_is_an_error_and_not_also_a_warning(plate, tmp_path):
    pipeline = Pipeline([_estimate(), FunctionStep(_passthrough, name="Blur")])
    found = _compile_errors(pipeline, plate, tmp_path)
    assert ("plate-output-unused", 0, "special_outputs.illumination", ("special_outputs", "illumination")) in found
    assert not [f for f in found if f[0] == "special-output-unused"]
    (d,) = [d for d in plate_step_diagnostics(pipeline) if d.code == "plate-output-unused"]
    assert d.hint == "add a per-well step after it that takes 'illumination', e.g. numpy.correct_illumination"


def test_sample_problems_are_on_their_fields(plate, tmp_path):
    pipeline = _pipeline(_estimate(sample_wells=("A01", "A03", "Q"), sample_sites=("1", "9")))
    found = _compile_errors(pipeline, plate, tmp_path)
    assert ("sample-well-invalid", 0, "sample_wells", ("sample_wells",)) in found
    assert ("sample-well-not-on-plate", 0, "sample_wells", ("sample_wells",)) in found
    assert ("sample-site-not-on-plate", 0, "sample_sites", ("sample_sites",)) in found
    by_code = {d.code: d for d in plate_step_diagnostics(pipeline, plate)}
    assert by_code["sample-well-not-on-plate"].message == "sample_wells 'A03' is not on the plate; its wells are A01, A02, B01, B03"
    # one edit away from 'A03': a close well of the plate, never a far one
    assert by_code["sample-well-not-on-plate"].hint in {f"did you mean {w!r}?" for w in ("A01", "A02", "B03")}
    assert by_code["sample-site-not-on-plate"].message == "sample_sites '9' is not on the plate; its sites are 1, 2, 3"
    assert "'Q'" in by_code["sample-well-invalid"].message
    # without a plate only the well ids themselves can be judged
    assert [d.code for d in plate_step_diagnostics(pipeline)] == ["sample-well-invalid"]


def test_empty_sample_and_group_by_well(plate, tmp_path):
    empty = _pipeline(_estimate(sample_wells=("H12",)))
    found = _codes(plate_step_diagnostics(empty, plate))
    assert ("plate-sample-empty", 0, "sample_wells", ("sample_wells",)) in found
    by_well = _pipeline(FunctionStep((il.estimate_illumination, {"dark_offset": 100.0}), name="Field", scope="plate", group_by="well"))
    found = _codes(plate_step_diagnostics(by_well, plate))
    assert ("plate-step-group-by-well", 0, "group_by", ("group_by",)) in found


def test_a_sound_pipeline_has_no_plate_diagnostics(plate):
    assert plate_step_diagnostics(_pipeline(_estimate(sample_wells=("A01", "B03"))), plate) == ()


# -- through the public entry points ---------------------------------------------------


def test_check_and_analyze_report_plate_steps(plate):
    import plateflow

    assert [d for d in plateflow.check(_pipeline(_estimate()), plate) if d.severity == "error"] == []
    analysis = plateflow.analyze(_pipeline(_estimate(sample_wells=("A01", "B03"))), plate)
    field, correct, last = analysis.steps
    assert (field.scope, field.sample_wells, field.sample_sites) == ("plate", ("A01", "B03"), ("1", "2", "3"))
    assert (correct.scope, correct.reads_plate, correct.conversion) == ("well", True, None)
    assert (last.scope, last.reads_plate) == ("well", False)
    assert correct.special_inputs["illumination"].producer_step_index == 0
    assert dict(field.special_outputs) == {"illumination": (1,)}
    bad = Pipeline([FunctionStep(_passthrough, name="Blur"), _estimate(sample_wells=("A01", "H09")), FunctionStep(il.correct_illumination)])
    found = _codes(plateflow.check(bad, plate))
    assert ("plate-step-after-well-step", 1, "scope", ("scope",)) in found
    assert ("sample-well-not-on-plate", 1, "sample_wells", ("sample_wells",)) in found
    unused = _codes(plateflow.check([_estimate(), FunctionStep(_passthrough)], plate))
    assert ("plate-output-unused", 0, "special_outputs.illumination", ("special_outputs", "illumination")) in unused
    assert not [c for c in unused if c[0] == "special-output-unused"]
    # without a plate: what can be judged from the declaration alone
    assert ("sample-well-invalid", 0, "sample_wells", ("sample_wells",)) in _codes(plateflow.check(_pipeline(_estimate(sample_wells=("Q",)))))
    assert plateflow.analyze(_pipeline(_estimate())).steps[0].sample_wells == ()


def test_compile_pipeline_plans_plate_steps_once(plate, tmp_path):
    from plateflow.compiler import compile_pipeline

    contexts = compile_pipeline(_pipeline(_estimate()), plate, wells=["B01"], output_root=str(tmp_path))
    (context,) = contexts.values()
    (plate_plan,) = context.plate_plans.values()
    assert plate_plan.sample_wells == WELLS and [p.step_name for p in context.plans()] == ["Correct", "Last"]
    with pytest.raises(CompileError) as info:
        compile_pipeline(_pipeline(_estimate(sample_sites=("7",))), plate, output_root=str(tmp_path))
    assert ("sample-site-not-on-plate", 0, "sample_sites", ("sample_sites",)) in _codes(info.value.diagnostics)
