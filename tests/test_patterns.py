"""The four function patterns normalize to one form; malformed ones name the place to fix."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from plateflow.patterns import (
    FunctionCall,
    NormalizedPattern,
    PatternError,
    function_field,
    function_name,
    kwarg_field,
    normalize_pattern,
)


def blur(stack, sigma=1.0):
    return stack


def threshold(stack, level=0.5):
    return stack


def count(stack):
    return stack


def places(pattern: NormalizedPattern) -> list[str]:
    return [call.place for call in pattern.calls()]


# --- the four patterns -------------------------------------------------------------------


def test_bare_function():
    result = normalize_pattern(blur)
    assert result.kind == "function" and not result.is_dict
    assert result.keys == ()
    (call,) = result.chain_for(None)
    assert call == FunctionCall(blur, MappingProxyType({}), "")
    assert call.place == "" and call.field == "func"
    assert call.kwarg_field("sigma") == "kwargs.sigma"
    assert call.name == "blur"


def test_function_with_kwargs():
    kwargs = {"sigma": 2.0}
    result = normalize_pattern((blur, kwargs))
    assert result.kind == "function"
    (call,) = result.calls()
    assert call.func is blur and dict(call.kwargs) == {"sigma": 2.0}
    assert call.place == "" and call.kwarg_field("sigmaa") == "kwargs.sigmaa"
    kwargs["sigma"] = 9.0  # the normalized form keeps its own copy
    assert call.kwargs["sigma"] == 2.0
    with pytest.raises(TypeError):
        call.kwargs["sigma"] = 3.0  # read-only


def test_chain():
    result = normalize_pattern([blur, (threshold, {"level": 0.2}), count])
    assert result.kind == "chain"
    assert places(result) == ["func[0]", "func[1]", "func[2]"]
    chain = result.chain_for(None)
    assert [c.func for c in chain] == [blur, threshold, count]
    assert chain[1].field == "func[1]"
    assert chain[1].kwarg_field("levle") == "func[1].kwargs.levle"
    assert result.first_calls()[0].func is blur and result.last_calls()[0].func is count


def test_dict_of_functions_tuples_and_chains():
    result = normalize_pattern({"1": blur, 2: (threshold, {"level": 0.1}), "3": [blur, count]})
    assert result.kind == "dict" and result.is_dict
    assert result.keys == ("1", "2", "3")  # int keys become component-value strings
    assert places(result) == ["func['1']", "func['2']", "func['3'][0]", "func['3'][1]"]
    assert result.chain_for("2")[0].kwarg_field("levl") == "func['2'].kwargs.levl"
    assert [c.func for c in result.chain_for("3")] == [blur, count]
    assert [c.func for c in result.first_calls()] == [blur, threshold, blur]
    assert [c.func for c in result.last_calls()] == [blur, threshold, count]
    with pytest.raises(KeyError):
        result.chain_for("4")


def test_place_grammar_helpers():
    assert function_field("") == "func"
    assert function_field("func[1]") == "func[1]"
    assert kwarg_field("", "sigma") == "kwargs.sigma"
    assert kwarg_field("func['2'][0]", "sigma") == "func['2'][0].kwargs.sigma"
    assert function_name(blur) == "blur"


def test_normalized_pattern_is_read_only():
    result = normalize_pattern([blur])
    with pytest.raises(TypeError):
        result.chains[None] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        result.kind = "dict"  # type: ignore[misc]


def test_callable_objects_are_functions():
    class Filter:
        def __call__(self, stack):
            return stack

    instance = Filter()
    assert normalize_pattern(instance).chain_for(None)[0].func is instance


# --- malformed patterns ----------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, field, message",
    [
        # kwargs that are not a dict
        ((blur, ["sigma", 2]), "func", "second item of the tuple must be a dict of keyword arguments, got list"),
        ([blur, (threshold, 0.5)], "func[1]", "must be a dict of keyword arguments, got float"),
        ({"1": (blur, "sigma=2")}, "func['1']", "got str"),
        ({"1": [count, (blur, None)]}, "func['1'][1]", "got NoneType"),
        ((blur, {1: 2}), "func", "keyword argument names must be strings, got 1"),
        # non-callables
        (42, "func", "expected a function, got int 42"),
        ("gaussian", "func", "expected a function, got str 'gaussian'"),
        ([blur, "threshold"], "func[1]", "expected a function, got str"),
        ({"2": [blur, None]}, "func['2'][1]", "expected a function, got NoneType"),
        (("blur", {}), "func", "first item of the tuple must be a function, got str"),
        (None, "func", "the step has no function"),
        # nested dicts
        ({"1": {"a": blur}}, "func['1']", "a dict pattern cannot be nested inside another dict"),
        ([blur, {"a": blur}], "func[1]", "a dict pattern cannot be nested"),
        ({"1": [blur, {"a": blur}]}, "func['1'][1]", "a dict pattern cannot be nested"),
        # nested lists
        ([[blur]], "func[0]", "a list (chain) cannot be nested inside another list"),
        # empty list / empty dict
        ([], "func", "an empty list has no function to run"),
        ({"1": []}, "func['1']", "an empty list has no function to run"),
        ({}, "func", "an empty dict pattern has no function to run"),
        # tuples of the wrong length
        ((blur, {}, {}), "func", "needs exactly 2 items, got 3"),
        ((blur,), "func", "needs exactly 2 items, got 1"),
        ([count, (blur, {"sigma": 1}, "x")], "func[1]", "needs exactly 2 items, got 3"),
        ({"1": (blur, {}, 1)}, "func['1']", "needs exactly 2 items, got 3"),
        # dict keys
        ({1: blur, "1": count}, "func['1']", "dict pattern key '1' appears twice"),
        ({True: blur}, "func", "dict pattern keys must be component values"),
        ({(1, 2): blur}, "func", "dict pattern keys must be component values"),
    ],
)
def test_malformed_patterns_name_the_field(pattern, field, message):
    with pytest.raises(PatternError) as info:
        normalize_pattern(pattern)
    error = info.value
    assert error.field == field
    assert message in error.reason
    assert str(error) == f"{field}: {error.reason}"


def test_pattern_error_is_a_value_error():
    assert issubclass(PatternError, ValueError)
    assert PatternError("no field", "").args == ("no field",)
