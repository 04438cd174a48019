"""Due times: cron expressions and intervals in UTC, monitor schedules, data arrival, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from steward.automation.triggers import (
    arrival_due_ms,
    arrived,
    monitor_due,
    parse_cron,
    parse_interval,
    parse_schedule,
)
from steward.errors import InvalidInput

AT = datetime(2030, 1, 1, 10, 17, 30, tzinfo=UTC)


def test_an_hourly_cron_is_next_due_at_the_top_of_the_next_hour() -> None:
    hourly = parse_cron("0 * * * *")
    assert hourly.next_after(AT) == datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
    # exactly on a slot, the next one is the following slot: a due time never fires twice
    assert hourly.next_after(datetime(2030, 1, 1, 11, 0, tzinfo=UTC)) == datetime(
        2030, 1, 1, 12, 0, tzinfo=UTC
    )


def test_cron_is_evaluated_in_utc_whatever_the_zone_of_the_moment() -> None:
    daily = parse_cron("30 2 * * *")
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert daily.next_after(paris) == datetime(2030, 1, 2, 2, 30, tzinfo=UTC)
    assert daily.next_after(AT.replace(tzinfo=None)) == datetime(2030, 1, 2, 2, 30, tzinfo=UTC)


def test_cron_macros_and_extra_spaces_are_accepted() -> None:
    assert parse_cron("@daily").next_after(AT) == datetime(2030, 1, 2, tzinfo=UTC)
    assert parse_cron("  */15   *  * * * ").text == "*/15 * * * *"
    assert parse_cron("*/15 * * * *").next_after(AT) == datetime(2030, 1, 1, 10, 30, tzinfo=UTC)
    assert parse_cron("* * * * * 45").next_after(AT) == datetime(2030, 1, 1, 10, 17, 45, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "0 * * *", "0 * * * * * * *", "61 * * * *", "every hour", 5])
def test_a_bad_cron_expression_is_refused_naming_the_field(text: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cron(text, "cron")
    assert caught.value.details["field"] == "cron"


INTERVALS = [("900", 900), (900, 900), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (" 5M ", 300)]


@pytest.mark.parametrize(("text", "seconds"), INTERVALS)
def test_an_interval_is_due_that_many_seconds_later(text: object, seconds: int) -> None:
    every = parse_interval(text)
    assert every.every_s == seconds and every.text == str(seconds)
    assert every.next_after(AT) == AT + timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "15 minutes", "400d", "", True])
def test_a_bad_interval_is_refused(text: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_interval(text, "every")
    assert caught.value.details["field"] == "every"


def test_a_monitor_schedule_is_an_interval_when_it_reads_as_one_else_cron() -> None:
    assert parse_schedule("900").every_s == 900
    assert parse_schedule("15m").every_s == 900
    assert parse_schedule("*/5 * * * *").cron == "*/5 * * * *"
    with pytest.raises(InvalidInput) as caught:
        parse_schedule("sometimes")
    assert caught.value.details["field"] == "schedule"


def test_a_monitor_is_due_one_period_after_its_last_run_or_its_creation() -> None:
    every = parse_interval("600")
    created = AT - timedelta(hours=1)
    assert monitor_due(every, None, created, None) == created + timedelta(seconds=600)
    assert monitor_due(every, AT, created, None) == AT + timedelta(seconds=600)
    # a firing already claimed (whose run failed before recording itself) is not claimed again
    assert monitor_due(every, None, created, AT) == AT + timedelta(seconds=600)
    hourly = parse_cron("0 * * * *")
    assert monitor_due(hourly, AT, created, None) == datetime(2030, 1, 1, 11, 0, tzinfo=UTC)


def test_a_dataset_trigger_is_due_for_a_version_above_its_cursor() -> None:
    assert arrived(None, "0") is None
    assert arrived(3, "3") is None
    assert arrived(4, "3") == 4
    assert arrived(6, "3") == 6  # two new versions coalesce into the newest
    assert arrived(1, None) == 1


def test_an_arrival_key_moves_past_the_last_one_when_two_versions_share_a_millisecond() -> None:
    assert arrival_due_ms(1000, None) == 1000
    assert arrival_due_ms(1000, 900) == 1000
    assert arrival_due_ms(1000, 1000) == 1001
    assert arrival_due_ms(999, 1000) == 1001
