"""Pipeline files: versioned YAML that names functions by their registry names.

A file looks like::

    plateflow: 1
    name: nuclei
    description: count nuclei per site
    steps:
    - name: Project
      function: numpy.max_projection              # a bare function
      variable_components: [z_index]
      group_by: null
      force_disk_output: false
      visualize: false
      config: {}
    - name: Segment
      function:                                   # a chain; an item is a name or [name, {kwargs}]
      - [numpy.gaussian_filter, {sigma: 1.0}]
      - numpy.threshold_otsu
      ...

``function`` takes the pattern's shape: a name, ``[name, {kwargs}]``, a list of
those, or a mapping from component values to any of those.

Loading uses ``yaml`` safe loading only: nothing is unpickled, imported or
run; a function is only ever looked up by name in the registry. Every
problem found (malformed YAML, an unknown function, key, keyword or setting, a
wrong type, a newer format) is collected as a :class:`FileDiagnostic` with its
line and column and raised together as one :class:`PipelineFileError`. Files
of older formats are upgraded on load, one version at a time.
"""

from __future__ import annotations

import enum
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._text import did_you_mean
from ..config import ConfigOverrides, GlobalConfig
from ..patterns import PatternError, normalize_pattern
from ..signatures import accepts_var_keyword, describe_parameters, explain_value
from ..steps import COMPONENTS, FunctionStep, Pipeline, as_step_list

__all__ = [
    "FORMAT_VERSION",
    "FileDiagnostic",
    "PipelineFileError",
    "UnregisteredFunctionError",
    "UPGRADES",
    "pipeline_to_data",
    "dump_pipeline",
    "save_pipeline",
    "parse_pipeline",
    "load_pipeline",
]

#: The format this plateflow writes; it reads this one and every older one.
FORMAT_VERSION = 1

VERSION_KEY = "plateflow"
TOP_KEYS = (VERSION_KEY, "name", "description", "steps")
STEP_KEYS = (
    "name", "function", "variable_components", "group_by", "force_disk_output", "visualize", "enabled", "config",
    "scope", "sample_wells", "sample_sites",  # plate-level steps (docs/plate-steps.md); absent for a per-well step
)

Path_ = tuple[Any, ...]  # keys and indices from the document root to a node


@dataclass(frozen=True)
class FileDiagnostic:
    """One problem in a pipeline file.

    ``line`` and ``column`` count from 1 (``None`` when unknown). For a problem
    inside a step, ``step_index`` is the step's place in the file (0-based, like
    the compiler's diagnostics; shown to people as "step 1") and ``field`` is the
    key inside that step (``function[1].kwargs.radius``, ``variable_components``);
    otherwise ``step_index`` is ``None`` and ``field`` a top-level key.
    """

    line: int | None
    column: int | None
    field: str
    message: str
    hint: str = ""
    step_index: int | None = None
    step_name: str = ""

    @property
    def place(self) -> str:
        """Where, in words: ``"step 2 'Clean', function[0].kwargs.radiuss"``."""
        parts = []
        if self.step_index is not None:
            parts.append(f"step {self.step_index + 1}" + (f" {self.step_name!r}" if self.step_name else ""))
        if self.field:
            parts.append(self.field)
        return ", ".join(parts)

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.line is not None else "file"
        text = f"{where}: {self.place}: {self.message}" if self.place else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class PipelineFileError(ValueError):
    """A pipeline file that cannot be loaded; ``diagnostics`` lists every problem found."""

    def __init__(self, source: str, diagnostics: Sequence[FileDiagnostic]) -> None:
        self.source = source
        self.diagnostics = list(diagnostics)
        count = len(self.diagnostics)
        lines = "\n".join(f"  {d}" for d in self.diagnostics)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''} in the pipeline file:\n{lines}")


class UnregisteredFunctionError(ValueError):
    """A step uses a function that a pipeline file cannot name."""


# ---------------------------------------------------------------- saving


