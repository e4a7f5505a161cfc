"""Pipeline files: exact round trips, safe loading, diagnostics with lines, upgrades."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from plateflow import FunctionStep, Pipeline
from plateflow.io import FORMAT_VERSION, PipelineFileError, UnregisteredFunctionError, load_pipeline, parse_pipeline, save_pipeline
from plateflow.library import numpy_functions as nf
from plateflow.library import torch_functions as tf
from plateflow.memory import numpy as numpy_type
from plateflow.patterns import normalize_pattern


def _pipeline() -> Pipeline:
    return Pipeline(
        [
            FunctionStep(nf.max_projection, name="Project", variable_components=("z_index",)),
            FunctionStep((nf.gaussian_filter, {"sigma": 2.5}), name="Blur", force_disk_output=True),
            FunctionStep([nf.gaussian_filter, (nf.top_hat, {"radius": 5}), (nf.label, {})], name="Chain",
                         config={"float_output_dtype": "float64", "gpu_ids": (0,)}),
            FunctionStep({"1": [(nf.find_tile_positions, {"grid_shape": (2, 3), "overlap": 0.2})], "2": tf.top_hat,
                          "3": (nf.composite_channels, {"weights": (0.5, 1.5)})},
                         name="Per channel", variable_components=("site", "z_index"), group_by="channel", visualize=True),
        ],
        name="demo",
        description="every pattern kind",
    )


def _assert_same(loaded: Pipeline, original: Pipeline) -> None:
    assert (loaded.name, loaded.description, len(loaded)) == (original.name, original.description, len(original))
    for got, want in zip(loaded, original):
        assert got.func == want.func  # the same shape: tuples stay tuples, lists lists
        assert normalize_pattern(got.func) == normalize_pattern(want.func)
        for attr in ("name", "variable_components", "group_by", "force_disk_output", "visualize", "config"):
            assert getattr(got, attr) == getattr(want, attr), attr


def test_round_trip_is_exact_for_every_pattern_kind(tmp_path: Path) -> None:
    original = _pipeline()
    path = save_pipeline(original, tmp_path / "p.yaml")
    text = path.read_text()
    assert text.startswith(f"plateflow: {FORMAT_VERSION}\n")
    assert "numpy.gaussian_filter" in text and "torch.top_hat" in text
    loaded = load_pipeline(path)
    _assert_same(loaded, original)
    assert loaded[3].func["1"][0][1]["grid_shape"] == (2, 3)
    save_pipeline(loaded, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == text


def test_saved_file_has_the_usual_permissions_and_no_leftovers(tmp_path: Path) -> None:
    # Written atomically like every other output: through a temporary file, then a rename,
    # and readable as a plain open() would leave it (not 0600 like a mkstemp file).
    path = save_pipeline(_pipeline(), tmp_path / "sub" / "p.yaml")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path / "sub") == ["p.yaml"]


def test_saving_an_unregistered_function_names_step_and_function(tmp_path: Path) -> None:
    @numpy_type
    def private_filter(stack):
        return stack

    steps = [FunctionStep(nf.max_projection), FunctionStep([nf.gaussian_filter, private_filter], name="Mine")]
    with pytest.raises(UnregisteredFunctionError, match=r"step 2 'Mine' uses .*private_filter.*plateflow.library.register"):
        save_pipeline(steps, tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()


def _diagnostics(text: str) -> list:
    with pytest.raises(PipelineFileError) as caught:
        parse_pipeline(textwrap.dedent(text))
    return caught.value.diagnostics


def test_every_problem_is_reported_with_its_line() -> None:
    found = _diagnostics(
        """\
        plateflow: 1
        name: demo
        colour: blue
        steps:
        - name: Blur
          function: [numpy.gaussian_filtre, {sigma: 2}]
        - name: Hat
          function: [numpy.top_hat, {radius: -3, raduis: 4}]
          visualize: maybe
          variable_components: [site, wel]
          config: {num_workerz: 2}
        - name: Keys
          functon: numpy.label
        """
    )
    by_field = {(d.step_index, d.field): d for d in found}
    assert by_field[None, "colour"].line == 3 and "unknown key 'colour'" in by_field[None, "colour"].message
    unknown = by_field[0, "function"]
    assert unknown.line == 6 and unknown.message.startswith("no function named 'numpy.gaussian_filtre'")
    assert unknown.hint == "did you mean 'numpy.gaussian_filter'?"
    assert str(unknown).startswith("line 6, column 14: step 1 'Blur', function: no function named")  # steps count from 1
    radius = by_field[1, "function.kwargs.radius"]
    assert radius.line == 8 and radius.step_name == "Hat"
    assert radius.message.startswith("radius ") and "below the minimum 1" in radius.hint  # the compiler's words and hint
    assert by_field[1, "function.kwargs.raduis"].hint == "did you mean 'radius'?"
    assert by_field[1, "visualize"].line == 9 and by_field[1, "visualize"].hint == "write visualize: true or visualize: false"
    assert by_field[1, "variable_components"].hint == "did you mean 'well'?"
    assert by_field[1, "config"].line == 11 and "num_workers" in by_field[1, "config"].hint
    assert by_field[2, "functon"].line == 13 and by_field[2, "functon"].hint == "did you mean 'function'?"
    assert by_field[2, ""].message == "the step has no 'function'" and by_field[2, ""].place == "step 3 'Keys'"
    assert all(d.hint for d in found), [d for d in found if not d.hint]  # every problem says how to fix it


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("plateflow: 1\nsteps: [\n  - oops\n", 3, "not valid YAML"),
        ("plateflow: 99\nsteps: []\n", 1, "written by a newer plateflow (format 99)"),
        ("name: x\nsteps: []\n", 1, "the 'plateflow: <format version>' key is missing"),
        ("plateflow: one\n", 1, "must be a whole number"),
        ("plateflow: 1\nname: a\nname: b\n", 3, "key 'name' appears twice"),
        ("plateflow: 1\nsteps: {a: 1}\n", 2, "expected a list of steps, got a mapping"),
        ("- just\n- a list\n", 1, "a pipeline file is a mapping"),
    ],
)
def test_malformed_files_give_diagnostics(text: str, line: int, message: str) -> None:
    (diagnostic, *_) = _diagnostics(text)
    assert diagnostic.line == line
    assert message in diagnostic.message
    assert diagnostic.hint  # with how to fix it


def test_loading_never_runs_code_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    found = _diagnostics(
        f"""\
        plateflow: 1
        steps:
        - function: !!python/object/apply:os.system ["touch {marker}"]
        """
    )
    assert not marker.exists()
    assert found[0].line == 3 and "not valid YAML" in found[0].message
    error = _diagnostics("plateflow: 1\nsteps:\n- function: os.system\n")
    assert "no function named 'os.system'" in error[0].message


def test_error_message_lists_all_problems() -> None:
    with pytest.raises(PipelineFileError) as caught:
        parse_pipeline("plateflow: 1\nsteps:\n- function: numpy.nope\n- function: numpy.nada\n", source="p.yaml")
    text = str(caught.value)
    assert text.startswith("p.yaml: 2 problems in the pipeline file:")
    assert "line 3, column 13: step 1, function: no function named 'numpy.nope'" in text
    assert "line 4, column 13: step 2, function: no function named 'numpy.nada'" in text
    assert isinstance(caught.value, ValueError)


def test_format_0_is_upgraded() -> None:
    loaded = parse_pipeline(
        textwrap.dedent(
            """\
            plateflow: 0
            pipeline: old
            steps:
            - name: Blur
              function: numpy.gaussian_filter
              args: {sigma: 3.0}
              components: [channel]
            - function: numpy.max_projection
            """
        )
    )
    assert loaded.name == "old"
    assert loaded[0].func == (nf.gaussian_filter, {"sigma": 3.0})
    assert loaded[0].variable_components == ("channel",)
    assert loaded[1].func is nf.max_projection and loaded[1].name == "max_projection"


def test_upgraded_file_diagnostics_point_into_the_original() -> None:
    (diagnostic,) = _diagnostics(
        "plateflow: 0\nsteps:\n- function: numpy.gaussian_filter\n  args: {sigmaa: 3.0}\n"
    )
    assert (diagnostic.step_index, diagnostic.field) == (0, "function.kwargs.sigmaa")
    assert diagnostic.line == 3  # the v0 'function' line: the kwargs moved under it
