"""The ``plateflow`` command: run, check, export-script, sample-plate, functions, demo.

Pipelines are YAML pipeline files (``plateflow.io.load_pipeline``): loading one
never imports or runs code from it. Every error is one line naming the file
(and field) at fault, with exit status 1 (2 for a wrong command line); no
traceback reaches the terminal except for the failed wells' own tracebacks.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._tables import read_table

__all__ = ["main", "build_parser"]

_EPILOG = """\
examples:
  plateflow sample-plate my_plate --wells A01,A02,B01 --sites 4
  plateflow check nuclei.yaml my_plate
  plateflow run nuclei.yaml my_plate -o results --workers 4
  plateflow run nuclei.yaml my_plate -o results --resume
  plateflow run nuclei.yaml my_plate -o results --format zarr --wells A01,B02
  plateflow run nuclei.yaml my_plate -o results --scheduler tcp://10.0.0.5:8786
  plateflow run nuclei.yaml my_plate -o results --workers 4 --well-timeout 600
  plateflow export-script nuclei.yaml -o nuclei.py
  plateflow functions --memory-type numpy --category filter
  plateflow demo --out demo_results --workers 2

exit status: 0 when everything succeeded, 1 when a well failed or the pipeline
has errors (every diagnostic is printed), 2 for a wrong command line, 130 or 143
when stopped by Ctrl-C or SIGTERM (the run can be resumed with --resume).
"""

#: Pipeline files are small YAML files; a bigger "pipeline" is the wrong file, not one to read.
MAX_PIPELINE_BYTES = 10 * 1024 * 1024


def _wells(text: str | None) -> list[str] | None:
    if text is None:
        return None
    wells = [w.strip() for w in text.split(",") if w.strip()]
    if not wells:
        raise argparse.ArgumentTypeError("--wells needs at least one well id, e.g. A01,B02")
    return wells


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not valid; use a whole number >= 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not valid; use a number of seconds > 0")
    return value


def _command(commands: Any, name: str, summary: str, description: str, *examples: str) -> argparse.ArgumentParser:
    """A sub-command with its one-line help, its description and its examples (an epilog kept as written)."""
    heading = "examples:" if len(examples) > 1 else "example:"
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog="\n".join([heading, *(f"  {example}" for example in examples)]) + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plateflow",
        description="Compile-then-run image-processing pipelines for high-content-screening plates.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"plateflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = _command(
        commands,
        "run",
        "run a pipeline file on a plate",
        "Compile PIPELINE against PLATE and run it on every well (or --wells), writing results to OUT.",
        "plateflow run nuclei.yaml my_plate -o results --workers 4",
        "plateflow run nuclei.yaml my_plate -o results --resume --quiet",
    )
    run.add_argument("pipeline", metavar="PIPELINE", help="YAML pipeline file")
    run.add_argument("plate", metavar="PLATE", help="plate folder")
    run.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (never inside the plate)")
    run.add_argument("--wells", metavar="A01,B02", help="comma-separated wells to run (default: all)")
    run.add_argument("--workers", type=_positive, default=1, metavar="N", help="wells processed at once (default 1)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (tcp://host:8786)")
    run.add_argument("--format", choices=("tiff", "zarr"), default=None, help="output format (default tiff)")
    run.add_argument("--resume", action="store_true", help="skip wells an earlier run in OUT finished")
    run.add_argument("--well-timeout", type=_seconds, default=None, metavar="SECONDS",
                     help="fail a well that runs longer than this (a stuck or stopped worker) and go on")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    export = _command(
        commands,
        "export-script",
        "write a pipeline file as a runnable Python script",
        "Write PIPELINE as a Python script that builds the same pipeline and runs it.",
        "plateflow export-script nuclei.yaml -o nuclei.py",
    )
    export.add_argument("pipeline", metavar="PIPELINE", help="YAML pipeline file")
    export.add_argument("-o", "--out", required=True, metavar="SCRIPT", help="the Python script to write")

    check = _command(
        commands,
        "check",
        "check a pipeline file (and a plate) without running it",
        "Print every diagnostic of PIPELINE, checked against PLATE when given.",
        "plateflow check nuclei.yaml my_plate",
    )
    check.add_argument("pipeline", metavar="PIPELINE", help="YAML pipeline file")
    check.add_argument("plate", metavar="PLATE", nargs="?", help="plate folder (optional)")

    sample = _command(
        commands,
        "sample-plate",
        "write a synthetic ImageXpress plate with ground-truth nucleus counts",
        "Write a synthetic plate to DIR (with ground_truth.csv).",
        "plateflow sample-plate my_plate --wells A01,A02 --sites 2 --size 128",
    )
    sample.add_argument("dir", metavar="DIR", help="plate folder to create")
    sample.add_argument("--wells", default="A01,A02,B01,B02", metavar="A01,B02", help="comma-separated wells (default A01,A02,B01,B02)")
    sample.add_argument("--sites", type=_positive, default=4, metavar="N")
    sample.add_argument("--channels", type=_positive, default=2, metavar="N")
    sample.add_argument("--z", type=_positive, default=3, metavar="N", help="Z planes")
    sample.add_argument("--size", type=_positive, default=256, metavar="N", help="image side in pixels")
    sample.add_argument("--seed", type=int, default=0, metavar="N")

    functions = _command(
        commands,
        "functions",
        "list the registered functions",
        "List the functions pipeline files can name.",
        "plateflow functions --memory-type numpy",
    )
    functions.add_argument("--memory-type", metavar="T", help="only functions taking this memory type")
    functions.add_argument("--category", metavar="C", help="only this category")

    demo = _command(
        commands,
        "demo",
        "count nuclei on the bundled sample plate and compare with the ground truth",
        "Run the demo pipeline (normalize, top-hat, Z projection, nucleus count) on the bundled sample plate.",
        "plateflow demo --out demo_results --workers 2",
    )
    demo.add_argument("--out", metavar="DIR", help="output folder (default: a temporary folder)")
    demo.add_argument("--workers", type=_positive, default=1, metavar="N")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _print_diagnostics(diagnostics: Sequence[Any]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.format())


def _pipeline_file_problem(path: str) -> str:
    """Why ``path`` cannot be a pipeline file, judged from its type and size before reading it
    (a folder, a FIFO or a device such as /dev/zero would fail or never end), or ``""``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"pipeline file not found: {path}"
    except OSError as error:
        return f"cannot read the pipeline file {path}: {error.strerror or error}"
    if stat.S_ISDIR(info.st_mode):
        return f"{path} is a folder, not a pipeline file (a .yaml file)"
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
        return f"{path} is {kind}, not a pipeline file (a .yaml file)"
    if info.st_size > MAX_PIPELINE_BYTES:
        return (f"{path} is {info.st_size / 1e6:.0f} MB, too big for a pipeline file (at most "
                f"{MAX_PIPELINE_BYTES // (1024 * 1024)} MB); is it the right file?")
    return ""


