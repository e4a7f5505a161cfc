"""A plate's metadata file is garbage: a random-bytes ``.HTD``, an ``Index.idx.xml`` with
``ImageResolutionX=banana``. Check, TIFF run and zarr run agree, and any error names the file and field."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from plateflow import FunctionStep
from plateflow.cli import main
from plateflow.compiler import check
from plateflow.execution import run
from plateflow.io import save_pipeline
from plateflow.library import registry
from tests.plate._build import make_files, phenix_index_xml


def _steps() -> list[FunctionStep]:
    return [FunctionStep(registry.get("numpy.max_projection"), name="Project", variable_components=("z_index",))]


def test_garbage_htd_gives_the_same_answer_to_check_tiff_and_zarr(make_plate, tmp_path, capsys):
    def garble(root: Path) -> None:
        (htd,) = root.glob("*.HTD")
        htd.write_bytes(random.Random(0).randbytes(3000))

    plate = make_plate(damage=garble)
    (htd,) = plate.glob("*.HTD")
    pipeline_file = save_pipeline(_steps(), tmp_path / "p.yaml")
    results = {}
    with pytest.warns(UserWarning, match=r"plate\.HTD: not an HTD file.*its channel names are not used"):
        for fmt in ("tiff", "zarr"):
            capsys.readouterr()
            code = main(["run", str(pipeline_file), str(plate), "-o", str(tmp_path / fmt), "--format", fmt, "--quiet"])
            results[fmt] = (code, capsys.readouterr())
    errors = [d for d in check(_steps(), plate) if d.is_error]
    # One answer: either everything works (the HTD only names channels), or everything refuses naming the HTD.
    if errors:
        assert all(code == 1 for code, _ in results.values())
        assert all(str(htd) in d.message or htd.name in d.message for d in errors)
    else:
        assert {fmt: code for fmt, (code, _) in results.items()} == {"tiff": 0, "zarr": 0}, results
    for _code, captured in results.values():
        assert "Traceback" not in captured.out + captured.err


@pytest.fixture
def banana_phenix_plate(tmp_path) -> Path:
    root = tmp_path / "phenix"
    images = [f"Images/r01c0{c}f01p01-ch1sk1fk1fl1.tiff" for c in (1, 2)]
    make_files(root, images)
    xml = phenix_index_xml({1: "DAPI"}, 6.5e-7, images=[i.split("/", 1)[1] for i in images])
    (root / "Images" / "Index.idx.xml").write_text(xml.replace("6.5e-07", "banana"))
    return root


def test_phenix_index_with_a_banana_resolution_names_the_file_and_field(banana_phenix_plate, tmp_path, capsys):
    index = banana_phenix_plate / "Images" / "Index.idx.xml"
    pipeline_file = save_pipeline(_steps(), tmp_path / "p.yaml")
    messages = []
    for fmt in ("tiff", "zarr"):
        capsys.readouterr()
        code = main(["run", str(pipeline_file), str(banana_phenix_plate), "-o", str(tmp_path / fmt), "--format", fmt, "--quiet"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        if code != 0:
            assert code == 1
            messages.append(captured.out + captured.err)
    assert messages, "a resolution of 'banana' was accepted silently"
    for text in messages:
        assert str(index) in text and "ImageResolutionX" in text and "banana" in text, text
