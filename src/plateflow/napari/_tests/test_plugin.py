"""The npe2 manifest and its contributions in a napari viewer: reader, sample plate, dock widget, __main__."""

from __future__ import annotations

import importlib
import subprocess
import sys

import npe2
import numpy as np
import pytest

from plateflow.napari._manifest import PLUGIN_NAME, ensure_plugin_registered, manifest_path
from plateflow.napari._reader import channel_colormap, napari_get_reader
from plateflow.plate import sample_plate_path

pytestmark = pytest.mark.gui

@pytest.fixture(scope="module", autouse=True)
def registered_plugin():
    return ensure_plugin_registered()


def test_npe2_validate_passes_and_every_python_name_imports():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", str(manifest_path())], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = npe2.PluginManifest.from_file(manifest_path())
    assert manifest.name == PLUGIN_NAME
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert module.startswith("plateflow.napari.")
        assert callable(getattr(importlib.import_module(module), attr))
    assert [w.display_name for w in manifest.contributions.widgets] == ["Pipeline builder"]
    assert [s.key for s in manifest.contributions.sample_data] == ["sample_plate"]
    assert manifest.contributions.readers[0].accepts_directories


def test_reader_gives_one_layer_per_channel_with_names_colormaps_and_scale(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(sample_plate_path()), plugin=PLUGIN_NAME)
    assert [layer.name for layer in layers] == ["DAPI", "FITC"]
    assert [layer.colormap.name for layer in layers] == ["blue", "green"]
    dapi = layers[0]
    assert dapi.data.shape == (4, 4, 3, 256, 256)  # well, site, z_index, y, x
    assert tuple(dapi.axis_labels) == ("well", "site", "z_index", "y", "x")
    np.testing.assert_allclose(dapi.scale, (1, 1, 1, 0.65, 0.65))
    assert dapi.blending == "additive"
    plane = np.asarray(dapi.data[1, 2, 1])
    assert plane.shape == (256, 256) and plane.dtype == np.uint16 and plane.max() > plane.min()


def test_reader_declines_folders_that_are_not_plates_and_opens_the_htd_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a plate")
    assert napari_get_reader(str(tmp_path)) is None
    reader = napari_get_reader(str(sample_plate_path() / "plate.HTD"))
    assert reader is not None and len(reader(str(sample_plate_path() / "plate.HTD"))) == 2
    assert channel_colormap("Hoechst 33342", 2) == "blue" and channel_colormap("mCherry", 0) == "magenta"
    assert channel_colormap("", 1) == "green"


def test_sample_data_entry_opens_the_sample_plate(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN_NAME, "sample_plate")
    assert [layer.name for layer in viewer.layers] == ["DAPI", "FITC"]


def test_dock_widget_from_the_manifest(make_napari_viewer):
    from plateflow.napari._widget import PipelineBuilderWidget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "Pipeline builder")
    assert isinstance(widget, PipelineBuilderWidget)
    assert getattr(widget.viewer, "__wrapped__", widget.viewer) is viewer  # napari may hand plugins a proxy
    assert widget.plate is not None and widget.plate.root == sample_plate_path()


def test_main_opens_the_plate_the_widget_and_the_demo_pipeline(make_napari_viewer):
    from plateflow.napari.__main__ import open_builder

    viewer = make_napari_viewer()
    widget = open_builder(viewer)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "FITC"]
    assert [s.name for s in widget.model.steps] == ["Normalize", "Remove background", "Z max projection", "Count nuclei"]
    assert not any(d.is_error for d in widget.diagnostics)
