"""Disabled steps (enabled=False): kept in pipelines, files and scripts; left out of check, compile and run."""

from __future__ import annotations

import pytest

from plateflow import FunctionStep, Pipeline, check, compile_pipeline
from plateflow.io import dump_pipeline, export_script, load_pipeline, parse_pipeline, save_pipeline
from plateflow.library import registry


def pipeline_with_a_disabled_step() -> Pipeline:
    return Pipeline(
        [
            FunctionStep((registry.get("numpy.gaussian_filter"), {"sigma": 2.0}), name="Blur"),
            FunctionStep((registry.get("numpy.top_hat"), {"raduis": 3}), name="Broken and off", enabled=False),
            FunctionStep(registry.get("numpy.max_projection"), name="Project", variable_components=("z_index",)),
        ],
        name="with an off step",
    )


def test_disabled_steps_are_not_checked_or_compiled(sample_plate_dir):
    pipeline = pipeline_with_a_disabled_step()
    assert check(pipeline) == []  # the disabled step's typo is not reported
    contexts = compile_pipeline(pipeline, sample_plate_dir, wells=["A01"])
    assert [p["step_name"] for p in contexts["A01"].plans()] == ["Blur", "Project"]
    # Enabling it brings its problem back, counted among the enabled steps.
    pipeline[1].enabled = True
    (diagnostic,) = check(pipeline)
    assert (diagnostic.code, diagnostic.step_index, diagnostic.field) == ("unknown-kwarg", 1, "kwargs.raduis")


def test_pipeline_files_keep_disabled_steps(tmp_path):
    pipeline = pipeline_with_a_disabled_step()
    pipeline[1].func = (registry.get("numpy.top_hat"), {"radius": 3})  # files hold only valid keywords
    text = dump_pipeline(pipeline)
    assert text.count("enabled: false") == 1 and "enabled: true" not in text
    path = save_pipeline(pipeline, tmp_path / "p.yaml")
    loaded = load_pipeline(path)
    assert [(s.name, s.enabled) for s in loaded] == [("Blur", True), ("Broken and off", False), ("Project", True)]
    assert loaded[1].func[1] == {"radius": 3}
    assert "enabled=False" in repr(loaded[1]) and loaded[1].copy().enabled is False


def test_a_non_boolean_enabled_is_a_file_diagnostic():
    text = "plateflow: 1\nname: p\nsteps:\n  - name: Blur\n    function: numpy.gaussian_filter\n    enabled: maybe\n"
    from plateflow.io import PipelineFileError

    with pytest.raises(PipelineFileError) as info:
        parse_pipeline(text)
    (problem,) = info.value.diagnostics
    assert problem.line == 6 and problem.field.endswith("enabled") and "expected true or false" in problem.message


def test_exported_script_keeps_disabled_steps():
    namespace: dict = {}
    script = export_script(pipeline_with_a_disabled_step())
    assert script.count("enabled=False") == 1
    exec(compile(script.split('\nif __name__ == "__main__":')[0], "<exported>", "exec"), namespace)
    rebuilt = namespace["build_pipeline"]()
    assert [s.enabled for s in rebuilt] == [True, False, True]
