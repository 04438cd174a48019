"""When things are due: cron expressions and intervals (UTC), monitor schedules, new dataset versions.

Pure functions, no I/O. Every due time is computed from stored facts alone (a trigger's ``next_due_at``,
a monitor's last run, the last firing), so two schedulers looking at the same rows compute the same due
time, and the firing's primary key lets only one of them store it.

Missed times are coalesced: a scheduler that was down through five hourly slots fires once, for the
first one it missed, then moves on to the next slot after now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from steward.core.time import as_utc
from steward.errors import InvalidInput

_PERIOD = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PERIOD_S = 366 * 86400
"""The longest interval accepted (a year and a day): longer is a typo or a cron job."""


@dataclass(frozen=True)
class Schedule:
    """A cron expression or a fixed period.

    Attributes:
        text: As written.
        cron: The five-field cron expression (or ``@hourly`` …), evaluated in UTC; None for a period.
        every_s: The period in seconds; None for a cron expression.
    """

    text: str
    cron: str | None = None
    every_s: int | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after ``moment`` (an aware datetime; a naive one is UTC)."""
        moment = as_utc(moment)
        if self.every_s is not None:
            return moment + timedelta(seconds=self.every_s)
        assert self.cron is not None
        found: datetime = croniter(self.cron, moment.astimezone(UTC)).get_next(datetime)
        return found.astimezone(UTC)


def parse_cron(text: object, field: str = "spec") -> Schedule:
    """A cron schedule: five fields (minute hour day-of-month month day-of-week), optionally a sixth
    (seconds, as monitors accept), or a macro (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``,
    ``@yearly``), in UTC.

    Raises:
        InvalidInput: Naming ``field``, for anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{field} must be a cron expression such as '0 * * * *'", {"field": field})
    expression = " ".join(text.split())
    fields = expression.split(" ")
    macro = expression.startswith("@") and len(fields) == 1
    if not macro and len(fields) not in (5, 6):
        raise InvalidInput(
            f"{field} {text!r} is not a cron expression: write five fields (minute hour day month "
            "weekday), e.g. '0 * * * *' for every hour, or @hourly/@daily",
            {"field": field, "value": text},
        )
    if not croniter.is_valid(expression):
        raise InvalidInput(
            f"{field} {text!r} is not a valid cron expression (minute 0-59, hour 0-23, day 1-31, "
            "month 1-12, weekday 0-6)",
            {"field": field, "value": text},
        )
    return Schedule(text=expression, cron=expression)


def parse_interval(text: object, field: str = "spec") -> Schedule:
    """A fixed period: seconds (``900``, also as an int) or with a unit (``90s``, ``15m``, ``1h``, ``1d``).

    Raises:
        InvalidInput: Naming ``field``, for anything else, a zero period or one over a year.
    """
    raw = str(text) if isinstance(text, int) and not isinstance(text, bool) else text
    matched = _PERIOD.match(raw.strip().lower()) if isinstance(raw, str) else None
    if matched is None:
        raise InvalidInput(
            f"{field} {text!r} is not an interval: write seconds (900) or a number with s, m, h or d (15m)",
            {"field": field, "value": repr(text)},
        )
    seconds = int(matched.group(1)) * _UNITS[matched.group(2)]
    if not 0 < seconds <= MAX_PERIOD_S:
        raise InvalidInput(
            f"{field} {text!r} must be between 1 second and {MAX_PERIOD_S // 86400} days",
            {"field": field, "value": repr(text)},
        )
    return Schedule(text=str(seconds), every_s=seconds)


def parse_schedule(text: object, field: str = "schedule") -> Schedule:
    """A monitor's schedule: an interval (``"900"``, ``15m``) if it reads as one, else a cron expression.

    Raises:
        InvalidInput: Naming ``field``, if it is neither.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return parse_interval(text, field)
    if isinstance(text, str) and _PERIOD.match(text.strip().lower()):
        return parse_interval(text, field)
    return parse_cron(text, field)


def monitor_due(
    schedule: Schedule, last_run_at: datetime | None, created_at: datetime, last_due: datetime | None
) -> datetime:
    """When a monitor is next due: the first schedule time after its last run (or its creation), and
    after the last firing already claimed for it (so a run that failed before recording itself is not
    retried at once, but at the next time after).
    """
    anchor = max(m for m in (last_run_at, created_at, last_due) if m is not None)
    return schedule.next_after(anchor)


def arrived(latest: int | None, cursor: str | None) -> int | None:
    """The version number a ``dataset`` trigger is due for: the dataset's highest if it is above the
    trigger's cursor (versions published in between are coalesced into it), else None."""
    seen = int(cursor) if cursor else 0
    return latest if latest is not None and latest > seen else None


def arrival_due_ms(published_ms: int, last_due_ms: int | None) -> int:
    """The firing key of a data arrival: when the version was published, moved past the last firing's
    key if two versions share a millisecond (so the later one is not mistaken for the earlier)."""
    return published_ms if last_due_ms is None or published_ms > last_due_ms else last_due_ms + 1
