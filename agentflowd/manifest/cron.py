"""Cron schedules as users write them in crontab(5), evaluated by APScheduler 3.11.

APScheduler's ``CronTrigger.from_crontab`` is *not* crontab: it numbers weekdays from Monday, so
``0 9 * * 1-5`` ("weekdays at 9") fires Tuesday to Saturday there (measured on 3.11.3); it
rejects ``7`` for Sunday; it drops a step after a month name (``jan/2``); it ANDs day-of-month
with day-of-week where cron ORs them; and it accepts its own extensions (``last``, ``1st mon``).

So we parse the crontab grammar ourselves — five fields, names, ranges, steps, and the
``@daily``-style macros — into explicit value sets, and hand APScheduler only plain number lists
(weekdays by name). The sets also give a canonical spelling (:func:`normalize_cron`), so
``@daily`` and ``0 0 * * *``, or ``mon-fri`` and ``1-5``, are one schedule to the reconciler.

The day rule is cron's (cronie, Vixie): if either day field starts with ``*``, both must match;
if both are restricted, either one matching fires (``0 0 13 * 5`` = the 13th and every Friday).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

__all__ = ["CronError", "CronSchedule", "normalize_cron", "parse_cron", "parse_timezone"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# APScheduler's weekday names, indexed by crontab's numbering (0 = Sunday).
_APS_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 7, _DAYS, 0),
)


class CronError(ValueError):
    """A cron expression or time zone is invalid; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class CronSchedule:
    """A validated cron schedule in a time zone; computes its next fire times."""

    expression: str
    timezone: str
    canonical: str
    trigger: Any

    def next_fire_times(self, after: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after`` (timezone-aware)."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        out: list[datetime] = []
        previous: datetime | None = None
        now = after + timedelta(microseconds=1)
        for _ in range(count):
            fire = self.trigger.get_next_fire_time(previous, now)
            if fire is None:
                break
            out.append(fire)
            previous, now = fire, fire + timedelta(microseconds=1)
        return out


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone by name (``Europe/Berlin``, ``UTC``), with a hint for near misses."""
    if name.lower() == "localtime" or len(name) > 100:
        # "localtime" is the host's zone: one manifest would mean different things per host
        raise CronError(f"unknown time zone {name[:100]!r}; use an IANA name such as 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CronError(f"unknown time zone {name!r}{hint}") from exc


def _value(text: str, field: _Field) -> int:
    low = text.lower()
    if low in field.names:
        return field.names.index(low) + field.name_base
    if text.isdigit():
        number = int(text)
        if field.low <= number <= field.high:
            return number
        raise CronError(f"{field.label}: {text} is outside {field.low}-{field.high}")
    hint = f" or a name ({field.names[0]}..{field.names[-1]})" if field.names else ""
    raise CronError(f"{field.label}: {text!r} is not a number{hint}")


def _expand(text: str, field: _Field) -> set[int]:
    """The values a crontab field selects (day of week: 0-6, Sunday = 0 and 7)."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.label}: empty list item in {text!r}")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field.label}: step {step_text!r} must be a positive integer")
            step = int(step_text)
        if span == "*":
            lo, hi = field.low, field.high
        else:
            lo_text, dash, hi_text = span.partition("-")
            lo = _value(lo_text, field)
            hi = _value(hi_text, field) if dash else (field.high if slash else lo)
            if hi < lo:
                raise CronError(f"{field.label}: range {span!r} runs backwards")
        values.update(range(lo, hi + 1, step))
    if field.label == "day of week":
        values = {v % 7 for v in values}
    return values


def _spell(values: set[int], full: set[int]) -> str:
    """Compact canonical spelling of a value set: ``*``, ``1-5`` or ``0,15,30,45``."""
    if values == full:
        return "*"
    ordered = sorted(values)
    parts: list[str] = []
    start = prev = ordered[0]
    for v in [*ordered[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(
            str(start)
            if prev == start
            else f"{start}-{prev}"
            if prev > start + 1
            else f"{start},{prev}"
        )
        if v is not None:
            start = prev = v
    return ",".join(parts)


@dataclass(frozen=True)
class _Parsed:
    sets: tuple[set[int], ...]
    star: tuple[bool, ...]
    canonical: str


def _parse(expression: str) -> _Parsed:
    text = " ".join(expression.split()).lower()
    if text.startswith("@"):
        if text not in _MACROS:
            raise CronError(f"unknown macro {text!r}; use one of {', '.join(sorted(_MACROS))}")
        text = _MACROS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    sets = tuple(_expand(raw, spec) for raw, spec in zip(fields, _FIELDS, strict=True))
    star = tuple(raw.startswith("*") for raw in fields)
    fulls = [set(range(f.low, f.high + 1)) for f in _FIELDS]
    fulls[4] = set(range(7))
    spelled = [_spell(values, full) for values, full in zip(sets, fulls, strict=True)]
    for i in (2, 4):  # a day field's leading '*' decides AND vs OR: keep it visible
        if star[i] and spelled[i] != "*":
            spelled[i] = fields[i]
        elif not star[i] and spelled[i] == "*":
            spelled[i] = f"{_FIELDS[i].low}-{_FIELDS[i].high if i == 2 else 6}"
    _check_possible(sets, star)
    return _Parsed(sets=sets, star=star, canonical=" ".join(spelled))


def _check_possible(sets: tuple[set[int], ...], star: tuple[bool, ...]) -> None:
    """Refuse schedules that can never fire (``0 0 30 2 *``): the day never occurs."""
    days, months = sets[2], sets[3]
    day_of_week_decides = not star[2] and not star[4]  # OR: weekdays alone can fire
    if day_of_week_decides:
        return
    longest = max(_DAYS_IN_MONTH[m - 1] for m in months)
    if min(days) > longest:
        names = ",".join(_MONTHS[m - 1] for m in sorted(months))
        raise CronError(f"never fires: no day {min(days)} in {names}")


def normalize_cron(expression: str) -> str:
    """The canonical spelling of a valid expression (macros expanded, names as numbers)."""
    return _parse(expression).canonical


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Validate a crontab expression in ``timezone``; raise :class:`CronError` naming the field."""
    tz = parse_timezone(timezone)
    parsed = _parse(expression)
    minute, hour, dom, month, dow = parsed.sets

    def listed(values: set[int], field: _Field) -> str:
        # "*" where every value is selected: APScheduler compiles each list item separately
        return (
            "*" if len(values) == field.high - field.low + 1 else ",".join(map(str, sorted(values)))
        )

    common: dict[str, Any] = {
        "minute": listed(minute, _FIELDS[0]),
        "hour": listed(hour, _FIELDS[1]),
        "month": listed(month, _FIELDS[3]),
        "timezone": tz,
    }
    day_text = listed(dom, _FIELDS[2])
    dow_text = "*" if len(dow) == 7 else ",".join(_APS_DAYS[d] for d in sorted(dow))
    if not parsed.star[2] and not parsed.star[4]:
        trigger: Any = OrTrigger(
            [
                CronTrigger(day=day_text, day_of_week="*", **common),
                CronTrigger(day="*", day_of_week=dow_text, **common),
            ]
        )
    else:
        trigger = CronTrigger(day=day_text, day_of_week=dow_text, **common)
    return CronSchedule(
        expression=expression, timezone=timezone, canonical=parsed.canonical, trigger=trigger
    )
