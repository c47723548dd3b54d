"""What `ami events BROKER` shows: the events a broker took, and where each went. Pure.

The broker process writes a record for every event it stores (`taken`) and for every
attempt to deliver one (`attempt`: the trigger, the attempt's number, the status and
what came of it). `summarize` folds them into one row per event, its deliveries per
trigger. Records are JSON lines in JetStream (`eventing.jetstream.LOG_STREAM`), kept a
day or up to their count limit: a history, not an audit log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["taken", "attempt"]
# What came of an attempt.
DELIVERED = "delivered"
RETRYING = "retrying"
DEAD_LETTERED = "dead-lettered"
DROPPED = "dropped"


@dataclass(frozen=True)
class Record:
    kind: Kind
    time: float
    id: str
    source: str
    type: str = ""
    trigger: str = ""
    attempt: int = 0
    status: int | None = None
    outcome: str = ""

    def fields(self) -> dict[str, Any]:
        """The fields that say something (`time` always)."""
        return {k: v for k, v in self.__dict__.items() if v not in ("", None, 0) or k == "time"}

    def encode(self) -> bytes:
        return json.dumps(self.fields(), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Record | None:
        """The record, or None for anything else (a newer or broken one)."""
        try:
            return cls._of(json.loads(raw))
        except ValueError:
            return None

    @classmethod
    def _of(cls, data: Any) -> Record | None:
        try:
            return cls(**data) if isinstance(data, dict) else None
        except TypeError:
            return None


def encode_many(records: Iterable[Record]) -> bytes:
    """Records as one message of the history stream: a JSON array of them (one
    encoding per message: an encoding per record cost the broker more than the rest
    of its history)."""
    return json.dumps([r.fields() for r in records], separators=(",", ":")).encode()


def decode_many(raw: bytes) -> list[Record]:
    """The records of a message: a JSON array of them, or (as written before) a line
    each; those that are none are skipped."""
    if raw.lstrip().startswith(b"["):
        try:
            items = json.loads(raw)
        except ValueError:
            return []
        found = [Record._of(item) for item in items] if isinstance(items, list) else []
        return [r for r in found if r is not None]
    out = []
    for line in raw.split(b"\n"):
        record = Record.decode(line)
        if record is not None:
            out.append(record)
    return out


@dataclass
class Delivery:
    trigger: str
    attempts: int = 0
    status: int | None = None
    outcome: str = ""


@dataclass
class EventRow:
    time: float
    id: str
    source: str
    type: str
    deliveries: dict[str, Delivery] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "deliveries": [d.__dict__ for d in self.deliveries.values()],
        }


def summarize(records: Iterable[Record], last: int = 20) -> list[EventRow]:
    """The last `last` events taken, oldest first, each with its deliveries so far."""
    rows: dict[tuple[str, str], EventRow] = {}
    for r in records:
        key = (r.source, r.id)
        row = rows.get(key)
        if r.kind == "taken":
            if row is None:
                rows[key] = EventRow(r.time, r.id, r.source, r.type)
            continue
        if row is None:  # taken before the history kept
            row = rows[key] = EventRow(r.time, r.id, r.source, r.type)
        d = row.deliveries.setdefault(r.trigger, Delivery(r.trigger))
        d.attempts = max(d.attempts, r.attempt)
        d.status = r.status
        d.outcome = r.outcome
    ordered = sorted(rows.values(), key=lambda row: row.time)
    return ordered[-last:] if last > 0 else ordered


def outcome_text(d: Delivery | Mapping[str, Any]) -> str:
    """`delivered (202)`, `retrying after 503, attempt 2`, `dead-lettered after 3
    attempts (500)`, `dead-lettered after 1 attempt (400)`."""
    get = d.get if isinstance(d, Mapping) else d.__dict__.get
    status = get("status")
    code = str(status) if status is not None else "no response"
    attempts = int(get("attempts") or 0)
    outcome = str(get("outcome") or "")
    if outcome == RETRYING:
        return f"retrying after {code}, attempt {attempts}"
    if outcome == DELIVERED and attempts <= 1:
        return f"delivered ({code})"
    times = "attempt" if attempts == 1 else "attempts"
    return f"{outcome} after {attempts} {times} ({code})"
