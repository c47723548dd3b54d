"""Parse YAML text (or already-decoded objects) into validated resources. Pure.

Each document goes through: YAML -> a mapping with apiVersion and kind -> the kind's
model (schema errors) -> the kind's checks (semantic errors). `kind: List` documents,
as kubectl writes them, contribute each of their `items`. The first definition of a
`Kind/namespace/name` wins; a later one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from amimesh.resources.errors import ConfigError, ParseResult
from amimesh.resources.explain import explain, locate
from amimesh.resources.fields import show
from amimesh.resources.meta import DEFAULT_NAMESPACE, Resource
from amimesh.resources.registry import KINDS, KindRegistry, UnknownKind
from amimesh.resources.yaml_text import Document, SyntaxProblem, documents, documents_in_bytes


@dataclass(frozen=True)
class _Where:
    file: str
    document: int | None
    line: int | None
    prefix: str = ""  # "items[2]." inside a List

    def error(self, message: str, *, ref: str = "", field: str = "") -> ConfigError:
        path = self.prefix + field if field else self.prefix.rstrip(".")
        return ConfigError(self.file, self.document, self.line, ref, path, message)

    def __str__(self) -> str:
        """`file: document 0 (line 1)`, as an error starts."""
        return str(ConfigError(self.file, self.document, self.line))


class Collector:
    """Accumulates resources and errors over many texts; rejects duplicate resources."""

    def __init__(self, kinds: KindRegistry = KINDS, *, default_namespace: str = "") -> None:
        """`default_namespace`: the namespace of documents that name none (an Argo CD
        Application's destination); empty: `default`, as everywhere else."""
        self._kinds = kinds
        self._namespace = default_namespace
        self._resources: list[Resource] = []
        self._errors: list[ConfigError] = []
        self._defined: dict[tuple[str, str, str], _Where] = {}

    def result(self) -> ParseResult:
        return ParseResult(list(self._resources), list(self._errors))

    def add_error(self, error: ConfigError) -> None:
        self._errors.append(error)

    def add_text(self, text: str, source: str) -> None:
        self._add_documents(documents(text), source)

    def add_bytes(self, data: bytes, source: str) -> None:
        """Add the resources of a file's or a request's raw content (UTF-8 YAML)."""
        self._add_documents(documents_in_bytes(data), source)

    def _add_documents(self, docs: list[Document | SyntaxProblem], source: str) -> None:
        for doc in docs:
            if isinstance(doc, Document):
                self.add_object(doc.data, source, document=doc.index, line=doc.line)
            else:
                self._errors.append(ConfigError(source, doc.index, doc.line, message=doc.message))

    def add_object(
        self, data: Any, source: str, *, document: int | None = None, line: int | None = None
    ) -> None:
        """Add one decoded document (a resource or a List); None (empty) adds nothing."""
        if data is None:
            return
        where = _Where(source, document, line)
        if isinstance(data, dict) and data.get("kind") == "List":
            self._add_list(data, where)
        else:
            self._add_one(data, where)

    def _add_list(self, data: dict[Any, Any], where: _Where) -> None:
        if data.get("apiVersion") != "v1":
            self._errors.append(where.error('a List must have apiVersion "v1"', field="apiVersion"))
            return
        extra = sorted(str(k) for k in data if k not in ("apiVersion", "kind", "items", "metadata"))
        for name in extra:
            self._errors.append(
                where.error(f'unknown field (Ami does not know "{name}" on List)', field=name)
            )
        items = data.get("items")
        if not isinstance(items, list):
            problem = "is required" if items is None else "must be a list"
            self._errors.append(where.error(problem, field="items"))
            return
        for i, item in enumerate(items):
            inner = _Where(where.file, where.document, where.line, f"items[{i}].")
            if isinstance(item, dict) and item.get("kind") == "List":
                self._errors.append(inner.error("a List cannot contain another List", field="kind"))
            else:
                self._add_one(item, inner)

    def _add_one(self, data: Any, where: _Where) -> None:
        if not isinstance(data, dict):
            got = show(data)
            self._errors.append(
                where.error(
                    f"must be a mapping with apiVersion, kind, metadata and spec, got {got}"
                )
            )
            return
        meta = data.get("metadata")
        if self._namespace and isinstance(meta, dict) and "namespace" not in meta:
            data = {**data, "metadata": {**meta, "namespace": self._namespace}}
        kind = data.get("kind")
        model = self._model_for(data, where, _ref(data, kind))
        if model is None:
            return
        ref = _ref(data, model.qualified_kind())
        try:
            resource = model.model_validate(data, by_alias=True, by_name=False)
        except ValidationError as exc:
            for path, text in explain(model, exc):
                self._errors.append(where.error(text, ref=ref, field=path))
            return
        issues = self._kinds.check(resource)
        for issue in issues:
            path = locate(model, issue.loc).path
            self._errors.append(where.error(issue.message, ref=resource.ref, field=path))
        if not issues:
            self._define(resource, where)

    def _model_for(self, data: dict[Any, Any], where: _Where, ref: str) -> type[Resource] | None:
        """The model for the document's apiVersion and kind, or None after adding errors."""
        fields = {"apiVersion": data.get("apiVersion"), "kind": data.get("kind")}
        for name, value in fields.items():
            if not isinstance(value, str) or not value:
                problem = "is required" if value is None else "must be a non-empty string"
                self._errors.append(where.error(problem, ref=ref, field=name))
        api_version, kind = fields["apiVersion"], fields["kind"]
        if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind):
            return None
        try:
            return self._kinds.resolve(api_version, kind).model
        except UnknownKind as err:
            self._errors.append(where.error(err.message, ref=ref, field=err.field))
            return None

    def _define(self, resource: Resource, where: _Where) -> None:
        first = self._defined.get(resource.key)
        if first is None:
            self._defined[resource.key] = where
            self._resources.append(resource)
            return
        self._errors.append(
            where.error(
                f"{resource.ref} is already defined in {first}",
                ref=resource.ref,
                field="metadata.name",
            )
        )


def _ref(data: dict[Any, Any], kind: Any) -> str:
    """`Kind/namespace/name` from raw data (`kind` as refs name it), or "" when kind or
    name is missing."""
    meta = data.get("metadata")
    if not isinstance(kind, str) or not isinstance(meta, dict):
        return ""
    name, namespace = meta.get("name"), meta.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(name, str) or not isinstance(namespace, str):
        return ""
    return f"{kind}/{namespace}/{name}"


def parse_documents(text: str, source: str, kinds: KindRegistry = KINDS) -> ParseResult:
    """Every resource in a (multi-document) YAML text; `source` names it in errors."""
    collector = Collector(kinds)
    collector.add_text(text, source)
    return collector.result()


def parse_bytes(data: bytes, source: str, kinds: KindRegistry = KINDS) -> ParseResult:
    """Every resource in raw UTF-8 YAML (a file's content, a request's body)."""
    collector = Collector(kinds)
    collector.add_bytes(data, source)
    return collector.result()


def parse_object(
    data: Any,
    source: str,
    *,
    document: int | None = None,
    line: int | None = None,
    kinds: KindRegistry = KINDS,
) -> ParseResult:
    """One decoded document (from JSON, or a Kubernetes watch): a resource or a List."""
    collector = Collector(kinds)
    collector.add_object(data, source, document=document, line=line)
    return collector.result()
