"""Fuzzing pipeline files: documents generated from the file schema, then broken at random.

Each document starts as a valid pipeline file (registry functions, their real
keyword names, components, flags, config) and is then mutated: wrong types,
unknown or misspelt keys, typos in function names, missing fields, other
format versions, and text damage (a character dropped, a bracket, colon or tab
inserted, the file cut short). Whatever the file holds:

- ``load_pipeline`` returns a pipeline or raises ``PipelineFileError``, nothing else;
- ``check`` never raises on what it returns (with and without a plate);
- whatever ``check`` passes compiles.
"""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plateflow import check
from plateflow.compiler import CompileError, compile_pipeline
from plateflow.io import PipelineFileError, load_pipeline
from plateflow.library import registry
from plateflow.plate import open_plate

NAMES = [n for n in registry.names() if registry.info(n).available and n.startswith("numpy.")]
COMPONENTS = ["site", "channel", "z_index", "timepoint", "well"]
STEP_KEYS = ["name", "function", "variable_components", "group_by", "force_disk_output", "visualize", "config"]

junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


def typo(text: str) -> st.SearchStrategy[str]:
    """``text`` with one character dropped, doubled or swapped for another."""
    return st.integers(0, max(len(text) - 1, 0)).flatmap(
        lambda i: st.sampled_from([text[:i] + text[i + 1:], text[:i] + text[i] * 2 + text[i + 1:], text[:i] + "x" + text[i + 1:]])
    )


@st.composite
def function_name(draw):
    name = draw(st.sampled_from(NAMES))
    return draw(typo(name)) if draw(st.integers(0, 9)) == 9 else name


@st.composite
def call(draw):
    name = draw(function_name())
    if draw(st.booleans()):
        return name
    info = registry.info(name) if name in registry.names() else None
    params = [p.name for p in info.params] if info else ["sigma"]
    kwargs = {}
    names = params + ["sigmaa", "radius", "bogus"] if draw(st.integers(0, 5)) == 5 else params
    for param in (draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []):
        default = next((p.default for p in info.params if p.name == param), None) if info else None
        wrong = draw(st.integers(0, 4)) == 4
        plain = isinstance(default, (bool, int, float, str)) or (isinstance(default, (list, tuple)) and all(isinstance(v, (int, float)) for v in default))
        kwargs[param] = draw(junk) if wrong or not plain else (list(default) if isinstance(default, tuple) else default)
    return [name, kwargs]


@st.composite
def pattern(draw):
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        return draw(call())
    if kind <= 6:
        return draw(st.lists(call(), min_size=1, max_size=3))
    if kind <= 8:
        return draw(st.dictionaries(st.sampled_from(["1", "2", "3", 1]), st.one_of(call(), st.lists(call(), min_size=1, max_size=2)), min_size=1, max_size=2))
    return draw(junk)


@st.composite
def step(draw):
    raw = {
        "name": draw(st.text(max_size=10)),
        "function": draw(pattern()),
        "variable_components": draw(st.lists(st.sampled_from(COMPONENTS * 4 + ["zindex"]), max_size=2, unique=True)),
        "group_by": draw(st.one_of(st.none(), st.none(), st.sampled_from(COMPONENTS * 4 + ["chanel"]))),
        "force_disk_output": draw(st.booleans()),
        "visualize": draw(st.booleans()),
        "config": draw(st.one_of(st.just({}), st.dictionaries(st.sampled_from(["float_output_dtype", "num_workers", "output_format", "colour"]), junk, max_size=2))),
    }
    return mutate(draw, raw, STEP_KEYS)


def mutate(draw, mapping: dict, keys: list[str]) -> dict:
    """Drop keys, give them values of the wrong type, misspell them, or add unknown ones (or leave it alone)."""
    out = dict(mapping)
    if draw(st.integers(0, 2)) < 2:
        return out
    for key in list(out):
        choice = draw(st.integers(0, 3 * len(out)))
        if choice == 3 * len(out):
            del out[key]
        elif choice == 3 * len(out) - 1:
            out[key] = draw(junk)
        elif choice == 3 * len(out) - 2:
            out[draw(typo(key))] = out.pop(key)
    if draw(st.integers(0, 9)) == 9:
        out[draw(st.text(min_size=1, max_size=6))] = draw(junk)
    return out


@st.composite
def document(draw):
    data = {
        "plateflow": draw(st.sampled_from([1] * 20 + [0, 2, 99, -1, "1", 1.0, None, True])),
        "name": draw(st.text(max_size=10)),
        "description": draw(st.text(max_size=10)),
        "steps": draw(st.lists(step(), max_size=4)),
    }
    data = mutate(draw, data, ["plateflow", "name", "description", "steps"])
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=draw(st.sampled_from([None, False, True])))
    damage = draw(st.integers(0, 11))
    if damage and damage <= 4 and text:
        i = draw(st.integers(0, len(text) - 1))
        text = {1: text[:i] + text[i + 1:], 2: text[:i] + "[" + text[i:], 3: text[:i] + ": " + text[i:], 4: text[:i] + "\t" + text[i:]}[damage]
    elif damage == 5 and text:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=document())
def test_load_raises_only_file_errors_and_what_check_passes_compiles(text, tmp_path, pristine_plate):
    path = tmp_path / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        pipeline = load_pipeline(path)
    except PipelineFileError as error:
        assert error.diagnostics
        assert all(d.line is None or d.line >= 1 for d in error.diagnostics)
        return
    plate = _plate(pristine_plate)
    check(pipeline)
    diagnostics = check(pipeline, plate)
    assert all(d.code != "internal-error" for d in diagnostics), diagnostics
    if any(d.severity == "error" for d in diagnostics):
        return
    try:
        contexts = compile_pipeline(pipeline, plate)
    except CompileError as error:
        raise AssertionError(f"check passed a pipeline that does not compile: {error.diagnostics}") from None
    assert set(contexts) == set(plate.wells)


_PLATES: dict[str, object] = {}


def _plate(root):
    """Open the pristine plate once for all examples."""
    key = str(root)
    if key not in _PLATES:
        _PLATES[key] = open_plate(root)
    return _PLATES[key]
