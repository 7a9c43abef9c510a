"""Cron schedules as users write them in crontab(5), evaluated by APScheduler 3.11.

APScheduler's ``CronTrigger.from_crontab`` is *not* crontab: it numbers weekdays from Monday, so
``0 9 * * 1-5`` ("weekdays at 9") fires Tuesday to Saturday there (measured on 3.11.3), it
rejects ``7`` for Sunday, and it ANDs day-of-month with day-of-week where cron ORs them. This
module translates the crontab grammar (five fields, the ``@daily``-style macros, names) into
APScheduler triggers with crontab's meaning, so a schedule fires when its author expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

__all__ = ["CronError", "CronSchedule", "parse_cron", "parse_timezone"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,-]+$")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# APScheduler's weekday names, indexed by crontab's numbering (0 = Sunday).
_APS_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CronError(ValueError):
    """A cron expression or time zone is invalid; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class CronSchedule:
    """A validated cron schedule in a time zone; computes its next fire times."""

    expression: str
    timezone: str
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
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        import difflib

        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CronError(f"unknown time zone {name!r}{hint}") from exc


def _expand_dow(field: str) -> str:
    """Rewrite a crontab day-of-week field (0/7 = Sunday) as APScheduler weekday names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        rng, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"day of week: step {step_text!r} must be a positive integer")
            step = int(step_text)
        if rng == "*":
            lo, hi = 0, 6
        else:
            lo_text, dash, hi_text = rng.partition("-")
            lo = _dow_value(lo_text)
            hi = _dow_value(hi_text) if dash else (6 if step_text else lo)
            if dash and hi == 0 and hi_text.strip() == "7":
                hi = 7
            if hi < lo:
                raise CronError(f"day of week: range {rng!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_APS_DOW[d] for d in sorted(days))


def _dow_value(text: str) -> int:
    low = text.lower()
    if low in _DOW_NAMES:
        return _DOW_NAMES.index(low)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7 if int(text) != 7 else 0
    raise CronError(f"day of week: {text!r} is not 0-7 or a day name (sun..sat)")


def parse_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Validate a crontab expression in ``timezone``; raise :class:`CronError` naming the field."""
    tz = parse_timezone(timezone)
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text not in _MACROS:
            raise CronError(f"unknown macro {text!r}; use one of {', '.join(sorted(_MACROS))}")
        text = _MACROS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for name, value in zip(_FIELDS, fields, strict=True):
        if not _FIELD_RE.match(value):
            raise CronError(f"{name}: {value!r} has characters cron does not allow")
    minute, hour, dom, month, dow_raw = fields
    dow = _expand_dow(dow_raw)
    try:
        if (
            dom != "*"
            and dow_raw != "*"
            and not dom.startswith("*")
            and not dow_raw.startswith("*")
        ):
            # crontab(5): when both day fields are restricted, either one matching fires.
            trigger: Any = OrTrigger(
                [
                    CronTrigger(minute=minute, hour=hour, day=dom, month=month, timezone=tz),
                    CronTrigger(
                        minute=minute, hour=hour, day_of_week=dow, month=month, timezone=tz
                    ),
                ]
            )
        else:
            trigger = CronTrigger(
                minute=minute, hour=hour, day=dom, month=month, day_of_week=dow, timezone=tz
            )
    except ValueError as exc:
        raise CronError(_aps_message(str(exc), fields)) from exc
    return CronSchedule(expression=expression, timezone=timezone, trigger=trigger)


def _aps_message(message: str, fields: list[str]) -> str:
    """Find which field APScheduler refused by validating each one on its own."""
    names = ("minute", "hour", "day", "month", "day_of_week")
    for label, aps_name, value in zip(_FIELDS, names, fields, strict=True):
        if aps_name == "day_of_week":
            continue  # already validated by _expand_dow
        try:
            CronTrigger(**{aps_name: value})
        except ValueError as exc:
            detail = str(exc).split(": ", 1)[-1]
            return f"{label}: {detail[:1].lower()}{detail[1:]}"
    return message
