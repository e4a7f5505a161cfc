"""The bundled demo pipeline: count nuclei on every site of a plate.

``demo_pipeline()`` normalizes each Z stack, removes the background with a
white top-hat, projects Z by its maximum, and segments the nuclei channel with
``numpy.measure_nuclei``, whose ``object_counts`` table (one row per site) and
``object_measurements`` table (one row per nucleus) are written as CSV files.
Every function comes from the registry, so the pipeline saves as a pipeline
file. The ``plateflow demo`` command and the napari plugin both use it.
"""

from __future__ import annotations

from ..steps import FunctionStep, Pipeline

__all__ = ["demo_pipeline", "NUCLEI_CHANNEL", "COUNTS_TABLE", "COUNT_COLUMN"]

#: The channel the sample plate images nuclei in (DAPI).
NUCLEI_CHANNEL = "1"
#: The table with one nucleus count per site, and its count column.
COUNTS_TABLE = "object_counts"
COUNT_COLUMN = "object_count"


def demo_pipeline() -> Pipeline:
    """Normalize, top-hat, Z max projection, nucleus segmentation with counts."""
    from ..library import registry

    return Pipeline(
        [
            FunctionStep(
                (registry.get("numpy.normalize_percentile"), {"low_percentile": 1.0, "high_percentile": 99.8}),
                name="Normalize",
                variable_components=("z_index",),
            ),
            FunctionStep((registry.get("numpy.top_hat"), {"radius": 10}), name="Remove background", variable_components=("z_index",)),
            FunctionStep(registry.get("numpy.max_projection"), name="Z max projection", variable_components=("z_index",)),
            FunctionStep(
                {NUCLEI_CHANNEL: (registry.get("numpy.measure_nuclei"), {"sigma": 1.0, "min_size": 30, "min_distance": 4})},
                name="Count nuclei",
                variable_components=("site",),
                group_by="channel",
            ),
        ],
        name="nucleus count demo",
        description="normalize, remove background, project Z, count nuclei per site",
    )
