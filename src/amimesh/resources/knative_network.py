"""Knative's networking settings that shape a route's names: `config-network` in
`knative-serving`, read as knative/networking's `pkg/config` reads them.

    domain-template: "{{.Name}}.{{.Namespace}}.{{.Domain}}"   # a route's external host
    tag-template: "{{.Tag}}-{{.Name}}"                         # a tag's route name
    default-external-scheme: "http"                            # the scheme of its URL
    http-protocol: "enabled"                                   # enabled|disabled|redirected

(and the older camel-case keys `domainTemplate`, `tagTemplate`, `defaultExternalScheme`,
`httpProtocol`, which the new keys override). The templates are Go's `text/template`;
Ami executes the part of it these templates use: literal text, fields (`.Name`,
`.Namespace`, `.Domain`, `.Tag`; `.Annotations.KEY`, `.Labels.KEY`), `index .Annotations
"KEY"` (and of `.Labels`), and the `{{-`/`-}}` trims. Anything else is refused with the
key, as is a domain template whose result is not a host name (Knative's check).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

CONFIG_NAME = "config-network"
DEFAULT_DOMAIN_TEMPLATE = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
DEFAULT_TAG_TEMPLATE = "{{.Tag}}-{{.Name}}"
HTTP_PROTOCOLS = ("enabled", "disabled", "redirected")
MAX_TEMPLATE = 1024

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_./-]+))?$")
_INDEX = re.compile(r'^index\s+\.(Annotations|Labels)\s+"([^"\\]*)"$')
# What Knative's check asks of a sample result (`https://` + it parsed as a URL): a
# host and no path, query or user part; annotations may make it anything else.
_HOST = re.compile(r"^[^/?#@\s]+$")
_NO_VALUE = "<no value>"  # what Go prints for a missing map key


class NetworkConfigError(ValueError):
    """A `config-network` key that cannot be read; `key` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and actions, in order."""

    text: str
    parts: tuple[tuple[str, str, str], ...]  # (literal, "field"|"index"|"", argument)

    def execute(self, values: Mapping[str, object]) -> str:
        out: list[str] = []
        for literal, kind, arg in self.parts:
            out.append(literal)
            if kind == "field":
                out.append(_field(values, arg))
            elif kind == "index":
                mapping, _, key = arg.partition("\0")
                found = values.get(mapping)
                value = found.get(key) if isinstance(found, Mapping) else None
                out.append("" if value is None else str(value))
        return "".join(out)


def parse_template(text: str, key: str) -> Template:
    """`text` as a Go template of the subset above; `NetworkConfigError` naming `key`."""
    if len(text) > MAX_TEMPLATE:
        raise NetworkConfigError(key, f"longer than {MAX_TEMPLATE} characters")
    parts: list[tuple[str, str, str]] = []
    pos = 0
    for m in _ACTION.finditer(text):
        literal = text[pos : m.start()]
        if m.group(1):
            literal = literal.rstrip()
        action = m.group(2).strip()
        field = _FIELD.match(action)
        index = _INDEX.match(action)
        if field:
            parts.append((literal, "field", action[1:]))
        elif index:
            parts.append((literal, "index", f"{index.group(1)}\0{index.group(2)}"))
        else:
            raise NetworkConfigError(
                key,
                f"template action {{{{{action}}}}} is not one Ami runs: use fields such as "
                '{{.Name}} or {{index .Annotations "key"}}',
            )
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = text[pos:]
    if "{{" in tail or "}}" in tail:
        raise NetworkConfigError(key, f"unbalanced template braces in {text!r}")
    parts.append((tail, "", ""))
    return Template(text, tuple(parts))


def _field(values: Mapping[str, object], path: str) -> str:
    name, _, key = path.partition(".")
    if name not in values:
        raise KeyError(name)
    value = values[name]
    if key:
        value = value.get(key) if isinstance(value, Mapping) else None
        return _NO_VALUE if value is None else str(value)
    return str(value)


@dataclass(frozen=True)
class NetworkConfig:
    domain_template: Template
    tag_template: Template
    external_scheme: str = "http"
    http_protocol: str = "enabled"

    def host(
        self,
        name: str,
        namespace: str,
        domain: str,
        annotations: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """A route's (or a tag's route's) external host name."""
        values = {
            "Name": name,
            "Namespace": namespace,
            "Domain": domain,
            "Annotations": dict(annotations or {}),
            "Labels": dict(labels or {}),
        }
        return self.domain_template.execute(values)

    def tag_name(self, tag: str, name: str) -> str:
        """The name of a route's tag (its Service in the mesh, its host's first part)."""
        return self.tag_template.execute({"Tag": tag, "Name": name})


def default() -> NetworkConfig:
    return NetworkConfig(
        parse_template(DEFAULT_DOMAIN_TEMPLATE, "domain-template"),
        parse_template(DEFAULT_TAG_TEMPLATE, "tag-template"),
    )


def parse(data: Mapping[str, str]) -> NetworkConfig:
    """`config-network`'s data as Knative reads it; `NetworkConfigError` naming the key."""

    def value(key: str, legacy: str, fallback: str) -> tuple[str, str]:
        if key in data:
            return key, data[key]
        if legacy in data:
            return legacy, data[legacy]
        return key, fallback

    key, text = value("domain-template", "domainTemplate", DEFAULT_DOMAIN_TEMPLATE)
    domain = parse_template(text, key)
    try:
        sample = domain.execute(
            {
                "Name": "foo",
                "Namespace": "bar",
                "Domain": "baz.com",
                "Annotations": {},
                "Labels": {},
            }
        )
    except KeyError as e:
        raise NetworkConfigError(key, f"no field {e.args[0]!r} in a domain template") from None
    if not _HOST.match(sample):
        raise NetworkConfigError(
            key, f"must make a host name and nothing else; for foo.bar in baz.com: {sample!r}"
        )
    key, text = value("tag-template", "tagTemplate", DEFAULT_TAG_TEMPLATE)
    tag = parse_template(text, key)
    try:
        tag.execute({"Tag": "v2", "Name": "foo"})
    except KeyError as e:
        raise NetworkConfigError(key, f"no field {e.args[0]!r} in a tag template") from None
    key, scheme = value("default-external-scheme", "defaultExternalScheme", "http")
    if scheme not in ("http", "https"):
        raise NetworkConfigError(key, f"must be http or https, was {scheme!r}")
    key, protocol = value("http-protocol", "httpProtocol", "enabled")
    if protocol.lower() not in HTTP_PROTOCOLS:
        raise NetworkConfigError(
            key, f"httpProtocol {protocol} in config-network ConfigMap is not supported"
        )
    return NetworkConfig(domain, tag, scheme, protocol.lower())
