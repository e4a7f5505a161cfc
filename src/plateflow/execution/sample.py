"""Run a pipeline on one sample site, step by step, for tuning: ``SampleRunner``.

A GUI that shows each step's output while parameters are edited needs three
things the plate runner does not give: the outputs of every step (not only
the last one's files), in memory; a cache, so that an edit recomputes only the
edited step and those after it; and a way to stop a stale run between steps.
No Qt here: the napari plugin runs :meth:`SampleRunner.execute` in a worker
thread and shows what it yields.

How a run works
---------------

1. :meth:`SampleRunner.prepare` compiles the pipeline with the core compiler,
   against ``plate.subset(well=..., site=...)`` (a view of one site that shares
   the plate index) and ``GlobalConfig(write_outputs=False)``, so every step,
   the last one included, writes its planes and special outputs to the memory
   backend of a :class:`~plateflow.vfs.FileManager` made for this run. A
   ``CompileError`` is raised here, before anything runs.
2. It fingerprints every step: a hash of the step's compiled plan as far as
   it decides the output (each function's registry name and identity, its
   keyword arguments, the pattern's shape and keys, the variable components,
   ``group_by``, chain breaking, memory types and the resolved config) chained
   with the fingerprint of the step before it, on top of the plate, well and
   site. Disabled steps are not in the compiled pipeline, so enabling or
   disabling a step changes the fingerprints of the steps after it. Step
   names, numbers and ``visualize`` are not in it: renaming a step or asking
   to see it recomputes nothing.
3. :meth:`SampleRunner.execute` walks the steps in order. A step whose
   fingerprint is in the :class:`SampleCache` is not run: its cached planes and
   special outputs are saved into this run's memory backend, under the paths
   its plan names, exactly where running it would have put them, so the steps
   after it read them as usual. Any other step runs through the core's
   :func:`~plateflow.execution.process_step`, and its planes and special
   outputs are read back from the memory backend, yielded, and cached. The
   cancel callback is checked before every step; when it says stop, the run
   ends quietly.
4. A step that raises ends the run: a :class:`SampleStepFailure` (step,
   function, message and the traceback text) is yielded instead of an output.

Outputs are what ``run`` would write for that site: each plane converted to
numpy with the dtype the plate runner stores (float64 as the configured float
dtype, bool as uint8), and each table-like special output as the rows
(``well`` and component columns first) that go into the plate's CSV. One
difference is inherent to tuning on one site: a step whose variable
components include ``site`` gets a stack of that site only, so a function
that looks across sites sees less, and a table's ``slice`` column counts
images in that smaller stack.

The cache is bounded by bytes (least recently used entries go first) and
shared by every run of one runner; it holds host (numpy) copies, so GPU memory
is freed when a run ends. Cached arrays are made read-only, since later runs
reuse them.

Runs compile with ``write_outputs=False``: every step, the last included,
writes to the memory backend under a virtual output root, and materialized
tables stay in memory too, so a sample run never touches the disk.
"""

from __future__ import annotations

import hashlib
import posixpath
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compiler.plan import parse_special_key, special_key
from ..config import GlobalConfig
from .._frozen import FrozenDict
from ..steps import as_step_list, enabled_steps
from .step_runner import StepError, _join, input_groups, process_step, special_entries, storable_dtype, table_rows

if TYPE_CHECKING:
    from ..compiler.context import ProcessingContext
    from ..compiler.plan import StepPlan
    from ..compiler.plate_steps import PlateStepPlan
    from ..plate import ImageFile, Plate
    from ..vfs import FileManager

__all__ = [
    "SampleRunner",
    "SamplePlan",
    "SampleStepOutput",
    "SampleStepFailure",
    "SpecialOutput",
    "SampleCache",
    "CancelToken",
    "run_sample",
    "DEFAULT_CACHE_BYTES",
]

#: Default bound of a runner's cache of step outputs.
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024

_FINGERPRINT_VERSION = "plateflow-sample-1"

CancelCheck = Callable[[], bool]