def _plain(value: Any, where: str) -> Any:
    """``value`` as YAML-safe data (tuples become lists, numpy scalars Python numbers)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise ValueError(f"{where}: a {type(value).__name__} value cannot be written to a pipeline file; use numbers, strings, booleans, lists or dicts")


def _function_name(func: Callable[..., Any], step: FunctionStep, index: int) -> str:
    from ..library.registry import name_of

    name = name_of(func)
    if name is None:
        shown = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
        raise UnregisteredFunctionError(
            f"step {index + 1} {step.name!r} uses {shown}, which is not in the function registry, so a pipeline "
            "file cannot name it. Register it with plateflow.library.register(func) before saving, or publish it "
            "through the 'plateflow.functions' entry point so it is registered wherever the file is loaded"
        )
    return name


def _pattern_data(pattern: Any, step: FunctionStep, index: int) -> Any:
    def single(item: Any, where: str) -> Any:
        if isinstance(item, tuple):
            func, kwargs = item
            return [_function_name(func, step, index), _plain(dict(kwargs), where)]
        return _function_name(item, step, index)

    def chain(item: Any, where: str) -> Any:
        if isinstance(item, list):
            return [single(x, f"{where}[{i}]") for i, x in enumerate(item)]
        return single(item, where)

    where = f"step {index + 1} {step.name!r}: kwargs"
    if isinstance(pattern, Mapping):
        return {str(k): chain(v, where) for k, v in pattern.items()}
    return chain(pattern, where)


def pipeline_to_data(pipeline: Pipeline | Sequence[FunctionStep]) -> dict[str, Any]:
    """The pipeline as the plain data a file holds (current format)."""
    steps = as_step_list(pipeline)
    data: dict[str, Any] = {
        VERSION_KEY: FORMAT_VERSION,
        "name": getattr(pipeline, "name", "pipeline"),
        "description": getattr(pipeline, "description", ""),
        "steps": [],
    }
    for index, step in enumerate(steps):
        normalize_pattern(step.func)  # a malformed pattern fails here, not in the file
        data["steps"].append(
            {
                "name": step.name,
                "function": _pattern_data(step.func, step, index),
                "variable_components": list(step.variable_components),
                "group_by": step.group_by,
                "force_disk_output": step.force_disk_output,
                "visualize": step.visualize,
                "config": _plain(dict(step.config), f"step {index + 1} {step.name!r}: config"),
            }
        )
        if not getattr(step, "enabled", True):
            data["steps"][-1]["enabled"] = False  # written only when off: files of enabled steps stay as they were
        if getattr(step, "scope", "well") != "well":  # written only for plate steps: per-well files stay as they were
            data["steps"][-1]["scope"] = step.scope
            for key in ("sample_wells", "sample_sites"):
                if getattr(step, key, None) is not None:
                    data["steps"][-1][key] = list(getattr(step, key))
    return data


def dump_pipeline(pipeline: Pipeline | Sequence[FunctionStep]) -> str:
    """The pipeline as pipeline-file text."""
    return yaml.safe_dump(pipeline_to_data(pipeline), sort_keys=False, allow_unicode=True, default_flow_style=None)


def save_pipeline(pipeline: Pipeline | Sequence[FunctionStep], path: str | os.PathLike[str]) -> Path:
    """Write ``pipeline`` to ``path`` (atomically: a temporary file, then a rename)."""
    from ..vfs.backends.disk import atomic_write_bytes

    target = Path(path)
    atomic_write_bytes(target, dump_pipeline(pipeline).encode("utf-8"))
    return target


# ---------------------------------------------------------------- upgrades


def _upgrade_0_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Format 0 named the pipeline ``pipeline:`` and gave each step one function as
    ``function: name`` plus ``args: {kwargs}``, and ``components:`` for its
    variable components. Format 1 puts the whole pattern under ``function``."""
    upgraded = {("name" if k == "pipeline" else k): v for k, v in data.items()}
    steps = upgraded.get("steps")
    if isinstance(steps, list):
        new_steps = []
        for step in steps:
            if isinstance(step, dict):
                step = {("variable_components" if k == "components" else k): v for k, v in step.items()}
                args = step.pop("args", None)
                if args:
                    step["function"] = [step.get("function"), args]
            new_steps.append(step)
        upgraded["steps"] = new_steps
    upgraded[VERSION_KEY] = 1
    return upgraded


#: ``{version: function}`` turning data of format ``version`` into ``version + 1``.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _upgrade_0_to_1}


# ---------------------------------------------------------------- loading


_NAMES_HINT = "`plateflow functions` lists the registered names"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    return did_you_mean(word, choices) or f"valid: {', '.join(choices)}"


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", type(None): "null",
             int: "a whole number", float: "a number"}
    return names.get(type(value), f"a value of type {type(value).__name__}")


