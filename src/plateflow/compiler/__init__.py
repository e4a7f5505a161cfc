"""The compiler: a pipeline plus a plate -> one frozen ProcessingContext per well.

``analyze`` (and its ``Analysis`` records) loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .context import ProcessingContext, VisualizerRequest
from .diagnostics import CODES, CompileError, Diagnostic, DiagnosticSink, format_field, place_path
from .orchestrator import Orchestrator
from .phases import (
    assign_gpu_resources_for_context,
    declare_zarr_stores_for_context,
    initialize_step_plans_for_context,
    plan_materialization_flags_for_context,
    validate_memory_contracts_for_context,
)
from .pipeline_compiler import PipelineCompiler, compile_pipeline, compile_with_plate_steps
from .plan import PLAN_KEYS, PlannedGroup, StepPlan

__all__ = [
    "ProcessingContext",
    "VisualizerRequest",
    "StepPlan",
    "PlannedGroup",
    "PLAN_KEYS",
    "Diagnostic",
    "DiagnosticSink",
    "CompileError",
    "CODES",
    "format_field",
    "place_path",
    "Orchestrator",
    "PipelineCompiler",
    "compile_pipeline",
    "compile_with_plate_steps",
    "check",
    "analyze",
    "Analysis",
    "StepFlow",
    "CallFlow",
    "SpecialLink",
    "initialize_step_plans_for_context",
    "declare_zarr_stores_for_context",
    "plan_materialization_flags_for_context",
    "validate_memory_contracts_for_context",
    "assign_gpu_resources_for_context",
]

_LAZY = {name: "plateflow.compiler.analysis" for name in ("check", "analyze", "Analysis", "StepFlow", "CallFlow", "SpecialLink")}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plateflow.compiler' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