class CancelToken:
    """A thread-safe stop flag; call it (or read ``cancelled``) to know whether to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


# -- what a run yields ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialOutput:
    """One special output of one pattern group of a step.

    Attributes:
        name: the output's name (``"positions"``, ``"object_counts"``).
        fixed: the producing group's fixed components (``well`` included).
        value: the value the function returned.
        rows: for a table-like value, its rows as the plate's CSV holds them
            (``well`` and component columns first); ``None`` otherwise.
        materialized: whether a plate run writes it as a result (a CSV, ``.npy`` or ``.json``).
    """

    name: str
    fixed: Mapping[str, str]
    value: Any
    rows: tuple[dict[str, Any], ...] | None
    materialized: bool


@dataclass(frozen=True)
class SampleStepOutput:
    """What one step made for the sample site.

    Attributes:
        step_index: 0-based position in the compiled pipeline (enabled steps only).
        step_id, step_name: the compiled step's id and name.
        step_count: steps in the compiled pipeline.
        functions: the names of the step's functions (registry names where registered).
        images: the components of each output plane, in plate order.
        planes: the planes (numpy, the dtype a plate run stores), in ``images`` order.
        specials: the step's special outputs, one entry per producing group.
        visualize: the step is in the compiled context's ``required_visualizers``.
        reused: the outputs came from the cache; nothing ran.
        seconds: how long the step took to compute (when it was first computed, if reused).
        fingerprint: the cache key of the step.
    """

    step_index: int
    step_id: str
    step_name: str
    step_count: int
    well: str
    site: str
    functions: tuple[str, ...]
    images: tuple["ImageFile", ...]
    planes: tuple[np.ndarray, ...]
    specials: tuple[SpecialOutput, ...]
    visualize: bool
    reused: bool
    seconds: float
    fingerprint: str

    @property
    def is_last(self) -> bool:
        return self.step_index == self.step_count - 1

    @cached_property
    def stack(self) -> np.ndarray:
        """The planes as one ``(N, Y, X)`` array (``ValueError`` when their shapes differ)."""
        if not self.planes:
            return np.zeros((0, 0, 0), dtype=np.float32)
        return np.stack(self.planes)

    @property
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Each table-like special output's rows, all its groups together."""
        found: dict[str, list[dict[str, Any]]] = {}
        for special in self.specials:
            if special.rows is not None:
                found.setdefault(special.name, []).extend(special.rows)
        return found


@dataclass(frozen=True)
class SampleStepFailure:
    """A step raised: where (step and function), the message and the traceback text."""

    step_index: int
    step_id: str
    step_name: str
    step_count: int
    well: str
    site: str
    function: str
    message: str
    traceback: str

    def format(self) -> str:
        where = f"step {self.step_index + 1} {self.step_name!r}"
        if self.function:
            where += f", function {self.function}"
        return f"{where}: {self.message}"


# -- the cache --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedStep:
    images: tuple["ImageFile", ...]
    planes: tuple[np.ndarray, ...]  # numpy copies of the planes as the step left them in memory
    specials: tuple[tuple[str, str, Any], ...]  # (output name, key under its path, value)
    seconds: float
    nbytes: int