@dataclass
class _Reader:
    source: str
    root: yaml.Node | None
    diagnostics: list[FileDiagnostic] = field(default_factory=list)

    def node(self, path: Path_, key: bool = False) -> yaml.Node | None:
        """The deepest node along ``path`` (the key node of the last step when ``key``)."""
        node = self.root
        for position, step in enumerate(path):
            last = position == len(path) - 1
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if str(k.value) == str(step)), None)
                if match is None:
                    return node
                node = match[0] if (key and last) else match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
            else:
                return node
        return node

    def report(self, path: Path_, field_name: str, message: str, hint: str = "", key: bool = False) -> None:
        node = self.node(path, key)
        line = node.start_mark.line + 1 if node is not None else None
        column = node.start_mark.column + 1 if node is not None else None
        step_index, step_name = self.step_of(path)
        self.diagnostics.append(FileDiagnostic(line, column, field_name, message, hint, step_index, step_name))

    def step_of(self, path: Path_) -> tuple[int | None, str]:
        """The step a path lies in (its index and name as the file gives it), or ``(None, "")``."""
        if len(path) < 2 or path[0] != "steps" or not isinstance(path[1], int):
            return None, ""
        step = self.node(("steps", path[1]))
        name = ""
        if isinstance(step, yaml.MappingNode):
            name_node = next((v for k, v in step.value if str(k.value) == "name"), None)
            if isinstance(name_node, yaml.ScalarNode) and name_node.tag.endswith(":str"):
                name = str(name_node.value)
        return path[1], name

    def unknown_keys(self, mapping: Mapping[str, Any], known: Sequence[str], path: Path_, prefix: str) -> None:
        for k in mapping:
            if k not in known:
                where = f"{prefix}.{k}" if prefix else str(k)
                self.report((*path, k), where, f"unknown key {k!r}", _did_you_mean(str(k), known), key=True)

    def duplicate_keys(self, node: yaml.Node | None) -> None:
        """YAML lets a later key silently replace an earlier one; a pipeline file may not."""
        stack: list[tuple[yaml.Node | None, Path_]] = [(node, ())]
        seen_nodes: set[int] = set()  # an alias repeats a node: look at it once
        while stack:
            current, path = stack.pop()
            if current is None or id(current) in seen_nodes:
                continue
            seen_nodes.add(id(current))
            if isinstance(current, yaml.MappingNode):
                seen: set[str] = set()
                for k, v in current.value:
                    name = str(k.value)
                    if name in seen:
                        mark = k.start_mark
                        step_index, step_name = self.step_of((*path, name))
                        where = _field_of((*path, name)[2:] if step_index is not None else (*path, name))
                        self.diagnostics.append(FileDiagnostic(
                            mark.line + 1, mark.column + 1, where, f"key {name!r} appears twice",
                            "keep one: YAML would silently use the last", step_index, step_name,
                        ))
                    seen.add(name)
                    stack.append((v, (*path, name)))
            elif isinstance(current, yaml.SequenceNode):
                stack.extend((item, (*path, i)) for i, item in enumerate(current.value))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _field_of(path: Path_) -> str:
    """A path inside the document as a field: ``function[0].kwargs.sigma``, ``function['1']``."""
    text = ""
    for position, part in enumerate(path):
        if isinstance(part, int):
            text += f"[{part}]"
        elif position > 0 and path[position - 1] == "function":
            text += f"[{part!r}]"  # a dict pattern's key
        else:
            text += f".{part}" if text else str(part)
    return text


#: Most values (scalars, list items, mapping entries) a file may hold once its aliases are expanded.
MAX_VALUES = 100_000


def _expanded_size_over(node: yaml.Node, limit: int) -> bool:
    """Whether ``node`` holds more than ``limit`` values with every alias expanded (stops counting early)."""
    count = 0
    stack = [node]
    while stack:
        current = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                stack.extend((k, v))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return False


def _code_point(character: str | int) -> int:
    return character if isinstance(character, int) else ord(character)


