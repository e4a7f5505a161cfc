"""The run manifest ``out/plateflow-manifest.json`` and the merged measurement tables.

The parent process alone writes the manifest, through the VFS disk backend
(temporary file, then rename), each time a well changes state, so after a
crash it records exactly the wells that finished: a well is ``done`` only once
all its outputs are written and fsynced.

The manifest also records what it would take to trust those outputs later:
the plate's identity (:func:`plate_identity`, a fingerprint of the plate's
index: file names, sizes and modification times) and each output file's size
and SHA-256 (``files``). ``resume`` trusts a ``done`` well only while every
file it recorded still has that size and checksum, and plateflow deletes only
files it recorded, that resolve inside the output folder, and that still
match: anything else is left alone and reported (:func:`delete_recorded`).

``Manifest.load`` validates the file against the schema below and raises
:class:`ManifestError` naming the manifest and the entry when it does not fit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._tables import read_table_columns
from .._version import __version__
from .step_runner import STATE_DIR

if TYPE_CHECKING:
    from ..config import GlobalConfig
    from ..vfs import FileManager

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "Manifest",
    "ManifestError",
    "merge_tables",
    "describe_pipeline",
    "plate_identity",
    "record_files",
    "file_problems",
    "delete_recorded",
    "inside",
]

MANIFEST_NAME = "plateflow-manifest.json"
MANIFEST_VERSION = 2
#: Manifests of these versions can be read (version 1 has no file records: its wells are redone on resume).
READABLE_VERSIONS = (1, 2)
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


class ManifestError(ValueError):
    """The manifest cannot be used: damaged, of another schema, or of another plate."""


_RESET_HINT = ("hint: remove it to start the run again (plateflow then redoes every well), "
               "or run into a new output folder")


def _schema_problems(data: Any) -> list[str]:
    """Every place where ``data`` does not fit the manifest schema, as ``"entry: what is wrong"``."""

    def kind(value: Any) -> str:
        return "null" if value is None else type(value).__name__

    problems: list[str] = []

    def expect(where: str, value: Any, types: tuple[type, ...], name: str) -> bool:
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            problems.append(f"{where} is {kind(value)} {json.dumps(value, default=str)[:60]}, expected {name}")
        return ok

    if not isinstance(data, dict):
        return [f"the top level is {kind(data)}, expected an object"]
    if "wells" not in data:
        problems.append("'wells' is missing")
    version = data.get("manifest_version", 1)
    if expect("manifest_version", version, (int,), "a whole number") and version not in READABLE_VERSIONS:
        problems.append(f"manifest_version {version} is not one of {READABLE_VERSIONS} (written by another plateflow)")
    for key in ("plate", "output_format", "created", "updated"):
        if key in data:
            expect(key, data[key], (str,), "a string")
    if "pipeline" in data:
        expect("pipeline", data["pipeline"], (dict,), "an object")
    if "tables" in data and expect("tables", data["tables"], (dict,), "an object"):
        for name, value in data["tables"].items():
            expect(f"tables.{name}", value, (str,), "a file name")
    if "table_files" in data:
        _check_records("table_files", data["table_files"], expect)
    if "plate_identity" in data and expect("plate_identity", data["plate_identity"], (dict,), "an object"):
        for key in ("name", "fingerprint"):
            expect(f"plate_identity.{key}", data["plate_identity"].get(key), (str,), "a string")
        if "wells" in data["plate_identity"] and expect("plate_identity.wells", data["plate_identity"]["wells"], (dict,), "an object"):
            for well, value in data["plate_identity"]["wells"].items():
                expect(f"plate_identity.wells.{well}", value, (str,), "a fingerprint")
    wells = data.get("wells", {})
    if expect("wells", wells, (dict,), "an object"):
        for well, entry in wells.items():
            where = f"wells.{well}"
            if not expect(where, entry, (dict,), "an object"):
                continue
            status = entry.get("status")
            if status not in STATUSES:
                problems.append(f"{where}.status is {json.dumps(status)}, expected one of {', '.join(STATUSES)}")
            if expect(f"{where}.outputs", entry.get("outputs", []), (list,), "a list of paths"):
                for i, item in enumerate(entry.get("outputs", [])):
                    expect(f"{where}.outputs[{i}]", item, (str,), "a path")
            if expect(f"{where}.tables", entry.get("tables", {}), (dict,), "an object"):
                for name, item in entry.get("tables", {}).items():
                    expect(f"{where}.tables.{name}", item, (str,), "a path")
            if "files" in entry:
                _check_records(f"{where}.files", entry["files"], expect)
            if "seconds" in entry:
                expect(f"{where}.seconds", entry["seconds"], (int, float), "a number")
            if "error" in entry:
                expect(f"{where}.error", entry["error"], (dict,), "an object")
    return problems


def _check_records(where: str, records: Any, expect: Any) -> None:
    if not expect(where, records, (dict,), "an object"):
        return
    for relpath, record in records.items():
        if expect(f"{where}[{relpath!r}]", record, (dict,), "an object with size and sha256"):
            expect(f"{where}[{relpath!r}].size", record.get("size"), (int,), "a whole number")
            expect(f"{where}[{relpath!r}].sha256", record.get("sha256"), (str,), "a hex string")


# -- identities and checksums ------------------------------------------------------------


def plate_identity(plate: Any) -> dict[str, Any]:
    """The plate's name and fingerprints of its index.

    ``names``: a fingerprint of every image's and metadata file's relative path
    (another plate, or the same folder with other files, has another one);
    ``fingerprint``: of the paths with their sizes and modification times; and
    ``wells``: the same per well, so that resume redoes exactly the wells whose
    input files changed since they were run.
    """
    root = Path(plate.root)
    names_digest, full_digest = hashlib.sha256(), hashlib.sha256()
    per_well: dict[str, Any] = {}
    metadata = list(getattr(plate, "metadata_files", ()))
    entries = [(f.path, f.well) for f in plate.files] + [(relpath, "") for relpath in metadata]
    for relpath, well in sorted(entries):
        try:
            st = os.stat(root / relpath)
            line = f"{relpath}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
        except OSError:
            line = f"{relpath}\0missing\n".encode()
        names_digest.update(relpath.encode() + b"\n")
        full_digest.update(line)
        if well:
            per_well.setdefault(well, hashlib.sha256()).update(line)
    return {
        "name": root.name,
        "root": str(root),
        "names": names_digest.hexdigest(),
        "fingerprint": full_digest.hexdigest(),
        "files": len(entries),
        "wells": {well: digest.hexdigest() for well, digest in per_well.items()},
    }


def _sha256(path: Path, *, sync: bool = False) -> tuple[int, str]:
    """``(size, sha256)`` of a file; with ``sync`` its data is also flushed to the disk."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(handle.fileno())
    return size, digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the files themselves are synced
        pass
    finally:
        os.close(fd)


