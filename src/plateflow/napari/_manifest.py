"""Find plateflow's npe2 manifest and make sure napari has it registered.

The manifest lives at the repository's top level; the package reaches it as
``plateflow/napari.yaml`` (a link in a checkout, a copy in the wheel), which is
what the ``napari.manifest`` entry point ``plateflow = "plateflow:napari.yaml"``
names. :func:`ensure_plugin_registered` registers it by path when discovery
did not run or missed it (e.g. plateflow imported from a source tree that is
not installed).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import npe2

__all__ = ["PLUGIN_NAME", "manifest_path", "ensure_plugin_registered"]

PLUGIN_NAME = "plateflow"


def manifest_path() -> Path:
    """The manifest file: inside the installed package, else at the source checkout's root."""
    packaged = resources.files("plateflow").joinpath("napari.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "napari.yaml"
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        "plateflow's napari.yaml was found neither in the installed package nor at the source checkout's root"
    )


def ensure_plugin_registered() -> npe2.PluginManifest:
    """The registered plateflow manifest, registering it from :func:`manifest_path` when discovery missed it."""
    manager = npe2.PluginManager.instance()
    manager.discover()
    if any(m.name == PLUGIN_NAME for m in manager.iter_manifests()):
        return manager.get_manifest(PLUGIN_NAME)
    # Not discovered: an editable install or a source checkout.
    manifest = npe2.PluginManifest.from_file(manifest_path())
    manager.register(manifest)
    return manifest