def _yaml_diagnostic(error: yaml.YAMLError, text: str) -> FileDiagnostic:
    if isinstance(error, yaml.reader.ReaderError):
        # A character YAML does not allow (NUL, other control characters): it has a position, not a mark.
        before = text[: error.position]
        line, column = before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
        return FileDiagnostic(line, column, "", f"not valid YAML: character {_code_point(error.character):#06x} is not allowed in YAML",
                              "remove it; pipeline files are plain text")
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    hint = "check the indentation, brackets and quoting around this place"
    if isinstance(error, yaml.constructor.ConstructorError) and "tag" in str(problem):
        hint = "pipeline files hold plain values only (no Python objects or tags); name functions by their registry names"
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        # "while parsing a flow sequence" started elsewhere (an unclosed bracket or quote): say where.
        problem = f"{problem} ({context} that starts on line {context_mark.line + 1}, column {context_mark.column + 1})"
    return FileDiagnostic(
        mark.line + 1 if mark else None, mark.column + 1 if mark else None, "", f"not valid YAML: {problem}", hint,
    )


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is not None and _expanded_size_over(node, MAX_VALUES):
            raise PipelineFileError(source, [FileDiagnostic(
                None, None, "", f"the file holds more than {MAX_VALUES} values once its YAML aliases (*name) are expanded",
                "a pipeline file is small; write the values out instead of nesting aliases",
            )])
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as error:
        raise PipelineFileError(source, [_yaml_diagnostic(error, text)]) from None
    except RecursionError:
        raise PipelineFileError(source, [FileDiagnostic(
            None, None, "", "the YAML is nested too deeply to read", "a pipeline file nests a few levels deep; check for runaway brackets",
        )]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _tuple_params(func: Callable[..., Any]) -> set[str]:
    """Parameters annotated as tuples: YAML gives lists, the function expects tuples."""
    found = set()
    for param in describe_parameters(func):
        options = typing.get_args(param.annotation) or (param.annotation,)
        if any(typing.get_origin(o) is tuple or o is tuple for o in (param.annotation, *options)):
            found.add(param.name)
    return found


class _StepReader:
    """Turns one step's ``function`` value back into a pattern, reporting every problem."""

    def __init__(self, reader: _Reader, path: Path_, label: str) -> None:
        self.reader = reader
        self.path = path
        self.label = label

    def function(self, name: Any, path: Path_, where: str) -> Callable[..., Any] | None:
        from ..library import registry

        if not isinstance(name, str):
            self.reader.report(path, where, f"expected a function name, got {_type_name(name)}", f"name a registered function, e.g. numpy.gaussian_filter; {_NAMES_HINT}")
            return None
        try:
            return registry.get(name)
        except KeyError:
            close = did_you_mean(name, registry.names())
            self.reader.report(path, where, f"no function named {name!r} in the registry", close or _NAMES_HINT)
            return None

    def kwargs(self, func: Callable[..., Any] | None, kwargs: Any, path: Path_, where: str) -> dict[str, Any]:
        if not isinstance(kwargs, dict):
            self.reader.report(path, where, f"keyword arguments must be a mapping, got {_type_name(kwargs)}",
                               "write them as a mapping after the name: [numpy.gaussian_filter, {sigma: 2.0}]")
            return {}
        result = dict(kwargs)
        if func is None:
            return result
        params = {p.name: p for p in describe_parameters(func)}
        tuples = _tuple_params(func)
        for name, value in kwargs.items():
            param = params.get(name)
            if param is None:
                if not accepts_var_keyword(func):
                    hint = _did_you_mean(str(name), list(params)) if params else "this function takes no keyword arguments"
                    self.reader.report((*path, name), f"{where}.{name}", f"unknown keyword argument {name!r}", hint, key=True)
                continue
            if name in tuples and isinstance(value, list):
                value = result[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            problem = explain_value(param, value)
            if problem is not None:
                # The same words and hint as the compiler's invalid-kwarg-value diagnostic.
                detail = f"{getattr(func, '__name__', 'the function')}() {param.name}: {problem.detail}"
                hint = "; ".join(part for part in (problem.hint, detail) if part)
                self.reader.report((*path, name), f"{where}.{name}", problem.message, hint)
        return result

    def call(self, item: Any, path: Path_, where: str) -> Any:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
            func = self.function(item[0], (*path, 0), where)
            kwargs = self.kwargs(func, item[1], (*path, 1), f"{where}.kwargs")
            return (func, kwargs)
        if isinstance(item, (list, dict)):
            self.reader.report(path, where, f"expected a function name or [name, {{kwargs}}], got {_type_name(item)}",
                               "e.g. numpy.top_hat, or [numpy.top_hat, {radius: 10}] to set keyword arguments")
            return None
        return self.function(item, path, where)

    def chain(self, value: Any, path: Path_, where: str) -> Any:
        is_call = isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict)
        if isinstance(value, list) and not is_call:
            if not value:
                self.reader.report(path, where, "an empty list has no function to run", "list one or more functions, or remove the step")
            return [self.call(item, (*path, i), f"{where}[{i}]") for i, item in enumerate(value)]
        return self.call(value, path, where)

    def pattern(self, value: Any) -> Any:
        path = (*self.path, "function")
        where = _join(self.label, "function")
        if isinstance(value, dict):
            if not value:
                self.reader.report(path, where, "an empty mapping has no function to run",
                                   "give one entry per value of the step's group_by component, e.g. '1': numpy.max_projection")
            return {str(k): self.chain(v, (*path, k), f"{where}[{str(k)!r}]") for k, v in value.items()}
        return self.chain(value, path, where)


def _read_components(reader: _Reader, value: Any, path: Path_, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        reader.report(path, where, f"expected a list of components, got {_type_name(value)}", f"components: {', '.join(COMPONENTS)}")
        return ("site",)
    for i, item in enumerate(items):
        if item not in COMPONENTS:
            reader.report((*path, i) if isinstance(value, list) else path, where, f"unknown component {item!r}", _did_you_mean(item, COMPONENTS))
    return tuple(items)


def _read_step(reader: _Reader, raw: Any, index: int) -> FunctionStep | None:
    path: Path_ = ("steps", index)
    label = ""  # fields inside a step are named from the step (the diagnostic carries the step)
    problems_before = len(reader.diagnostics)
    if not isinstance(raw, dict):
        reader.report(path, label, f"a step must be a mapping, got {_type_name(raw)}", "a step is a mapping with at least 'function: <registry name>'")
        return None
    reader.unknown_keys(raw, STEP_KEYS, path, label)
    if "function" not in raw:
        reader.report(path, label, "the step has no 'function'", "add function: <registry name>")
        return None
    func = _StepReader(reader, path, label).pattern(raw["function"])
    values: dict[str, Any] = {"func": func}
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        reader.report((*path, "name"), _join(label, "name"), f"expected a string, got {_type_name(name)}", "quote it: name: 'Step 1'")
    values["name"] = name if isinstance(name, str) else None
    if "variable_components" in raw:
        values["variable_components"] = _read_components(
            reader, raw["variable_components"], (*path, "variable_components"), _join(label, "variable_components")
        )
    group_by = raw.get("group_by")
    if group_by is not None and group_by not in COMPONENTS:
        hint = _did_you_mean(str(group_by), COMPONENTS)
        reader.report((*path, "group_by"), _join(label, "group_by"), f"unknown component {group_by!r}", hint)
    values["group_by"] = group_by if group_by in COMPONENTS else None
    for flag, default in (("force_disk_output", False), ("visualize", False), ("enabled", True)):
        value = raw.get(flag, default)
        if not isinstance(value, bool):
            reader.report((*path, flag), _join(label, flag), f"expected true or false, got {_type_name(value)} {value!r}",
                          f"write {flag}: true or {flag}: false")
        values[flag] = value if isinstance(value, bool) else default
    scope = raw.get("scope", "well")
    if scope not in ("well", "plate"):
        reader.report((*path, "scope"), _join(label, "scope"), f"unknown scope {scope!r}", "write scope: plate for a plate-level step, or leave it out")
    else:
        values["scope"] = scope
    for key in ("sample_wells", "sample_sites"):
        sample = raw.get(key)
        if sample is None:
            continue
        if not isinstance(sample, list) or not sample or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in sample):
            reader.report((*path, key), _join(label, key), f"expected a list of {'well ids' if key == 'sample_wells' else 'sites'}, got {_type_name(sample)} {sample!r}",
                          f"e.g. {key}: {['A01', 'B03'] if key == 'sample_wells' else ['1', '3']}")
        elif scope != "plate":
            reader.report((*path, key), _join(label, key), f"{key} is only for plate steps", "add scope: plate, or remove it")
        else:
            values[key] = tuple(sample)
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        reader.report((*path, "config"), _join(label, "config"), f"expected a mapping of settings, got {_type_name(config)}",
                      f"e.g. config: {{float_output_dtype: float64}}; settings are: {', '.join(GlobalConfig.field_names())}")
        config = {}
    try:
        values["config"] = ConfigOverrides({k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    except (ValueError, TypeError) as error:
        message, _, hint = str(error).partition("; ")
        reader.report((*path, "config"), _join(label, "config"), message,
                      hint or f"settings are: {', '.join(GlobalConfig.field_names())}")
        values["config"] = None
    if len(reader.diagnostics) > problems_before:
        return None
    try:
        normalize_pattern(func)
    except PatternError as error:
        reader.report((*path, "function"), _join(label, "function"), error.reason,
                      "a function is a name, [name, {kwargs}], a list of those, or a mapping from component values to any of those")
        return None
    return FunctionStep(**values)


def _upgrade(reader: _Reader, data: dict[str, Any]) -> dict[str, Any] | None:
    version = data.get(VERSION_KEY)
    if VERSION_KEY not in data:
        reader.report((), VERSION_KEY, "not a plateflow pipeline file: the 'plateflow: <format version>' key is missing",
                      f"add 'plateflow: {FORMAT_VERSION}' as the first line")
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        reader.report((VERSION_KEY,), VERSION_KEY, f"the format version must be a whole number, got {version!r}",
                      f"write 'plateflow: {FORMAT_VERSION}' (no quotes)")
        return None
    if version > FORMAT_VERSION:
        reader.report(
            (VERSION_KEY,), VERSION_KEY,
            f"written by a newer plateflow (format {version}); this plateflow reads formats up to {FORMAT_VERSION}",
            "upgrade plateflow to load it",
        )
        return None
    while data[VERSION_KEY] < FORMAT_VERSION:
        data = UPGRADES[data[VERSION_KEY]](data)
    return data


def parse_pipeline(text: str, *, source: str = "<string>") -> Pipeline:
    """Build a pipeline from pipeline-file text; raise :class:`PipelineFileError` listing every problem."""
    try:
        return _parse(text, source)
    except RecursionError:
        # Values nested deeper than Python's stack while being checked (composing already guards itself).
        raise PipelineFileError(source, [FileDiagnostic(
            None, None, "", "the file's values are nested too deeply to check", "a pipeline file nests a few levels deep",
        )]) from None


def _parse(text: str, source: str) -> Pipeline:
    root, data = _compose(text, source)
    reader = _Reader(source, root)
    reader.duplicate_keys(root)
    if not isinstance(data, dict):
        reader.report((), "", f"a pipeline file is a mapping with 'plateflow', 'name' and 'steps', got {_type_name(data)}",
                      f"start the file with 'plateflow: {FORMAT_VERSION}', then 'name:' and 'steps:' (see docs/pipeline-files.md)")
        raise PipelineFileError(source, reader.diagnostics)
    upgraded = _upgrade(reader, data)
    if upgraded is None:
        raise PipelineFileError(source, reader.diagnostics)
    reader.unknown_keys(upgraded, TOP_KEYS, (), "")
    for key in ("name", "description"):
        if not isinstance(upgraded.get(key, ""), str):
            reader.report((key,), key, f"expected a string, got {_type_name(upgraded[key])}", f"quote it: {key}: '...'")
    raw_steps = upgraded.get("steps", [])
    if not isinstance(raw_steps, list):
        reader.report(("steps",), "steps", f"expected a list of steps, got {_type_name(raw_steps)}", "start each step with '- ' under steps:")
        raw_steps = []
    steps = [_read_step(reader, raw, i) for i, raw in enumerate(raw_steps)]
    if reader.diagnostics:
        raise PipelineFileError(source, reader.diagnostics)
    name = upgraded.get("name") or "pipeline"
    return Pipeline([s for s in steps if s is not None], name=name, description=upgraded.get("description") or "")


def load_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """Read a pipeline file; raise :class:`PipelineFileError` listing every problem, with lines.

    Whatever the file holds, its problems are a ``PipelineFileError``; only a
    file that cannot be opened at all raises ``OSError`` (``FileNotFoundError``,
    ``IsADirectoryError``, ``PermissionError``).
    """
    target = Path(path)
    raw = target.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise PipelineFileError(str(target), [FileDiagnostic(
            line, column, "", f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})",
            "save it as UTF-8",
        )]) from None
    return parse_pipeline(text, source=str(target))
