"""Cron schedules mean what crontab(5) says, not what APScheduler's own syntax says."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentflowd.manifest.cron import CronError, normalize_cron, parse_cron

SUNDAY = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
# hypothesis takes naive bounds and attaches the zone itself
MIN, MAX = datetime(2020, 1, 1), datetime(2030, 1, 1)  # noqa: DTZ001


def fires(expr: str, count: int = 5, tz: str = "UTC", after: datetime = SUNDAY) -> list[str]:
    return [d.strftime("%a %d %H:%M") for d in parse_cron(expr, tz).next_fire_times(after, count)]


def test_weekdays_are_monday_to_friday():
    # APScheduler's from_crontab would fire Tuesday..Saturday for this expression.
    assert fires("0 9 * * 1-5") == [
        "Mon 23 09:00",
        "Tue 24 09:00",
        "Wed 25 09:00",
        "Thu 26 09:00",
        "Fri 27 09:00",
    ]


@pytest.mark.parametrize("expr", ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUN"])
def test_sunday_is_0_or_7(expr):
    assert fires(expr, 2) == ["Sun 22 09:00", "Sun 29 09:00"]


def test_ranges_may_end_on_7_and_use_names():
    assert fires("0 9 * * 5-7", 3) == ["Sun 22 09:00", "Fri 27 09:00", "Sat 28 09:00"]
    assert fires("0 9 * * mon-wed", 3) == ["Mon 23 09:00", "Tue 24 09:00", "Wed 25 09:00"]
    assert fires("0 9 * * */2", 3) == ["Sun 22 09:00", "Tue 24 09:00", "Thu 26 09:00"]


def test_day_of_month_and_weekday_are_ored_like_cron():
    # "at midnight on the 13th and on every Friday" (crontab(5)), not "Friday the 13th".
    assert fires("0 0 13 * 5", 4) == [
        "Fri 27 00:00",
        "Fri 04 00:00",
        "Fri 11 00:00",
        "Sun 13 00:00",
    ]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", "Sun 22 01:00"),
        ("@daily", "Mon 23 00:00"),
        ("@weekly", "Sun 29 00:00"),
        ("@monthly", "Tue 01 00:00"),
        ("@yearly", "Fri 01 00:00"),
    ],
)
def test_macros(macro, expected):
    assert fires(macro, 1) == [expected]


def test_timezone_and_dst():
    # 02:30 does not exist in Berlin on 2026-03-29; the next fire times still advance.
    after = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    times = parse_cron("30 2 * * *", "Europe/Berlin").next_fire_times(after, 3)
    assert [t.isoformat() for t in times][0] == "2026-03-28T02:30:00+01:00"
    assert times == sorted(times) and len(set(times)) == 3
    assert times[-1].isoformat() == "2026-03-30T02:30:00+02:00"


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0 9 * *", "expected 5 fields"),
        ("0 0 9 * * *", "expected 5 fields"),
        ("61 * * * *", "minute: 61 is outside 0-59"),
        ("0 24 * * *", "hour:"),
        ("0 0 32 * *", "day of month:"),
        ("0 0 * 13 *", "month:"),
        ("0 0 * foo *", "month:"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("0 0 * * 7-6", "runs backwards"),
        ("0 0 30 2 *", "never fires: no day 30 in feb"),
        ("0 0 31 4,6 *", "never fires: no day 31 in apr,jun"),
        ("0 0 1,,2 * *", "empty list item"),
        ("* * * * 5-1", "runs backwards"),
        ("*/0 * * * *", "minute: step '0' must be a positive integer"),
        ("0 9 L * *", "day of month:"),
        ("@reboot", "unknown macro"),
        ("0 9 ? * 1", "day of month: '?' is not a number"),
        ("0 0 last * *", "day of month: 'last' is not a number"),
    ],
)
def test_errors_name_the_field(expr, fragment):
    with pytest.raises(CronError, match=re.escape(fragment)):
        parse_cron(expr)


def test_unknown_timezone_suggests_the_nearest():
    with pytest.raises(CronError, match="did you mean 'America/New_York'"):
        parse_cron("@daily", "America/New_Yrok")


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_cron("@daily").next_fire_times(datetime(2026, 1, 1), 1)  # noqa: DTZ001


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    dow=st.integers(0, 7),
    after=st.datetimes(MIN, MAX, timezones=st.just(UTC)),
)
def test_fire_times_are_increasing_and_match_the_fields(minute, hour, dow, after):
    times = parse_cron(f"{minute} {hour} * * {dow}").next_fire_times(after, 3)
    assert len(times) == 3
    assert after < times[0] < times[1] < times[2]
    for t in times:
        assert (t.minute, t.hour) == (minute, hour)
        assert (t.isoweekday() % 7) == dow % 7  # isoweekday: Monday=1..Sunday=7


def test_steps_after_names_and_a_lone_seven():
    times = parse_cron("0 0 1 jan/2 *").next_fire_times(datetime(2026, 1, 2, tzinfo=UTC), 3)
    assert [t.month for t in times] == [3, 5, 7]
    assert fires("0 9 * * 7-7", 2) == ["Sun 22 09:00", "Sun 29 09:00"]


def test_never_firing_dom_is_fine_when_weekdays_or_in():
    # both restricted: the Fridays fire even though February has no 30th
    assert fires("0 0 30 2 5", 1, after=datetime(2026, 2, 1, tzinfo=UTC)) == ["Fri 06 00:00"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("@daily", "0 0 * * *"),
        ("0 9 * * mon-fri", "0  9 * * 1-5"),
        ("0 9 * * 1,2,3,4,5", "0 9 * * 1-5"),
        ("0 9 * * 7", "0 9 * * 0"),
        ("*/15 * * * *", "0,15,30,45 * * * *"),
        ("0 0 1 JAN *", "0 0 1 1 *"),
        ("0-59 * * * *", "* * * * *"),
    ],
)
def test_equivalent_expressions_normalize_alike(a, b):
    assert normalize_cron(a) == normalize_cron(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0 0 1-31 * 1", "0 0 * * 1"),  # OR vs AND: the 1-31 fires every day
        ("0 0 */2 * 1", "0 0 1-31/2 * 1"),  # AND vs OR
    ],
)
def test_day_rule_differences_stay_different(a, b):
    assert normalize_cron(a) != normalize_cron(b)
