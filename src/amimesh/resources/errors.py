"""What a load returns: validated resources and errors that point at file, document and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from amimesh.resources.meta import Resource

# A location inside a document, as pydantic writes it: field names, list indexes, map keys.
Loc = tuple[str | int, ...]


class Issue(NamedTuple):
    """A semantic problem found in a validated resource, before it gets a file and line."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class ConfigError:
    """One thing a user must fix.

    `document` is the 0-based index of the YAML document in `file` and `line` the 1-based
    line where that document starts (or, for a YAML syntax error, the line of the error);
    both are None for errors about a whole file or source. `ref` is `Kind/namespace/name`
    when known, `field` a path such as `spec.http[0].route[1].weight`.
    """

    file: str
    document: int | None = None
    line: int | None = None
    ref: str = ""
    field: str = ""
    message: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f": document {self.document}"
            if self.line is not None:
                where += f" (line {self.line})"
        elif self.line is not None:
            where += f": line {self.line}"
        parts = [where, self.ref, self.field, self.message]
        return ": ".join(p for p in parts if p)


@dataclass(frozen=True)
class ParseResult:
    """Resources that validated, in document order, and errors for everything else.

    A document with any error contributes no resource.
    """

    resources: list[Resource] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors
