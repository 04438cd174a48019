"""Validation of the names users give to experiments, models, datasets and endpoints."""

from __future__ import annotations

import re

from steward.errors import InvalidInput

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/ ]{0,249}$")


def validate_name(value: object, field: str) -> str:
    """Return ``value`` if it is a valid object name, else raise ``InvalidInput`` naming ``field``.

    Args:
        value: The candidate name.
        field: What the name is for, e.g. ``"experiment"``; it appears in the error.

    Raises:
        InvalidInput: If ``value`` is not a string matching ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``.
    """
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise InvalidInput(
            f"invalid {field} name {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            {"field": field, "value": repr(value)},
        )
    return value


def validate_key(value: object, field: str) -> str:
    """Return ``value`` if it is a valid metric, parameter or tag key, else raise ``InvalidInput``.

    Keys may hold letters, digits, ``_ . - / `` and spaces (``"val/loss"``), up to 250 characters.

    Raises:
        InvalidInput: naming ``field`` (e.g. ``"metrics"``) and the key.
    """
    if not isinstance(value, str) or not KEY_PATTERN.match(value) or value != value.strip():
        raise InvalidInput(
            f"invalid {field} key {value!r}: use up to 250 letters, digits, '_', '.', '-', '/' or spaces",
            {"field": field, "key": repr(value)},
        )
    return value
