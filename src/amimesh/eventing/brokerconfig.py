"""A Broker's own settings, as Knative lets a broker class read them: the ConfigMap
its `spec.config` names, else the one Knative's `config-br-defaults` gives its
namespace (`namespaceDefaults.NS`, else `clusterDefault`: `brokerClass`, `apiVersion`,
`kind`, `name`, `namespace`, `delivery`). Pure.

The ConfigMap's `data` (Ami's keys; every one optional):

    servers: nats://10.0.0.1:4222,...   the NATS servers of this broker's stream
                                        (default: the mesh's, embedded or config-nats)
    credentials: FILE                   `user:password` for `servers` (as config-nats)
    auth.secret.ref.name: SECRET        or a Secret of the ConfigMap's namespace with
                                        the keys `user` and `password`
    replicas: "3"                       of the stream, 1 to 5 (default: the mesh's)
    retention: interest | limits        kept until every trigger took it (default), or
                                        until `maxAge` / `maxBytes` say
    maxAge: P7D                         events older are dropped (ISO-8601; default: none)
    maxBytes: "1073741824"              the stream's size, 1 MiB to 1 TiB (default 1 GiB);
                                        a full broker refuses new events (503)

Anything else in `data` is an error of the ConfigMap, with its field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from amimesh.eventing.addressing import Problem
from amimesh.eventing.config import NAMESPACE
from amimesh.resources import iso8601, yaml_text
from amimesh.resources import knative_eventing as ke
from amimesh.resources.kube import ConfigMap, Secret
from amimesh.resources.meta import Resource

BR_DEFAULTS = "config-br-defaults"
BR_DEFAULTS_KEY = "default-br-config"
DEFAULT_CLASS = "MTChannelBasedBroker"  # Knative's default broker class
MAX_REPLICAS = 5
MIN_BYTES = 1 << 20
MAX_BYTES = 1 << 40
DEFAULT_BYTES = 1 << 30
SECRET_KEY = "auth.secret.ref.name"
KEYS = ("servers", "credentials", SECRET_KEY, "replicas", "retention", "maxAge", "maxBytes")
RETENTIONS = ("interest", "limits")
ENTRY_KEYS = ("brokerClass", "apiVersion", "kind", "name", "namespace", "delivery")


@dataclass(frozen=True)
class StreamSettings:
    """What a Broker's stream is made with, and where it lives."""

    servers: str = ""  # comma-separated; "": the mesh's server
    credentials: str = ""  # a file holding `user:password`, "" for none
    secret: tuple[str, str] | None = None  # (namespace, name) of a Secret instead
    replicas: int = 0  # 0: the mesh's
    retention: str = "interest"
    max_age_s: float = 0.0  # 0: no limit
    max_bytes: int = DEFAULT_BYTES


@dataclass(frozen=True)
class Defaults:
    """What `config-br-defaults` gives a namespace's Brokers."""

    broker_class: str = DEFAULT_CLASS
    config: ke.KReference | None = None
    delivery: Any = None  # the raw `delivery`, None for none
    where: str = ""  # its field path in the ConfigMap


def _configmap(resources: Iterable[Resource], namespace: str, name: str) -> ConfigMap | None:
    return next(
        (
            r
            for r in resources
            if isinstance(r, ConfigMap) and (r.namespace, r.name) == (namespace, name)
        ),
        None,
    )


def br_defaults(resources: Sequence[Resource], namespace: str) -> Defaults | Problem | None:
    """The namespace's entry of `config-br-defaults` (None without the ConfigMap)."""
    cm = _configmap(resources, NAMESPACE, BR_DEFAULTS)
    if cm is None:
        return None
    field = f"data.{BR_DEFAULTS_KEY}"
    docs = yaml_text.documents(cm.data.get(BR_DEFAULTS_KEY, ""))
    data: Any = docs[0].data if docs and isinstance(docs[0], yaml_text.Document) else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Problem(
            cm.ref, field, "must be YAML: clusterDefault, namespaceDefaults", "BadConfig"
        )
    unknown = sorted(set(data) - {"clusterDefault", "namespaceDefaults"})
    if unknown:
        return Problem(cm.ref, f"{field}: {unknown[0]}", "is not a field here", "BadConfig")
    per_namespace = data.get("namespaceDefaults") or {}
    if not isinstance(per_namespace, dict):
        return Problem(cm.ref, f"{field}: namespaceDefaults", "must be a map", "BadConfig")
    where = f"{field}: namespaceDefaults.{namespace}"
    chosen = per_namespace.get(namespace)
    if chosen is None:
        chosen, where = data.get("clusterDefault") or {}, f"{field}: clusterDefault"
    if not isinstance(chosen, dict):
        return Problem(cm.ref, where, "must be a map", "BadConfig")
    unknown = sorted(set(chosen) - set(ENTRY_KEYS))
    if unknown:  # newer Knative's per-class `brokerClasses` among them
        message = "is not supported here: " + ", ".join(ENTRY_KEYS)
        return Problem(cm.ref, f"{where}.{unknown[0]}", message, "BadConfig")
    broker_class = chosen.get("brokerClass", DEFAULT_CLASS)
    if not isinstance(broker_class, str) or not broker_class:
        return Problem(cm.ref, f"{where}.brokerClass", "must be a name", "BadConfig")
    config = None
    ref_fields = {k: chosen[k] for k in ("apiVersion", "kind", "name", "namespace") if k in chosen}
    if ref_fields:
        try:
            config = ke.KReference.model_validate(ref_fields)
        except ValueError as e:
            return Problem(cm.ref, where, " ".join(str(e).split())[:300], "BadConfig")
        problem = _config_kind(config)
        if problem:
            return Problem(cm.ref, f"{where}.kind", problem, "BadConfig")
    return Defaults(broker_class, config, chosen.get("delivery"), where)


