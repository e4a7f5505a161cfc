"""The form of the selected step, generated from the registry's parameter metadata.

The form has a header (the step's number and name, its variable components,
its group-by component and the "one chain per value" switch), then one section
per function: a magicgui form per function, labelled ``func[i]`` in a chain
and grouped under ``func['k']`` per group value. Numbers get spin boxes bounded
by the parameter's ``Bounds``, ``Literal``/``Enum`` parameters combo boxes,
booleans check boxes; other values (tuples, ``None``-able values) a line edit
that takes a Python literal. Units are in the labels ("sigma (px)").

Every widget is registered under the compiler's place path of what it shows
(``("func", 1, "kwargs", "sigma")``, ``("variable_components",)``, ...);
:meth:`StepEditor.widget_for` gives a diagnostic's ``path`` the widget of its
longest registered prefix, which is how diagnostics reach their field (no
field string is parsed). Memory types and special-input links come from the
builder's last :func:`plateflow.analyze` result (:meth:`StepEditor.set_analysis`).
Text typed into a literal field that is not a Python literal stays in the
document as an invalid value: the builder reports it as an error on the field.
"""

from __future__ import annotations

import ast
import enum
import html
from collections.abc import Callable, Mapping, Sequence
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
from plateflow.special_io import get_special_inputs, get_special_outputs

from ._model import EDITABLE_COMPONENTS, CallModel, PipelineModel, StepModel
from ._style import clear_mark, mark_widget, memory_badge_label

FieldPath = tuple[Any, ...]

__all__ = ["StepEditor", "param_widget", "param_label", "spin_decimals"]

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
        spin.native.setDecimals(spin_decimals(low, high))
        return spin
    text = value if annotation is str and isinstance(value, str) else repr(value)
    widget = LineEdit(value=text, label=label, tooltip=f"{tooltip}\n(a Python literal, e.g. 1.5, (3, 3), None)" if annotation is not str else tooltip)
    return widget


