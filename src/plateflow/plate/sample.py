"""A synthetic ImageXpress plate with known nucleus counts, for demos and tests.

``generate_sample_plate(path)`` writes a plate the way MetaXpress does
(``<plate>.HTD``, ``TimePoint_<t>/[ZStep_<z>/]<well>_s<site>_w<channel>.tif``)
with a MetaSeries header in each TIFF carrying the pixel size. Channel 1 is a
nuclear stain (bright ellipsoid blobs of varying size and brightness, some in
touching pairs), channel 2 a dimmer, larger cell body around each nucleus,
channel 3 puncta in the cytoplasm. The middle Z plane is in focus and the others
are blurred by their distance from it; each image has smooth vignetting, shot
noise and read noise. The same arguments give byte-identical files.

Ground truth sits at the plate root: ``ground_truth.csv`` (well, site,
nucleus_count) and ``ground_truth_centroids.csv`` (well, site, label, y, x).
Nucleus counts vary from well to well (about 20-60 per 256 x 256 site, scaled
with the image area) so a plate map shows structure.

A plate with a known illumination field: pass
``illumination=IlluminationField(...)``. Every image of the plate (every well,
site, channel, plane) then shares one smooth multiplicative gain, the
*flat-field* (vignetting about an off-centre point times a tilted linear
gradient, mean 1), in place of the per-site vignetting, and one additive
*dark-field* (the camera offset plus ``dark_offset``). The image model is::

    raw = Poisson((signal + background) * flatfield) + darkfield + read noise

with ``background`` a uniform fluorescent background in counts, so background
pixels show the field. The truth is written next to the CSVs as
``ground_truth_flatfield.npy`` and ``ground_truth_darkfield.npy`` (float64,
shape (Y, X), in counts of the uint16 scale: divide by 16 for ``uint8``, by
65535 for ``float32`` plates, as the images are). Nuclei, their positions and
the noise draws are the same as without the field, so counts compare one to one.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import well_id, well_position

__all__ = [
    "generate_sample_plate",
    "sample_plate_path",
    "IlluminationField",
    "FLATFIELD_TRUTH",
    "DARKFIELD_TRUTH",
    "SAMPLE_DTYPES",
    "CHANNEL_NAMES",
    "PIXEL_SIZE_UM",
]

SAMPLE_DTYPES = ("uint8", "uint16", "float32")
CHANNEL_NAMES = ("DAPI", "FITC", "TexasRed")
PIXEL_SIZE_UM = 0.65
_BACKGROUND = 100.0  # camera offset, in counts
_PEAK = {1: 3000.0, 2: 700.0, 3: 1200.0}  # in-focus peak signal per channel, in counts
_REFERENCE_AREA = 256 * 256
_MIN_COUNT, _MAX_COUNT = 20, 60
# Bump when the generator's output changes, so cached copies are regenerated.
_GENERATOR_VERSION = 1
#: File names of the illumination truth at the plate root (written only with ``illumination=``).
FLATFIELD_TRUTH = "ground_truth_flatfield.npy"
DARKFIELD_TRUTH = "ground_truth_darkfield.npy"


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(map(repr, choices))}")


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ValueError(f"{name}={value!r} is not valid; use a whole number from {low} to {high}")
    return int(value)


def _parse_wells(wells: Sequence[str]) -> tuple[str, ...]:
    if isinstance(wells, str) or not wells:
        raise ValueError(f"wells={wells!r} is not valid; give a non-empty sequence of well ids such as ('A01', 'B02')")
    parsed = []
    for w in wells:
        try:
            parsed.append(well_id(w))
        except ValueError:
            raise ValueError(f"wells contains {w!r}, which is not a well id; use a row letter and column such as 'A01'") from None
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"wells={tuple(wells)!r} names a well twice")
    return tuple(parsed)


def _place_nuclei(rng: np.random.Generator, count: int, shape: tuple[int, int]) -> list[tuple[float, float, float, float, float, float]]:
    """(y, x, semi-axis a, semi-axis b, angle, brightness) for ``count`` nuclei.

    About one nucleus in five is placed against an earlier one (a touching
    pair); all others keep clear of their neighbours so the count is recoverable.
    """
    ny, nx = shape
    nuclei: list[tuple[float, float, float, float, float, float]] = []
    attempts = 0
    while len(nuclei) < count and attempts < count * 400:
        attempts += 1
        radius = rng.uniform(5.5, 9.0)
        aspect = rng.uniform(0.7, 1.0)
        a, b = radius, radius * aspect
        angle = rng.uniform(0.0, np.pi)
        brightness = rng.uniform(0.55, 1.0)
        partner = None
        if nuclei and rng.random() < 0.2:
            partner = int(rng.integers(len(nuclei)))
            py, px, pa, pb = nuclei[partner][:4]
            theta = rng.uniform(0.0, 2 * np.pi)
            # Centres about one mean-radius sum apart: after blur the blobs touch with a narrow neck.
            dist = ((pa + pb) / 2 + (a + b) / 2) * rng.uniform(1.0, 1.08)
            y, x = py + dist * np.sin(theta), px + dist * np.cos(theta)
        else:
            y, x = rng.uniform(0, ny), rng.uniform(0, nx)
        margin = a + 3
        if not (margin <= y <= ny - margin and margin <= x <= nx - margin):
            continue
        ok = True
        for i, (oy, ox, oa, ob, _, _) in enumerate(nuclei):
            if i == partner:
                continue
            if np.hypot(oy - y, ox - x) < (oa + a) * 1.35:
                ok = False
                break
        if ok:
            nuclei.append((y, x, a, b, angle, brightness))
    return nuclei


def _render(shape: tuple[int, int], blobs: list[tuple[float, float, float, float, float, float]], *, scale: float, softness: float) -> np.ndarray:
    """Soft-edged ellipses (max-combined), each of semi-axes scaled by ``scale``."""
    out = np.zeros(shape, dtype=np.float64)
    ny, nx = shape
    for y, x, a, b, angle, brightness in blobs:
        a_s, b_s = a * scale, b * scale
        reach = int(np.ceil(max(a_s, b_s) + 4 * softness + 2))
        y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, ny)
        x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, nx)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - y, xx - x
        c, s = np.cos(angle), np.sin(angle)
        u, v = dx * c + dy * s, -dx * s + dy * c
        r = np.sqrt((u / a_s) ** 2 + (v / b_s) ** 2)
        # A logistic edge about `softness` pixels wide.
        blob = brightness / (1.0 + np.exp((r - 1.0) * min(a_s, b_s) / softness))
        np.maximum(out[y0:y1, x0:x1], blob, out=out[y0:y1, x0:x1])
    return out


def _vignette(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    ny, nx = shape
    cy, cx = ny * rng.uniform(0.4, 0.6), nx * rng.uniform(0.4, 0.6)
    yy, xx = np.mgrid[0:ny, 0:nx]
    r2 = ((yy - cy) / ny) ** 2 + ((xx - cx) / nx) ** 2
    return 1.0 - 0.6 * r2  # about 30 % darker in the corners


@dataclass(frozen=True)
class IlluminationField:
    """One illumination field shared by every image of a sample plate.

    Attributes:
        vignetting: fractional loss of gain from the vignetting centre to the
            farthest corner (0.5: that corner half as bright as the centre).
        gradient: fractional change of gain across the whole image along Y and
            along X (a tilted plane; (0.3, -0.2): the bottom row 30 % above
            the top one, the right column 20 % below the left one, about).
        center: the vignetting centre as fractions of (Y, X).
        background: uniform fluorescent background in counts (before the
            gain), so that background pixels carry the field. The default,
            half the brightest nuclei's peak, is a stain with much unspecific
            signal: the uneven field then defeats one global threshold. The
            brightest nuclei then reach about 6000 counts, so a ``uint8``
            plate (counts / 16) saturates them at 255.
        dark_offset: counts added to the camera offset (100) in every pixel:
            the dark-field is their sum.
    """

    vignetting: float = 0.5
    gradient: tuple[float, float] = (0.3, -0.2)
    center: tuple[float, float] = (0.45, 0.55)
    background: float = 1500.0
    dark_offset: float = 0.0

    def __post_init__(self) -> None:
        problems = []

        def number(value: object) -> bool:
            return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)

        if not (number(self.vignetting) and 0.0 <= float(self.vignetting) <= 0.9):
            problems.append(f"vignetting={self.vignetting!r} is not valid; use a fraction from 0 to 0.9")
        for name, pair, low, high in (("gradient", self.gradient, -0.5, 0.5), ("center", self.center, 0.0, 1.0)):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(number(v) and low <= float(v) <= high for v in pair)):
                problems.append(f"{name}={pair!r} is not valid; use (y, x) with each a number from {low} to {high}")
        for name, value in (("background", self.background), ("dark_offset", self.dark_offset)):
            if not (number(value) and 0.0 <= float(value) <= 10000.0):
                problems.append(f"{name}={value!r} is not valid; use counts from 0 to 10000")
        if problems:
            raise ValueError("IlluminationField: " + "; ".join(problems))

    def flatfield(self, shape: tuple[int, int]) -> np.ndarray:
        """The multiplicative gain over an image of ``shape``, float64 with mean 1."""
        ny, nx = shape
        # Pixel centres as fractions of the image, 0 at the first pixel and 1 at the last.
        yy, xx = np.meshgrid(np.linspace(0.0, 1.0, ny), np.linspace(0.0, 1.0, nx), indexing="ij")
        cy, cx = self.center
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        vignette = 1.0 - float(self.vignetting) * r2 / r2.max()
        tilt = 1.0 + float(self.gradient[0]) * (yy - 0.5) + float(self.gradient[1]) * (xx - 0.5)
        gain = vignette * tilt
        return gain / gain.mean()

    def darkfield(self, shape: tuple[int, int]) -> np.ndarray:
        """The additive offset over an image of ``shape`` in counts: camera offset plus ``dark_offset``."""
        return np.full(shape, _BACKGROUND + float(self.dark_offset))


def _site_images(
    seed: int,
    well: str,
    site: int,
    timepoint: int,
    channels: int,
    z_planes: int,
    shape: tuple[int, int],
    field: IlluminationField | None = None,
) -> tuple[dict[tuple[int, int], np.ndarray], list[tuple[float, float]]]:
    """Float images in counts keyed by (channel, z), and the nucleus centroids.

    With ``field``, its flat-field, background and dark-field replace the
    per-site vignetting and the camera offset; every random draw stays the
    same, so the nuclei and noise match the plate without a field.
    """
    from scipy import ndimage

    row, col = well_position(well)
    area_scale = shape[0] * shape[1] / _REFERENCE_AREA
    well_rng = np.random.default_rng([seed, row, col])
    well_mean = well_rng.uniform(_MIN_COUNT, _MAX_COUNT)
    rng = np.random.default_rng([seed, row, col, site, timepoint])
    count = int(np.clip(round(well_mean + rng.normal(0, 3)), _MIN_COUNT, _MAX_COUNT) * area_scale)
    nuclei = _place_nuclei(rng, max(count, 1), shape)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    texture /= texture.std() + 1e-12
    illumination = _vignette(shape, rng)  # drawn even with a field, so the later draws do not move
    background = 0.0
    offset: float | np.ndarray = _BACKGROUND
    if field is not None:
        illumination = field.flatfield(shape)
        background, offset = float(field.background), field.darkfield(shape)

    signal = {1: _render(shape, nuclei, scale=1.0, softness=1.0) * (1.0 + 0.12 * texture)}
    if channels >= 2:
        bodies = [(y + rng.normal(0, 2), x + rng.normal(0, 2), a, b, ang, rng.uniform(0.6, 1.0)) for y, x, a, b, ang, _ in nuclei]
        signal[2] = _render(shape, bodies, scale=2.1, softness=3.0) * (1.0 + 0.25 * texture)
    if channels >= 3:
        body_mask = _render(shape, nuclei, scale=2.1, softness=2.0) > 0.3
        spots = np.zeros(shape)
        candidates = np.argwhere(body_mask & (_render(shape, nuclei, scale=1.1, softness=1.0) < 0.1))
        if len(candidates):
            picks = candidates[rng.choice(len(candidates), size=min(len(candidates), 15 * len(nuclei)), replace=False)]
            spots[picks[:, 0], picks[:, 1]] = rng.uniform(0.5, 1.0, size=len(picks))
        signal[3] = ndimage.gaussian_filter(spots, 1.2) * 12.0

    mid = (z_planes - 1) / 2.0
    images = {}
    for ch, clean in signal.items():
        for z in range(z_planes):
            # 1 px of optical blur in focus, growing with the distance from the focal plane.
            sigma = 1.0 + 2.5 * abs(z - mid)
            if field is None:
                expected = ndimage.gaussian_filter(clean, sigma) * _PEAK[ch] * illumination
            else:
                expected = (ndimage.gaussian_filter(clean, sigma) * _PEAK[ch] + background) * illumination
            noise_rng = np.random.default_rng([seed, row, col, site, timepoint, ch, z])
            counts = noise_rng.poisson(np.maximum(expected, 0.0)) + offset + noise_rng.normal(0.0, 3.0, size=shape)
            images[(ch, z + 1)] = counts
    return images, [(y, x) for y, x, *_ in nuclei]


def _to_dtype(counts: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint16":
        return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    if dtype == "uint8":
        return np.clip(np.rint(counts / 16.0), 0, 255).astype(np.uint8)
    return (counts / 65535.0).astype(np.float32)


def _metaseries_description(well: str, site: int, channel: int, z: int) -> str:
    props = [
        ("spatial-calibration-x", "float", f"{PIXEL_SIZE_UM}"),
        ("spatial-calibration-y", "float", f"{PIXEL_SIZE_UM}"),
        ("spatial-calibration-units", "string", "um"),
        ("stage-label", "string", f"{well} : Site {site}"),
        ("image-name", "string", CHANNEL_NAMES[channel - 1]),
        ("z-step", "int", str(z)),
    ]
    body = "".join(f'<prop id="{i}" type="{t}" value="{v}"/>' for i, t, v in props)
    return f"<MetaData><PlaneInfo>{body}</PlaneInfo></MetaData>"


def _htd_text(name: str, wells: tuple[str, ...], sites: int, channels: int, z_planes: int, timepoints: int) -> str:
    positions = [well_position(w) for w in wells]
    n_rows = max(8, max(r for r, _ in positions))
    n_cols = max(12, max(c for _, c in positions))
    if n_rows > 8 or n_cols > 12:
        n_rows, n_cols = max(16, n_rows), max(24, n_cols)
    chosen = set(positions)
    lines = [
        '"HTSInfoFile", Version 1.0',
        f'"Description", "plateflow sample plate {name}"',
        f'"PlateType", {"1" if n_rows > 8 else "2"}',
        f'"TimePoints", {timepoints}',
        f'"ZSeries", {"TRUE" if z_planes > 1 else "FALSE"}',
        f'"ZSteps", {z_planes}',
        '"ZProjection", FALSE',
        f'"XWells", {n_cols}',
        f'"YWells", {n_rows}',
    ]
    for r in range(1, n_rows + 1):
        flags = ", ".join("TRUE" if (r, c) in chosen else "FALSE" for c in range(1, n_cols + 1))
        lines.append(f'"WellsSelection{r}", {flags}')
    lines += [f'"Sites", {"TRUE" if sites > 1 else "FALSE"}', f'"XSites", {sites}', '"YSites", 1', '"SiteSelection1", ' + ", ".join(["TRUE"] * sites)]
    lines += ['"Waves", TRUE', f'"NWavelengths", {channels}']
    for c in range(1, channels + 1):
        lines += [f'"WaveName{c}", "{CHANNEL_NAMES[c - 1]}"', f'"WaveCollect{c}", 1']
    lines += [f'"UniquePlateIdentifier", "plateflow-sample-{name}"', '"EndFile"']
    return "\r\n".join(lines) + "\r\n"


def generate_sample_plate(
    path: str | os.PathLike[str],
    *,
    wells: Sequence[str] = ("A01", "A02", "B01", "B02"),
    sites: int = 4,
    channels: int = 2,
    z_planes: int = 3,
    size: tuple[int, int] = (256, 256),
    dtype: str = "uint16",
    timepoints: int = 1,
    seed: int = 0,
    compression: str | None = "zlib",
    overwrite: bool = False,
    illumination: IlluminationField | None = None,
) -> Path:
    """Write a synthetic ImageXpress plate with ground-truth nucleus counts and centroids.

    Args:
        path: the plate folder to create (its name is the plate name).
        wells: well ids; counts depend on the well, not on which other wells are written.
        sites, channels, z_planes, timepoints: the plate's grid (channels 1-3).
        size: (Y, X) of each image, 64 to 2048 pixels per side.
        dtype: ``"uint8"``, ``"uint16"`` or ``"float32"``.
        seed: same seed and arguments give byte-identical files.
        compression: TIFF compression (``"zlib"`` or ``None``).
        overwrite: replace an existing non-empty folder instead of refusing.
        illumination: an :class:`IlluminationField` shared by every image, its
            truth written as ``ground_truth_flatfield.npy`` and
            ``ground_truth_darkfield.npy``; ``None`` (the default) keeps the
            per-site vignetting and writes no illumination truth.

    Returns:
        The plate folder.
    """
    wells = _parse_wells(wells)
    sites = _check_int("sites", sites, 1, 100)
    channels = _check_int("channels", channels, 1, len(CHANNEL_NAMES))
    z_planes = _check_int("z_planes", z_planes, 1, 50)
    timepoints = _check_int("timepoints", timepoints, 1, 100)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    _check_choice("dtype", dtype, SAMPLE_DTYPES)
    _check_choice("compression", compression, ("zlib", None))
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) and 64 <= s <= 2048 for s in size)):
        raise ValueError(f"size={size!r} is not valid; use (Y, X) with each side a whole number from 64 to 2048")
    shape = (int(size[0]), int(size[1]))
    if illumination is not None and not isinstance(illumination, IlluminationField):
        raise ValueError(
            f"illumination={illumination!r} is not valid; pass an IlluminationField (e.g. IlluminationField(vignetting=0.3)) or None"
        )

    import tifffile

    root = Path(path)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} exists and is not empty; pass overwrite=True to replace it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)

    (root / f"{root.name}.HTD").write_bytes(_htd_text(root.name, wells, sites, channels, z_planes, timepoints).encode("utf-8"))
    counts_rows: list[tuple[str, int, int]] = []
    centroid_rows: list[tuple[str, int, int, str, str]] = []
    for t in range(1, timepoints + 1):
        for well in wells:
            for site in range(1, sites + 1):
                images, centroids = _site_images(seed, well, site, t, channels, z_planes, shape, illumination)
                if t == 1:
                    counts_rows.append((well, site, len(centroids)))
                    centroid_rows.extend((well, site, i, f"{y:.2f}", f"{x:.2f}") for i, (y, x) in enumerate(centroids, 1))
                for (ch, z), counts in images.items():
                    folder = root / f"TimePoint_{t}"
                    if z_planes > 1:
                        folder = folder / f"ZStep_{z}"
                    folder.mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(
                        folder / f"{well}_s{site}_w{ch}.tif",
                        _to_dtype(counts, dtype),
                        photometric="minisblack",
                        compression=compression,
                        predictor=compression is not None and dtype != "float32",
                        description=_metaseries_description(well, site, ch, z),
                        software="MetaSeries",
                        metadata=None,
                    )
    with open(root / "ground_truth.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["well", "site", "nucleus_count"])
        writer.writerows(counts_rows)
    with open(root / "ground_truth_centroids.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["well", "site", "label", "y", "x"])
        writer.writerows(centroid_rows)
    if illumination is not None:
        np.save(root / FLATFIELD_TRUTH, illumination.flatfield(shape), allow_pickle=False)
        np.save(root / DARKFIELD_TRUTH, illumination.darkfield(shape), allow_pickle=False)
    return root


def _cache_dir() -> Path:
    if os.environ.get("PLATEFLOW_CACHE_DIR"):
        return Path(os.environ["PLATEFLOW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plateflow"


def sample_plate_path() -> Path:
    """The bundled sample plate (4 wells x 4 sites x 2 channels x 3 Z, 256 x 256 uint16).

    Looks for ``sample_data/plate`` at the repository root, then for the copy
    installed inside the package (``plateflow/_sample_data/plate``); if neither
    exists, generates it once into the user cache folder.
    """
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sample_data" / "plate", here.parents[1] / "_sample_data" / "plate"):
        if (candidate / "plate.HTD").is_file():
            return candidate
    target = _cache_dir() / f"sample_plate_v{_GENERATOR_VERSION}" / "plate"
    if (target / "plate.HTD").is_file() and (target / "ground_truth_centroids.csv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Generate beside the target and rename, so a crash never leaves a half-written plate there.
    staging = Path(tempfile.mkdtemp(prefix=".plate-", dir=target.parent))
    try:
        generate_sample_plate(staging / "plate")
        try:
            os.replace(staging / "plate", target)
        except OSError:
            if not (target / "ground_truth_centroids.csv").is_file():
                raise
            # Another process finished first; its copy is identical.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
