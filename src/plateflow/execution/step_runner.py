"""Run one step of one well from its frozen plan: ``process_step(step, context)``.

A step reads only its plan and the paths the plan names. For each of the
plan's pattern groups it loads the slices from ``plan.input_paths(group)``,
stacks and converts them to the function's memory type, runs the pattern, and
saves the result back, one plane per image, to ``plan.output_paths(group)``
(the input image's relative path under the plan's output folder). Nothing
lists storage to find inputs and nothing parses file names: a worker needs no
Plate. A step after another reads the planes its predecessor's plan names;
those the predecessor did not write (a projection writes one plane per stack,
a dict pattern skips the groups it has no entry for) are left out of the stack.

Stack sizes: a function returns as many images as it was given (each output
keeps its input's name) or one image from several (a projection: the output
takes the first input image's name). Anything else is an error.

Special outputs are saved per producing group under the output's VFS path,
keyed by the group's fixed components; the consuming plan's ``special_sources``
names the producing groups. A consuming group receives the value
of the producer group that matches it, tried in this order:

1. the producer group with exactly the consumer's fixed components;
2. the only producer group, when there is one (a value shared by the well);
3. the one producer group whose fixed components all appear, with the same
   values, among the consumer's (for example a per-site value consumed after
   a projection fixed ``z_index``).

Special outputs marked ``materialize`` are results of the run: tables (lists
of dict rows) become the well's part of one plate-wide CSV, with ``well`` and
the group's component columns added first (a row's ``slice`` names its image
in the input stack, which gives the varying components such as ``site``);
other values are saved as ``.npy`` (arrays) or ``.json`` files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compiler.plan import special_key, special_value_path
from ..memory.conversion import detect_memory_type
from ..memory.stacking import stack_slices, unstack_slices
from ..patterns import FunctionCall
from ..special_io import get_special_inputs, get_special_outputs
from .._naming import COMPONENTS

if TYPE_CHECKING:
    from ..compiler.context import ProcessingContext
    from ..compiler.plan import PlannedGroup, StepPlan
    from ..vfs import FileManager

__all__ = [
    "StepError",
    "StepResult",
    "process_step",
    "input_groups",
    "special_entries",
    "run_plan",
    "storable_dtype",
    "table_rows",
    "partial_table_path",
    "STATE_DIR",
    "fetch_plate_values",
]

#: Folder under the output root for run bookkeeping (partial tables).
STATE_DIR = ".plateflow"



class StepError(RuntimeError):
    """A step failed for one well; the message names the step, function, well, group and file."""

    def __init__(
        self,
        reason: str,
        *,
        step_index: int,
        step_name: str,
        well: str | None,
        function: str = "",
        group: str = "",
        file: str = "",
    ) -> None:
        self.reason = reason
        self.step_index = step_index
        self.step_name = step_name
        self.well = well
        self.function = function
        self.group = group
        self.file = file
        # A plate-level step (well None) runs over the whole plate, before any well.
        where = [f"step {step_index + 1} {step_name!r}" if well is not None else f"plate step {step_index + 1} {step_name!r}"]
        if function:
            where.append(f"function {function}")
        if well is not None:
            where.append(f"well {well}")
        if group:
            where.append(f"group {group}")
        if file:
            where.append(f"file {file}")
        super().__init__(f"{', '.join(where)}: {reason}")


@dataclass(frozen=True)
class StepResult:
    """What one step wrote for one well.

    Attributes:
        outputs: ``(backend, path)`` of every image plane saved.
        results: paths of materialized special outputs saved to disk (tables and values).
        tables: table name -> path of this well's partial CSV.
        groups: pattern groups run; ``skipped``: groups with no entry in a dict pattern.
    """

    step_index: int
    step_name: str
    outputs: tuple[tuple[str, str], ...] = ()
    results: tuple[str, ...] = ()
    tables: Mapping[str, str] = field(default_factory=dict)
    groups: int = 0
    skipped: int = 0


def input_groups(plan: "StepPlan", filemanager: "FileManager") -> list[tuple["PlannedGroup", tuple[str, ...]]]:
    """The plan's groups as the step receives them, each with the paths it reads, in stack order.

    A step that reads the plate reads every image its plan names (a missing one
    is this step's error, naming the file). A later step reads the planes its
    predecessor wrote among those its plan names (a projection writes the first
    plane of each stack, a dict pattern skips groups): the others are left out
    of the stack, and a group with none left is not run.
    """
    found = []
    for group in plan.groups:
        paths = plan.input_paths(group)
        if not plan.reads_plate:
            present = [i for i, path in enumerate(paths) if filemanager.exists(path, plan.read_backend)]
            if len(present) != len(paths):
                if not present:
                    continue
                group = group._replace(files=tuple(group.files[i] for i in present))
                paths = tuple(paths[i] for i in present)
        found.append((group, paths))
    return found


def special_entries(spec: Mapping[str, Any], fixed_groups: Sequence[tuple[tuple[str, str], ...]], filemanager: "FileManager") -> list[tuple[str, dict[str, str]]]:
    """(VFS path, fixed components) of each value saved under a special output ``spec`` by the given groups."""
    found = []
    for fixed in fixed_groups:
        path = special_value_path(spec, dict(fixed))
        if filemanager.exists(path, spec["backend"]):
            found.append((path, dict(fixed)))
    return found


def fetch_plate_values(spec: Mapping[str, Any], sources: Iterable[Iterable[tuple[str, str]]], filemanager: "FileManager") -> int:
    """Make a plate special input's values readable in ``filemanager``'s memory backend; how many were read from disk.

    A worker process that was not handed the values (:func:`preload_plate_values`)
    reads each one once from the file the plate step wrote beside its path
    (``<path>/<group key>.npy`` or ``.json``) and keeps it in memory for the
    wells it runs after. Values already in memory are left as they are.
    """
    read = 0
    for fixed in sources:
        path = special_value_path(spec, dict(fixed))
        if filemanager.exists(path, "memory"):
            continue
        target = plate_value_file(path, filemanager)
        if target is not None:
            filemanager.save(filemanager.load(target, "disk", memory_type=None), path, "memory")
            read += 1
    return read


def plate_value_file(path: str, filemanager: "FileManager") -> str | None:
    """The file a plate step wrote the value of VFS ``path`` to (``.npy`` for arrays, ``.json`` for
    other values; see ``PlateStepPlan.file_path``), or ``None`` when there is none."""
    return next((target for target in (f"{path}.npy", f"{path}.json") if filemanager.exists(target, "disk")), None)


def process_step(step: Any, context: "ProcessingContext") -> StepResult:
    """Run ``step`` for the context's well, reading only the frozen plan; never changes the context."""
    return run_plan(context.plan(step), context)


def storable_dtype(dtype: np.dtype, float_output_dtype: str) -> np.dtype:
    """The dtype a numpy result is saved as: float64 as the configured float dtype, bool as uint8."""
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float64:
        return np.dtype(float_output_dtype)
    return dtype


def partial_table_path(output_root: str, name: str, well: str) -> str:
    """Where one well's rows of table ``name`` are kept until the plate's table is merged."""
    return f"{output_root.rstrip('/')}/{STATE_DIR}/tables/{name}/{well}.csv"


def _join(folder: str, relpath: str) -> str:
    return posixpath.join(folder, relpath) if folder else relpath


def _group_label(group: "PlannedGroup") -> str:
    rest = " ".join(f"{k}={v}" for k, v in group.fixed.items() if k != "well")
    return f"[{rest}]" if rest else "[whole well]"


class _Step:
    """One run of one plan: the plan, the VFS and the error context."""

    def __init__(self, plan: "StepPlan", context: "ProcessingContext") -> None:
        self.plan = plan
        self.context = context
        if context.filemanager is None:
            raise self.error("the context has no file manager; compile with filemanager=FileManager(...) "
                             "or run it through plateflow.execution.run_well")
        self.fm: "FileManager" = context.filemanager
        self.well = plan.well_id

    def error(self, reason: str, call: FunctionCall | None = None, group: "PlannedGroup | None" = None, file: str = "") -> StepError:
        return StepError(
            reason,
            step_index=self.plan.step_index,
            step_name=self.plan.step_name,
            well=self.plan.well_id,
            function=call.name if call is not None else "",
            group=_group_label(group) if group is not None else "",
            file=file,
        )

    # -- inputs ------------------------------------------------------------
    def input_groups(self) -> list[tuple["PlannedGroup", tuple[str, ...]]]:
        return input_groups(self.plan, self.fm)

    def load_stack(self, group: "PlannedGroup", paths: Sequence[str]) -> Any:
        plan = self.plan
        slices = []
        for image, path in zip(group.files, paths):
            try:
                slices.append(self.fm.load(path, plan.read_backend, memory_type=None))
            except Exception as error:  # any reader failure becomes this step's error, naming the file
                raise self.error(f"cannot load the image: {type(error).__name__}: {error}", group=group, file=image.path) from error
        self.check_slices(slices, group)
        target = plan.input_memory_type or "numpy"
        try:
            return stack_slices(slices, target, plan.gpu_id)
        except (TypeError, ValueError) as error:
            source = f" from {plan.input_conversion[0]}" if plan.input_conversion else ""
            raise self.error(f"cannot stack the images as {target}{source} on {plan.device}: {error}", group=group) from error

    def check_slices(self, slices: list[Any], group: "PlannedGroup") -> None:
        """Name the image that does not fit its stack, rather than fail (or promote) the whole stack.

        Plane shapes must agree within a stack. Images read from the plate must
        also share one dtype within a stack: stacking would silently promote the
        whole stack (and so the well's outputs) to the odd image's dtype. The
        odd one out is the image that differs from the plate's header where the
        stack has images like it, else from the stack's majority.
        """
        if not slices or not all(hasattr(s, "shape") and hasattr(s, "dtype") for s in slices):
            return
        files = group.files
        plate = self.plan.plate_image if self.plan.reads_plate else None
        shapes = [tuple(int(n) for n in s.shape) for s in slices]
        expected_shape = _usual(shapes, plate[0] if plate is not None else None)
        for image, shape in zip(files, shapes):
            if shape != expected_shape:
                raise self.error(
                    f"the image has shape {shape}, but the other images of its stack have shape {expected_shape}",
                    group=group,
                    file=image.path,
                )
        if not self.plan.reads_plate:
            return
        dtypes = [str(s.dtype) for s in slices]
        expected_dtype = _usual(dtypes, plate[1] if plate is not None else None)
        for image, dtype in zip(files, dtypes):
            if dtype != expected_dtype:
                raise self.error(
                    f"the image is {dtype}, but the other images of its stack are {expected_dtype}; the images "
                    "of one stack must have the same pixel type (a damaged or replaced file?)",
                    group=group,
                    file=image.path,
                )

    def load_specials(self) -> dict[str, list[tuple[dict[str, str], Any]]]:
        """Each special input's values, one per producing group the plan names that saved one."""
        found: dict[str, list[tuple[dict[str, str], Any]]] = {}
        for name, spec in self.plan.special_inputs.items():
            if spec.get("scope") == "plate":  # a plate step's value: read once per process from its file when not handed over
                fetch_plate_values(spec, self.plan.special_sources.get(name, ()), self.fm)
            entries = special_entries(spec, self.plan.special_sources.get(name, ()), self.fm)
            found[name] = [(fixed, self.fm.load(path, spec["backend"], memory_type=None)) for path, fixed in entries]
        return found

    def special_value(self, name: str, entries: list[tuple[dict[str, str], Any]], group: "PlannedGroup", call: FunctionCall) -> Any:
        own = {k: v for k, v in group.fixed.items() if k != "well"}
        if not entries:
            spec = self.plan.special_inputs.get(name, {})
            if spec.get("scope") == "plate":
                raise self.error(
                    f"no value for special input {name!r} from its plate step: it is neither in memory nor in a file under "
                    f"{spec.get('path')}; the plate steps run once before the wells (plateflow.run does it; when running "
                    "wells yourself, call plateflow.execution.plate_steps.run_plate_steps first)",
                    call,
                    group,
                )
            raise self.error(f"no value for special input {name!r}: the step that produces it made none for this well", call, group)
        for fixed, value in entries:
            if fixed == own:
                return value
        if len(entries) == 1:
            return entries[0][1]
        subsets = [value for fixed, value in entries if all(own.get(k) == v for k, v in fixed.items())]
        if len(subsets) == 1:
            return subsets[0]
        producers = "; ".join(" ".join(f"{k}={v}" for k, v in fixed.items()) or "whole well" for fixed, _ in entries)
        raise self.error(
            f"special input {name!r} has {len(entries)} producer groups ({producers}) and none matches this group; "
            "give the producing and consuming steps variable_components that line up",
            call,
            group,
        )

    # -- running -----------------------------------------------------------
    def run_chain(self, chain: Sequence[FunctionCall], stack: Any, group: "PlannedGroup", specials: dict[str, list[tuple[dict[str, str], Any]]]) -> tuple[Any, dict[str, Any]]:
        data = stack
        produced: dict[str, Any] = {}
        for call in chain:
            kwargs = dict(call.kwargs)
            for name in get_special_inputs(call.func):
                if name in produced:  # made earlier in this chain
                    kwargs[name] = produced[name]
                elif name in specials:
                    kwargs[name] = self.special_value(name, specials[name], group, call)
                else:
                    raise self.error(f"special input {name!r} is not linked to any producing step in the plan", call, group)
            try:
                result = call.func(data, **kwargs)
            except Exception as error:  # the user's function failed: report it with where it ran
                raise self.error(f"{type(error).__name__}: {error}", call, group) from error
            names = get_special_outputs(call.func)
            if names:
                if not isinstance(result, tuple) or len(result) != 1 + len(names):
                    got = f"a tuple of {len(result)} values" if isinstance(result, tuple) else f"one {type(result).__name__}"
                    raise self.error(
                        f"returned {got}, but it declares special outputs {', '.join(names)}: "
                        f"return ({', '.join(('stack', *names))}), {1 + len(names)} values",
                        call,
                        group,
                    )
                data = result[0]
                produced.update(zip(names, result[1:]))
            else:
                if isinstance(result, tuple):
                    raise self.error(
                        f"returned a tuple of {len(result)} values but declares no special outputs; return only the "
                        "image stack, or declare the extra values with @special_outputs",
                        call,
                        group,
                    )
                data = result
            self.check_stack(data, call, group)
        return data, produced

    def check_stack(self, data: Any, call: FunctionCall, group: "PlannedGroup") -> None:
        try:
            detect_memory_type(data)
        except TypeError:
            raise self.error(f"returned {type(data).__name__}, not an image stack; return an (N, Y, X) array", call, group) from None
        shape = tuple(int(s) for s in data.shape)
        if len(shape) != 3:
            raise self.error(
                f"returned an array of shape {shape}; a step function returns an (N, Y, X) stack "
                "(use image[None] for a single image)",
                call,
                group,
            )

    def output_paths(self, data: Any, group: "PlannedGroup", call: FunctionCall) -> list[tuple[str, str]]:
        """(relative path, full path) of each plane the result is saved as, from the plan."""
        n_in, n_out = len(group.files), int(data.shape[0])
        paths = self.plan.output_paths(group)
        named = [(image.path, path) for image, path in zip(group.files, paths)]
        if n_out == n_in:
            return named
        if n_out == 1:
            return named[:1]  # a projection: the first image's name stands for the stack
        raise self.error(
            f"returned {n_out} images for a stack of {n_in}; return {n_in} (one per input image) or 1 (a projection)",
            call,
            group,
        )

    # -- outputs -----------------------------------------------------------
    def save_planes(self, data: Any, names: list[tuple[str, str]], group: "PlannedGroup", call: FunctionCall) -> list[tuple[str, str]]:
        plan = self.plan
        # zarr planes wait in memory: a well's arrays are shaped once its last step has made every plane.
        backend = "memory" if plan.write_backend == "zarr" else plan.write_backend
        if plan.output_conversion is not None:
            target = plan.output_conversion[1]
        elif plan.write_backend in ("disk", "zarr"):
            target = "numpy"
        else:
            target = plan.output_memory_type or detect_memory_type(data)
        try:
            planes = unstack_slices(data, target, None if target == "numpy" else plan.gpu_id)
        except (TypeError, ValueError) as error:
            raise self.error(f"cannot split the result into planes: {error}", call, group) from error
        float_dtype = plan.config.float_output_dtype
        written = []
        for (relpath, path), plane in zip(names, planes):
            if isinstance(plane, np.ndarray):
                wanted = storable_dtype(plane.dtype, float_dtype)
                if wanted != plane.dtype:
                    plane = plane.astype(wanted)
            try:
                self.fm.save(plane, path, backend)
            except Exception as error:  # a write failure is this step's error, naming the file
                raise self.error(f"cannot save the output: {type(error).__name__}: {error}", call, group, relpath) from error
            written.append((backend, path))
        return written

    def save_specials(self, produced: dict[str, Any], group: "PlannedGroup") -> None:
        for name, spec in self.plan.special_outputs.items():
            if name in produced:
                self.fm.save(produced[name], special_value_path(spec, group.fixed), spec["backend"])

    def materialize(self, name: str, values: list[tuple["PlannedGroup", Any]]) -> tuple[list[str], str | None]:
        """Save a materialized output: the well's partial table, or one file per group."""
        root = self.context.output_root.rstrip("/") or "."
        files: list[str] = []
        tables = [table_rows(value, group, self.well) for group, value in values]
        if all(table is not None for table in tables):
            rows = [row for table in tables for row in table or ()]
            path = partial_table_path(root, name, str(self.well))
            self.fm.save(rows, path, "disk")
            return [], path
        for group, value in values:
            key = special_key(group.fixed).replace("&", "_").replace("=", "")
            stem = f"{root}/{name}/{self.well}_{key}"
            if hasattr(value, "shape") and hasattr(value, "dtype"):
                self.fm.save(value, f"{stem}.npy", "disk")
                files.append(f"{stem}.npy")
            else:
                self.fm.save(value, f"{stem}.json", "disk")
                files.append(f"{stem}.json")
        return files, None


def _usual(values: list[Any], preferred: Any) -> Any:
    """The value most images of a stack have: ``preferred`` when some have it, else the majority (first on a tie)."""
    if preferred is not None and preferred in values:
        return preferred
    return max(values, key=lambda v: (values.count(v), -values.index(v)))


def table_rows(value: Any, group: "PlannedGroup", well: str | None) -> list[dict[str, Any]] | None:
    """Rows of a table-like value with ``well`` and component columns first; ``None`` if not a table.

    Tables are lists of dict rows, a dict of equal-length columns, or one dict (one row).
    """
    if isinstance(value, Mapping):
        table = {str(k): v for k, v in value.items()}
        if table and all(isinstance(v, (list, tuple, np.ndarray)) for v in table.values()):
            lengths = {len(v) for v in table.values()}
            if len(lengths) != 1:
                return None
            n = lengths.pop()
            rows = [{k: v[i] for k, v in table.items()} for i in range(n)]
        else:
            rows = [table]
    elif isinstance(value, (list, tuple)) and all(isinstance(r, Mapping) for r in value):
        rows = [{str(k): v for k, v in r.items()} for r in value]
    else:
        return None
    fixed = group.fixed
    out = []
    for row in rows:
        columns: dict[str, Any] = {"well": well}
        image = None
        index = row.get("slice")
        if isinstance(index, (int, np.integer)) and 0 <= int(index) < len(group.files):
            image = group.files[int(index)]
        for component in COMPONENTS[1:]:
            if component in fixed:
                columns[component] = fixed[component]
            elif image is not None:
                columns[component] = image.component(component)
        columns.update(row)
        out.append(columns)
    return out


def run_plan(plan: "StepPlan", context: "ProcessingContext", *, release_inputs: bool = False) -> StepResult:
    """Run one compiled plan for its well (``process_step`` without the step object).

    ``release_inputs``: this plan is the only reader of the images it reads from the memory
    backend, so each group's images are deleted there once they are stacked (a well's peak
    memory then holds one step's images, not two).
    """
    runner = _Step(plan, context)
    if plan.func is None:
        raise runner.error("the plan has no function; compile the pipeline before running it")
    groups = runner.input_groups()
    if not groups:
        raise runner.error(f"no input images for this well in {plan.input_dir} ({plan.read_backend})")
    specials = runner.load_specials()
    # Results are written only by runs that write outputs (not by napari's in-memory tuning runs).
    materialized: dict[str, list[tuple["PlannedGroup", Any]]] = {
        name: [] for name, spec in plan.special_outputs.items() if spec.get("materialize") and plan.config.write_outputs
    }
    outputs: list[tuple[str, str]] = []
    ran = skipped = 0
    for group, paths in groups:
        if plan.func.is_dict and group.group_key not in plan.func.chains:
            skipped += 1  # a dict pattern runs only the component values it names
            continue
        chain = plan.func.chain_for(group.group_key)
        stack = runner.load_stack(group, paths)
        if release_inputs and plan.read_backend == "memory":
            for path in paths:
                runner.fm.delete(path, "memory")
        data, produced = runner.run_chain(chain, stack, group, specials)
        del stack
        names = runner.output_paths(data, group, chain[-1])
        outputs.extend(runner.save_planes(data, names, group, chain[-1]))
        runner.save_specials(produced, group)
        for name, values in materialized.items():
            if name in produced:
                values.append((group, produced[name]))
        ran += 1
    results: list[str] = []
    tables: dict[str, str] = {}
    for name, values in materialized.items():
        if values:
            files, table = runner.materialize(name, values)
            results.extend(files)
            if table is not None:
                tables[name] = table
    return StepResult(plan.step_index, plan.step_name, tuple(outputs), tuple(results), tables, ran, skipped)
