"""Label and mask planes go to disk as zlib-compressed TIFF; images stay uncompressed; both read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from plateflow.vfs import FileManager
from plateflow.vfs.backends.disk import is_label_plane


def _compression(path) -> str:
    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].compression.name


@pytest.mark.parametrize(
    "data, compression",
    [
        (np.arange(64 * 64, dtype=np.int32).reshape(64, 64) // 500, "ADOBE_DEFLATE"),  # labels
        ((np.arange(64 * 64).reshape(64, 64) % 7 == 0).astype(np.uint8), "ADOBE_DEFLATE"),  # a 0/1 mask
        (np.eye(64, dtype=bool), "ADOBE_DEFLATE"),
        (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), "NONE"),  # an image
        (np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), "NONE"),
        (np.full((64, 64), 200, dtype=np.uint8), "NONE"),  # an 8-bit image, not a mask
    ],
)
def test_labels_and_masks_are_zlib_compressed_and_read_back_exactly(tmp_path, data, compression):
    path = tmp_path / "plane.tif"
    FileManager().save(data, path, "disk")
    assert _compression(path) == compression
    back = FileManager().load(path, "disk")
    assert back.dtype == data.dtype
    np.testing.assert_array_equal(back, data)
    np.testing.assert_array_equal(tifffile.imread(path), data)  # any TIFF reader: zlib is in the standard


def test_compressed_labels_are_smaller_and_an_explicit_compression_wins(tmp_path):
    labels = np.zeros((256, 256), dtype=np.int32)
    labels[50:100, 50:100], labels[150:220, 120:200] = 1, 2
    FileManager().save(labels, tmp_path / "labels.tif", "disk")
    FileManager().save(labels, tmp_path / "raw.tif", "disk", compression=None)
    assert _compression(tmp_path / "raw.tif") == "NONE"
    assert (tmp_path / "labels.tif").stat().st_size * 20 < (tmp_path / "raw.tif").stat().st_size


def test_is_label_plane():
    assert is_label_plane(np.zeros((4, 4), np.int32)) and is_label_plane(np.ones((4, 4), np.uint8))
    assert not is_label_plane(np.zeros((4, 4), np.uint16)) and not is_label_plane(np.full((4, 4), 2, np.uint8))
    assert not is_label_plane(np.zeros((0, 4), np.uint8))