def _size_of(value: Any, depth: int = 0) -> int:
    """Bytes a value holds, roughly: exact for arrays, an estimate for containers of plain values."""
    if hasattr(value, "nbytes") and hasattr(value, "shape"):
        return int(value.nbytes)
    if depth > 4:
        return sys.getsizeof(value)
    if isinstance(value, Mapping):
        return sys.getsizeof(value) + sum(_size_of(k, depth + 1) + _size_of(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(_size_of(v, depth + 1) for v in value)
    return sys.getsizeof(value)


class SampleCache:
    """Step outputs by fingerprint, least recently used first out, bounded by ``max_bytes``.

    An entry larger than the bound is not kept. Safe to use from several threads.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes!r} is not valid; use 0 or more")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, _CachedStep] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, fingerprint: str) -> _CachedStep | None:
        with self._lock:
            entry = self._entries.get(fingerprint)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(fingerprint)
            self.hits += 1
            return entry

    def put(self, fingerprint: str, entry: _CachedStep) -> bool:
        """Keep ``entry``; returns ``False`` when it is larger than the whole cache."""
        with self._lock:
            old = self._entries.pop(fingerprint, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.max_bytes:
                return False
            self._entries[fingerprint] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# -- fingerprints -----------------------------------------------------------------------------


def _value_token(value: Any) -> Any:
    """A hashable, deterministic stand-in for a keyword value."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return (type(value).__name__, repr(value))
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.shape, hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())
    if isinstance(value, np.generic):
        return (type(value).__name__, repr(value.item()))
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted(((repr(k), _value_token(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_value_token(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(_value_token(v)) for v in value)))
    if callable(value):
        return ("callable", _function_token(value))
    # Anything else: its type and repr, and its identity, so two different objects never share outputs.
    return (type(value).__module__, type(value).__qualname__, repr(value), id(value))


def _function_token(func: Any) -> tuple[str, str, str, int]:
    from ..library import registry

    name = registry.name_of(func) or ""
    return (name, getattr(func, "__module__", "") or "", getattr(func, "__qualname__", "") or repr(func), id(func))


def _pattern_token(plan: "StepPlan") -> Any:
    pattern = plan.func
    if pattern is None:
        return None
    chains = []
    for key, chain in pattern.chains.items():
        calls = tuple((_function_token(call.func), _value_token(dict(call.kwargs))) for call in chain)
        chains.append((key, calls))
    return (str(pattern.kind), tuple(chains))


def _config_token(plan: "StepPlan") -> Any:
    settings = asdict(plan.config)
    settings.pop("num_workers", None)
    return tuple(sorted((k, repr(v)) for k, v in settings.items()))


def _plan_token(plan: "StepPlan") -> Any:
    return (
        plan.step_type,
        _pattern_token(plan),
        tuple(plan.variable_components),
        plan.group_by,
        plan.chain_breaker,
        plan.reads_plate,
        plan.input_memory_type,
        plan.output_memory_type,
        tuple(sorted(plan.special_inputs)),
        tuple(sorted((name, bool(spec.get("materialize"))) for name, spec in plan.special_outputs.items())),
        _config_token(plan),
    )


def step_fingerprints(plans: Sequence["StepPlan"], plate_root: str, well: str, site: str, *, upstream: Sequence[str] = ()) -> list[str]:
    """One fingerprint per plan, each covering the plan and everything upstream of it.

    ``upstream``: the digests of the plate steps the per-well steps run after
    (a new plate estimate changes every step after it).
    """
    seed: tuple[Any, ...] = (_FINGERPRINT_VERSION, plate_root, well, site, *((tuple(upstream),) if upstream else ()))
    previous = hashlib.sha1(repr(seed).encode()).hexdigest()
    found = []
    for plan in plans:
        previous = hashlib.sha1(repr((previous, _plan_token(plan))).encode()).hexdigest()
        found.append(previous)
    return found


# -- the runner -------------------------------------------------------------------------------


@dataclass
class SamplePlan:
    """A compiled sample run, ready for :meth:`SampleRunner.execute` (made by :meth:`SampleRunner.prepare`)."""

    well: str
    site: str
    steps: list[Any]
    context: "ProcessingContext"
    fingerprints: list[str]
    visualized: frozenset[str] = field(default_factory=frozenset)
    #: the pipeline's plate steps, planned against the whole plate (not the one-site view);
    #: they run (or come from the cache, by their digest) before the per-well steps
    plate_plans: tuple["PlateStepPlan", ...] = ()

    @property
    def key(self) -> tuple[str, ...]:
        """The fingerprints: two plans with equal keys give equal outputs."""
        return tuple(self.fingerprints)


def _filemanager(context: "ProcessingContext") -> "FileManager":
    """The file manager ``prepare`` gave the context (every sample context has one)."""
    if context.filemanager is None:
        raise ValueError(f"the sample context of well {context.well_id!r} has no file manager; make it with SampleRunner.prepare")
    return context.filemanager


def _special_fixed(key: str, well: str) -> dict[str, str]:
    """The fixed components (``well`` first) of the group that saved a special output under ``key``."""
    return {"well": well, **parse_special_key(key)}


def _function_names(plan: "StepPlan") -> tuple[str, ...]:
    from ..library import registry
    from ..patterns import function_name

    names: list[str] = []
    if plan.func is not None:
        for call in plan.func.calls():
            name = registry.name_of(call.func) or function_name(call.func)
            if name not in names:
                names.append(name)
    return tuple(names)


def _step_fields(prepared: SamplePlan, plan: "StepPlan") -> dict[str, Any]:
    """Where a step's output or failure belongs: the fields ``SampleStepOutput`` and ``SampleStepFailure`` share."""
    return {
        "step_index": plan.step_index,
        "step_id": plan.step_id,
        "step_name": plan.step_name,
        "step_count": len(prepared.plate_plans) + len(prepared.fingerprints),
        "well": prepared.well,
        "site": prepared.site,
    }


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class SampleRunner:
    """Runs pipelines on sample sites of one plate, with a cache of step outputs shared by its runs.

    Args:
        plate: a ``Plate`` or a plate folder.
        cache_bytes: the bound of the cache (:data:`DEFAULT_CACHE_BYTES` by default).
        config: the ``GlobalConfig`` to compile with (``write_outputs`` is always set to False).

    ``computed`` counts the steps that really ran (not reused), for tests and benchmarks.
    """

    def __init__(self, plate: "Plate | str | Path", *, cache_bytes: int = DEFAULT_CACHE_BYTES, config: GlobalConfig | None = None) -> None:
        from ..plate import as_plate

        self.plate = as_plate(plate)
        self.cache = SampleCache(cache_bytes)
        base = config if config is not None else GlobalConfig()
        self.config = replace(base, write_outputs=False, num_workers=1, output_format="tiff")
        self._views: dict[tuple[str, str], "Plate"] = {}
        self._lock = threading.Lock()
        self._runs = 0
        self.computed = 0

    def close(self) -> None:
        """Forget the cache."""
        self.cache.clear()

    def view(self, well: str, site: str) -> "Plate":
        """The plate restricted to one well and site (made once, then reused)."""
        key = (str(well), str(site))
        with self._lock:
            found = self._views.get(key)
            if found is None:
                found = self._views[key] = self.plate.subset(well=key[0], site=key[1])
            return found

    def prepare(self, pipeline: Any, well: str, site: str) -> SamplePlan:
        """Compile ``pipeline`` for one site and fingerprint its steps; raises ``CompileError``."""
        from ..compiler import compile_pipeline
        from ..vfs import FileManager

        well, site = str(well), str(site)
        view = self.view(well, site)
        steps = as_step_list(pipeline)
        with self._lock:
            self._runs += 1
            # Only memory-backend paths live under it: nothing is written to disk.
            virtual_root = f"/plateflow-sample/run-{self._runs}"
        filemanager = FileManager(read_only_roots=[self.plate.root])
        plate_plans: tuple["PlateStepPlan", ...] = ()
        if any(getattr(step, "scope", "well") == "plate" for step in enabled_steps(steps)):
            from ..compiler import compile_with_plate_steps

            # Plate steps read their sample of the whole plate, whichever site is tuned.
            _, planning = compile_with_plate_steps(steps, self.plate, [well], self.config, output_root=virtual_root, filemanager=filemanager)
            plate_plans = planning.plans
            # The one-site view has none of the other sampled wells: plan the view's wells without the sample
            # (the plate plans above are the ones run; the view's own are left unused).
            steps = [step.copy(sample_wells=None, sample_sites=None) if getattr(step, "scope", "well") == "plate" else step for step in steps]
        contexts = compile_pipeline(steps, view, [well], self.config, output_root=virtual_root, filemanager=filemanager)
        context = contexts[well]
        fingerprints = step_fingerprints(context.plans(), str(self.plate.root), well, site, upstream=[p.digest for p in plate_plans])
        visualized = frozenset(request.step_id for request in context.required_visualizers)
        visualized |= {p.step_id for p in plate_plans if p.plan.visualize}
        return SamplePlan(well, site, steps, context, fingerprints, visualized, plate_plans)

    def run(self, pipeline: Any, well: str, site: str, cancel: CancelCheck | None = None) -> Iterator[SampleStepOutput | SampleStepFailure]:
        """``prepare`` then ``execute``: yields each step's output (or one failure, then stops)."""
        return self.execute(self.prepare(pipeline, well, site), cancel)

    def execute(self, prepared: SamplePlan, cancel: CancelCheck | None = None) -> Iterator[SampleStepOutput | SampleStepFailure]:
        """Run a prepared plan: reuse cached steps, run the others, yield every step's output in order.

        Stops quietly before the next step once ``cancel()`` returns true, and
        after yielding a :class:`SampleStepFailure` when a step raises.
        """
        context = prepared.context
        steps = {step.step_id: step for step in prepared.steps}
        try:
            for plate_plan in prepared.plate_plans:
                if cancel is not None and cancel():
                    return
                try:
                    output = self._run_plate_step(prepared, plate_plan)
                except Exception as error:  # the plate step failed: report it on that step, run nothing after it
                    yield self._failure(prepared, plate_plan.plan, error, traceback.format_exc())
                    return
                yield output
            for plan, fingerprint in zip(context.plans(), prepared.fingerprints):
                if cancel is not None and cancel():
                    return
                try:
                    output = self._run_step(prepared, steps[plan.step_id], plan, fingerprint)
                except Exception as error:  # the step failed, or its outputs could not be read back: report it on the step
                    yield self._failure(prepared, plan, error, traceback.format_exc())
                    return
                yield output
        finally:
            self._forget(context)

    # -- helpers ----------------------------------------------------------------------------
    def _run_step(self, prepared: SamplePlan, step: Any, plan: "StepPlan", fingerprint: str) -> SampleStepOutput:
        """One step's output: from the cache (put back where the step would have saved it), or computed and cached."""
        context = prepared.context
        cached = self.cache.get(fingerprint)
        if cached is not None:
            self._seed(plan, context, cached)
            return self._output(prepared, plan, fingerprint, cached, reused=True)
        started = time.perf_counter()
        result = process_step(step, context)
        seconds = time.perf_counter() - started
        with self._lock:
            self.computed += 1
        entry = self._collect(plan, context, [path for backend, path in result.outputs if backend == "memory"], seconds)
        self.cache.put(fingerprint, entry)
        return self._output(prepared, plan, fingerprint, entry, reused=False)

    def _run_plate_step(self, prepared: SamplePlan, plate_plan: "PlateStepPlan") -> SampleStepOutput:
        """A plate step's values: from the cache by its digest (put back under this run's paths), or computed once."""
        from .plate_steps import run_plate_step

        plan = plate_plan.plan
        fm = _filemanager(prepared.context)
        fingerprint = f"plate:{plate_plan.digest}"
        cached = self.cache.get(fingerprint)
        reused = cached is not None
        if cached is not None:
            self._seed(plan, prepared.context, cached)
        else:
            result = run_plate_step(plate_plan, fm, output_root=prepared.context.output_root, write_files=False)
            with self._lock:
                self.computed += 1
            specials = []
            for name, path, fixed in plate_plan.value_paths():
                if path in result.values:
                    specials.append((name, special_key(fixed), result.values[path]))
            nbytes = sum(_size_of(value) for _, _, value in specials)
            cached = _CachedStep((), (), tuple(specials), result.seconds, nbytes)
            self.cache.put(fingerprint, cached)
        found = tuple(
            SpecialOutput(name, FrozenDict(parse_special_key(key)), value, None, False) for name, key, value in cached.specials
        )
        return SampleStepOutput(
            **_step_fields(prepared, plan),
            functions=_function_names(plan),
            images=(),
            planes=(),
            specials=found,
            visualize=plan.step_id in prepared.visualized,
            reused=reused,
            seconds=cached.seconds,
            fingerprint=fingerprint,
        )

    def _collect(self, plan: "StepPlan", context: "ProcessingContext", paths: list[str], seconds: float) -> _CachedStep:
        fm = _filemanager(context)
        found: list[tuple["ImageFile", np.ndarray]] = []
        for path in paths:
            image = plan.output_image(path)  # the plan names the image of each plane it saves
            if image is None:
                continue
            plane = fm.load(path, "memory", memory_type="numpy")
            found.append((image, _read_only(np.array(plane, copy=True) if plane.flags.writeable else plane)))
        found.sort(key=lambda item: item[0].sort_key())
        specials: list[tuple[str, str, Any]] = []
        own_groups = [tuple((k, v) for k, v in group.fixed.items() if k != "well") for group in plan.groups]
        for name, spec in plan.special_outputs.items():
            for path, fixed in special_entries(spec, own_groups, fm):
                specials.append((name, special_key(fixed), fm.load(path, spec["backend"], memory_type=None)))
        nbytes = sum(int(plane.nbytes) for _, plane in found) + sum(_size_of(value) for _, _, value in specials)
        return _CachedStep(tuple(i for i, _ in found), tuple(p for _, p in found), tuple(specials), seconds, nbytes)

    def _seed(self, plan: "StepPlan", context: "ProcessingContext", cached: _CachedStep) -> None:
        """Put a cached step's outputs where running the step would have saved them."""
        fm = _filemanager(context)
        for image, plane in zip(cached.images, cached.planes):
            fm.save(plane, _join(plan.output_dir, image.path), "memory")
        for name, key, value in cached.specials:
            spec = plan.special_outputs.get(name)
            if spec is not None:
                fm.save(value, _join(spec["path"], key), spec["backend"])

    def _output(self, prepared: SamplePlan, plan: "StepPlan", fingerprint: str, entry: _CachedStep, *, reused: bool) -> SampleStepOutput:
        float_dtype = plan.config.float_output_dtype
        planes = []
        for plane in entry.planes:
            wanted = storable_dtype(plane.dtype, float_dtype)
            planes.append(_read_only(plane.astype(wanted)) if wanted != plane.dtype else plane)
        return SampleStepOutput(
            **_step_fields(prepared, plan),
            functions=_function_names(plan),
            images=entry.images,
            planes=tuple(planes),
            specials=self._specials(prepared, plan, entry),
            visualize=plan.step_id in prepared.visualized,
            reused=reused,
            seconds=entry.seconds,
            fingerprint=fingerprint,
        )

    def _specials(self, prepared: SamplePlan, plan: "StepPlan", entry: _CachedStep) -> tuple[SpecialOutput, ...]:
        if not entry.specials:
            return ()
        from ..compiler.plan import PlannedGroup

        groups = self._input_groups(prepared, plan)
        found = []
        for name, key, value in entry.specials:
            fixed = _special_fixed(key, prepared.well)
            group = groups.get(tuple(sorted(fixed.items())))
            if group is None:
                group = PlannedGroup(well=prepared.well, fixed=fixed, group_key=None, files=())
            rows = table_rows(value, group, prepared.well)
            materialized = bool(plan.special_outputs.get(name, {}).get("materialize"))
            found.append(SpecialOutput(name, fixed, value, tuple(rows) if rows is not None else None, materialized))
        return tuple(found)

    def _input_groups(self, prepared: SamplePlan, plan: "StepPlan") -> dict[tuple[tuple[str, str], ...], Any]:
        """The step's pattern groups as it received them (the plan's, less the planes not written), by their fixed components."""
        return {tuple(sorted(group.fixed.items())): group for group, _ in input_groups(plan, _filemanager(prepared.context))}

    def _failure(self, prepared: SamplePlan, plan: "StepPlan", error: Exception, trace: str) -> SampleStepFailure:
        from .plate_steps import PlateStepError

        if isinstance(error, (StepError, PlateStepError)):
            message = error.reason
            function = error.function or ", ".join(_function_names(plan))
        else:
            message = f"{type(error).__name__}: {error}"
            function = ", ".join(_function_names(plan))
        return SampleStepFailure(
            **_step_fields(prepared, plan),
            function=function,
            message=message,
            traceback=trace,
        )

    def _forget(self, context: "ProcessingContext") -> None:
        """Drop the run's memory backend contents."""
        memory = _filemanager(context).backend("memory")
        clear = getattr(memory, "clear", None)
        if callable(clear):
            clear()


def run_sample(
    pipeline: Any,
    plate: "Plate | str | Path",
    well: str,
    site: str,
    *,
    cancel: CancelCheck | None = None,
    runner: SampleRunner | None = None,
) -> Iterator[SampleStepOutput | SampleStepFailure]:
    """Run ``pipeline`` on one site of ``plate`` and yield each step's output (see :class:`SampleRunner`).

    Pass a ``runner`` to share its cache between calls; without one, nothing is cached across calls.
    """
    own = runner is None
    active = SampleRunner(plate) if runner is None else runner
    try:
        yield from active.execute(active.prepare(pipeline, well, site), cancel)
    finally:
        if own:
            active.close()
