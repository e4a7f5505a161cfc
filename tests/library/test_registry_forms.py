"""Every registered function can be shown as a form: annotated parameters with valid defaults.

The builder makes one widget per parameter from ``registry.info(name).params``
(``plateflow.signatures``). A parameter without annotation, or without a
default, would leave the form unable to show or fill it; special inputs are
the exception (the pipeline supplies them from their producing step).
"""

from __future__ import annotations

import inspect

import pytest

from plateflow.library import registry
from plateflow.signatures import check_value


def _bundled() -> list[str]:
    return [name for name in registry.names() if registry.info(name).plugin is None]


@pytest.mark.parametrize("name", _bundled())
def test_every_parameter_is_annotated_with_a_valid_default(name: str) -> None:
    item = registry.info(name)
    problems = []
    for param in item.params:
        if param.name in item.special_inputs:
            continue
        if param.annotation is inspect.Parameter.empty:
            problems.append(f"{param.name}: no annotation")
            continue
        if param.required:
            problems.append(f"{param.name}: no default")
            continue
        problem = check_value(param, param.default)
        if problem is not None:
            problems.append(f"{param.name}: default {param.default!r} is not valid: {problem}")
        if param.choices is not None and param.default not in param.choices:
            problems.append(f"{param.name}: default {param.default!r} is not among the choices {param.choices}")
        if not param.doc:
            problems.append(f"{param.name}: no description in the docstring")
    assert not problems, f"{name}: " + "; ".join(problems)
    assert item.summary, f"{name} has no summary line"


def test_every_parameter_gets_a_widget(qapp) -> None:
    step_editor = pytest.importorskip("plateflow.napari._step_editor", reason="the napari extra is not installed")
    for name in _bundled():
        item = registry.info(name)
        for param in item.params:
            if param.name in item.special_inputs:
                continue
            widget = step_editor.param_widget(param, param.default)
            assert widget.label, (name, param.name)
