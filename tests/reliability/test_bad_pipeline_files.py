"""Bad pipeline files: every problem is a diagnostic with the line, column and field to fix.

``load_pipeline`` raises only ``PipelineFileError`` for whatever a file holds,
never runs anything from it, and lists every problem at once.
"""

from __future__ import annotations


import pytest

from plateflow.cli import main
from plateflow.io import PipelineFileError, load_pipeline

# name -> (file text, [(line, field, words in the message), ...]); lines count from 1.
CORPUS: dict[str, tuple[str, list[tuple[int | None, str, str]]]] = {
    "unclosed-bracket": (
        "plateflow: 1\n"
        "name: bad\n"
        "steps:\n"
        "- name: Blur\n"
        "  function: [numpy.gaussian_filter, {sigma: 1.0}\n"
        "  variable_components: [site]\n",
        [(6, "", "not valid YAML")],
    ),
    "tab-indent": ("plateflow: 1\nsteps:\n\t- name: x\n", [(3, "", "'\\t' that cannot start any token")]),
    "nul-byte": ("plateflow: 1\nsteps: []\n\x00\n", [(3, "", "0x0000 is not allowed")]),
    "python-tag": (
        "plateflow: 1\nsteps:\n- name: A\n  function: !!python/object/apply:os.system ['touch pwned']\n",
        [(4, "", "could not determine a constructor")],
    ),
    "wrong-types": (
        "plateflow: 1\n"
        "name: [1, 2]\n"
        "steps:\n"
        "- name: Blur\n"
        "  function: [numpy.gaussian_filter, {sigma: big}]\n"
        "  variable_components: 3\n"
        "  force_disk_output: 'yes'\n"
        "  group_by: 7\n"
        "  config: [1]\n",
        [
            (2, "name", "expected a string"),
            (5, "step 1 'Blur', function.kwargs.sigma", "sigma must be"),
            (6, "step 1 'Blur', variable_components", "expected a list of components"),
            (7, "step 1 'Blur', force_disk_output", "expected true or false"),
            (8, "step 1 'Blur', group_by", "unknown component 7"),
            (9, "step 1 'Blur', config", "expected a mapping of settings"),
        ],
    ),
    "steps-not-a-list": ("plateflow: 1\nsteps: {a: 1}\n", [(2, "steps", "expected a list of steps")]),
    "unknown-functions": (
        "plateflow: 1\n"
        "steps:\n"
        "- name: Blur\n"
        "  function: numpy.gausian_filter\n"
        "- name: Clean\n"
        "  function: [[numpy.top_hat, {radiuss: 3}], torch.nonexistent]\n"
        "- name: Dict\n"
        "  group_by: channel\n"
        "  function:\n"
        "    '1': os.system\n",
        [
            (4, "step 1 'Blur', function", "no function named 'numpy.gausian_filter'"),
            (6, "step 2 'Clean', function[0].kwargs.radiuss", "unknown keyword argument 'radiuss'"),
            (6, "step 2 'Clean', function[1]", "no function named 'torch.nonexistent'"),
            (10, "step 3 'Dict', function['1']", "no function named 'os.system'"),
        ],
    ),
    "future-version": ("plateflow: 99\nname: from the future\nsteps: []\n", [(1, "plateflow", "written by a newer plateflow (format 99)")]),
    "version-not-a-number": ("plateflow: '1'\nsteps: []\n", [(1, "plateflow", "must be a whole number")]),
    "no-version": ("name: x\nsteps: []\n", [(1, "plateflow", "key is missing")]),
    "unknown-and-missing-keys": (
        "plateflow: 1\nstep: []\nsteps:\n- name: A\n  functon: numpy.max_projection\n",
        [(2, "step", "unknown key 'step'"), (5, "step 1 'A', functon", "unknown key 'functon'"), (4, "step 1 'A'", "the step has no 'function'")],
    ),
    "duplicate-key": (
        "plateflow: 1\nsteps:\n- name: A\n  function: numpy.max_projection\n  function: numpy.top_hat\n",
        [(5, "step 1 'A', function", "appears twice")],
    ),
    "not-a-mapping": ("- a\n- b\n", [(1, "", "a pipeline file is a mapping")]),
    "empty": ("", [(None, "", "a pipeline file is a mapping")]),
    "deep-nesting": ("plateflow: 1\nsteps: " + "[" * 5000 + "]" * 5000 + "\n", [(None, "", "nested too deeply")]),
    "alias-bomb": (
        "plateflow: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
        + "steps: []\n",
        [(None, "", "once its YAML aliases")],
    ),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_problem_has_its_line_and_field(name, tmp_path):
    text, expected = CORPUS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path)
    error = caught.value
    assert error.source == str(path) and str(path) in str(error)
    got = [(d.line, d.place, d.message) for d in error.diagnostics]  # place: "step 1 'Blur', function" (steps count from 1)
    assert len(got) == len(expected), got
    for line, field, words in expected:
        assert any(g_line == line and g_field == field and words in message for g_line, g_field, message in got), (line, field, words, got)
    assert not (tmp_path / "pwned").exists()


def test_not_utf8_is_a_diagnostic_with_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("plateflow: 1\nname: caf\u00e9\nsteps: []\n".encode("latin-1"))
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == 2 and "not UTF-8" in diagnostic.message


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfplateflow: 1\nname: with bom\nsteps:\n- function: numpy.max_projection\n")
    assert load_pipeline(path).name == "with bom"


def test_cli_prints_each_diagnostic_with_file_and_line(tmp_path, capsys):
    text, _ = CORPUS["unknown-functions"]
    path = tmp_path / "my pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 1
    printed = capsys.readouterr().out
    assert str(path) in printed
    assert "line 4, column 13: step 1 'Blur', function: no function named 'numpy.gausian_filter'" in printed
    assert "did you mean 'numpy.gaussian_filter'?" in printed
    assert main(["run", str(path), str(tmp_path / "no plate"), "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
