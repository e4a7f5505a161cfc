"""The disk backend: files chosen by extension, written atomically.

==============  =========================================  ==============================
extension       saves                                      loads as
==============  =========================================  ==============================
.tif / .tiff    an array (dtype kept) through tifffile     numpy array
.npy            an array                                   numpy array
.csv            a table: list of dicts, or dict of         list of dicts; numbers parsed
                equal-length columns                       back to int / float
.json           any JSON-able object (numpy scalars and    the object
                arrays become numbers and lists)
==============  =========================================  ==============================

Every write goes to a temporary file in the destination folder, then
``os.replace`` moves it into place: a reader sees the old file or the new
one, never half of one, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...plate.model import natural_sorted
from .base import CorruptFileError, match_name, posix

__all__ = ["DiskBackend", "DISK_FORMATS", "atomic_write", "atomic_write_bytes"]

DISK_FORMATS = (".tif", ".tiff", ".npy", ".csv", ".json")
_TIFF_OPTIONS = ("compression", "photometric", "metadata", "description", "resolution", "predictor", "software")
_INT = re.compile(r"^[+-]?\d+$")
# mkstemp makes 0600 files; give outputs the usual permissions. Read once, at import.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in DISK_FORMATS:
        raise ValueError(f"cannot tell how to store {path}: extension {suffix or '(none)'!r} is not one of {', '.join(DISK_FORMATS)}")
    return ".tif" if suffix == ".tiff" else suffix


def _naming(exc: OSError, path: Path) -> OSError:
    """The same kind of error, with a message that names the file being written (a full disk,
    a read-only folder: the OS error alone does not say which output it was)."""
    reason = exc.strerror or str(exc)
    try:
        return type(exc)(exc.errno, f"cannot write {path}: {reason}") if exc.errno is not None else type(exc)(f"cannot write {path}: {reason}")
    except TypeError:  # an OSError subclass with another constructor
        return OSError(exc.errno, f"cannot write {path}: {reason}")


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)`` on a temporary file beside ``path``, then move it onto ``path``.

    ``OSError`` s are raised again naming ``path``; the temporary file never outlives a failure.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise _naming(exc, path) from exc
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        # Leave no partial file behind, whatever went wrong (including Ctrl-C).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(payload)

    atomic_write(path, write)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _table_rows(data: Any, path: Path) -> tuple[list[str], list[Mapping[str, Any]]]:
    if isinstance(data, Mapping):
        columns = {str(k): list(v) if not isinstance(v, str) else [v] for k, v in data.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"cannot write table {path}: columns have different lengths "
                             f"({', '.join(f'{k}={len(v)}' for k, v in columns.items())})")
        n = lengths.pop() if lengths else 0
        return list(columns), [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and all(isinstance(r, Mapping) for r in data):
        fields: dict[str, None] = {}
        for row in data:
            fields.update((str(k), None) for k in row)
        return list(fields), [{str(k): v for k, v in row.items()} for row in data]
    raise TypeError(f"cannot write table {path}: give a list of dicts or a dict of columns, not {type(data).__name__}")


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parse_cell(text: str) -> Any:
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


class DiskBackend:
    """Files on disk, by extension; see the module docstring for the formats."""

    name: ClassVar[str] = "disk"
    is_local: ClassVar[bool] = True

    def save(self, data: Any, path: str | os.PathLike[str], **options: Any) -> None:
        options.pop("components", None)  # positions only matter to the zarr backend
        target = Path(path)
        kind = _format_of(target)
        unknown = set(options) - (set(_TIFF_OPTIONS) if kind == ".tif" else set())
        if unknown:
            valid = ", ".join(_TIFF_OPTIONS) if kind == ".tif" else "none"
            raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))} for {target.name}; valid options: {valid}")

        if kind in (".tif", ".npy"):
            array = np.asarray(data)
            if array.dtype == object:
                raise TypeError(f"cannot write {target}: {type(data).__name__} is not a numeric array")
            if kind == ".tif":
                import tifffile

                kwargs = {"photometric": "minisblack", **options}
                atomic_write(target, lambda tmp: tifffile.imwrite(tmp, array, **kwargs))
            else:
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                atomic_write_bytes(target, buffer.getvalue())
        elif kind == ".csv":
            fields, rows = _table_rows(data, target)
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
            atomic_write_bytes(target, text.getvalue().encode("utf-8"))
        else:
            payload = json.dumps(data, default=_json_default, indent=1).encode("utf-8")
            atomic_write_bytes(target, payload)

    def load(self, path: str | os.PathLike[str], **options: Any) -> Any:
        options.pop("components", None)
        source = Path(path)
        try:
            return self._load(source)
        except FileNotFoundError:
            # The file can vanish at any point while it is read (a plate folder removed mid-run).
            raise FileNotFoundError(f"no such file: {source}") from None

    def _load(self, source: Path) -> Any:
        kind = _format_of(source)
        size = source.stat().st_size
        if size == 0:
            raise CorruptFileError(f"cannot read {source}: the file is empty (0 bytes)")
        if kind == ".tif":
            return self._load_tiff(source)
        if kind == ".npy":
            try:
                return np.load(source, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise CorruptFileError(f"cannot read {source}: not a valid .npy file ({exc})") from exc
        if kind == ".csv":
            try:
                with open(source, newline="", encoding="utf-8") as fh:
                    return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]
            except (UnicodeDecodeError, csv.Error) as exc:
                raise CorruptFileError(f"cannot read {source}: not a UTF-8 CSV table ({exc})") from exc
        try:
            with open(source, encoding="utf-8") as fh:
                return json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"cannot read {source}: not valid JSON ({exc})") from exc

    @staticmethod
    def _load_tiff(source: Path) -> np.ndarray:
        import tifffile

        try:
            with tifffile.TiffFile(source) as tif:
                if len(tif.pages) == 0:
                    raise CorruptFileError(f"cannot read TIFF {source}: it holds no image (broken or truncated file)")
                # Read every page's bytes up front so a truncated file fails here, not as zeros.
                for page in tif.pages:
                    offsets = getattr(page, "dataoffsets", ())
                    counts = getattr(page, "databytecounts", ())
                    if offsets and counts and max(o + c for o, c in zip(offsets, counts)) > tif.filehandle.size:
                        raise CorruptFileError(f"cannot read TIFF {source}: the file is truncated "
                                               f"({tif.filehandle.size} bytes, image data runs past the end)")
                return tif.asarray()
        except (CorruptFileError, FileNotFoundError):
            raise  # a file gone since load() looked is "no such file", not a corrupt one
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError, EOFError) as exc:
            raise CorruptFileError(f"cannot read TIFF {source}: {exc}") from exc

    def exists(self, path: str | os.PathLike[str], **options: Any) -> bool:
        return os.path.exists(path)

    def list(self, path: str | os.PathLike[str], *, pattern: str | None = None, recursive: bool = True) -> list[str]:
        """Files under ``path`` as POSIX paths relative to it, naturally sorted (hidden and temporary files left out)."""
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no such folder: {root}")
        found = []
        stack = [(os.fspath(root), "")]
        while stack:
            folder, prefix = stack.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    rel = prefix + entry.name
                    if entry.is_dir():
                        if recursive:
                            stack.append((entry.path, rel + "/"))
                    elif match_name(rel, pattern):
                        found.append(posix(rel))
        return natural_sorted(found)

    def delete(self, path: str | os.PathLike[str]) -> None:
        target = Path(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            raise FileNotFoundError(f"no such file or folder: {target}")

