"""Whether a feedback label fits the model it labels (pure).

A label is the true value of one row's prediction, so it must be the same kind of value the
model predicts, as the version's signature describes it (what an MLflow or Evidently user
expects: a target column of the same type as the prediction column):

- a classifier whose signature lists its classes: one of them, compared the way JSON carries
  them: an int class matches ``1`` or ``1.0`` (never ``true``), a float class any equal number,
  a string class the same string, a bool class ``true``/``false``. A well-typed value that is
  not a class (``2`` or ``"yes"`` for classes 0/1) is refused too: the classes are every label
  the model was fitted on, so such a label can only be an encoding mistake (1-based ids, "yes"
  for 1) that would silently drag accuracy down, and the sender is best told at once;
- otherwise by its outputs: a string for text outputs, a boolean for boolean ones, and a finite
  number for anything else (a regressor);
- with no signature at all: a string, a finite number or a boolean.

Never null, an object or an array (a per-row list of labels is unpacked by the caller). The
server refuses a label that does not fit (``POST /feedback``, 422); monitoring skips one already
in a log and counts it.

Example:
    >>> rule = label_rule(Signature((ColumnSpec("age", "int64"),), classes=(0, 1)))
    >>> rule.problem(1.0), rule.canonical(1.0), rule.problem("cat")
    (None, 1, "expected one of the model's classes (0, 1), got 'cat'")
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segue.models.specs import Signature

__all__ = ["LabelRule", "label_rule"]

#: Classes shown in a message before it says how many there are.
_SHOWN = 10
#: Output column names that hold the predicted label when a model returns several columns.
_LABEL_COLUMNS = ("predict", "label", "prediction")


@dataclass(frozen=True)
class LabelRule:
    """What a label of one model must be: ``kind`` is ``"class"`` (one of ``classes``),
    ``"number"``, ``"string"``, ``"boolean"`` or ``"scalar"`` (any of those three)."""

    kind: str
    classes: tuple[str | int | float | bool, ...] = ()
    _numbers: dict[float, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _strings: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _bools: dict[bool, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for c in self.classes:  # bools apart: True == 1 in Python, not in JSON
            if isinstance(c, bool):
                self._bools[c] = c
            elif isinstance(c, (int, float)):
                self._numbers[c] = c
            else:
                self._strings[str(c)] = c

    @property
    def expected(self) -> str:
        """What a label must be, as an error message says it."""
        if self.kind == "class":
            return f"one of the model's classes ({show_classes(self.classes)})"
        return {
            "number": "a finite number (the model is a regressor)",
            "string": "a string (the model predicts text)",
            "boolean": "true or false (the model predicts booleans)",
        }.get(self.kind, "a string, a finite number or a boolean")

    @property
    def reason(self) -> str:
        """Why a label was skipped, in a count: ``"3 labels skipped: <reason>"``."""
        if self.kind == "class":
            return f"not a class of the model ({show_classes(self.classes)})"
        return {
            "number": "not a finite number",
            "string": "not a string",
            "boolean": "not a boolean",
        }.get(self.kind, "not a string, a finite number or a boolean")

    def problem(self, value: Any) -> str | None:
        """None if ``value`` (a parsed JSON value) fits, else why not, e.g. ``"expected one
        of the model's classes (0, 1), got 'cat'"``."""
        if self.fits(value):
            return None
        return f"expected {self.expected}, got {describe(value)}"

    def fits(self, value: Any) -> bool:
        """Whether ``value`` is a label of this model."""
        if self.kind == "class":
            return _lookup(self, value) is not _MISSING
        if isinstance(value, bool):
            return self.kind in ("boolean", "scalar")
        if isinstance(value, (int, float)):
            return self.kind in ("number", "scalar") and math.isfinite(value)
        if isinstance(value, str):
            return self.kind in ("string", "scalar")
        return False

    def canonical(self, value: Any) -> Any:
        """``value`` as the model's own class (``1.0`` -> ``1`` for an int class); other
        kinds unchanged. Call it on values that :meth:`fits`."""
        if self.kind != "class":
            return value
        found = _lookup(self, value)
        return value if found is _MISSING else found


def label_rule(signature: Signature | None) -> LabelRule:
    """The :class:`LabelRule` of a model with this signature (see the module docs)."""
    if signature is None:
        return LabelRule("scalar")
    if signature.classes is not None:
        return LabelRule("class", tuple(signature.classes))
    return LabelRule(_output_kind(signature.outputs))


def show_classes(classes: tuple[Any, ...]) -> str:
    """The classes as JSON, the first few then how many in all: ``0, 1`` or ``"a", "b"``."""
    shown = ", ".join(json.dumps(c) for c in classes[:_SHOWN])
    return shown if len(classes) <= _SHOWN else f"{shown}, … {len(classes)} in all"


def describe(value: Any) -> str:
    """A parsed JSON value in an error: ``'cat'``, ``2``, ``null``, ``an object``, …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, float, str)):
        text = repr(value)
        return text if len(text) <= 40 else f"{text[:37]}…"
    return type(value).__name__


_MISSING = object()


def _lookup(rule: LabelRule, value: Any) -> Any:
    if isinstance(value, bool):
        return rule._bools.get(value, _MISSING)
    if isinstance(value, (int, float)):
        return rule._numbers.get(value, _MISSING)  # NaN equals nothing: never found
    if isinstance(value, str):
        return rule._strings.get(value, _MISSING)
    return _MISSING


def _output_kind(outputs: Any) -> str:
    from segue.models.specs import TensorSpec

    if outputs is None:
        return "number"  # no outputs recorded: scored as a regressor (no classes)
    if isinstance(outputs, TensorSpec):
        dtype = outputs.dtype
    else:
        columns = {c.name: c.dtype for c in outputs}
        named = [columns[n] for n in _LABEL_COLUMNS if n in columns]
        if len(columns) == 1:
            dtype = next(iter(columns.values()))
        elif named:
            dtype = named[0]
        else:
            return "scalar"
    if dtype == "string":
        return "string"
    if dtype == "bool":
        return "boolean"
    if dtype.startswith(("int", "uint", "float")):
        return "number"
    return "scalar"  # categories, times: any scalar
