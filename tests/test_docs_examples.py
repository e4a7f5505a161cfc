"""Every Python example of README.md and docs/*.md runs as written, as a script and with ``python -c``.

The examples name the plate folders ``my_plate`` (the user guide makes it with
``plateflow sample-plate``) and ``sample_data/plate`` (the bundled plate). They
run here in a scratch folder where both are a tiny generated plate (4 wells,
1 site, 2 Z planes, 64 x 64), so the whole file stays within about a minute.
An example that cannot run here is marked on the line before its fence with
``<!-- docs-test: skip (the reason) -->``; the test lists the marks and fails
on a mark without a reason.

Also: the pipeline-file example of docs/pipeline-files.md passes ``plateflow
check``, and the user guide's command lines (``sample-plate`` then ``run
--format zarr --wells A01,B02``) work on the guide's own plate.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(\((?P<reason>[^)]*)\))?\s*-->\s*$")


def _examples() -> list[tuple[str, str, str | None]]:
    """(id, code, skip reason or None) of every python block."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for number, match in enumerate(_FENCE.finditer(text), start=1):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = _SKIP.search(before)
            reason = None if skip is None else (skip.group("reason") or "").strip()
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT).as_posix()}:{line}", match.group(1), reason))
    return found


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    from plateflow.plate import generate_sample_plate

    folder = tmp_path_factory.mktemp("docs")
    plate = generate_sample_plate(folder / "my_plate", wells=("A01", "A02", "B01", "B02"), sites=1, channels=2, z_planes=2, size=(64, 64))
    (folder / "sample_data").mkdir()
    os.symlink(plate, folder / "sample_data" / "plate")
    for name in ("as_script", "as_python_c"):  # each invocation writes its outputs in its own folder
        (folder / name / "sample_data").mkdir(parents=True)
        os.symlink(plate, folder / name / "my_plate")
        os.symlink(plate, folder / name / "sample_data" / "plate")
    return folder


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env)


def test_the_docs_have_examples_and_every_skip_says_why():
    assert len([e for e in EXAMPLES if e[0].startswith("README.md")]) >= 2
    assert len([e for e in EXAMPLES if e[0].startswith("docs/user-guide.md")]) >= 8
    assert all(reason for _, _, reason in EXAMPLES if reason is not None), [e[0] for e in EXAMPLES if e[2] == ""]


@pytest.mark.parametrize(("where", "code", "skip"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_runs_as_a_script_and_with_python_c(where, code, skip, scratch):
    if skip is not None:
        pytest.skip(skip)
    script = scratch / ("example_" + re.sub(r"\W", "_", where) + ".py")
    script.write_text(code, encoding="utf-8")
    from concurrent.futures import ThreadPoolExecutor

    invocations = ([str(script)], ["-c", code])
    with ThreadPoolExecutor(2) as pool:  # both at once: most of each is interpreter and worker start-up
        results = list(pool.map(_python, invocations, (scratch / "as_script", scratch / "as_python_c")))
    for args, done in zip(invocations, results):
        shown = f"{where} ({'script' if args[0] != '-c' else 'python -c'}) exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        assert done.returncode == 0, shown
        assert "Traceback" not in done.stderr and "FAILED" not in done.stdout, shown


def test_pipeline_file_example_passes_plateflow_check(scratch, capsys):
    from plateflow.cli import main

    text = (ROOT / "docs" / "pipeline-files.md").read_text(encoding="utf-8")
    example = re.search(r"## A complete example.*?```yaml\n(.*?)```", text, re.S).group(1)
    path = scratch / "docs-example.yaml"
    path.write_text(example, encoding="utf-8")
    assert main(["check", str(path), str(scratch / "sample_data" / "plate")]) == 0
    printed = capsys.readouterr().out
    assert "0 errors, 1 warning" in printed and "[uncovered-group-value] step 4 'Count nuclei'" in printed

    from plateflow.io import parse_pipeline

    bad = example.replace("{radius: 10}", "{radiuss: 10}").replace("function: numpy.max_projection", "function: numpy.max_projektion")
    with pytest.raises(ValueError) as caught:
        parse_pipeline(bad, source="nuclei.yaml")
    shown = re.search(r"```\n(nuclei.yaml: 2 problems.*?)```", text, re.S).group(1).strip()
    assert str(caught.value) == shown  # the documented message is the real one


def test_user_guide_command_lines_work_on_the_guides_own_plate(tmp_path, capsys, monkeypatch):
    """``sample-plate`` as the guide writes it, then the guide's zarr run of a wells subset."""
    import shlex

    from plateflow.cli import main

    guide = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    make_plate = re.search(r"^plateflow (sample-plate my_plate .*)$", guide, re.M).group(1)
    zarr_run = re.search(r"^plateflow (run nuclei.yaml my_plate .*--format zarr --wells A01,B02)$", guide, re.M).group(1)
    monkeypatch.chdir(tmp_path)
    # A smaller plate than the guide's (same wells, sites and channels) keeps the test fast.
    assert main([*shlex.split(make_plate.replace("--size 256", "--size 64")), "--z", "2"]) == 0
    from plateflow.execution.demo import demo_pipeline
    from plateflow.io import save_pipeline

    save_pipeline(demo_pipeline(), "nuclei.yaml")
    assert main([*shlex.split(zarr_run), "--quiet", "--workers", "2"]) == 0, capsys.readouterr().out
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    hcs = HCS.from_zarr(zarr.open_group(str(tmp_path / "results_zarr" / "my_plate.zarr"), mode="r"))
    assert [w.path for w in hcs.ome_attributes.plate.wells] == ["A/1", "B/2"]


def test_every_local_link_and_image_of_the_docs_exists():
    missing = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" not in target and not (path.parent / target).exists():
                missing.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not missing, missing