def _load(path: str) -> Any:
    """The pipeline in ``path``, or ``None`` after printing why it cannot be loaded."""
    from . import io

    problem = _pipeline_file_problem(path)
    if problem:
        print(f"error: {problem}")
        return None
    try:
        return io.load_pipeline(path)
    except FileNotFoundError:
        print(f"error: pipeline file not found: {path}")
    except io.PipelineFileError as error:
        print(str(error))
    except OSError as error:
        print(f"error: cannot read the pipeline file {path}: {error.strerror or error}")
    return None


def _run_errors() -> tuple[type[BaseException], ...]:
    """What ``run`` raises for a problem people fix (printed as one line), not a bug."""
    from .execution.executors import DaskUnavailableError
    from .execution.runner import OutputLockedError, WorkersUnreachableError

    return (OSError, ValueError, argparse.ArgumentTypeError, OutputLockedError, WorkersUnreachableError, DaskUnavailableError, ImportError)


def _interrupted(error: Any) -> int:
    print(f"\n{error}", file=sys.stderr)
    return 128 + int(getattr(signal.Signals, error.signal_name, signal.SIGINT))


def _cmd_run(args: argparse.Namespace) -> int:
    from .compiler import CompileError
    from .execution import run
    from .execution.runner import RunInterrupted

    pipeline = _load(args.pipeline)
    if pipeline is None:
        return 1
    try:
        wells = _wells(args.wells)
        report = run(
            pipeline,
            args.plate,
            args.out,
            wells=wells,
            workers=args.workers,
            scheduler=args.scheduler,
            resume=args.resume,
            output_format=args.format,
            progress=not args.quiet,
            well_timeout=args.well_timeout,
        )
    except RunInterrupted as error:
        return _interrupted(error)
    except CompileError as error:
        errors = len(error.errors)
        print(f"the pipeline has {errors} error{'s' if errors != 1 else ''}; nothing was run:")
        _print_diagnostics(error.diagnostics)
        return 1
    except _run_errors() as error:  # bad plate, unwritable or full output folder, locked folder, damaged manifest
        print(f"error: {error}")
        return 1
    print(report.summary())
    for well, failure in report.failed.items():
        print(f"\n--- {well} traceback ---\n{failure.traceback.rstrip()}")
    return 0 if report.ok else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from .compiler import check

    pipeline = _load(args.pipeline)
    if pipeline is None:
        return 1
    diagnostics = check(pipeline, args.plate)
    _print_diagnostics(diagnostics)
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    print(f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}")
    return 1 if errors else 0


