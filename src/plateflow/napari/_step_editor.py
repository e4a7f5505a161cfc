"""The form of the selected step, generated from the registry's parameter metadata.

The form has a header (the step's number and name, its variable components,
its group-by component and the "one chain per value" switch), then one section
per function: a magicgui form per function, labelled ``func[i]`` in a chain
and grouped under ``func['k']`` per group value. Numbers get spin boxes bounded
by the parameter's ``Bounds``, ``Literal``/``Enum`` parameters combo boxes,
booleans check boxes; other values (tuples, ``None``-able values) a line edit
that takes a Python literal. Units are in the labels ("sigma (px)").

:meth:`StepEditor.widget_for` maps a :class:`~plateflow.napari._model.FieldLocation`
to the widget that shows it, which is how diagnostics reach their field.
"""

from __future__ import annotations

import ast
import enum
import html
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from plateflow.library import registry
from plateflow.signatures import ParamInfo, describe_parameters, summary_line
from plateflow.special_io import get_special_inputs

from ._model import EDITABLE_COMPONENTS, CallModel, FieldLocation, PipelineModel, StepModel
from ._style import clear_mark, mark_widget, memory_badge_label

__all__ = ["StepEditor", "param_widget", "param_label"]

_FLOAT_LIMIT = 1e9
_INT_LIMIT = 2**31 - 1


def param_label(param: ParamInfo) -> str:
    """The form label: the name, with the unit when there is one ("sigma (px)")."""
    return f"{param.name} ({param.unit})" if param.unit else param.name


def _choice_value(choice: Any) -> Any:
    return choice.value if isinstance(choice, enum.Enum) else choice


def param_widget(param: ParamInfo, value: Any) -> ValueWidget:
    """A magicgui widget for one parameter, showing ``value``."""
    label = param_label(param)
    tooltip = param.doc or param.type_name
    annotation = param.annotation
    bounds = param.bounds
    if param.choices is not None:
        choices = [(str(_choice_value(c)), _choice_value(c)) for c in param.choices]
        shown = _choice_value(value)
        if shown not in [c[1] for c in choices]:
            shown = choices[0][1]
        return ComboBox(choices=choices, value=shown, label=label, tooltip=tooltip)
    if annotation is bool:
        return CheckBox(value=bool(value), label=label, tooltip=tooltip, text="")
    if annotation is int and (value is None or isinstance(value, int)):
        low = int(bounds.min) if bounds is not None and bounds.min is not None else -_INT_LIMIT
        high = int(bounds.max) if bounds is not None and bounds.max is not None else _INT_LIMIT
        shown = int(value) if isinstance(value, int) else max(low, 0)
        return SpinBox(value=min(max(shown, low), high), min=low, max=high, step=1, label=label, tooltip=tooltip)
    if annotation is float and (value is None or isinstance(value, (int, float))):
        low = float(bounds.min) if bounds is not None and bounds.min is not None else -_FLOAT_LIMIT
        high = float(bounds.max) if bounds is not None and bounds.max is not None else _FLOAT_LIMIT
        shown = float(value) if isinstance(value, (int, float)) else max(low, 0.0)
        step = 0.1 if high - low <= 1000 else 1.0
        spin = FloatSpinBox(value=min(max(shown, low), high), min=low, max=high, step=step, label=label, tooltip=tooltip)
        spin.native.setDecimals(3 if high - low <= 2 else 2)
        return spin
    text = value if annotation is str and isinstance(value, str) else repr(value)
    widget = LineEdit(value=text, label=label, tooltip=f"{tooltip}\n(a Python literal, e.g. 1.5, (3, 3), None)" if annotation is not str else tooltip)
    return widget


def _initial_value(param: ParamInfo, kwargs: Mapping[str, Any]) -> Any:
    if param.name in kwargs:
        return kwargs[param.name]
    return None if param.required else param.default


