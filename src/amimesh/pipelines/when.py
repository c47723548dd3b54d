"""`when` expressions: does a guarded task run? Pure.

Tekton's `input` is a string, `values` strings (an item `$(params.arr[*])` stands for
the array's items); `in` is true when the input is one of the values, `notin` when it
is none of them. Every expression of a task must be true for it to run.
"""

from __future__ import annotations

from amimesh.pipelines.values import Values
from amimesh.resources import tekton as tk


def evaluate(w: tk.WhenExpression, values: Values) -> bool:
    """One expression, with `values` put into its input and values."""
    given = values.string(w.input)
    allowed = values.items(w.values)
    found = given in allowed
    return found if w.operator != "notin" else not found


def allows(when: list[tk.WhenExpression], values: Values) -> bool:
    return all(evaluate(w, values) for w in when)
