"""The compiler: a pipeline plus a plate -> one frozen ProcessingContext per well."""

from .context import ProcessingContext, VisualizerRequest
from .diagnostics import CODES, CompileError, Diagnostic, DiagnosticSink
from .orchestrator import Orchestrator
from .phases import (
    assign_gpu_resources_for_context,
    declare_zarr_stores_for_context,
    initialize_step_plans_for_context,
    plan_materialization_flags_for_context,
    validate_memory_contracts_for_context,
)
from .pipeline_compiler import PipelineCompiler, check, compile_pipeline
from .plan import PLAN_KEYS, StepPlan

__all__ = [
    "ProcessingContext",
    "VisualizerRequest",
    "StepPlan",
    "PLAN_KEYS",
    "Diagnostic",
    "DiagnosticSink",
    "CompileError",
    "CODES",
    "Orchestrator",
    "PipelineCompiler",
    "compile_pipeline",
    "check",
    "initialize_step_plans_for_context",
    "declare_zarr_stores_for_context",
    "plan_materialization_flags_for_context",
    "validate_memory_contracts_for_context",
    "assign_gpu_resources_for_context",
]
