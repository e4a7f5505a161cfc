"""Configuration and its resolution: global -> plate -> step.

``GlobalConfig`` holds every setting with its default. ``ConfigOverrides`` holds
only the settings a plate or a step changes; settings it leaves out inherit.
``resolve_config(global_config, plate_overrides, step_overrides)`` gives the
resolved ``GlobalConfig`` that the compiler copies into each plan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

from ._text import did_you_mean

__all__ = ["GlobalConfig", "ConfigOverrides", "resolve_config", "OUTPUT_FORMATS", "BACKENDS"]

OUTPUT_FORMATS = ("tiff", "zarr")
BACKENDS = ("memory", "disk", "zarr")
FLOAT_DTYPES = ("float32", "float64")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(choices)}")


@dataclass(frozen=True)
class GlobalConfig:
    """Settings for a whole run, with defaults that suit a laptop.

    Attributes:
        num_workers: wells processed at once (processes).
        output_format: ``"tiff"`` mirrors the plate's own layout, ``"zarr"`` writes one OME-Zarr plate.
        intermediate_backend: where middle steps keep their outputs (``"memory"`` or ``"disk"``).
        float_output_dtype: dtype that float64 results are written as (``"float32"`` unless asked).
        gpu_ids: GPUs to use; ``None`` means every GPU found, ``()`` means none.
        zarr_compressor: codec name for zarr chunks (``"zstd"``, ``"blosc"`` or ``"none"``).
        write_outputs: ``False`` keeps every step's output in memory, the last one
            included (napari's tuning runs on one site write nothing to disk).
    """

    num_workers: int = 1
    output_format: str = "tiff"
    intermediate_backend: str = "memory"
    float_output_dtype: str = "float32"
    gpu_ids: tuple[int, ...] | None = None
    zarr_compressor: str = "zstd"
    write_outputs: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or isinstance(self.num_workers, bool) or self.num_workers < 1:
            raise ValueError(f"num_workers={self.num_workers!r} is not valid; use a whole number >= 1")
        _choice("output_format", self.output_format, OUTPUT_FORMATS)
        _choice("intermediate_backend", self.intermediate_backend, ("memory", "disk"))
        _choice("float_output_dtype", self.float_output_dtype, FLOAT_DTYPES)
        _choice("zarr_compressor", self.zarr_compressor, ("zstd", "blosc", "none"))
        if not isinstance(self.write_outputs, bool):
            raise ValueError(f"write_outputs={self.write_outputs!r} is not valid; use True or False")
        if self.gpu_ids is not None:
            ids = tuple(self.gpu_ids)
            if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in ids):
                raise ValueError(f"gpu_ids={self.gpu_ids!r} is not valid; use device numbers such as (0, 1)")
            object.__setattr__(self, "gpu_ids", ids)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class ConfigOverrides(Mapping[str, Any]):
    """Settings a plate or a step changes; names are checked against ``GlobalConfig``.

    >>> ConfigOverrides(float_output_dtype="float64")
    ConfigOverrides(float_output_dtype='float64')
    """

    __slots__ = ("_values",)
    _values: Mapping[str, Any]

    def __init__(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        merged = {**(values or {}), **kwargs}
        known = GlobalConfig.field_names()
        for name in merged:
            if name not in known:
                suggestion = did_you_mean(name, known)
                hint = f"; {suggestion}" if suggestion else f"; valid settings are: {', '.join(known)}"
                raise ValueError(f"unknown setting {name!r}{hint}")
        # Validate values now so a bad override fails where it is written.
        replace(GlobalConfig(), **merged)
        object.__setattr__(self, "_values", MappingProxyType(merged))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ConfigOverrides is immutable")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"ConfigOverrides({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._values) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items(), key=lambda kv: kv[0])))


def resolve_config(
    global_config: GlobalConfig | None = None,
    plate_overrides: Mapping[str, Any] | None = None,
    step_overrides: Mapping[str, Any] | None = None,
) -> GlobalConfig:
    """Resolve global -> plate -> step: later levels win, unset settings inherit."""
    config = global_config if global_config is not None else GlobalConfig()
    for level in (plate_overrides, step_overrides):
        if level:
            config = replace(config, **dict(ConfigOverrides(level)))
    return config