def spin_decimals(low: float, high: float) -> int:
    """Decimals a float spin box shows (and the value it saves is rounded to)."""
    return 3 if high - low <= 2 else 2


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
        self.analysis: Any = None
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
        self.entry_remove_buttons: dict[str, QPushButton] = {}
        self.entry_add_buttons: dict[str, QPushButton] = {}
        self.call_boxes: dict[tuple[str | None, int], QGroupBox] = {}
        self.call_badges: dict[FieldPath, QLabel] = {}
        self.param_widgets: dict[tuple[str | None, int, str], ValueWidget] = {}
        self.unknown_kwarg_rows: dict[tuple[str | None, int, str], QWidget] = {}
        self.widgets_by_path: dict[FieldPath, QWidget] = {}
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

    def set_analysis(self, analysis: Any) -> None:
        """Show the memory types and special-input links of the compiler's last result (no rebuild)."""
        self.analysis = analysis
        self._update_flow()

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

    def _flow(self) -> Any:
        """The analysis' flow of the shown step (``None``: disabled, or not analysed yet)."""
        step = self.step()
        if step is None or self.analysis is None or not step.enabled:
            return None
        index = [s.step_id for s in self.model.enabled_steps()].index(step.step_id)
        if index >= len(self.analysis.steps):
            return None
        return self.analysis.steps[index]

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
        self._last_marks = None
        self._forms = []
        self.variable_box = self.group_by_combo = self.per_group_check = self.pattern_box = None
        self.variable_checks, self.special_input_labels, self.special_output_labels = {}, {}, {}
        self.entry_boxes, self.call_boxes, self.param_widgets, self.unknown_kwarg_rows = {}, {}, {}, {}
        self.entry_remove_buttons, self.entry_add_buttons, self.call_badges, self.widgets_by_path = {}, {}, {}, {}
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
        self.widgets_by_path[()] = self.header_label
        enabled_ids = [s.step_id for s in self.model.enabled_steps()]
        number = f"Step {enabled_ids.index(step.step_id) + 1}" if step.step_id in enabled_ids else "Disabled step"
        self.header_label.setText(f"<b>{number}: {html.escape(step.name)}</b>")
        body.addWidget(self._components_box(step))
        io_box = self._special_io_box(step)
        if io_box is not None:
            body.addWidget(io_box)
        self.pattern_box = QWidget(self._body)
        pattern_layout = QVBoxLayout(self.pattern_box)
        pattern_layout.setContentsMargins(0, 0, 0, 0)
        if step.per_group:
            for key in step.chains:
                pattern_layout.addWidget(self._entry_box(step, key))
            # Values of the plate the step has no entry for (one removed, or a pipeline written for another plate).
            for key in self.components.get(step.group_by or "", ()):
                if key not in step.chains:
                    add = QPushButton(f"Add {self._entry_title(step, key)}", self.pattern_box)
                    add.setToolTip(f"This step also processes {self._entry_title(step, key)}, with a copy of the first entry's functions")
                    add.clicked.connect(lambda _=False, k=key: self.model.add_entry(step.step_id, k))
                    self.entry_add_buttons[key] = add
                    pattern_layout.addWidget(add)
        else:
            for index in range(len(step.chains[None])):
                pattern_layout.addWidget(self._call_box(step, None, index, self.pattern_box))
        single = not step.per_group and len(step.chains[None]) == 1
        # "func" names the whole pattern; for a single function that is its section.
        self.widgets_by_path[("func",)] = self.call_boxes[(None, 0)] if single else self.pattern_box
        body.addWidget(self.pattern_box)
        body.addStretch(1)
        self._update_flow()

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
        self.widgets_by_path[("variable_components",)] = self.variable_box
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
        self.widgets_by_path[("group_by",)] = self.group_by_combo
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

    def _special_io_box(self, step: StepModel) -> QWidget | None:
        inputs: list[str] = []
        outputs: list[str] = []
        for _, _, call in step.calls():
            info = _info(call)
            if info is None:
                continue
            inputs += [n for n in info.special_inputs if n not in inputs]
            outputs += [n for n in info.special_outputs if n not in outputs]
        if not (inputs or outputs):
            return None
        box = QWidget(self._body)
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        for name in inputs:
            label = QLabel(name, box)
            label.setToolTip(f"special input '{name}': loaded from the step that produces it")
            self.special_input_labels[name] = label
            self.widgets_by_path[("special_inputs", name)] = label
            layout.addWidget(label)
        for name in outputs:
            label = QLabel(f"gives {name}", box)
            label.setToolTip(f"special output '{name}': later steps can take it as a special input")
            self.special_output_labels[name] = label
            self.widgets_by_path[("special_outputs", name)] = label
            layout.addWidget(label)
        layout.addStretch(1)
        return box

    def _update_flow(self) -> None:
        """Texts that come from the analysis: where special inputs come from, who takes the outputs, call badges."""
        flow = self._flow()
        for name, label in self.special_input_labels.items():
            link = flow.special_inputs.get(name) if flow is not None else None
            if link is None or link.producer_step_index is None:
                label.setText(f"{name} <- (no step produces it)" if flow is not None else name)
            elif link.same_step:
                label.setText(f"{name} <- this step's earlier function")
            else:
                label.setText(f"{name} <- step {link.producer_step_index + 1}")
        for name, label in self.special_output_labels.items():
            consumers = flow.special_outputs.get(name, ()) if flow is not None else ()
            to = f" -> step {', '.join(str(i + 1) for i in consumers)}" if consumers else ""
            label.setText(f"gives {name}{to}")
        calls = {call.path: call for call in flow.calls} if flow is not None else {}
        for path, badge in self.call_badges.items():
            call = calls.get(path)
            if call is None or not call.input_memory_type:
                continue
            memory = call.input_memory_type
            if call.output_memory_type and call.output_memory_type != memory:
                memory += f" -> {call.output_memory_type}"
            badge.setText(memory)

    def _entry_title(self, step: StepModel, key: str) -> str:
        title = f"{step.group_by or 'group'} {key}"
        if step.group_by == "channel" and key in self.channel_names:
            title += f" ({self.channel_names[key]})"
        return title

    def _entry_box(self, step: StepModel, key: str) -> QGroupBox:
        box = QGroupBox(self._entry_title(step, key), self.pattern_box)
        layout = QVBoxLayout(box)
        top = QHBoxLayout()
        top.addStretch(1)
        remove = QPushButton(f"Remove {self._entry_title(step, key)}", box)
        remove.setToolTip(f"This step no longer processes {self._entry_title(step, key)}")
        remove.setEnabled(len(step.chains) > 1)
        remove.clicked.connect(lambda _=False, k=key: self.model.remove_entry(step.step_id, k))
        top.addWidget(remove)
        self.entry_remove_buttons[key] = remove
        layout.addLayout(top)
        for index in range(len(step.chains[key])):
            layout.addWidget(self._call_box(step, key, index, box))
        add = QPushButton("Add the selected function here", box)
        add.clicked.connect(lambda _=False, k=key: self._add_selected_to_chain(k))
        layout.addWidget(add)
        self.entry_boxes[key] = box
        self.widgets_by_path.setdefault(("func", key), box)
        return box

    def _call_title(self, step: StepModel, key: str | None, index: int) -> str:
        call = step.chains[key][index]
        shown_name = call.function if call.registered else f"{call.function} (not in the registry)"
        chain = step.chains[key]
        if len(chain) > 1:
            return f"function {index + 1} of {len(chain)}: {shown_name}"
        return shown_name

    def _call_box(self, step: StepModel, key: str | None, index: int, parent: QWidget) -> QGroupBox:
        call = step.chains[key][index]
        chain_length = len(step.chains[key])
        path = step.path(key, index)
        box = QGroupBox(self._call_title(step, key, index), parent)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 4, 6, 4)
        top = QHBoxLayout()
        info = _info(call)
        if info is not None:
            memory = info.input_memory_type
            if info.output_memory_type != info.input_memory_type:
                memory += f" -> {info.output_memory_type}"
            badge = memory_badge_label(memory, box)
            self.call_badges[path] = badge
            top.addWidget(badge)
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
                    if param.name in call.invalid and isinstance(widget, LineEdit):
                        widget.value = call.invalid[param.name]
                    widget.changed.connect(lambda value, p=param, w=widget: self._on_param_changed(key, index, p, w))
                    self.param_widgets[(key, index, param.name)] = widget
                    self.widgets_by_path[(*path, "kwargs", param.name)] = widget.native
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
        self.widgets_by_path.setdefault(path, box)
        return box

    def _unknown_kwarg_row(self, step: StepModel, key: str | None, index: int, name: str, value: Any, parent: QWidget) -> QWidget:
        row = QWidget(parent)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        label = QLabel(f"{name} = {value!r}  (not a parameter of this function)", row)
        layout.addWidget(label)
        layout.addStretch(1)
        remove = QPushButton("Remove", row)
        remove.setToolTip(f"Remove the keyword '{name}'")
        remove.clicked.connect(lambda _=False: self.model.remove_kwarg(step.step_id, key, index, name))
        layout.addWidget(remove)
        self.unknown_kwarg_rows[(key, index, name)] = row
        self.widgets_by_path[(*step.path(key, index), "kwargs", name)] = label
        return row

    # -- form -> model ----------------------------------------------------------------------
    def _on_param_changed(self, key: str | None, index: int, param: ParamInfo, widget: ValueWidget) -> None:
        step = self.step()
        if step is None:
            return
        if isinstance(widget, LineEdit) and param.annotation is not str:
            text = widget.value
            try:
                value = ast.literal_eval(text) if text.strip() else None
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                with self._editing():
                    self.model.set_invalid_text(step.step_id, key, index, param.name, text)
                return
            if value is None and param.required:
                with self._editing():
                    self.model.set_invalid_text(step.step_id, key, index, param.name, text)
                return
        elif isinstance(widget, FloatSpinBox):
            # The spin box shows a few decimals; save what it shows, not the float noise of its steps.
            value = round(float(widget.value), widget.native.decimals())
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
    def widget_for(self, path: Sequence[Any]) -> QWidget | None:
        """The widget of the longest registered prefix of a diagnostic's ``path`` (``None``: no step shown)."""
        place = tuple(path)
        while place not in self.widgets_by_path and place:
            place = place[:-1]
        return self.widgets_by_path.get(place)

    def mark(self, marks: list[tuple[FieldPath, str, str]]) -> None:
        """Show ``(path, severity, text)`` marks on the form; earlier marks are cleared."""
        if (marks, [id(w) for w in self._marked]) == getattr(self, "_last_marks", None):
            return  # the same marks on the same widgets: restyling them would only cost a repolish
        for widget in self._marked:
            clear_mark(widget)
        self._marked = []
        grouped: dict[int, tuple[QWidget, list[str], list[str]]] = {}
        for path, severity, text in marks:
            widget = self.widget_for(path)
            if widget is None:
                continue
            entry = grouped.setdefault(id(widget), (widget, [], []))
            entry[1].append(severity)
            entry[2].append(text)
        for widget, severities, texts in grouped.values():
            mark_widget(widget, "error" if "error" in severities else "warning", texts)
            self._marked.append(widget)
        self._last_marks = (marks, [id(w) for w in self._marked])

    def focus(self, path: Sequence[Any]) -> QWidget | None:
        """Give the keyboard focus to the widget of ``path`` (returns it)."""
        widget = self.widget_for(path)
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
    special_outputs: tuple[str, ...]
    summary: str


def _info(call: CallModel) -> _CallFacts | None:
    """The function's parameters and declared types (``None`` for an unknown registry name)."""
    if call.registered:
        try:
            info = registry.info(call.function)
        except KeyError:
            return None
        return _CallFacts(info.params, info.input_memory_type, info.output_memory_type, info.special_inputs, info.special_outputs, info.summary)
    func = call.resolve()
    return _CallFacts(
        describe_parameters(func),
        str(getattr(func, "input_memory_type", "")),
        str(getattr(func, "output_memory_type", "")),
        tuple(get_special_inputs(func)),
        tuple(get_special_outputs(func)),
        summary_line(func),
    )


def _signature(step: StepModel) -> Any:
    """What the form shows of a step; a change from outside the form rebuilds it."""
    return (
        step.name,
        step.enabled,
        step.variable_components,
        step.group_by,
        tuple(
            (key, tuple((c.function, tuple(sorted((k, repr(v)) for k, v in c.kwargs.items())), tuple(sorted(c.invalid.items()))) for c in chain))
            for key, chain in step.chains.items()
        ),
    )
