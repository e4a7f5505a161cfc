"""Diagnostics: every problem the compiler finds, located on its step and field, with a hint.

Phases never raise on a user mistake; they add a :class:`Diagnostic` and go on,
so one compile reports everything. ``CompileError`` carries the whole list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

from .._text import did_you_mean

__all__ = [
    "Diagnostic",
    "CompileError",
    "DiagnosticSink",
    "CODES",
    "CodeInfo",
    "did_you_mean",
    "format_diagnostics",
    "format_field",
    "place_path",
    "FieldPath",
]

Severity = Literal["error", "warning"]

#: A place in a step, as a tuple: ``("func", 1, "kwargs", "sigma")``.
FieldPath = tuple[Union[str, int], ...]


def format_field(path: Sequence[str | int]) -> str:
    """The field string of a place: ``("func", 1, "kwargs", "sigma")`` -> ``"func[1].kwargs.sigma"``.

    Right after a leading ``"func"`` come the function's place in the pattern:
    a dict key renders ``['k']``, a chain index ``[i]``; every other element is
    ``.name``, the leading dot dropped.
    """
    parts = list(path)
    if not parts or parts[0] != "func":
        return ".".join(str(part) for part in parts)
    text, rest = "func", parts[1:]
    if rest and isinstance(rest[0], str):  # a dict entry, maybe followed by its chain index
        text += f"[{rest.pop(0)!r}]"
    if rest and _is_index(rest[0]):
        text += f"[{rest.pop(0)}]"
    return ".".join([text, *(str(part) for part in rest)])


def _is_index(part: object) -> bool:
    return isinstance(part, int) and not isinstance(part, bool)


def place_path(key: str | None, index: int | None) -> FieldPath:
    """The pattern place of one function: ``()`` for a single function, ``("func", i)`` for
    chain item i, ``("func", k)`` for dict entry k, ``("func", k, i)`` for item i of entry k."""
    if key is None:
        return () if index is None else ("func", index)
    return ("func", key) if index is None else ("func", key, index)


@dataclass(frozen=True)
class CodeInfo:
    """Catalogue entry for one diagnostic code (rendered into docs/diagnostics.md)."""

    code: str
    severity: Severity
    title: str
    example: str
    fix: str


CODES: dict[str, CodeInfo] = {
    info.code: info
    for info in [
        CodeInfo("empty-pipeline", "error", "The pipeline has no steps", "Pipeline([])", "Add at least one FunctionStep."),
        CodeInfo("not-a-step", "error", "A pipeline item is not a FunctionStep", "Pipeline([gaussian_filter])", "Wrap the function: FunctionStep(func=gaussian_filter)."),
        CodeInfo("duplicate-step", "error", "The same step object appears twice", "Pipeline([step, step])", "Use step.copy() for the second occurrence."),
        CodeInfo("empty-step", "error", "A step has no function", "FunctionStep(func=[])", "Give the step a function, a (function, kwargs) pair, a list or a dict of them."),
        CodeInfo("malformed-pattern", "error", "A function pattern has the wrong shape", "FunctionStep(func=(blur, 2.0))", "Use (function, {\"sigma\": 2.0}); dicts cannot nest; lists hold functions or (function, kwargs) pairs."),
        CodeInfo("missing-memory-type", "error", "A function has no memory-type decorator", "def blur(stack): ... (no @numpy)", "Add @numpy (or @torch, @cupy, ... for the array library it uses) above the function."),
        CodeInfo("unknown-memory-type", "error", "A function declares a memory type that does not exist", "blur.input_memory_type = 'numpyy'", "Use one of numpy, cupy, torch, tensorflow, jax, pyclesperanto."),
        CodeInfo("chain-memory-mismatch", "error", "Functions in a chain hand each other different array types", "[torch_blur, numpy_threshold] where torch_blur returns torch", "Use functions of one memory type in a chain, or declare output_type on the earlier one."),
        CodeInfo("dict-memory-mismatch", "error", "Entries of a dict pattern take or return different array types", "{'1': numpy_blur, '2': torch_blur}", "Use the same memory type for every entry (e.g. numpy.gaussian_filter for both)."),
        CodeInfo("library-not-installed", "error", "A function's array library is not installed", "@torch function without torch installed", "Install the extra named in the hint, e.g. pip install 'plateflow[torch]'."),
        CodeInfo("no-gpu-device", "error", "A function needs a GPU that does not exist here", "@cupy function on a machine without a CUDA GPU", "Use the numpy or torch version of the function (torch runs on CPU), or run on a GPU machine."),
        CodeInfo("special-input-missing", "error", "A special input is produced by no step", "@special_inputs('positions') with no @special_outputs('positions') step", "Add a step that produces it before this one, or fix the name."),
        CodeInfo("special-input-later", "error", "A special input is produced only by a later step", "assemble (step 1) needs positions from find_positions (step 2)", "Move the producing step before the consuming one; inside one chain, put the producing function first."),
        CodeInfo("special-output-duplicate", "error", "Two steps produce the same special output", "two steps with @special_outputs('positions')", "Rename one of the outputs or remove one producer."),
        CodeInfo("special-output-unused", "warning", "A special output is consumed by no step", "@special_outputs('positions') with no consumer", "Add a consumer with @special_inputs, or ignore if intended."),
        CodeInfo("special-input-set-by-user", "error", "A keyword also arrives as a special input", "(assemble, {'positions': ...}) while positions is a special input", "Remove the keyword: its value comes from the producing step."),
        CodeInfo("unknown-kwarg", "error", "A keyword argument the function does not take", "(gaussian_filter, {'sigmaa': 2})", "Fix the name; the hint suggests the closest parameter."),
        CodeInfo("missing-argument", "error", "A required argument is left unset", "(rescale, {}) where rescale(stack, factor) has no default", "Give the argument in the step's kwargs."),
        CodeInfo("invalid-kwarg-value", "error", "A keyword value of the wrong type, outside its choices or bounds", "(threshold, {'method': 'otsuu'})", "Use a value of the annotated type, one of the choices, or inside the bounds."),
        CodeInfo("bad-signature", "error", "A function cannot take an image stack", "def f(): ...", "The first parameter must take the (N, Y, X) stack."),
        CodeInfo("unknown-component", "error", "A component name that does not exist", "variable_components=('zindex',)", "Use well, site, channel, z_index or timepoint."),
        CodeInfo("group-by-is-variable", "error", "group_by is also a variable component", "variable_components=('channel',), group_by='channel'", "A component either varies inside a stack or groups calls, not both."),
        CodeInfo("dict-without-group-by", "error", "A dict pattern without group_by", "FunctionStep(func={'1': f, '2': g})", "Set group_by to the component the keys are values of, e.g. group_by='channel'."),
        CodeInfo("unknown-group-key", "error", "A dict pattern key is not a value of the group_by component on this plate", "{'3': f} on a plate with channels 1 and 2", "Use the values the hint lists."),
        CodeInfo("uncovered-group-value", "warning", "A value of the group_by component has no dict entry", "{'1': f} on a plate with channels 1 and 2", "Add an entry for it; images of that value are not processed by this step."),
        CodeInfo("unknown-well", "error", "A requested well is not on the plate", "compile_pipeline(..., wells=['Z99'])", "Use a well the plate has."),
        CodeInfo("no-images", "error", "The plate has no images for a well", "a well folder with no images", "Check the plate folder."),
        CodeInfo("plate-error", "error", "The plate cannot be opened", "check(pipeline, '/no/such/folder')", "Point at a plate folder plateflow can read; the message says what was looked for."),
        CodeInfo("internal-error", "error", "plateflow itself failed while checking", "(a bug)", "Report it with the pipeline; the message names the exception."),
        CodeInfo("kwargs-conflict", "error", "Keyword values that are fine alone but not together", "(normalize_percentile, {'low_percentile': 99, 'high_percentile': 1})", "Change one of the values the message names so the rule holds (here: low below high)."),
        CodeInfo("stack-size-mismatch", "error", "A keyword value does not fit the number of images in each stack on this plate", "(composite_channels, {'weights': (1, 1, 1)}) on a plate with 2 channels, variable_components=('channel',)", "Give one value per image of the stack (the hint says how many), or None where the function allows it."),
        CodeInfo("duplicate-component", "error", "A component is listed twice in variable_components", "variable_components=('site', 'site')", "List each component once."),
        CodeInfo("well-is-variable", "error", "'well' is among the variable components", "variable_components=('well',)", "Remove it: each well is processed on its own; combine wells in a plate-level step."),
        CodeInfo("group-by-list", "error", "group_by is given as a list", "group_by=['channel']", "Give one component name: group_by='channel'."),
        CodeInfo("special-input-not-a-parameter", "error", "A special input the function has no parameter for", "@special_inputs('positions') on def assemble(stack)", "Add a keyword parameter of that name to the function, or remove the name from @special_inputs."),
        CodeInfo("positional-only-kwarg", "error", "A keyword for a parameter that takes values only by position", "(f, {'sigma': 2}) where def f(stack, sigma=1, /)", "Make it a keyword parameter (move it after the /) or drop the keyword."),
        CodeInfo("stack-as-kwarg", "error", "The image stack given as a keyword argument", "(f, {'stack': image}) where def f(stack, **kwargs)", "Remove it: the step hands the images to the function."),
        CodeInfo("invalid-config", "error", "A configuration value is not valid", "GlobalConfig(output_format='png')", "Use one of the valid values the message lists."),
        CodeInfo("plate-input-from-well-step", "error", "A plate step takes a special input a per-well step produces", "a plate step with @special_inputs('positions') after a per-well find_positions", "Make the producing step a plate step too, or move the consumer into a per-well step."),
        CodeInfo("plate-step-after-well-step", "error", "A plate step comes after a per-well step", "[FunctionStep(blur), FunctionStep(estimate_illumination, scope='plate')]", "Move the plate step before every per-well step; tables are normalised after the run (normalize_to_controls)."),
        CodeInfo("plate-output-unused", "error", "A plate step's special output is consumed by no later step", "scope='plate' estimate_illumination with no correct_illumination after it", "Add a per-well step that takes it (e.g. numpy.correct_illumination), or remove the plate step."),
        CodeInfo("sample-well-not-on-plate", "error", "sample_wells names wells the plate does not have", "sample_wells=('A01', 'H12') on a 6-well plate", "Use wells of the plate; the message lists them."),
        CodeInfo("sample-well-invalid", "error", "sample_wells holds a value that is not a well id", "sample_wells=('A', '12')", "Write well ids as a row letter and a column number, e.g. 'A01'."),
        CodeInfo("sample-site-not-on-plate", "error", "sample_sites names sites the plate does not have", "sample_sites=('9',) on a plate with sites 1-4", "Use sites of the plate; the message lists them."),
        CodeInfo("plate-sample-empty", "error", "A plate step's sample selects no image", "sample_wells of wells that have none of the plate's images", "Choose wells and sites that have images, or set sample_wells=None."),
        CodeInfo("plate-step-group-by-well", "error", "group_by='well' on a plate step", "FunctionStep(..., scope='plate', group_by='well')", "Remove it: the well always varies inside a plate step's stack; use a per-well step for one value per well."),
    ]
}


@dataclass(frozen=True)
class Diagnostic:
    """One problem, where it is, and how to fix it.

    ``step_index`` is 0-based (``None`` for pipeline-wide problems); text shown
    to people counts steps from 1.
    """

    severity: Severity
    code: str
    step_index: int | None
    step_name: str
    field: str
    message: str
    hint: str = ""
    #: the same place as ``field``, as a tuple (``("func", 1, "kwargs", "sigma")``); ``()`` when
    #: the diagnostic is about the whole step or pipeline
    path: FieldPath = ()

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def location(self) -> str:
        """``"step 2 'Blur', kwargs.sigma"`` (steps counted from 1), or ``"pipeline"``."""
        where = f"step {self.step_index + 1} {self.step_name!r}" if self.step_index is not None else "pipeline"
        return f"{where}, {self.field}" if self.field else where

    def format(self) -> str:
        text = f"{self.severity} [{self.code}] {self.location}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.format()


def format_diagnostics(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(d.format() for d in diagnostics)


class CompileError(Exception):
    """Compilation found errors; ``diagnostics`` holds every one of them (and the warnings)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        header = f"pipeline has {len(errors)} error{'s' if len(errors) != 1 else ''}"
        warnings = len(self.diagnostics) - len(errors)
        if warnings:
            header += f" and {warnings} warning{'s' if warnings != 1 else ''}"
        super().__init__(f"{header}:\n{format_diagnostics(self.diagnostics)}")

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)


class DiagnosticSink:
    """Collects diagnostics in order, dropping exact repeats (the same finding for many wells)."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def add(
        self,
        code: str,
        step_index: int | None,
        step_name: str,
        field: str | None,
        message: str,
        hint: str = "",
        *,
        severity: Severity | None = None,
        path: Sequence[str | int] | None = None,
    ) -> Diagnostic:
        """Record one finding. Give its place as ``path`` (a tuple); ``field`` is then filled from it."""
        if code not in CODES:  # a programming error in a phase, not a user mistake
            raise KeyError(f"unknown diagnostic code {code!r}")
        place: FieldPath = tuple(path) if path is not None else ()
        text = format_field(place) if path is not None else (field or "")
        diagnostic = Diagnostic(severity or CODES[code].severity, code, step_index, step_name, text, message, hint, place)
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self._items.append(diagnostic)
        return diagnostic

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return tuple(self._items)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self._items)

    def __len__(self) -> int:
        return len(self._items)

