"""Execution: run one well from its frozen plans, and whole plates in parallel.

``run(pipeline, plate, out, ...)`` compiles, runs every well (in processes or
on a Dask cluster), and returns a :class:`RunReport`; ``run_well(context)``
runs one compiled well; ``process_step(step, context)`` runs one step of it.
``SampleRunner`` / ``run_sample`` run one site step by step, in memory, with a
cache of step outputs (what napari's tuning uses).
"""

from __future__ import annotations

from .runner import RunInterrupted, RunReport, run
from .sample import SampleRunner, SampleStepFailure, SampleStepOutput, run_sample
from .step_runner import StepError, StepResult, process_step
from .well import WellFailure, WellResult, run_well

__all__ = [
    "run",
    "RunReport",
    "RunInterrupted",
    "run_well",
    "WellResult",
    "WellFailure",
    "process_step",
    "StepResult",
    "StepError",
    "SampleRunner",
    "SampleStepOutput",
    "SampleStepFailure",
    "run_sample",
]
