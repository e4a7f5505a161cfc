"""Pipeline files (versioned YAML, safe to load) and export as a Python script."""

from __future__ import annotations

from .pipeline_file import (
    FORMAT_VERSION,
    FileDiagnostic,
    PipelineFileError,
    UnregisteredFunctionError,
    dump_pipeline,
    load_pipeline,
    parse_pipeline,
    save_pipeline,
)
from .script import export_script

__all__ = [
    "FORMAT_VERSION",
    "FileDiagnostic",
    "PipelineFileError",
    "UnregisteredFunctionError",
    "dump_pipeline",
    "export_script",
    "load_pipeline",
    "parse_pipeline",
    "save_pipeline",
]
