"""The synthetic sample plate: layout, determinism, ground truth, and that segmentation recovers it."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plateflow.plate import generate_sample_plate, open_plate, sample_plate_path
from tests.conftest import hash_tree


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_sample_plate_layout(sample_plate_dir):
    plate = open_plate(sample_plate_dir)
    assert plate.format_name == "ImageXpress"
    assert plate.wells == ("A01", "B02")
    assert dict(plate.components) == {
        "well": ("A01", "B02"),
        "site": ("1", "2"),
        "channel": ("1", "2"),
        "z_index": ("1", "2", "3"),
        "timepoint": ("1",),
    }
    assert plate.image_shape == (128, 128)
    assert plate.dtype == np.uint16
    assert dict(plate.channel_names) == {"1": "DAPI", "2": "FITC"}
    assert plate.metadata_files == ("plate.HTD",)
    assert set(plate.ignored_files) == {"ground_truth.csv", "ground_truth_centroids.csv"}
    assert (sample_plate_dir / "TimePoint_1" / "ZStep_2" / "B02_s1_w2.tif").is_file()


def test_ground_truth_is_consistent(sample_plate_dir):
    counts = _read_csv(sample_plate_dir / "ground_truth.csv")
    centroids = _read_csv(sample_plate_dir / "ground_truth_centroids.csv")
    assert [(r["well"], r["site"]) for r in counts] == [("A01", "1"), ("A01", "2"), ("B02", "1"), ("B02", "2")]
    per_site = Counter((r["well"], r["site"]) for r in centroids)
    for row in counts:
        assert per_site[(row["well"], row["site"])] == int(row["nucleus_count"])
    for r in centroids:
        assert 0 <= float(r["y"]) < 128 and 0 <= float(r["x"]) < 128
    # each centroid sits on a bright nucleus in the in-focus plane
    img = tifffile.imread(sample_plate_dir / "TimePoint_1" / "ZStep_2" / "A01_s1_w1.tif")
    on = [img[int(float(r["y"])), int(float(r["x"]))] for r in centroids if (r["well"], r["site"]) == ("A01", "1")]
    assert min(on) > np.percentile(img, 60)


def test_counts_vary_between_wells(bundled_plate):
    counts = _read_csv(bundled_plate / "ground_truth.csv")
    per_well = {}
    for r in counts:
        per_well.setdefault(r["well"], []).append(int(r["nucleus_count"]))
    means = [np.mean(v) for v in per_well.values()]
    assert all(20 <= int(r["nucleus_count"]) <= 60 for r in counts)
    assert max(means) - min(means) > 10


def test_same_seed_is_byte_identical(tmp_path):
    kwargs = dict(wells=("A01",), sites=1, channels=2, z_planes=2, size=(64, 64))
    a = generate_sample_plate(tmp_path / "one" / "plate", **kwargs)
    b = generate_sample_plate(tmp_path / "two" / "plate", **kwargs)
    c = generate_sample_plate(tmp_path / "three" / "plate", seed=1, **kwargs)
    assert hash_tree(a) == hash_tree(b)
    assert hash_tree(a) != hash_tree(c)
    assert len(hash_tree(a)) == 1 + 2 + 2 * 2  # HTD, two truth tables, 2 channels x 2 planes


def test_focus_is_sharpest_in_middle_plane(sample_plate_dir):
    def sharpness(z: int) -> float:
        img = tifffile.imread(sample_plate_dir / "TimePoint_1" / f"ZStep_{z}" / "A01_s1_w1.tif").astype(float)
        return float(np.var(np.diff(img, axis=0)) + np.var(np.diff(img, axis=1)))

    assert sharpness(2) > sharpness(1) * 1.5
    assert sharpness(2) > sharpness(3) * 1.5


def test_no_zstep_folders_for_single_plane_and_timepoints(tmp_path):
    root = generate_sample_plate(tmp_path / "plate", wells=("C03",), sites=1, channels=1, z_planes=1, timepoints=2, size=(64, 64), dtype="uint8")
    plate = open_plate(root)
    assert [f.path for f in plate.files] == ["TimePoint_1/C03_s1_w1.tif", "TimePoint_2/C03_s1_w1.tif"]
    assert plate.dtype == np.uint8


def test_segmentation_recovers_counts(bundled_plate):
    """Blur + Otsu + distance-transform watershed counts nuclei within 5 % (and watershed is needed)."""
    from scipy import ndimage as ndi
    from skimage import feature, filters, measure, segmentation

    truth = {(r["well"], r["site"]): int(r["nucleus_count"]) for r in _read_csv(bundled_plate / "ground_truth.csv")}
    found = components = 0
    for (well, site), _n in truth.items():
        img = tifffile.imread(bundled_plate / "TimePoint_1" / "ZStep_2" / f"{well}_s{site}_w1.tif").astype(float)
        smooth = filters.gaussian(img, 1.5)
        mask = smooth > filters.threshold_otsu(smooth)
        dist = ndi.distance_transform_edt(mask)
        labels = measure.label(mask)
        peaks = feature.peak_local_max(dist, min_distance=5, labels=labels, exclude_border=False)
        markers = np.zeros_like(labels)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        found += segmentation.watershed(-dist, markers, mask=mask).max()
        components += labels.max()
    total = sum(truth.values())
    assert abs(found - total) <= 0.05 * total
    assert components < 0.9 * total  # touching pairs: connected components alone undercount


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "int7"}, r"dtype='int7' is not valid; choose one of: 'uint8', 'uint16', 'float32'"),
        ({"channels": 5}, r"channels=5 is not valid; use a whole number from 1 to 3"),
        ({"sites": 0}, r"sites=0 is not valid"),
        ({"z_planes": 2.5}, r"z_planes=2.5 is not valid"),
        ({"size": (10, 10)}, r"size=\(10, 10\) is not valid"),
        ({"wells": ("A01", "ZZZ9")}, r"'ZZZ9', which is not a well id"),
        ({"wells": "A01"}, r"wells='A01' is not valid"),
        ({"wells": ("A01", "A1")}, r"names a well twice"),
    ],
)
def test_options_validated(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_sample_plate(tmp_path / "plate", **kwargs)
    assert not (tmp_path / "plate").exists()


def test_refuses_to_overwrite(tmp_path):
    root = generate_sample_plate(tmp_path / "plate", wells=("A01",), sites=1, channels=1, z_planes=1, size=(64, 64))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_sample_plate(root)
    generate_sample_plate(root, overwrite=True, wells=("A02",), sites=1, channels=1, z_planes=1, size=(64, 64))
    assert open_plate(root).wells == ("A02",)


def test_bundled_plate(bundled_plate):
    assert bundled_plate == sample_plate_path()
    plate = open_plate(bundled_plate)
    assert plate.wells == ("A01", "A02", "B01", "B02")
    assert [len(plate.components[c]) for c in ("site", "channel", "z_index", "timepoint")] == [4, 2, 3, 1]
    assert plate.image_shape == (256, 256)
    assert plate.pixel_size == pytest.approx(0.65)


def test_sample_plate_path_generates_into_cache(tmp_path, monkeypatch):
    import plateflow.plate.sample as sample

    monkeypatch.setenv("PLATEFLOW_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "pkg" / "plateflow" / "plate" / "sample.py"
    monkeypatch.setattr(sample, "__file__", str(fake))
    monkeypatch.setattr(sample, "generate_sample_plate", lambda p, **k: generate_sample_plate(
        p, wells=("A01",), sites=1, channels=1, z_planes=1, size=(64, 64)))
    path = sample.sample_plate_path()
    assert path == tmp_path / "cache" / f"sample_plate_v{sample._GENERATOR_VERSION}" / "plate"
    assert open_plate(path).wells == ("A01",)
    assert sample.sample_plate_path() == path
    assert [p.name for p in path.parent.iterdir()] == ["plate"]  # no staging folder left behind


def test_bundled_plate_matches_generator(bundled_plate, tmp_path):
    """The committed sample_data/plate is exactly what the generator makes with its defaults."""
    fresh = generate_sample_plate(tmp_path / "plate")
    assert hash_tree(fresh) == hash_tree(bundled_plate)
