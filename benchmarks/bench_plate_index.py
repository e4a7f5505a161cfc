"""Time ``open_plate`` on a 384-well ImageXpress plate: 9 sites x 4 channels, 13,824 files.

Files are 0-byte placeholders (indexing reads names, not pixels). The target is
under 1 s. Run: ``python benchmarks/bench_plate_index.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from plateflow.plate import open_plate

ROWS = "ABCDEFGHIJKLMNOP"
COLUMNS = range(1, 25)
SITES = range(1, 10)
CHANNELS = range(1, 5)


def build_plate(root: Path) -> int:
    folder = root / "TimePoint_1"
    folder.mkdir(parents=True)
    n = 0
    for row in ROWS:
        for col in COLUMNS:
            for site in SITES:
                for channel in CHANNELS:
                    (folder / f"{row}{col:02d}_s{site}_w{channel}.tif").touch()
                    n += 1
    (root / "plate.HTD").write_text('"HTSInfoFile", Version 1.0\r\n"EndFile"\r\n')
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "plate384"
        n_files = build_plate(root)
        open_plate(root)  # warm the OS directory cache, as on a plate that was just copied
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            plate = open_plate(root)
            groups = plate.microscope_handler.auto_detect_patterns(variable_components=("site",))
            times.append(time.perf_counter() - start)
        best = min(times)
        assert len(plate.files) == n_files and len(plate.wells) == 384 and len(groups) == 384 * 4
        print(f"files: {n_files}, wells: {len(plate.wells)}, pattern groups: {len(groups)}")
        print(f"open_plate + auto_detect_patterns: {best:.3f} s (best of {args.repeat}; median {sorted(times)[len(times) // 2]:.3f} s)")
        print(f"per well: {best / len(plate.wells) * 1e3:.3f} ms")
        print("target < 1 s:", "met" if best < 1.0 else "MISSED")


if __name__ == "__main__":
    main()
