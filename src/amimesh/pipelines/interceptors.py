"""Tekton Triggers' interceptors Ami runs: `github` and `cel`. Pure: the secrets come
in through a lookup, the clock is never read.

    verdict = intercept(trigger.interceptors, event, namespace, secret_of)
    if verdict.stopped: ...          # verdict.message says why, in Tekton's words
    else: verdict.extensions         # what `cel` overlays added

`github`: a form-encoded body is refused; `eventTypes` must hold `X-GitHub-Event`;
with `secretRef`, `X-Hub-Signature-256` must be `sha256=` and the hex HMAC-SHA256 of
the raw body under the Secret's key, compared in constant time.

`cel`: `filter` must be true; each overlay's value goes under `extensions` at its
key. Expressions see `body`, `header` (canonical names, lists of values),
`requestURL` and `extensions`, and the functions Triggers adds (`celfuncs`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.pipelines import celfuncs
from amimesh.pipelines.triggers import Event
from amimesh.resources import tekton_triggers as tt

# (namespace, secret name, key) -> the secret's bytes, None when there is none.
SecretOf = Callable[[str, str, str], bytes | None]
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Verdict:
    stopped: bool
    message: str = ""
    extensions: Mapping[str, Any] = field(default_factory=dict)


def intercept(
    interceptors: Sequence[tt.TriggerInterceptor],
    event: Event,
    namespace: str,
    secret_of: SecretOf,
) -> Verdict:
    """Run the chain in order; the first that stops the event stops the trigger."""
    extensions: dict[str, Any] = {}
    for i in interceptors:
        try:
            found = tt.interceptor_of(i)
        except ValueError as err:
            return Verdict(True, str(err))
        if isinstance(found, tt.GithubInterceptor):
            why = github(found, event, namespace, secret_of)
        else:
            why = cel_interceptor(found, event, namespace, secret_of, extensions)
        if why is not None:
            return Verdict(True, why)
    return Verdict(False, "", extensions)


def signature(secret: bytes, body: bytes) -> str:
    """`X-Hub-Signature-256` as GitHub sends it for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def github(
    p: tt.GithubInterceptor, event: Event, namespace: str, secret_of: SecretOf
) -> str | None:
    """None when the event passes; else why not, as Tekton's interceptor says it."""
    if event.header("Content-Type") == FORM:
        return "form parameter encoding not supported, please change the hook to send JSON payloads"
    actual = event.header("X-Github-Event")
    if p.eventTypes is not None and actual not in p.eventTypes:
        return f"event type {actual} is not allowed"
    if p.secretRef is None:
        return None
    if not p.secretRef.secretKey:
        return "github interceptor secretRef.secretKey is empty"
    given = event.header("X-Hub-Signature-256")
    if not given:
        return "no X-Hub-Signature-256 header set"
    secret = secret_of(namespace, p.secretRef.secretName, p.secretRef.secretKey)
    if secret is None:
        return (
            f"error getting secret: secret {p.secretRef.secretName} "
            f"has no key {p.secretRef.secretKey}"
        )
    want = signature(secret, event.body)
    if not hmac.compare_digest(given.encode(errors="replace"), want.encode()):
        return "payload signature check failed"
    return None


def cel_interceptor(
    p: tt.CelInterceptor,
    event: Event,
    namespace: str,
    secret_of: SecretOf,
    extensions: dict[str, Any],
) -> str | None:
    """None when the filter passes (the overlays then written into `extensions`)."""
    variables = {
        "body": event.data if event.data is not None else {},
        "header": {k: list(v) for k, v in event.headers.items()},
        "requestURL": event.url,
        "extensions": extensions,
    }
    # compareSecret reads the trigger's namespace's Secrets only, as Tekton does.
    env = celfuncs.Env(variables, lambda name, key, _ns: secret_of(namespace, name, key))
    if p.filter:
        try:
            result = env.evaluate(p.filter)
        except celfuncs.CelError as err:
            return f"error evaluating cel expression: {err}"
        if result is not True:
            if not isinstance(result, bool):
                return f"filter expression {p.filter} did not return a bool"
            return f"expression {p.filter} did not return true"
    for o in p.overlays:
        try:
            value = env.evaluate(o.expression)
        except celfuncs.CelError as err:
            return f"error evaluating cel expression: {err}"
        _put(extensions, o.key, value)
    return None


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    """`a.b` sets target["a"]["b"] (as Tekton's sjson path does)."""
    *parents, last = key.split(".")
    for p in parents:
        nxt = target.get(p)
        if not isinstance(nxt, dict):
            nxt = target[p] = {}
        target = nxt
    target[last] = value
