"""Reading the CSV tables plateflow writes (measurements, counts, ground truth).

One reader for every layer: the disk backend, the profile merger, the CLI's
demo summary and the napari table view. Like :mod:`plateflow._text` it
imports nothing from plateflow, so any module can use it.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Any

__all__ = ["read_table", "read_table_columns", "parse_cell"]

_INT = re.compile(r"^[+-]?\d+$")


def parse_cell(text: str) -> Any:
    """One CSV cell as a value: ``int`` for whole numbers, ``float`` for other numbers, ``None``
    for an empty cell, else the text itself."""
    if text == "":
        return None
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path: str | os.PathLike[str], *, parse_numbers: bool = True) -> list[dict[str, Any]]:
    """The rows of the UTF-8 CSV table at ``path``, as dicts keyed by the header row
    (:func:`read_table_columns` without the columns)."""
    return read_table_columns(path, parse_numbers=parse_numbers)[1]


def read_table_columns(path: str | os.PathLike[str], *, parse_numbers: bool = True) -> tuple[list[str], list[dict[str, Any]]]:
    """The header's column names and the rows of the UTF-8 CSV table at ``path``, as dicts keyed by the header row.

    The columns are given even when there are no rows (a table whose header alone was written).

    With ``parse_numbers`` (the default) each cell goes through :func:`parse_cell`
    (ints stay ints, empty cells are ``None``); without it the cells are the
    strings as written. A row shorter than the header reads its missing cells as
    empty; a row longer than the header is an error naming the file and line.

    Raises ``ValueError`` naming ``path`` when the file is not UTF-8 or not CSV,
    and ``OSError`` (``FileNotFoundError``...) when it cannot be opened.
    """
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    try:
        # utf-8-sig: a table saved again by a spreadsheet program starts with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, restval="")
            for row in reader:
                if None in row:
                    raise ValueError(
                        f"cannot read {os.fspath(path)}: line {reader.line_num} has more cells than the header "
                        f"({len(reader.fieldnames or ())} columns: {', '.join(reader.fieldnames or ())})"
                    )
                rows.append({key: parse_cell(value) for key, value in row.items()} if parse_numbers else dict(row))
            columns = list(reader.fieldnames or ())
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read {os.fspath(path)}: not a UTF-8 CSV table ({error})") from error
    return columns, rows
