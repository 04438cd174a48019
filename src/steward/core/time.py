"""Times are UTC and timezone-aware; in storage they are integer Unix milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import overload


def now_ms() -> int:
    """Return the current time as integer Unix milliseconds."""
    return time.time_ns() // 1_000_000


@overload
def from_ms(ms: int) -> datetime: ...


@overload
def from_ms(ms: None) -> None: ...


def from_ms(ms: int | None) -> datetime | None:
    """Convert Unix milliseconds to an aware UTC ``datetime`` (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def as_utc(moment: datetime) -> datetime:
    """The same moment as an aware UTC ``datetime``; a naive one is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    """Convert an aware ``datetime`` to Unix milliseconds; a naive one is taken as UTC."""
    return int(as_utc(moment).timestamp() * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Convert a ``datetime`` to integer Unix microseconds, exactly; a naive one is taken as UTC."""
    return (as_utc(moment) - _EPOCH) // _MICROSECOND