def zarr_well_folder(relpath: str, well: str) -> str | None:
    """``<store>.zarr/<row>/<column>`` (the NGFF well group) for a zarr output path, else ``None``."""
    parts = relpath.split("/")
    for i, part in enumerate(parts):
        if part.endswith(".zarr"):
            letters = well.rstrip("0123456789")
            return "/".join([*parts[: i + 1], letters, str(int(well[len(letters):]))])
    return None


def record_files(root: Path, relpaths: Iterable[str], *, well: str = "") -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file a well wrote, each fsynced (then their folders).

    Zarr outputs (``<store>.zarr/<image path>``) are recorded as every file of
    the well's group in the store (its arrays' chunks and metadata).
    """
    files: dict[str, Path] = {}
    for relpath in relpaths:
        group = zarr_well_folder(relpath, well) if well else None
        if group is not None:
            base = root / group
            for folder, _dirs, names in os.walk(base):
                for name in names:
                    path = Path(folder) / name
                    files[path.relative_to(root).as_posix()] = path
        elif (root / relpath).is_file():
            files[relpath] = root / relpath
    records = {}
    for relpath, path in sorted(files.items()):
        size, digest = _sha256(path, sync=True)
        records[relpath] = {"size": size, "sha256": digest}
    for parent in {path.parent for path in files.values()}:
        _fsync_folder(parent)
    return records


def inside(root: Path, relpath: str) -> Path | None:
    """``root / relpath`` when it resolves inside ``root`` (links followed), else ``None``."""
    if not isinstance(relpath, str) or not relpath or os.path.isabs(relpath):
        return None
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root / relpath))
    if target == real_root or real_root not in target.parents:
        return None
    return root / relpath


def file_problems(root: Path, records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What no longer matches among recorded files: ``"<path>: <what>"`` for each one."""
    problems = []
    for relpath, record in records.items():
        path = inside(root, relpath)
        if path is None:
            problems.append(f"{relpath}: outside the output folder")
            continue
        try:
            if path.stat().st_size != record.get("size"):
                problems.append(f"{relpath}: its size changed ({path.stat().st_size} bytes, {record.get('size')} written)")
                continue
            if _sha256(path)[1] != record.get("sha256"):
                problems.append(f"{relpath}: its contents changed since plateflow wrote it")
        except FileNotFoundError:
            problems.append(f"{relpath}: missing")
        except OSError as error:
            problems.append(f"{relpath}: cannot be read ({error.strerror or error})")
    return problems


