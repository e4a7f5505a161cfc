"""The run manifest ``out/plateflow-manifest.json`` and the merged measurement tables.

The parent process alone writes the manifest, through the VFS disk backend
(temporary file, then rename), each time a well changes state, so after a
crash it records exactly the wells that finished: a well is ``done`` only once
all its outputs are written. ``resume`` trusts ``done`` wells whose recorded
outputs still exist and redoes every other one.
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from .step_runner import STATE_DIR

if TYPE_CHECKING:
    from ..config import GlobalConfig
    from ..vfs import FileManager

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "Manifest", "merge_tables", "describe_pipeline"]

MANIFEST_NAME = "plateflow-manifest.json"
MANIFEST_VERSION = 1
STATUSES = ("pending", "running", "done", "failed")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def describe_pipeline(pipeline: Any) -> dict[str, Any]:
    """The pipeline as its YAML text when it can be saved as a pipeline file, else a description."""
    from ..steps import as_step_list

    from ..io import dump_pipeline

    try:
        return {"yaml": dump_pipeline(pipeline)}
    except (ValueError, TypeError) as error:  # functions outside the registry have no file form
        reason = str(error)
    from ..patterns import PatternError, function_name, normalize_pattern

    steps = []
    for step in as_step_list(pipeline):
        try:
            functions = [f"{getattr(c.func, '__module__', '?')}.{function_name(c.func)}" for c in normalize_pattern(step.func).calls()]
        except PatternError:
            functions = [repr(step.func)]
        steps.append({
            "name": step.name,
            "functions": functions,
            "variable_components": list(step.variable_components),
            "group_by": step.group_by,
        })
    return {"description": steps, "why_not_yaml": reason}


class Manifest:
    """What a run did, well by well; see the module docstring."""

    def __init__(self, root: Path, data: dict[str, Any], filemanager: "FileManager") -> None:
        self.root = root
        self.data = data
        self.fm = filemanager

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME

    @classmethod
    def new(
        cls,
        root: Path,
        *,
        plate: Path,
        wells: Iterable[str],
        config: "GlobalConfig",
        pipeline: dict[str, Any],
        filemanager: "FileManager",
    ) -> "Manifest":
        data = {
            "manifest_version": MANIFEST_VERSION,
            "plateflow_version": __version__,
            "created": _now(),
            "updated": _now(),
            "plate": str(plate),
            "output_format": config.output_format,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
            "pipeline": pipeline,
            "wells": {well: {"status": "pending", "outputs": [], "tables": {}} for well in wells},
            "tables": {},
        }
        return cls(root, data, filemanager)

    @classmethod
    def load(cls, root: Path, filemanager: "FileManager") -> "Manifest | None":
        path = root / MANIFEST_NAME
        if not path.is_file():
            return None
        data = filemanager.load(path, "disk")
        if not isinstance(data, dict) or "wells" not in data:
            raise ValueError(f"{path} is not a plateflow manifest; remove it or choose another output folder")
        return cls(root, data, filemanager)

    def save(self) -> None:
        self.data["updated"] = _now()
        self.fm.save(self.data, self.path, "disk")

    # -- wells -------------------------------------------------------------
    @property
    def wells(self) -> dict[str, dict[str, Any]]:
        return self.data["wells"]

    def entry(self, well: str) -> dict[str, Any]:
        return self.wells.setdefault(well, {"status": "pending", "outputs": [], "tables": {}})

    def set_status(self, well: str, status: str, **values: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        entry = self.entry(well)
        entry["status"] = status
        entry.update(values)
        if status != "failed":
            entry.pop("error", None)

    def is_complete(self, well: str) -> bool:
        """Whether ``well`` is done and every output it recorded is still there."""
        entry = self.wells.get(well)
        if not entry or entry.get("status") != "done":
            return False
        paths = list(entry.get("outputs", ())) + list(entry.get("tables", {}).values())
        return all(self._exists(p) for p in paths)

    def _exists(self, relpath: str) -> bool:
        parts = relpath.split("/")
        if any(part.endswith(".zarr") for part in parts):
            # A plane equal to the fill value is never written as a chunk, so ask for the well's array.
            return bool(self.fm.backend("zarr").has_array(self.root / relpath))  # type: ignore[attr-defined]
        return (self.root / relpath).is_file()


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def merge_tables(root: Path, wells_in_order: Iterable[str], manifest: Manifest, filemanager: "FileManager") -> dict[str, Path]:
    """One CSV per table name under ``root`` from the partial tables of every done well, in plate order."""
    parts: dict[str, list[Path]] = {}
    for well in wells_in_order:
        entry = manifest.wells.get(well)
        if not entry or entry.get("status") != "done":
            continue
        for name, relpath in entry.get("tables", {}).items():
            parts.setdefault(name, []).append(root / relpath)
    merged: dict[str, Path] = {}
    for name, paths in parts.items():
        fields: dict[str, None] = {}
        rows: list[Mapping[str, str]] = []
        for path in paths:
            names, part_rows = _read_csv(path)
            fields.update((n, None) for n in names)
            rows.extend(part_rows)
        target = root / f"{name}.csv"
        if rows:
            # Every row gets every column, so the file is rectangular even when wells differ.
            filemanager.save([{f: row.get(f, "") for f in fields} for row in rows], target, "disk")
        else:
            filemanager.save({f: [] for f in fields}, target, "disk")
        merged[name] = target
    return merged


def clear_state(root: Path, filemanager: "FileManager") -> None:
    """Remove the bookkeeping of an earlier run in ``root`` (its partial tables)."""
    state = root / STATE_DIR
    if state.exists():
        filemanager.delete(state, "disk")


def remove_partial_files(root: Path, filemanager: "FileManager") -> None:
    """Delete temporary files a killed run left behind (atomic writes that never finished)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".part"):
                filemanager.delete(Path(folder) / name, "disk")