def _cmd_export_script(args: argparse.Namespace) -> int:
    from . import io

    pipeline = _load(args.pipeline)
    if pipeline is None:
        return 1
    try:
        io.export_script(pipeline, args.out)
    except (OSError, ValueError, TypeError) as error:
        print(f"error: cannot export {args.pipeline} to {args.out}: {error}")
        return 1
    print(f"wrote {args.out}; run it with: python {args.out}")
    return 0


def _cmd_sample_plate(args: argparse.Namespace) -> int:
    from .plate.sample import generate_sample_plate

    try:
        root = generate_sample_plate(
            args.dir,
            wells=_wells(args.wells) or (),
            sites=args.sites,
            channels=args.channels,
            z_planes=args.z,
            size=(args.size, args.size),
            seed=args.seed,
        )
    except (ValueError, FileExistsError, argparse.ArgumentTypeError) as error:
        print(f"error: {error}")
        return 1
    print(f"wrote sample plate {root}")
    return 0


def _cmd_functions(args: argparse.Namespace) -> int:
    from .library import registry

    try:
        text = registry.format_function_table(memory_type=args.memory_type, category=args.category)
    except (ValueError, KeyError) as error:
        print(f"error: {error}")
        return 1
    print(text, end="")
    return 0


def _ground_truth(plate: Path) -> dict[str, int]:
    truth: dict[str, int] = {}
    for row in read_table(plate / "ground_truth.csv"):
        truth[row["well"]] = truth.get(row["well"], 0) + int(row["nucleus_count"])
    return truth


def _cmd_demo(args: argparse.Namespace) -> int:
    from .execution import run
    from .execution.demo import COUNT_COLUMN, COUNTS_TABLE, demo_pipeline
    from .execution.runner import RunInterrupted
    from .plate.sample import sample_plate_path

    plate = sample_plate_path()
    with tempfile.TemporaryDirectory(prefix="plateflow-demo-") as scratch:
        out = Path(args.out) if args.out else Path(scratch) / "out"
        try:
            report = run(demo_pipeline(), plate, out, workers=args.workers, progress=not args.quiet)
        except RunInterrupted as error:
            return _interrupted(error)
        except _run_errors() as error:
            print(f"error: {error}")
            return 1
        print(report.summary())
        counts: dict[str, int] = {}
        table = report.tables.get(COUNTS_TABLE)
        if table is not None:
            for row in read_table(table):
                counts[row["well"]] = counts.get(row["well"], 0) + int(row[COUNT_COLUMN])
        truth = _ground_truth(plate)
        print(f"\n{'well':<6}{'counted':>9}{'truth':>8}{'error':>8}")
        for well in sorted(truth):
            if well in counts:
                relative_error = (counts[well] - truth[well]) / truth[well] * 100
                print(f"{well:<6}{counts[well]:>9}{truth[well]:>8}{relative_error:>7.1f}%")
            else:
                print(f"{well:<6}{'-':>9}{truth[well]:>8}{'':>8}")
        if not args.out:
            print("\n(outputs were in a temporary folder; pass --out DIR to keep them)")
    return 0 if report.ok else 1


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    """Warnings as people read them on the command line: ``warning: <message>``, no source line."""
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``plateflow`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    handlers = {
        "run": _cmd_run,
        "check": _cmd_check,
        "export-script": _cmd_export_script,
        "sample-plate": _cmd_sample_plate,
        "functions": _cmd_functions,
        "demo": _cmd_demo,
    }
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
