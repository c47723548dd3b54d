"""`when` expressions: does a guarded task run? Pure.

Tekton's `input` is a string, `values` strings (an item `$(params.arr[*])` stands for
the array's items); `in` is true when the input is one of the values, `notin` when it
is none of them. A `cel` expression is evaluated, variables put in first, by a CEL
library (common-expression-language). Every expression of a task must be true for it
to run.
"""

from __future__ import annotations

from amimesh.pipelines.values import Values
from amimesh.resources import cel_ext
from amimesh.resources import tekton as tk


class CelError(ValueError):
    """A `cel` expression that does not evaluate to a boolean (Tekton then fails the
    PipelineRun: CELEvaluationFailed)."""


def evaluate(w: tk.WhenExpression, values: Values) -> bool:
    """One expression, with `values` put into its input and values (or its CEL)."""
    if w.cel:
        return _cel(values.string(w.cel))
    given = values.string(w.input)
    allowed = values.items(w.values)
    found = given in allowed
    return found if w.operator != "notin" else not found


def _cel(expression: str) -> bool:
    cel = cel_ext.load()  # loaded when a Pipeline uses CEL

    try:
        result = cel.evaluate(expression)
    except (ValueError, TypeError, RuntimeError) as err:
        raise CelError(str(err)) from None
    if not isinstance(result, bool):
        raise CelError(f"The CEL expression {expression} is not evaluated to a boolean")
    return result


def allows(when: list[tk.WhenExpression], values: Values) -> bool:
    return all(evaluate(w, values) for w in when)
