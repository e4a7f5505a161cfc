"""One test per diagnostic code: its code, step index and field (and the hint where it matters)."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, Pipeline, check
from plateflow.compiler import CODES, CompileError, compile_pipeline
from plateflow.memory.types import MemoryType

from .functions import (
    assemble,
    blur,
    count,
    errors,
    find_positions,
    found,
    pad,
    project,
    scale,
    to_torch,
    torch_blur,
    undecorated,
)


def test_empty_pipeline():
    (d,) = found(check(Pipeline([])), "empty-pipeline")
    assert d.step_index is None and d.field == "" and d.severity == "error"


def test_not_a_step():
    (d,) = found(check([FunctionStep(func=blur), blur]), "not-a-step")
    assert d.step_index == 1


def test_duplicate_step_object():
    step = FunctionStep(func=blur)
    (d,) = found(check([step, step]), "duplicate-step")
    assert d.step_index == 1 and "step.copy()" in d.hint


@pytest.mark.parametrize("func", [None, [], {}])
def test_empty_step(func):
    (d,) = found(check([FunctionStep(func=func)]), "empty-step")
    assert (d.step_index, d.field) == (0, "func")


@pytest.mark.parametrize(
    "func, field",
    [
        ((blur, 2.0), "func"),
        ([blur, (blur, "x")], "func[1]"),
        ({"1": {"a": blur}}, "func['1']"),
        ((blur, {}, 3), "func"),
        ([blur, 42], "func[1]"),
    ],
)
def test_malformed_pattern(func, field):
    (d,) = found(check([FunctionStep(func=func, group_by="channel")]), "malformed-pattern")
    assert (d.step_index, d.field) == (0, field)


def test_missing_memory_type_single_and_chain():
    diagnostics = check([FunctionStep(func=blur), FunctionStep(func=undecorated), FunctionStep(func=[blur, undecorated])])
    missing = found(diagnostics, "missing-memory-type")
    assert [(d.step_index, d.field) for d in missing] == [(1, "func"), (2, "func[1]")]
    assert "add @numpy" in missing[0].hint and "undecorated" in missing[0].hint


def test_unknown_memory_type():
    def weird(stack):
        return stack

    weird.input_memory_type = "numpyy"
    weird.output_memory_type = "numpy"
    (d,) = found(check([FunctionStep(func=weird)]), "unknown-memory-type")
    assert (d.step_index, d.field) == (0, "func") and "'numpy'" in d.hint


def test_chain_memory_mismatch():
    (d,) = found(check([FunctionStep(func=[blur, torch_blur])]), "chain-memory-mismatch")
    assert (d.step_index, d.field) == (0, "func[1]")
    assert d.message.startswith("blur hands on numpy arrays but torch_blur takes torch arrays")
    assert "output_type" not in d.hint and "split the chain into two steps" in d.hint


def test_chain_with_declared_conversion_is_fine():
    assert errors(check([FunctionStep(func=[blur, to_torch, torch_blur])])) == []


def test_dict_memory_mismatch(plate):
    (d,) = found(check([FunctionStep(func={"1": blur, "2": torch_blur}, group_by="channel")], plate), "dict-memory-mismatch")
    assert (d.step_index, d.field) == (0, "func['2']")


def test_library_not_installed(monkeypatch):
    import plateflow.compiler.step_checks as step_checks

    monkeypatch.setattr(step_checks, "is_installed", lambda library: library != "torch")
    (d,) = found(check([FunctionStep(func=torch_blur)]), "library-not-installed")
    assert (d.step_index, d.field) == (0, "func") and "plateflow[torch]" in d.hint


def test_cupy_without_gpu_is_an_error_with_the_fix(monkeypatch):
    import plateflow.compiler.phases as phases
    from plateflow.memory import cupy
    from plateflow.memory.devices import LibraryStatus
    import plateflow.compiler.step_checks as step_checks

    @cupy
    def gpu_blur(stack, sigma: float = 1.0):
        return stack

    monkeypatch.setattr(step_checks, "is_installed", lambda library: True)
    monkeypatch.setattr(phases, "is_installed", lambda library: True)
    import plateflow.memory.devices as devices

    status = LibraryStatus(installed=True, devices=(), gpu_ids=(), runs_on_cpu=False, reason="no CUDA device", extra="cupy")
    monkeypatch.setattr(devices, "library_status", lambda mt: status)
    (d,) = found(check([FunctionStep(func=blur), FunctionStep(func=gpu_blur)]), "no-gpu-device")
    assert (d.step_index, d.field) == (1, "func")
    assert "numpy version" in d.hint


def test_special_input_missing_with_did_you_mean():
    from plateflow import special_inputs
    from plateflow.memory import numpy

    @special_inputs("positons")
    @numpy
    def assemble_typo(stack, positons):
        return stack

    diagnostics = check([FunctionStep(func=find_positions), FunctionStep(func=assemble_typo)])
    (d,) = found(diagnostics, "special-input-missing")
    assert (d.step_index, d.field) == (1, "special_inputs.positons")
    assert d.hint == "did you mean 'positions'?"


def test_special_input_produced_later():
    diagnostics = check([FunctionStep(func=blur), FunctionStep(func=assemble, name="Assemble"), FunctionStep(func=find_positions, name="Find positions")])
    (d,) = found(diagnostics, "special-input-later")
    assert (d.step_index, d.step_name, d.field) == (1, "Assemble", "special_inputs.positions")
    assert d.hint == "step 3 'Find positions' produces 'positions' but runs after this step; move it before step 2"


def test_two_producers():
    diagnostics = check([FunctionStep(func=find_positions), FunctionStep(func=find_positions), FunctionStep(func=assemble)])
    (d,) = found(diagnostics, "special-output-duplicate")
    assert (d.step_index, d.field) == (1, "special_outputs.positions")


def test_unused_special_output_is_a_warning():
    diagnostics = check([FunctionStep(func=find_positions)])
    (d,) = found(diagnostics, "special-output-unused")
    assert (d.severity, d.step_index, d.field) == ("warning", 0, "special_outputs.positions")
    assert errors(diagnostics) == []


def test_materialized_output_needs_no_consumer():
    assert check([FunctionStep(func=count)]) == []


def test_special_input_set_by_user():
    diagnostics = check([FunctionStep(func=find_positions), FunctionStep(func=(assemble, {"positions": []}))])
    (d,) = found(diagnostics, "special-input-set-by-user")
    assert (d.step_index, d.field) == (1, "kwargs.positions")


@pytest.mark.parametrize(
    "func, field, hint",
    [
        ((blur, {"sigmaa": 2}), "kwargs.sigmaa", "did you mean 'sigma'?"),
        ([blur, (blur, {"sigm": 2})], "func[1].kwargs.sigm", "did you mean 'sigma'?"),
        ({"1": (blur, {"sgima": 1}), "2": blur}, "func['1'].kwargs.sgima", "did you mean 'sigma'?"),
        ({"1": [blur, (blur, {"mdoe": "x"})], "2": blur}, "func['1'][1].kwargs.mdoe", "did you mean 'mode'?"),
    ],
)
def test_unknown_kwarg_fields(func, field, hint):
    (d,) = found(check([FunctionStep(func=func, group_by="channel")]), "unknown-kwarg")
    assert (d.step_index, d.field, d.hint) == (0, field, hint)


def test_missing_required_argument():
    (d,) = found(check([FunctionStep(func=blur), FunctionStep(func=[blur, scale])]), "missing-argument")
    assert (d.step_index, d.field) == (1, "func[1].kwargs.factor")


@pytest.mark.parametrize(
    "kwargs, field, message, detail",
    [
        ({"sigma": "big"}, "kwargs.sigma", "sigma must be a number, not the text 'big'", "expected float"),
        ({"sigma": 99.0}, "kwargs.sigma", "sigma must be between 0 and 50, not 99.0", "above the maximum 50"),
        ({"sigma": -1}, "kwargs.sigma", "sigma must be between 0 and 50, not -1", "below the minimum 0"),
        ({"mode": "wrap"}, "kwargs.mode", "mode must be one of 'nearest', 'reflect', not the text 'wrap'", "not one of the choices"),
    ],
)
def test_invalid_kwarg_value(kwargs, field, message, detail):
    (d,) = found(check([FunctionStep(func=(blur, kwargs))]), "invalid-kwarg-value")
    assert (d.step_index, d.field, d.path) == (0, field, tuple(field.split(".")))
    # the user's words first, the code-level detail in the hint
    assert d.message == message and detail in d.hint and detail not in d.message


def test_enum_kwarg_value_checked_against_members():
    assert errors(check([FunctionStep(func=(pad, {"mode": "reflect", "width": 2}))])) == []
    (d,) = found(check([FunctionStep(func=(pad, {"mode": "mirror"}))]), "invalid-kwarg-value")
    assert d.field == "kwargs.mode" and "'nearest', 'reflect'" in d.message
    (d,) = found(check([FunctionStep(func=(pad, {"width": 1.5}))]), "invalid-kwarg-value")
    assert d.field == "kwargs.width"


def test_bad_signature():
    from plateflow.memory import numpy

    @numpy
    def no_stack():
        return None

    (d,) = found(check([FunctionStep(func=no_stack)]), "bad-signature")
    assert (d.step_index, d.field) == (0, "func")


def test_unknown_component_in_variable_components_and_group_by():
    diagnostics = check([FunctionStep(func=blur, variable_components=("zindex",), group_by="chanel")])
    unknown = found(diagnostics, "unknown-component")
    assert [(d.field, d.hint) for d in unknown] == [
        ("variable_components", "did you mean 'z_index'?"),
        ("group_by", "did you mean 'channel'?"),
    ]


def test_group_by_also_variable():
    (d,) = found(check([FunctionStep(func=blur, variable_components=("channel",), group_by="channel")]), "group-by-is-variable")
    assert (d.step_index, d.field) == (0, "group_by")


def test_dict_without_group_by_guesses_the_component(plate):
    (d,) = found(check([FunctionStep(func={"1": blur, "2": blur})], plate), "dict-without-group-by")
    assert (d.step_index, d.field) == (0, "group_by") and "group_by='channel'" in d.hint


def test_unknown_group_key_lists_plate_values(plate):
    diagnostics = check([FunctionStep(func={"1": blur, "3": blur}, group_by="channel")], plate)
    (d,) = found(diagnostics, "unknown-group-key")
    assert (d.step_index, d.field, d.hint) == (0, "func['3']", "values of channel on this plate: 1, 2")
    (w,) = found(diagnostics, "uncovered-group-value")
    assert w.severity == "warning" and "'2'" in w.message


def test_unknown_well(plate):
    with pytest.raises(CompileError) as info:
        compile_pipeline([FunctionStep(func=blur)], plate, wells=["A01", "Z99", "A2"])
    codes = [(d.code, d.field) for d in info.value.diagnostics]
    assert codes == [("unknown-well", "wells"), ("unknown-well", "wells")]
    assert "did you mean 'A02'?" in info.value.diagnostics[1].hint


def test_bad_plate_is_a_diagnostic_not_a_crash(tmp_path):
    (d,) = found(check([FunctionStep(func=blur)], tmp_path / "missing"), "plate-error")
    assert d.field == "plate"


def test_every_error_at_once_in_one_compile_error(plate):
    pipeline = [
        FunctionStep(func=(blur, {"sigmaa": 1}), name="Blur"),
        FunctionStep(func=[blur, torch_blur], name="Mixed"),
        FunctionStep(func=assemble, name="Assemble"),
    ]
    with pytest.raises(CompileError) as info:
        compile_pipeline(pipeline, plate)
    found = [(d.code, d.step_index, d.field) for d in info.value.diagnostics]
    assert found == [
        ("unknown-kwarg", 0, "kwargs.sigmaa"),
        ("chain-memory-mismatch", 1, "func[1]"),
        ("special-input-missing", 2, "special_inputs.positions"),
    ]
    message = str(info.value)
    assert message.startswith("pipeline has 3 errors:")
    assert "step 1 'Blur', kwargs.sigmaa" in message and "step 3 'Assemble'" in message


def test_every_code_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md").read_text()
    missing = [code for code in CODES if f"`{code}`" not in doc]
    assert missing == []


def test_check_never_raises_on_garbage():
    assert check(None)[0].code in {"internal-error", "empty-pipeline"}
    assert check([object()])[0].code == "not-a-step"
    assert MemoryType.NUMPY == "numpy"


def test_an_empty_well_list_is_a_diagnostic(plate):
    with pytest.raises(CompileError) as info:
        compile_pipeline([FunctionStep(func=blur)], plate, wells=[])
    (d,) = info.value.diagnostics
    assert (d.code, d.field, d.message) == ("unknown-well", "wells", "no wells were given")
