"""``plateflow._naming``: the one home of the plate components, natural order and well ids."""

from __future__ import annotations

import pytest

from plateflow import _naming, steps
from plateflow.plate import model


def test_every_layer_shares_one_definition():
    # Storage, plates and declarations use the same objects, from the lowest layer.
    assert steps.COMPONENTS is _naming.COMPONENTS is model.COMPONENTS
    assert model.natural_sorted is _naming.natural_sorted and model.well_id is _naming.well_id
    assert _naming.COMPONENTS == ("well", "site", "channel", "z_index", "timepoint")


@pytest.mark.parametrize(
    "values, expected",
    [
        (["10", "9", "1"], ["1", "9", "10"]),
        (["A10", "A2", "B1"], ["A2", "A10", "B1"]),
        (["s2_w10", "s2_w9", "s10_w1"], ["s2_w9", "s2_w10", "s10_w1"]),
    ],
)
def test_natural_order(values, expected):
    assert _naming.natural_sorted(values) == expected


def test_well_ids_and_positions():
    assert [_naming.well_id(1, 1), _naming.well_id("b3"), _naming.well_id(27, 12)] == ["A01", "B03", "AA12"]
    assert [_naming.well_position(w) for w in ("A01", "B03", "AA12")] == [(1, 1), (2, 3), (27, 12)]
    with pytest.raises(ValueError, match="'r01c01' is not a well id"):
        _naming.well_id("r01c01")
