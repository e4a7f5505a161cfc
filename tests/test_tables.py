"""plateflow._tables.read_table: the one CSV reader of the disk backend, the profiles, the CLI and napari."""

from __future__ import annotations

import pytest

from plateflow._tables import parse_cell, read_table, read_table_columns


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("-3", -3), ("+7", 7), ("2.5", 2.5), ("1e-3", 0.001), ("", None), ("A01", "A01"), ("x y", "x y")],
)
def test_parse_cell(text, value):
    parsed = parse_cell(text)
    assert parsed == value and type(parsed) is type(value)


def test_numbers_parsed_and_empty_cells_none(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("well,site,area,note\nA01,1,12.5,\nA02,2,3,x y\nA03,3\n", encoding="utf-8")
    assert read_table(path) == [
        {"well": "A01", "site": 1, "area": 12.5, "note": None},
        {"well": "A02", "site": 2, "area": 3, "note": "x y"},
        {"well": "A03", "site": 3, "area": None, "note": None},  # a short row: its missing cells are empty
    ]


def test_raw_strings_keep_the_cells_as_written(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("well,area,note\nA01,12.50,\n", encoding="utf-8")
    assert read_table(path, parse_numbers=False) == [{"well": "A01", "area": "12.50", "note": ""}]


def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "saved_by_a_spreadsheet.csv"
    path.write_bytes("\ufeffwell,count\nA01,4\n".encode())
    assert read_table(path) == [{"well": "A01", "count": 4}]


def test_row_longer_than_header_names_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("well,count\nA01,4\nA02,5,9\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ragged\.csv: line 3 has more cells than the header \(2 columns: well, count\)"):
        read_table(path)


def test_not_utf8_names_file(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"image\.csv: not a UTF-8 CSV table"):
        read_table(path)


def test_columns_come_with_the_rows_and_without_any_row(tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("well,site,object_count\n", encoding="utf-8")
    assert read_table_columns(header_only) == (["well", "site", "object_count"], [])
    path = tmp_path / "counts.csv"
    path.write_text("well,object_count\nA01,007\n", encoding="utf-8")
    assert read_table_columns(path, parse_numbers=False) == (["well", "object_count"], [{"well": "A01", "object_count": "007"}])
    assert read_table_columns(path)[1] == read_table(path) == [{"well": "A01", "object_count": 7}]