class StepEditor(QWidget):
    """The form for one step of a :class:`PipelineModel`.

    Args:
        model: the pipeline being edited.
        selected_function: returns the catalogue's current function ("" for none),
            for the "add to this chain" buttons.
    """

    def __init__(self, model: PipelineModel, selected_function: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.selected_function = selected_function
        self.components: Mapping[str, tuple[str, ...]] = {}
        self.channel_names: Mapping[str, str] = {}
        self.step_id = ""
        self._signature: Any = None
        self._form_editing = 0
        # Widgets by what they show, filled by rebuild().
        self.header_label = QLabel(self)
        self.variable_box: QGroupBox | None = None
        self.variable_checks: dict[str, QCheckBox] = {}
        self.group_by_combo: QComboBox | None = None
        self.per_group_check: QCheckBox | None = None
        self.special_input_labels: dict[str, QLabel] = {}
        self.special_output_labels: dict[str, QLabel] = {}
        self.pattern_box: QWidget | None = None
        self.entry_boxes: dict[str, QGroupBox] = {}
        self.call_boxes: dict[tuple[str | None, int], QGroupBox] = {}
        self.param_widgets: dict[tuple[str | None, int, str], ValueWidget] = {}
        self.unknown_kwarg_rows: dict[tuple[str | None, int, str], QWidget] = {}
        self._marked: list[QWidget] = []
        self._forms: list[Container] = []  # the magicgui containers of the shown form
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._body: QWidget | None = None
        model.step_changed.connect(self._on_step_changed)
        model.structure_changed.connect(self._on_structure_changed)
        self.rebuild()

    # -- context -----------------------------------------------------------------------
    def set_plate_components(self, components: Mapping[str, tuple[str, ...]], channel_names: Mapping[str, str]) -> None:
        self.components = dict(components)
        self.channel_names = dict(channel_names)
        self.rebuild()

    def show_step(self, step_id: str) -> None:
        if step_id == self.step_id:
            return
        self.step_id = step_id
        self.rebuild()

    def step(self) -> StepModel | None:
        if not self.step_id:
            return None
        try:
            return self.model.step(self.step_id)
        except KeyError:
            return None

    @contextmanager
    def _editing(self):
        """Edits that come from this form: the model changes, the form already shows it."""
        self._form_editing += 1
        try:
            yield
        finally:
            self._form_editing -= 1
            step = self.step()
            self._signature = _signature(step) if step is not None else None

    def _on_step_changed(self, step_id: str) -> None:
        if step_id != self.step_id or self._form_editing:
            return
        step = self.step()
        if step is not None and _signature(step) != self._signature:
            self.rebuild()

    def _on_structure_changed(self) -> None:
        if self._form_editing:
            return
        step = self.step()
        if step is None:
            self.step_id = ""
        self.rebuild()

    # -- building ------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Build the form of the shown step from scratch."""
        self._marked = []
        self._forms = []
        self.variable_box = self.group_by_combo = self.per_group_check = self.pattern_box = None
        self.variable_checks, self.special_input_labels, self.special_output_labels = {}, {}, {}
        self.entry_boxes, self.call_boxes, self.param_widgets, self.unknown_kwarg_rows = {}, {}, {}, {}
        if self._body is not None:
            self._layout.removeWidget(self._body)
            self._body.setParent(None)
            self._body.deleteLater()
        self._body = QWidget(self)
        body = QVBoxLayout(self._body)
        body.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._body)
        step = self.step()
        self.header_label = QLabel(self._body)
        self.header_label.setWordWrap(True)
        body.addWidget(self.header_label)
        if step is None:
            self.header_label.setText("Select a step to edit its functions and parameters, or add one from the catalogue.")
            self._signature = None
            body.addStretch(1)
            return
        self._signature = _signature(step)
        flows = self.model.data_flow()
        flow = flows.get(step.step_id)
        number = f"Step {flow.index + 1}" if flow is not None else "Disabled step"
        self.header_label.setText(f"<b>{number}: {html.escape(step.name)}</b>")
        body.addWidget(self._components_box(step))
        io_box = self._special_io_box(step, flow)
        if io_box is not None:
            body.addWidget(io_box)
        self.pattern_box = QWidget(self._body)
        pattern_layout = QVBoxLayout(self.pattern_box)
        pattern_layout.setContentsMargins(0, 0, 0, 0)
        if step.per_group:
            for key in step.chains:
                pattern_layout.addWidget(self._entry_box(step, key))
        else:
            for index in range(len(step.chains[None])):
                pattern_layout.addWidget(self._call_box(step, None, index, self.pattern_box))
        body.addWidget(self.pattern_box)
        body.addStretch(1)

    def _components_box(self, step: StepModel) -> QWidget:
        box = QFrame(self._body)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.variable_box = QGroupBox("Variable components (vary inside one stack)", box)
        self.variable_box.setToolTip(
            "The components that vary inside the stack handed to the function; every other "
            "combination of component values is a separate call."
        )
        row = QHBoxLayout(self.variable_box)
        row.setContentsMargins(6, 2, 6, 2)
        for component in EDITABLE_COMPONENTS:
            count = len(self.components.get(component, ()))
            check = QCheckBox(f"{component} ({count})" if self.components else component, self.variable_box)
            check.setChecked(component in step.variable_components)
            check.toggled.connect(self._on_variable_toggled)
            self.variable_checks[component] = check
            row.addWidget(check)
        row.addStretch(1)
        layout.addWidget(self.variable_box)
        group_row = QHBoxLayout()
        group_row.addWidget(QLabel("Group by", box))
        self.group_by_combo = QComboBox(box)
        self.group_by_combo.setToolTip("The component whose values key a per-value pattern (a dict pattern).")
        self.group_by_combo.addItem("(none)", None)
        for component in EDITABLE_COMPONENTS:
            self.group_by_combo.addItem(component, component)
        extra = step.group_by if step.group_by is not None and step.group_by not in EDITABLE_COMPONENTS else None
        if extra is not None:
            self.group_by_combo.addItem(extra, extra)
        self.group_by_combo.setCurrentIndex(max(0, self.group_by_combo.findData(step.group_by)))
        self.group_by_combo.currentIndexChanged.connect(self._on_group_by_changed)
        group_row.addWidget(self.group_by_combo)
        label = f"one chain per {step.group_by}" if step.group_by else "one chain per value"
        self.per_group_check = QCheckBox(label, box)
        self.per_group_check.setToolTip("Give each value of the group-by component its own functions and parameters.")
        self.per_group_check.setChecked(step.per_group)
        self.per_group_check.setEnabled(bool(step.group_by) or step.per_group)
        self.per_group_check.toggled.connect(self._on_per_group_toggled)
        group_row.addWidget(self.per_group_check)
        group_row.addStretch(1)
        layout.addLayout(group_row)
        return box

    def _special_io_box(self, step: StepModel, flow: Any) -> QWidget | None:
        if flow is None or not (flow.inputs_from or flow.outputs):
            return None
        box = QWidget(self._body)
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        for name, producer in flow.inputs_from.items():
            text = f"{name} <- step {producer + 1}" if producer is not None else f"{name} <- (no step produces it)"
            label = QLabel(text, box)
            label.setToolTip(f"special input '{name}': loaded from the step that produces it")
            self.special_input_labels[name] = label
            layout.addWidget(label)
        for name in flow.outputs:
            label = QLabel(f"gives {name}", box)
            label.setToolTip(f"special output '{name}': later steps can take it as a special input")
            self.special_output_labels[name] = label
            layout.addWidget(label)
        layout.addStretch(1)
        return box

    def _entry_title(self, step: StepModel, key: str) -> str:
        title = f"func[{key!r}]: {step.group_by or 'group'} {key}"
        if step.group_by == "channel" and key in self.channel_names:
            title += f" ({self.channel_names[key]})"
        return title

    def _entry_box(self, step: StepModel, key: str) -> QGroupBox:
        box = QGroupBox(self._entry_title(step, key), self.pattern_box)
        layout = QVBoxLayout(box)
        for index in range(len(step.chains[key])):
            layout.addWidget(self._call_box(step, key, index, box))
        add = QPushButton(f"Add selected function to func[{key!r}]", box)
        add.clicked.connect(lambda _=False, k=key: self._add_selected_to_chain(k))
        layout.addWidget(add)
        self.entry_boxes[key] = box
        return box

    def _call_box(self, step: StepModel, key: str | None, index: int, parent: QWidget) -> QGroupBox:
        call = step.chains[key][index]
        chain_length = len(step.chains[key])
        place = step.place(key, index)
        shown_name = call.function if call.registered else f"{call.function} (not in the registry)"
        title = f"{place}: {shown_name}" if place else shown_name
        box = QGroupBox(title, parent)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 4, 6, 4)
        top = QHBoxLayout()
        info = _info(call)
        if info is not None:
            memory = info.input_memory_type
            if info.output_memory_type != info.input_memory_type:
                memory += f" -> {info.output_memory_type}"
            top.addWidget(memory_badge_label(memory, box))
            if info.summary:
                box.setToolTip(info.summary)
        top.addStretch(1)
        if chain_length > 1:
            for text, offset in (("Up", -1), ("Down", 1)):
                button = QPushButton(text, box)
                button.setEnabled(0 <= index + offset < chain_length)
                button.clicked.connect(lambda _=False, o=offset: self.model.move_in_chain(step.step_id, key, index, index + o))
                top.addWidget(button)
            remove = QPushButton("Remove", box)
            remove.setToolTip("Remove this function from the chain")
            remove.clicked.connect(lambda _=False: self.model.remove_from_chain(step.step_id, key, index))
            top.addWidget(remove)
        layout.addLayout(top)
        if info is None:
            layout.addWidget(QLabel(f"No function named '{call.function}' in the registry.", box))
        else:
            special = set(info.special_inputs)
            params = [p for p in info.params if p.name not in special]
            if params:
                widgets = []
                for param in params:
                    widget = param_widget(param, _initial_value(param, call.kwargs))
                    widget.changed.connect(lambda value, p=param, w=widget: self._on_param_changed(key, index, p, w))
                    self.param_widgets[(key, index, param.name)] = widget
                    widgets.append(widget)
                form = Container(widgets=widgets, labels=True)
                form.margins = (0, 0, 0, 0)
                layout.addWidget(form.native)
                self._forms.append(form)
            elif not call.kwargs:
                layout.addWidget(QLabel("No parameters.", box))
            known = {p.name for p in info.params}
            for name, value in call.kwargs.items():
                if name not in known:
                    layout.addWidget(self._unknown_kwarg_row(step, key, index, name, value, box))
        self.call_boxes[(key, index)] = box
        return box

    def _unknown_kwarg_row(self, step: StepModel, key: str | None, index: int, name: str, value: Any, parent: QWidget) -> QWidget:
        row = QWidget(parent)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(f"{name} = {value!r}  (not a parameter of this function)", row))
        layout.addStretch(1)
        remove = QPushButton("Remove", row)
        remove.setToolTip(f"Remove the keyword '{name}'")
        remove.clicked.connect(lambda _=False: self.model.remove_kwarg(step.step_id, key, index, name))
        layout.addWidget(remove)
        self.unknown_kwarg_rows[(key, index, name)] = row
        return row

    # -- form -> model ----------------------------------------------------------------------
    def _on_param_changed(self, key: str | None, index: int, param: ParamInfo, widget: ValueWidget) -> None:
        step = self.step()
        if step is None:
            return
        if isinstance(widget, LineEdit) and param.annotation is not str:
            try:
                value = ast.literal_eval(widget.value) if widget.value.strip() else None
            except (ValueError, SyntaxError):
                mark_widget(widget.native, "error", [f"{param.name}: not a Python literal (e.g. 1.5, (3, 3), None)"])
                return
            clear_mark(widget.native)
            if value is None and param.required:
                return
        else:
            value = widget.value
        with self._editing():
            self.model.set_kwarg(step.step_id, key, index, param.name, value)

    def _on_variable_toggled(self, _checked: bool) -> None:
        step = self.step()
        if step is None:
            return
        chosen = [c for c, check in self.variable_checks.items() if check.isChecked()]
        extra = [c for c in step.variable_components if c not in self.variable_checks]
        with self._editing():
            self.model.set_variable_components(step.step_id, chosen + extra)

    def _on_group_by_changed(self, _index: int) -> None:
        step = self.step()
        if step is None or self.group_by_combo is None:
            return
        group_by = self.group_by_combo.currentData()
        self.model.set_group_by(step.step_id, group_by)
        if group_by is None and step.per_group:
            self.model.set_per_group(step.step_id, None)
        elif group_by is not None and step.per_group:
            self.model.set_per_group(step.step_id, self.components.get(group_by) or tuple(step.chains))

    def _on_per_group_toggled(self, checked: bool) -> None:
        step = self.step()
        if step is None:
            return
        if checked:
            values = self.components.get(step.group_by or "", ())
            if not values:
                values = ("1",)
            self.model.set_per_group(step.step_id, values)
        else:
            self.model.set_per_group(step.step_id, None)

    def _add_selected_to_chain(self, key: str | None) -> None:
        name = self.selected_function()
        step = self.step()
        if name and step is not None:
            self.model.add_to_chain(step.step_id, name, key)

    # -- diagnostics -> widgets ----------------------------------------------------------------
    def widget_for(self, location: FieldLocation) -> QWidget | None:
        """The widget that shows the part of the step a diagnostic names (``None``: nothing shown)."""
        target = location.target
        if target == "kwarg":
            widget = self.param_widgets.get((location.key, location.index, location.name))
            if widget is not None:
                return widget.native
            # A keyword the function does not take has no form field: mark its section.
            return self.call_boxes.get((location.key, location.index))
        if target == "call":
            return self.call_boxes.get((location.key, location.index))
        if target == "entry":
            return self.entry_boxes.get(location.key or "")
        if target == "variable_components":
            return self.variable_box
        if target == "group_by":
            return self.group_by_combo
        if target == "special_inputs":
            return self.special_input_labels.get(location.name) or self.header_label
        if target == "special_outputs":
            return self.special_output_labels.get(location.name) or self.header_label
        if target == "pattern":
            return self.pattern_box
        return self.header_label

    def mark(self, marks: list[tuple[FieldLocation, str, str]]) -> None:
        """Show ``(location, severity, text)`` marks on the form; earlier marks are cleared."""
        for widget in self._marked:
            clear_mark(widget)
        self._marked = []
        grouped: dict[int, tuple[QWidget, list[str], list[str]]] = {}
        for location, severity, text in marks:
            targets = [self.widget_for(location)]
            if location.target == "kwarg":
                row = self.unknown_kwarg_rows.get((location.key, location.index, location.name))
                if row is not None:
                    targets.append(row)
            for widget in targets:
                if widget is None:
                    continue
                entry = grouped.setdefault(id(widget), (widget, [], []))
                entry[1].append(severity)
                entry[2].append(text)
        for widget, severities, texts in grouped.values():
            mark_widget(widget, "error" if "error" in severities else "warning", texts)
            self._marked.append(widget)

    def focus(self, location: FieldLocation) -> QWidget | None:
        """Give the keyboard focus to the widget of ``location`` (returns it)."""
        widget = self.widget_for(location)
        if widget is not None:
            widget.setFocus(Qt.FocusReason.OtherFocusReason)
        return widget


@dataclass(frozen=True)
class _CallFacts:
    """What the form needs about a function, registered or not."""

    params: tuple[ParamInfo, ...]
    input_memory_type: str
    output_memory_type: str
    special_inputs: tuple[str, ...]
    summary: str


def _info(call: CallModel) -> _CallFacts | None:
    """The function's parameters and memory types (``None`` for an unknown registry name)."""
    if call.registered:
        try:
            info = registry.info(call.function)
        except KeyError:
            return None
        return _CallFacts(info.params, info.input_memory_type, info.output_memory_type, info.special_inputs, info.summary)
    func = call.resolve()
    return _CallFacts(
        describe_parameters(func),
        str(getattr(func, "input_memory_type", "")),
        str(getattr(func, "output_memory_type", "")),
        tuple(get_special_inputs(func)),
        summary_line(func),
    )


def _signature(step: StepModel) -> Any:
    """What the form shows of a step; a change from outside the form rebuilds it."""
    return (
        step.name,
        step.enabled,
        step.variable_components,
        step.group_by,
        tuple((key, tuple((c.function, tuple(sorted((k, repr(v)) for k, v in c.kwargs.items()))) for c in chain)) for key, chain in step.chains.items()),
    )