def _config_kind(ref: ke.KReference) -> str:
    if ref.kind != "ConfigMap" or ref.apiVersion not in ("", "v1"):
        return f"a broker's config is a v1 ConfigMap, got {ref.apiVersion or '?'} {ref.kind}"
    return ""


def broker_class(broker: ke.Broker, defaults: Defaults | None) -> str:
    """The Broker's class: its annotation, else the namespace's default."""
    written = broker.metadata.annotations.get(ke.BROKER_CLASS, "")
    return written or (defaults.broker_class if defaults is not None else DEFAULT_CLASS)


def stream_settings(
    broker: ke.Broker, resources: Sequence[Resource], defaults: Defaults | None
) -> StreamSettings | Problem:
    """The settings of the Broker's stream: from its `spec.config`, else from the
    namespace's default config; Knative's defaults without either."""
    ref = broker.spec.config
    where = "spec.config"
    if ref is None and defaults is not None and defaults.config is not None:
        ref, where = defaults.config, f"{BR_DEFAULTS}: {defaults.where}"
    if ref is None:
        return StreamSettings()
    problem = _config_kind(ref)
    if problem:
        return Problem(broker.ref, f"{where}.kind", problem, "BrokerConfigInvalid")
    namespace = ref.namespace or broker.namespace
    cm = _configmap(resources, namespace, ref.name)
    if cm is None:
        message = f'no ConfigMap "{ref.name}" in namespace "{namespace}"'
        return Problem(broker.ref, where, message, "BrokerConfigNotFound")
    return settings_of(cm, resources)


def settings_of(cm: ConfigMap, resources: Sequence[Resource]) -> StreamSettings | Problem:
    """A broker ConfigMap's `data`, checked key by key."""

    def bad(key: str, message: str) -> Problem:
        return Problem(cm.ref, f"data.{key}", message, "BrokerConfigInvalid")

    data: Mapping[str, str] = cm.data
    for key in data:
        if key not in KEYS:
            return bad(key, "is not a broker setting: " + ", ".join(KEYS))
    servers = [s.strip() for s in data.get("servers", "").split(",") if s.strip()]
    for s in servers:
        if not _nats_url(s):
            return bad("servers", f"{s!r} is not a nats://HOST:PORT URL")
    credentials = data.get("credentials", "").strip()
    secret_name = data.get(SECRET_KEY, "").strip()
    if (credentials or secret_name) and not servers:
        key = "credentials" if credentials else SECRET_KEY
        return bad(key, "needs servers: the mesh's own server takes only the mesh's user")
    if credentials and secret_name:
        return bad(SECRET_KEY, "one of credentials and auth.secret.ref.name, not both")
    secret = None
    if secret_name:
        found = next(
            (
                r
                for r in resources
                if isinstance(r, Secret) and (r.namespace, r.name) == (cm.namespace, secret_name)
            ),
            None,
        )
        if found is None:
            return bad(SECRET_KEY, f'no Secret "{secret_name}" in namespace "{cm.namespace}"')
        missing = [k for k in ("user", "password") if found.value(k) is None]
        if missing:
            return bad(SECRET_KEY, f'the Secret "{secret_name}" has no key {missing[0]!r}')
        secret = (cm.namespace, secret_name)
    replicas = 0
    if "replicas" in data:
        text = data["replicas"].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_REPLICAS:
            return bad("replicas", f"must be a whole number from 1 to {MAX_REPLICAS}, got {text!r}")
        replicas = int(text)
    retention = data.get("retention", "interest").strip()
    if retention not in RETENTIONS:
        return bad("retention", f"must be interest or limits, got {retention!r}")
    max_age = 0.0
    if "maxAge" in data:
        try:
            max_age = iso8601.parse(data["maxAge"].strip())
        except ValueError as e:
            return bad("maxAge", str(e))
        if max_age <= 0:
            return bad("maxAge", "must be more than zero")
    max_bytes = DEFAULT_BYTES
    if "maxBytes" in data:
        text = data["maxBytes"].strip()
        if not text.isdigit() or not MIN_BYTES <= int(text) <= MAX_BYTES:
            return bad("maxBytes", f"must be a number of bytes from 1 MiB to 1 TiB, got {text!r}")
        max_bytes = int(text)
    return StreamSettings(
        ",".join(servers), credentials, secret, replicas, retention, max_age, max_bytes
    )


def secret_credential(resources: Sequence[Resource], secret: tuple[str, str]) -> str:
    """`user:password` of a checked Secret."""
    found = next(r for r in resources if isinstance(r, Secret) and (r.namespace, r.name) == secret)
    user, password = found.value("user"), found.value("password")
    assert user is not None and password is not None
    return f"{user.decode()}:{password.decode()}"


def _nats_url(s: str) -> bool:
    parts = urlsplit(s)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme in ("nats", "tls") and bool(parts.hostname) and port is not None
