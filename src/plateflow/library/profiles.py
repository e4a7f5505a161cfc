"""Per-well and plate summaries of the per-object tables a run writes.

A run merges each measurement table of every well into ``out/<table>.csv``
(``nuclei_measurements.csv``, ``cells_measurements.csv``, ...), one row per
object with the ``well`` and component columns (``site``, ...) the executor
adds. These functions read such a table and give it the column names that
CellProfiler Analyst and pycytominer expect:

- metadata columns ``Metadata_Well``, ``Metadata_Site`` (every component
  column ``x`` becomes ``Metadata_X``, ``z_index`` -> ``Metadata_ZIndex``);
- per well: ``Metadata_Well``, ``Count_<Object>`` (objects in the well) and
  ``Mean_<feature>`` / ``Median_<feature>`` of every numeric feature, the
  names CellProfiler's per-image aggregates use;
- for the plate: one row with ``Metadata_WellCount``, ``Count_<Object>`` and
  the mean and median of every feature over all objects.

:func:`summarize_run` writes ``<table>_per_well.csv`` and
``<table>_plate_summary.csv`` next to the table. ``pandas.read_csv`` reads all
of them as they are.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import _tables

__all__ = [
    "METADATA_NAMES",
    "read_table",
    "with_metadata_names",
    "feature_columns",
    "summarize_wells",
    "summarize_plate",
    "summarize_run",
]

#: The executor's component columns and their CellProfiler / pycytominer names.
METADATA_NAMES: Mapping[str, str] = {
    "well": "Metadata_Well",
    "site": "Metadata_Site",
    "channel": "Metadata_Channel",
    "z_index": "Metadata_ZIndex",
    "timepoint": "Metadata_Timepoint",
    "slice": "Metadata_Slice",
}

# Identifiers, not features: never averaged.
_IDENTIFIERS = ("ObjectNumber",)


def read_table(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a measurement CSV, numbers parsed (ints stay ints); empty cells are ``None``."""
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no measurement table at {target}; run the pipeline first, or check the table name")
    return _tables.read_table(target)


def with_metadata_names(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the component columns renamed ``Metadata_*``, metadata first."""
    renamed = []
    for row in rows:
        metadata = {METADATA_NAMES[k]: v for k, v in row.items() if k in METADATA_NAMES}
        rest = {k: v for k, v in row.items() if k not in METADATA_NAMES}
        renamed.append({**metadata, **rest})
    return renamed


def feature_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns holding a number in every row that has a value, metadata and identifiers left out."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update((k, None) for k in row)
    features = []
    for name in columns:
        if name.startswith("Metadata_") or name in METADATA_NAMES or name in _IDENTIFIERS or name.endswith("_ObjectNumber"):
            continue
        values = [row.get(name) for row in rows if row.get(name) is not None]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            features.append(name)
    return features


def _object_name(features: Sequence[str], fallback: str) -> str:
    """The object kind of CellProfiler-style features (``Nuclei`` of ``Nuclei_AreaShape_Area``)."""
    kinds = {name.split("_", 1)[0] for name in features if "_" in name}
    return kinds.pop() if len(kinds) == 1 else fallback


def _mean_median(values: list[float]) -> tuple[float, float]:
    import numpy as np

    finite = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.median(finite))


def _summary(rows: Sequence[Mapping[str, Any]], features: Sequence[str], object_name: str) -> dict[str, Any]:
    summary: dict[str, Any] = {f"Count_{object_name}": len(rows)}
    for name in features:
        mean, median = _mean_median([row[name] for row in rows if row.get(name) is not None])
        summary[f"Mean_{name}"] = mean
        summary[f"Median_{name}"] = median
    return summary


def summarize_wells(
    rows: Iterable[Mapping[str, Any]], *, object_name: str | None = None, wells: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """One row per well: ``Metadata_Well``, ``Count_<Object>`` and the mean and median of every feature.

    ``wells`` lists wells to report even when they have no object (count 0,
    features NaN), for example every well of the plate; wells appear in the
    order first seen, then the extra ones.
    """
    table = with_metadata_names(rows)
    features = feature_columns(table)
    name = object_name or _object_name(features, "Objects")
    by_well: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        well = row.get("Metadata_Well")
        if well is None:
            raise ValueError("a measurement row has no well column; summarize the tables a run wrote (they have 'well')")
        by_well.setdefault(str(well), []).append(row)
    for well in wells:
        by_well.setdefault(str(well), [])
    return [{"Metadata_Well": well, **_summary(members, features, name)} for well, members in by_well.items()]


def summarize_plate(rows: Iterable[Mapping[str, Any]], *, object_name: str | None = None) -> dict[str, Any]:
    """One row for the plate: ``Metadata_WellCount``, ``Count_<Object>`` and every feature's mean and median."""
    table = with_metadata_names(rows)
    features = feature_columns(table)
    name = object_name or _object_name(features, "Objects")
    wells = {row.get("Metadata_Well") for row in table}
    return {"Metadata_WellCount": len(wells - {None}), **_summary(table, features, name)}


def _write(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update((k, None) for k in row)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)  # atomic, as every output of a run
    return path


def summarize_run(
    out: str | os.PathLike[str], table: str = "nuclei_measurements", *, object_name: str | None = None
) -> tuple[Path, Path]:
    """Write ``<table>_per_well.csv`` and ``<table>_plate_summary.csv`` for the merged table ``out/<table>.csv``.

    Returns the two paths.
    """
    root = Path(out)
    rows = read_table(root / f"{table}.csv")
    per_well = _write(summarize_wells(rows, object_name=object_name), root / f"{table}_per_well.csv")
    plate = _write([summarize_plate(rows, object_name=object_name)], root / f"{table}_plate_summary.csv")
    return per_well, plate
