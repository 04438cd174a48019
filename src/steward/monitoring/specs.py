"""Checking what a monitor is made of: its schedule, durations, channels, actions and reference.

Everything is checked when the monitor is created, so a bad schedule or channel is an ``InvalidInput``
naming the field then, never a failure at 3 a.m. when the scheduler runs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from steward.core.time import as_utc, to_ms
from steward.errors import InvalidInput
from steward.monitoring.channels import check_channel
from steward.monitoring.models import Action, Channel

MIN_INTERVAL_S: Final = 10
"""The shortest interval schedule (a cron expression's finest step is a minute)."""
ACTION_KINDS: Final = ("retrain", "rollback")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_DATASET_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127}?)(?:@(?P<number>\d+))?$")


def check_schedule(schedule: object) -> str:
    """Return a schedule as stored: a cron expression (``*/15 * * * *``) or an interval in seconds.

    Raises:
        InvalidInput: For an expression croniter refuses, or an interval under :data:`MIN_INTERVAL_S`.
    """
    from croniter import croniter

    if isinstance(schedule, bool) or not isinstance(schedule, int | str):
        raise InvalidInput("schedule must be a cron expression or a number of seconds", {"field": "schedule"})
    text = str(schedule).strip()
    if text.isdigit():
        if int(text) < MIN_INTERVAL_S:
            raise InvalidInput(
                f"an interval schedule must be at least {MIN_INTERVAL_S} seconds, not {text}",
                {"field": "schedule"},
            )
        return str(int(text))
    if len(text.split()) not in (5, 6) or not croniter.is_valid(text):
        raise InvalidInput(
            f"schedule {text!r} is not a cron expression such as '*/15 * * * *' or a number of seconds",
            {"field": "schedule"},
        )
    return text


def as_channel(value: object) -> Channel:
    """A channel from a :class:`Channel`, its JSON form, or a URL (a webhook).

    Raises:
        InvalidInput: For anything else, or a channel whose notifier cannot be built (the field named).
    """
    if isinstance(value, str):
        value = Channel("webhook", value)
    elif isinstance(value, Mapping):
        if not isinstance(value.get("kind"), str) or not isinstance(value.get("target"), str):
            raise InvalidInput("a channel needs a kind and a target", {"field": "channels"})
        options = value.get("options", {})
        if not isinstance(options, Mapping):
            raise InvalidInput("a channel's options must be an object", {"field": "channels.options"})
        value = Channel(value["kind"], value["target"], dict(options))
    if not isinstance(value, Channel):
        raise InvalidInput(
            "a channel is a webhook URL, a Channel or {kind, target, options}", {"field": "channels"}
        )
    return check_channel(value)


def as_action(value: object) -> Action:
    """An action from an :class:`Action` or its JSON form.

    Raises:
        InvalidInput: For an unknown kind, a retrain without a ``module:attribute`` pipeline, or
            parameters that are not a JSON object.
    """
    if isinstance(value, Mapping):
        if not isinstance(value.get("kind"), str):
            raise InvalidInput("an action needs a kind (retrain or rollback)", {"field": "actions.kind"})
        value = Action(value["kind"], str(value.get("target", "")), value.get("params", {}))
    if not isinstance(value, Action):
        raise InvalidInput("an action is an Action or {kind, target, params}", {"field": "actions"})
    if value.kind not in ACTION_KINDS:
        raise InvalidInput(
            f"unknown action {value.kind!r}: use {' or '.join(ACTION_KINDS)}", {"field": "actions.kind"}
        )
    if value.kind == "retrain" and not _TARGET.match(value.target):
        raise InvalidInput(
            f"a retrain action names its pipeline as module:attribute, not {value.target!r}",
            {"field": "actions.target"},
        )
    if not isinstance(value.params, Mapping):
        raise InvalidInput("an action's params must be an object", {"field": "actions.params"})
    try:
        json.dumps(dict(value.params))
    except (TypeError, ValueError):
        raise InvalidInput("an action's params must be JSON values", {"field": "actions.params"}) from None
    return Action(value.kind, value.target if value.kind == "retrain" else "", dict(value.params))


def many(values: object, field: str) -> Sequence[object]:
    """``values`` as a list (one value alone is a list of one).

    Raises:
        InvalidInput: Naming ``field`` if it is not a list or tuple.
    """
    if values is None:
        return []
    if isinstance(values, Channel | Action | str | Mapping):
        return [values]
    if not isinstance(values, list | tuple):
        raise InvalidInput(f"{field} must be a list", {"field": field})
    return list(values)


def parse_reference(value: object) -> dict[str, Any] | None:
    """A reference as stored: ``{"dataset": name, "version": n}`` (``version`` None until pinned) or
    ``{"window_start": iso, "window_end": iso}`` (a span of the endpoint's own log).

    Accepts None (the served version's training dataset), ``"name"`` or ``"name@3"``, and those dicts
    (window times as ISO 8601 text or datetimes; naive ones are UTC).

    Raises:
        InvalidInput: Naming ``reference`` for anything else, or a window that does not end after it starts.
    """
    if value is None:
        return None
    if isinstance(value, str):
        found = _DATASET_REF.match(value.strip())
        if found is None:
            raise InvalidInput(
                f"reference {value!r} is not a dataset such as 'churn' or 'churn@3'", {"field": "reference"}
            )
        number = found.group("number")
        return {"dataset": found.group("name"), "version": int(number) if number else None}
    if not isinstance(value, Mapping):
        raise InvalidInput("reference must be a dataset ('name@3') or a log window", {"field": "reference"})
    if "dataset" in value:
        unknown = set(value) - {"dataset", "version"}
        number = value.get("version")
        if (
            unknown
            or not isinstance(value["dataset"], str)
            or not (
                number is None or (isinstance(number, int) and not isinstance(number, bool) and number > 0)
            )
        ):
            raise InvalidInput("reference is {dataset: name, version: number}", {"field": "reference"})
        return {"dataset": value["dataset"], "version": number}
    if set(value) != {"window_start", "window_end"}:
        raise InvalidInput(
            "reference is {dataset, version} or {window_start, window_end}", {"field": "reference"}
        )
    start, end = (_moment(value[k], k) for k in ("window_start", "window_end"))
    if to_ms(end) <= to_ms(start):
        raise InvalidInput("the reference window must end after it starts", {"field": "reference"})
    return {"window_start": start.isoformat(), "window_end": end.isoformat()}


def _moment(value: object, field: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(
                f"reference {field} {value!r} is not an ISO 8601 time", {"field": "reference"}
            ) from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"reference {field} must be a time", {"field": "reference"})
    return as_utc(value)
