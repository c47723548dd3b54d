"""CloudEvents in and out of HTTP, through the CloudEvents SDK (`cloudevents` 2.x):
binary and structured mode, 1.0 and 0.3, and batches (`application/cloudevents-batch
+json`, which the SDK does not read: each item is read as a structured event). No I/O.

The SDK fills in a missing `id`, `specversion` or `time`; a broker must refuse an event
without them, so the required attributes are checked here before the SDK reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings.common import get_event_factory_for_version
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SPEC_VERSIONS = ("1.0", "0.3")
REQUIRED = ("id", "source", "type", "specversion")
_FORMAT = JSONFormat()


class InvalidEvent(ValueError):
    """Why a request holds no valid CloudEvent (the broker answers 400 with it)."""


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def is_batch(headers: Mapping[str, str]) -> bool:
    return _media_type(headers) == BATCH


Stamp = tuple[str, Callable[[Any], Any]]


def read_request(
    headers: Mapping[str, str], body: bytes, stamp: Stamp | None = None
) -> list[BaseCloudEvent]:
    """The events of a request (one, or a batch's): headers with lowercase names.
    `stamp` (an extension's name and a function of its value as sent, None when
    absent) sets that extension on each event as it is read: one event made, not a
    copy of it (in binary mode the value is a header, so a string)."""
    if is_batch(headers):
        items = _json(body)
        if not isinstance(items, list):
            raise InvalidEvent("a batch must be a JSON array of events")
        return [_structured_item(item, f"event {i}: ", stamp) for i, item in enumerate(items)]
    if any(k.startswith("ce-") for k in headers):
        if stamp is not None:
            name, value = stamp
            headers = {**headers, f"ce-{name}": str(value(headers.get(f"ce-{name}")))}
        return [_binary(headers, body)]
    if _media_type(headers) != STRUCTURED:
        raise InvalidEvent(
            "not a CloudEvent: binary mode needs ce-id, ce-source, ce-type and "
            "ce-specversion headers; structured mode the content type " + STRUCTURED
        )
    return [_structured_item(_json(body), "", stamp)]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise InvalidEvent(f"the body is not JSON: {e}") from None


def _binary(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    missing = [a for a in REQUIRED if not headers.get(f"ce-{a}")]
    if missing:
        raise InvalidEvent("missing required attribute(s): " + ", ".join(missing))
    _check_version(headers["ce-specversion"])
    try:
        return ce_http.from_binary(
            ce_http.HTTPMessage(headers=dict(headers), body=body),
            _FORMAT,
            get_event_factory_for_version(headers["ce-specversion"]),
        )
    except Exception as e:  # the SDK raises many kinds; each is a bad event
        raise InvalidEvent(_reason(e)) from None


def _structured_item(item: Any, where: str, stamp: Stamp | None = None) -> BaseCloudEvent:
    if not isinstance(item, dict):
        raise InvalidEvent(f"{where}an event must be a JSON object")
    if stamp is not None:
        name, value = stamp
        item = {**item, name: value(item.get(name))}
    missing = [a for a in REQUIRED if not item.get(a)]
    if missing:
        raise InvalidEvent(f"{where}missing required attribute(s): " + ", ".join(missing))
    _check_version(item["specversion"])
    try:
        return _FORMAT.read(
            get_event_factory_for_version(str(item["specversion"])), json.dumps(item).encode()
        )
    except Exception as e:  # the SDK raises many kinds; each is a bad event
        raise InvalidEvent(where + _reason(e)) from None


def _check_version(version: Any) -> None:
    if version not in SPEC_VERSIONS:
        raise InvalidEvent(f"specversion {json.dumps(version)} is not supported (1.0 or 0.3)")


def _reason(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


def to_bytes(event: BaseCloudEvent) -> bytes:
    """The event as it is stored: structured JSON."""
    return _FORMAT.write(event)


_V1 = get_event_factory_for_version("1.0")


def from_bytes(data: bytes) -> BaseCloudEvent:
    """A stored event: read as 1.0 (one parse), else as the version it says."""
    try:
        return _FORMAT.read(_V1, data)
    except CloudEventValidationError:
        item = json.loads(data)
        return _FORMAT.read(get_event_factory_for_version(str(item.get("specversion"))), data)


def to_http(
    event: BaseCloudEvent, mode: str = "binary", drop: tuple[str, ...] = ()
) -> tuple[dict[str, str], bytes]:
    """Headers and body to send `event` in binary or structured ("json") mode, without
    the attributes `drop` names."""
    if mode == "json":
        if drop:
            event = with_attributes(event, {}, drop=drop)
        msg = ce_http.to_structured(event, _FORMAT)
        return dict(msg.headers), msg.body
    msg = ce_http.to_binary(event, _FORMAT)
    # Binary mode: an attribute is a header of its own, so dropping one copies nothing.
    gone = {f"ce-{name}" for name in drop}
    return {k: v for k, v in msg.headers.items() if k.lower() not in gone}, msg.body


def with_attributes(
    event: BaseCloudEvent, set_: Mapping[str, Any], drop: tuple[str, ...] = ()
) -> BaseCloudEvent:
    """A copy of `event` with attributes set and others dropped."""
    attrs = {k: v for k, v in event.get_attributes().items() if k not in drop}
    attrs.update(set_)
    return type(event)(attributes=attrs, data=event.get_data())


def attributes_of(event: BaseCloudEvent) -> dict[str, str | int | bool]:
    """The event's context attributes as filters read them: integers and booleans as
    they are (an extension can be one), anything else as a string."""
    out: dict[str, str | int | bool] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        if isinstance(value, datetime):
            text = value.isoformat()
            out[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
        elif isinstance(value, bool | int):
            out[name] = value
        else:
            out[name] = str(value)
    return out
