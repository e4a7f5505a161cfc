"""The disk backend: files chosen by extension, written atomically.

==============  =========================================  ==============================
extension       saves                                      loads as
==============  =========================================  ==============================
.tif / .tiff    an array (dtype kept) through tifffile     numpy array
.npy            an array                                   numpy array
.csv            a table: list of dicts, or dict of         list of dicts; numbers parsed
                equal-length columns                       back to int / float, empty
                                                           cells to None
.json           any JSON-able object (numpy scalars and    the object
                arrays become numbers and lists)
==============  =========================================  ==============================

Every write goes to a temporary file in the destination folder, then
``os.replace`` moves it into place: a reader sees the old file or the new
one, never half of one, and a failed write leaves nothing behind.

Label and mask planes (bool, signed integers, 32/64-bit unsigned integers,
and uint8 planes holding only 0 and 1) are written as zlib-compressed TIFF:
they are mostly runs of equal values, and every TIFF reader decodes zlib.

Folders are told apart by identity, not by name: :func:`protected_ancestor`
walks up from a path comparing ``(st_dev, st_ino)`` with the protected roots,
so a bind mount, a hard-linked folder or a symlink of the input plate is the
plate, whatever its path says.
"""

from __future__ import annotations

import contextlib
import csv
import errno
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

from ..._naming import natural_sorted
from ..._tables import read_table
from .base import CorruptFileError, ProtectedPathError, is_label_plane, match_name, posix

__all__ = [
    "DiskBackend",
    "DISK_FORMATS",
    "atomic_write",
    "atomic_write_bytes",
    "identity",
    "protected_ancestor",
    "protected_inside",
    "folder_identities",
    "is_label_plane",
]

DISK_FORMATS = (".tif", ".tiff", ".npy", ".csv", ".json")
_TIFF_OPTIONS = ("compression", "photometric", "metadata", "description", "resolution", "predictor", "software")
# numpy's tofile reports a short write on a full disk without an errno.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
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
    if exc.errno is None and (_SHORT_WRITE.search(reason) or _no_space_left(path)):
        exc = OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({reason})")
        reason = exc.strerror or reason
    try:
        return type(exc)(exc.errno, f"cannot write {path}: {reason}") if exc.errno is not None else type(exc)(f"cannot write {path}: {reason}")
    except TypeError:  # an OSError subclass with another constructor
        return OSError(exc.errno, f"cannot write {path}: {reason}")


def _no_space_left(path: Path) -> bool:
    try:
        info = os.statvfs(path.parent)
    except OSError:
        return False
    return info.f_bavail == 0


# -- identity of folders ------------------------------------------------------------


def identity(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(st_dev, st_ino)`` of ``path`` (links followed): equal for every name of one folder."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


_FOLDERS_CACHE: dict[tuple[str, tuple[int, int], int], dict[tuple[int, int], Path]] = {}


def folder_identities(root: str | os.PathLike[str]) -> dict[tuple[int, int], Path]:
    """``identity -> folder`` for ``root`` and every folder below it (links followed once).

    A mount or link of any of them elsewhere is then recognised as part of
    ``root``. Remembered per root (and its modification time) in this process.
    """
    real = os.path.realpath(os.fspath(root))
    try:
        st = os.stat(real)
    except OSError:
        return {}
    key = (real, (st.st_dev, st.st_ino), st.st_mtime_ns)
    cached = _FOLDERS_CACHE.get(key)
    if cached is not None:
        return cached
    found: dict[tuple[int, int], Path] = {(st.st_dev, st.st_ino): Path(real)}
    stack = [real]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir():
                    continue
                entry_st = entry.stat()
            except OSError:
                continue
            ident = (entry_st.st_dev, entry_st.st_ino)
            if ident not in found:
                found[ident] = Path(real)
                stack.append(entry.path)
    _FOLDERS_CACHE[key] = found
    return found


def _existing_ancestors(path: str | os.PathLike[str]) -> list[str]:
    """``path`` (when it exists) and every folder above it, nearest first, lexically and resolved."""
    absolute = os.path.abspath(os.fspath(path))
    chains = []
    for start in (absolute, os.path.realpath(absolute)):
        chain = []
        current = start
        while True:
            chain.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        chains.append(chain)
    seen: dict[str, None] = {}
    for chain in chains:
        for item in chain:
            seen.setdefault(item, None)
    return [p for p in seen if os.path.exists(p)]


def protected_ancestor(path: str | os.PathLike[str], roots: "Mapping[tuple[int, int], Path]") -> Path | None:
    """The protected root that ``path`` is, or is inside, by folder identity; ``None`` when none.

    ``roots`` maps ``identity(root)`` to the root. Every existing folder from
    ``path`` up to ``/`` is compared, along the path as written and along its
    resolved form, so a bind mount or symlink of a root is caught.
    """
    if not roots:
        return None
    for candidate in _existing_ancestors(path):
        try:
            key = identity(candidate)
        except OSError:
            continue
        if key in roots:
            return roots[key]
    return None


def protected_inside(folder: str | os.PathLike[str], roots: "Mapping[tuple[int, int], Path]") -> Path | None:
    """A protected root that deleting ``folder`` would reach: a root at or above ``folder``,
    a root whose folders lie inside it, or a mount or link of a root somewhere below it."""
    found = protected_ancestor(folder, roots)
    if found is not None or not roots:
        return found
    target = os.path.realpath(os.fspath(folder))
    try:
        target_id = identity(target)
    except OSError:
        return None
    for key, root in roots.items():
        if any(identity(p) == target_id for p in _existing_ancestors(root)):
            return root
    for current, dirs, _files in os.walk(target):
        for name in dirs:
            try:
                key = identity(os.path.join(current, name))
            except OSError:
                continue
            if key in roots:
                return roots[key]
    return None


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
                if "compression" not in options and is_label_plane(array):
                    kwargs["compression"] = "zlib"
                def write_tiff(tmp: str) -> None:
                    tifffile.imwrite(tmp, array, **kwargs)

                atomic_write(target, write_tiff)
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
                return read_table(source)
            except ValueError as exc:  # not UTF-8, not CSV, or a ragged row: the message names the file
                raise CorruptFileError(str(exc)) from exc
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

    def delete(self, path: str | os.PathLike[str], *, protected: "Mapping[tuple[int, int], Path] | None" = None) -> None:
        """Delete a file, or a folder with everything in it (links inside it are removed, not followed).

        With ``protected`` (identities of read-only roots), a folder is first
        checked for a mount or link of one of them anywhere inside it, and refused.
        """
        target = Path(path)
        if protected and target.is_dir() and not target.is_symlink():
            root = protected_inside(target, protected)
            if root is not None:
                raise ProtectedPathError(f"refusing to delete {target}: it holds the read-only root {root} "
                                         "(the input plate, mounted or linked there)")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            raise FileNotFoundError(f"no such file or folder: {target}")