def delete_recorded(root: Path, records: Mapping[str, Mapping[str, Any]], filemanager: "FileManager") -> list[str]:
    """Delete recorded files that resolve inside ``root`` and still match their record.

    Returns a line for each file left alone (outside the folder, changed since
    it was written) so the caller can report them; missing files need nothing.
    Files inside a zarr store are not deleted one by one: the store's writer
    replaces a well's arrays when the well runs again.
    """
    kept = []
    for relpath, record in records.items():
        if ".zarr/" in relpath:
            continue  # a zarr store's own writer replaces a well's arrays when it runs again
        path = inside(root, relpath)
        if path is None:
            kept.append(f"{relpath} (outside the output folder {root})")
            continue
        if not path.is_file() or path.is_symlink():
            if path.is_symlink():
                kept.append(f"{relpath} (a link, not the file plateflow wrote)")
            continue
        problem = file_problems(root, {relpath: record})
        if problem:
            kept.append(f"{relpath} (changed since plateflow wrote it)")
            continue
        filemanager.delete(path, "disk")
    return kept


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
        identity: Mapping[str, Any] | None = None,
    ) -> "Manifest":
        data = {
            "manifest_version": MANIFEST_VERSION,
            "plateflow_version": __version__,
            "created": _now(),
            "updated": _now(),
            "plate": str(plate),
            "plate_identity": dict(identity or {"name": Path(plate).name, "fingerprint": ""}),
            "output_format": config.output_format,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
            "pipeline": pipeline,
            "wells": {well: {"status": "pending", "outputs": [], "tables": {}, "files": {}} for well in wells},
            "tables": {},
            "table_files": {},
        }
        return cls(root, data, filemanager)

    @classmethod
    def load(cls, root: Path, filemanager: "FileManager") -> "Manifest | None":
        """The manifest in ``root``, ``None`` when there is none.

        Raises:
            ManifestError: it is damaged (truncated, not JSON) or does not fit the
                schema; the message names the manifest and each bad entry, with a hint.
        """
        from ..vfs import CorruptFileError

        path = root / MANIFEST_NAME
        if not path.exists():
            return None
        if not path.is_file():
            raise ManifestError(f"{path} is not a file, so it cannot be a plateflow manifest; {_RESET_HINT}")
        try:
            data = filemanager.load(path, "disk")
        except CorruptFileError as error:
            raise ManifestError(f"the manifest {path} is damaged ({error}); {_RESET_HINT}") from None
        problems = _schema_problems(data)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise ManifestError(f"the manifest {path} does not fit the plateflow manifest schema: {shown}; {_RESET_HINT}")
        return cls(root, data, filemanager)

    def save(self) -> None:
        self.data["updated"] = _now()
        self.fm.save(self.data, self.path, "disk")

    # -- wells -------------------------------------------------------------
    @property
    def wells(self) -> dict[str, dict[str, Any]]:
        return self.data["wells"]

    def entry(self, well: str) -> dict[str, Any]:
        return self.wells.setdefault(well, {"status": "pending", "outputs": [], "tables": {}, "files": {}})

    def set_status(self, well: str, status: str, **values: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        entry = self.entry(well)
        entry["status"] = status
        entry.update(values)
        if status != "failed":
            entry.pop("error", None)

    def files_of(self, well: str) -> dict[str, dict[str, Any]]:
        """The files ``well`` recorded (outputs and partial tables), with their sizes and checksums."""
        entry = self.wells.get(well) or {}
        return dict(entry.get("files") or {})

    def problems(self, well: str) -> list[str]:
        """Why ``well`` cannot be trusted as done (empty when it can): not done, nothing
        recorded to verify it by, or a recorded file missing or changed."""
        entry = self.wells.get(well)
        if not entry or entry.get("status") != "done":
            return ["not done"]
        if "files" not in entry:
            return ["written by an older plateflow that recorded no checksums"]
        recorded = set(entry["files"])
        unverifiable = [p for p in list(entry.get("outputs", ())) + list(entry.get("tables", {}).values())
                        if p not in recorded and ".zarr/" not in p]
        return [f"{p}: not recorded" for p in unverifiable] + file_problems(self.root, entry["files"])


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
            names, part_rows = read_table_columns(path, parse_numbers=False)  # cells as written: merged, not parsed
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


def record_tables(manifest: Manifest, tables: Mapping[str, Path]) -> None:
    """Note the merged tables (names, sizes, checksums, fsynced) in the manifest."""
    manifest.data["tables"] = {name: path.name for name, path in tables.items()}
    manifest.data["table_files"] = record_files(manifest.root, [path.name for path in tables.values()])


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
