"""How long ``import plateflow`` takes in a fresh interpreter, and what it loads.

Run: ``python benchmarks/bench_import.py [--importtime]``. Prints the best of 5
wall-clock times of ``import plateflow`` in a fresh subprocess, whether that is
under the 0.3 s budget, and checks that neither ``import plateflow`` nor
``import plateflow.memory`` loads an optional array library or GUI toolkit.
It also times loading the function registry (``from plateflow.library import
registry`` plus listing its names), target under 0.1 s, best of 5. Exits
non-zero when a check fails. ``--importtime`` also prints the ten slowest
modules from ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

BUDGET_S = 0.3
REGISTRY_BUDGET_S = 0.1
RUNS = 5
HEAVY = ("cupy", "torch", "jax", "tensorflow", "pyclesperanto", "napari", "qtpy")

# The interpreter's own start-up is measured separately and subtracted, so the
# figure is the cost of the import statement alone.
_TIMED = """
import json, sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


_REGISTRY = """
import json, sys, time
import plateflow
start = time.perf_counter()
from plateflow.library import registry
count = len(registry.names())
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "count": count, "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def timed_import(module: str, template: str = _TIMED) -> dict:
    code = template.format(module=module, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`import {module}` failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def slowest_modules(module: str, count: int = 10) -> list[tuple[int, str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        # "import time:  self_us | cumulative_us | <indent>name"
        _self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        rows.append((int(cumulative_us), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--importtime", action="store_true", help="also show the slowest modules (python -X importtime)")
    args = parser.parse_args()

    ok = True
    runs = [timed_import("plateflow") for _ in range(RUNS)]
    best = min(run["seconds"] for run in runs)
    verdict = "under" if best < BUDGET_S else "OVER"
    print(f"import plateflow: best of {RUNS} = {best:.3f} s ({verdict} the {BUDGET_S} s budget)")
    ok &= best < BUDGET_S

    for module in ("plateflow", "plateflow.memory"):
        heavy = timed_import(module)["heavy"]
        if heavy:
            print(f"import {module} loaded {', '.join(heavy)}: FAIL")
            ok = False
        else:
            print(f"import {module} loaded none of {', '.join(HEAVY)}: ok")

    loads = [timed_import("plateflow.library.registry", _REGISTRY) for _ in range(RUNS)]
    best_load = min(load["seconds"] for load in loads)
    verdict = "under" if best_load < REGISTRY_BUDGET_S else "OVER"
    print(f"registry load ({loads[0]['count']} functions): best of {RUNS} = {best_load:.3f} s ({verdict} the {REGISTRY_BUDGET_S} s budget); "
          f"array libraries imported: {', '.join(loads[0]['heavy']) or 'none'}")
    ok &= best_load < REGISTRY_BUDGET_S and not loads[0]["heavy"]

    if args.importtime:
        print("slowest modules (cumulative microseconds):")
        for micros, name in slowest_modules("plateflow"):
            print(f"  {micros:>9}  {name}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
