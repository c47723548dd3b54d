"""Cron schedules as a PingSource writes them, and when one fires next. Pure.

Knative reads five fields (minute, hour, day of month, month, day of week: `*`, lists,
ranges, steps, month and day names, `@hourly` and the other macros, `CRON_TZ=` or
`TZ=` before them). Ami also reads six, the first being seconds, as robfig/cron's
seconds parser does: a schedule Knative itself refuses, for tests and demos that
cannot wait a minute. As in cron, when both the day of month and the day of week are
restricted, a day matching either fires.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names that stand for numbers from `lowest`)
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("second", 0, 59, []),
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# How far ahead a schedule is looked at (a leap day's schedule fires within 8 years).
_HORIZON_DAYS = 366 * 8


@dataclass(frozen=True)
class Schedule:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`
    timezone: str = ""  # from a CRON_TZ= prefix

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first time this schedule fires strictly after `after` (an aware
        datetime, in the zone the schedule is read in); None if it never does."""
        start = after.replace(microsecond=0) + dt.timedelta(seconds=1)
        for offset in range(_HORIZON_DAYS):
            day = start.date() + dt.timedelta(days=offset)
            if not self._day_matches(day):
                continue
            first = start.time() if offset == 0 else dt.time(0, 0, 0)
            for h in self.hours:
                if h < first.hour:
                    continue
                for m in self.minutes:
                    if h == first.hour and m < first.minute:
                        continue
                    for s in self.seconds:
                        if (h, m) == (first.hour, first.minute) and s < first.second:
                            continue
                        return dt.datetime.combine(day, dt.time(h, m, s), tzinfo=after.tzinfo)
        return None


def parse(text: str) -> Schedule:
    """A schedule, or ValueError saying what is wrong."""
    words = text.split()
    timezone = ""
    if words and words[0].startswith(("CRON_TZ=", "TZ=")):
        timezone = words[0].partition("=")[2]
        words = words[1:]
        if not timezone:
            raise ValueError("CRON_TZ= needs a time zone")
    if len(words) == 1 and words[0].lower() in _MACROS:
        words = _MACROS[words[0].lower()].split()
    if len(words) == 5:
        words = ["0", *words]
    elif len(words) != 6:
        raise ValueError(f"has {len(words)} fields; a cron schedule has five (six with seconds)")
    sets = [_field(w, *spec) for w, spec in zip(words, _FIELDS, strict=True)]
    weekdays = {0 if d == 7 else d for d in sets[5]}
    return Schedule(
        seconds=tuple(sorted(sets[0])),
        minutes=tuple(sorted(sets[1])),
        hours=tuple(sorted(sets[2])),
        days=frozenset(sets[3]),
        months=frozenset(sets[4]),
        weekdays=frozenset(weekdays),
        any_day=words[3] in ("*", "?"),
        any_weekday=words[5] in ("*", "?"),
        timezone=timezone,
    )


def _field(word: str, name: str, low: int, high: int, names: list[str]) -> set[int]:
    out: set[int] = set()
    for part in word.lower().split(","):
        base, slash, step_text = part.partition("/")
        step = _number(step_text, name, names, 0) if slash else 1
        if step < 1:
            raise ValueError(f"the {name} step must be at least 1, got {part!r}")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, name, names, low), _number(b, name, names, low)
        else:
            first = _number(base, name, names, low)
            last = high if slash else first
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise ValueError(f"the {name} must be from {low} to {high}, got {part!r}")
        out.update(range(first, last + 1, step))
    return out


def _number(text: str, name: str, names: list[str], low: int) -> int:
    if text in names:
        return names.index(text) + (low if name == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"the {name} field reads numbers, ranges, steps and lists, got {text!r}")
    return int(text)
