"""``Orchestrator``: what the compiler knows about the plate and the run, shared by every well."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigOverrides, GlobalConfig

__all__ = ["Orchestrator", "default_output_root"]


def default_output_root(plate_root: Path | str) -> Path:
    """Where outputs go when no folder is given: beside the plate, never inside it."""
    root = Path(plate_root)
    return root.with_name(f"{root.name}_plateflow")


@dataclass(frozen=True)
class Orchestrator:
    """The plate (``None`` when checking without one), the run's config and its output folder.

    Read-only input of the phases: nothing is kept on it between wells (a
    compile holds its well-independent results itself).
    """

    plate: Any = None
    global_config: GlobalConfig = field(default_factory=GlobalConfig)
    plate_config: Mapping[str, Any] = field(default_factory=ConfigOverrides)
    output_root: str = ""

    def __post_init__(self) -> None:
        if not self.output_root and self.plate is not None:
            object.__setattr__(self, "output_root", str(default_output_root(self.plate.root)))

    @property
    def input_root(self) -> str:
        return str(self.plate.root) if self.plate is not None else ""

    @property
    def components(self) -> Mapping[str, tuple[str, ...]] | None:
        return self.plate.components if self.plate is not None else None
