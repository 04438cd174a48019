"""Checks on what users log: metric values and steps, parameter and tag values, artifact paths."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from steward.core.names import validate_key
from steward.errors import InvalidInput

MAX_PARAM_LENGTH = 8000
MAX_TAG_LENGTH = 8000


def check_metric_value(key: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number.

    Raises:
        InvalidInput: For NaN, infinities, booleans and anything that is not a real number; the
            message names ``metrics.<key>``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(
            f"metrics.{key}: value {value!r} is not a number",
            {"field": f"metrics.{key}", "value": repr(value)},
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(
            f"metrics.{key}: value {number} is not a finite number",
            {"field": f"metrics.{key}", "value": repr(number)},
        )
    return number


def check_step(key: str, step: object) -> int:
    """Return ``step`` if it is an integer (``numpy`` integers too, booleans and floats not).

    Raises:
        InvalidInput: naming ``metrics.<key>.step``.
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(
            f"metrics.{key}: step {step!r} is not an integer",
            {"field": f"metrics.{key}.step", "value": repr(step)},
        )
    value = int(step)
    if not -(2**63) <= value < 2**63:
        raise InvalidInput(f"metrics.{key}: step {value} is out of range", {"field": f"metrics.{key}.step"})
    return value


def check_timestamp(key: str, timestamp: object) -> int:
    """Return a Unix-millisecond timestamp if ``timestamp`` is an integer.

    Raises:
        InvalidInput: naming ``metrics.<key>.timestamp``.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral):
        raise InvalidInput(
            f"metrics.{key}: timestamp {timestamp!r} is not integer Unix milliseconds",
            {"field": f"metrics.{key}.timestamp"},
        )
    return int(timestamp)


def _as_array(key: str, name: str, data: Any, dtype: type[np.generic]) -> npt.NDArray[Any]:
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"metrics.{key}: {name} are not an array: {exc}", {"field": f"metrics.{key}"}
        ) from None
    if array.ndim != 1:
        raise InvalidInput(
            f"metrics.{key}: {name} must be one-dimensional, got shape {array.shape}",
            {"field": f"metrics.{key}.{name}"},
        )
    return array


def check_metric_arrays(
    key: str, values: Any, steps: Any, timestamps: Any
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Validate a column of points for one metric, all at once, and return typed arrays.

    Args:
        key: The metric key.
        values: Real numbers, all finite.
        steps: Integers, one per value.
        timestamps: Integer Unix milliseconds, one per value.

    Raises:
        InvalidInput: naming the field and the first bad position.
    """
    validate_key(key, "metrics")
    vals = _as_array(key, "values", values, np.float64)
    if vals.dtype == np.bool_ or not (np.issubdtype(vals.dtype, np.number) or vals.size == 0):
        raise InvalidInput(f"metrics.{key}: values are not numbers", {"field": f"metrics.{key}"})
    vals = vals.astype(np.float64, copy=False)
    bad = ~np.isfinite(vals)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInput(
            f"metrics.{key}: value at position {index} ({vals[index]}) is not a finite number",
            {"field": f"metrics.{key}", "index": index},
        )
    arrays: list[npt.NDArray[np.int64]] = []
    for name, data in (("steps", steps), ("timestamps", timestamps)):
        array = _as_array(key, name, data, np.int64)
        if array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
            raise InvalidInput(
                f"metrics.{key}: {name} must be integers, got {array.dtype}",
                {"field": f"metrics.{key}.{name[:-1]}"},
            )
        if (
            array.size
            and np.issubdtype(array.dtype, np.unsignedinteger)
            and array.max() > np.iinfo(np.int64).max
        ):
            raise InvalidInput(
                f"metrics.{key}: {name} exceed the 64-bit integer range",
                {"field": f"metrics.{key}.{name[:-1]}"},
            )
        if array.shape != vals.shape:
            raise InvalidInput(
                f"metrics.{key}: {len(array)} {name} for {len(vals)} values",
                {"field": f"metrics.{key}.{name[:-1]}"},
            )
        arrays.append(array.astype(np.int64, copy=False))
    return arrays[0], vals, arrays[1]


def param_text(key: str, value: object) -> str:
    """Return the stored text of a parameter value.

    Numbers and booleans are stored as their ``str``; strings as they are. ``None`` and containers
    are refused so that ``params.x = '...'`` filters stay meaningful.

    Raises:
        InvalidInput: naming ``params.<key>``.
    """
    validate_key(key, "params")
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | numbers.Number):
        if (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and not math.isfinite(float(value))
        ):
            text = str(float(value))
        else:
            text = str(value)
    else:
        raise InvalidInput(
            f"params.{key}: value of type {type(value).__name__} is not a string, number or boolean",
            {"field": f"params.{key}"},
        )
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidInput(
            f"params.{key}: value is {len(text)} characters, more than {MAX_PARAM_LENGTH}",
            {"field": f"params.{key}"},
        )
    return text


def tag_text(key: str, value: object) -> str:
    """Return the stored text of a tag value (anything with a ``str``, up to 8000 characters).

    Raises:
        InvalidInput: naming ``tags.<key>``.
    """
    validate_key(key, "tags")
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_TAG_LENGTH:
        raise InvalidInput(f"tags.{key}: value is longer than {MAX_TAG_LENGTH}", {"field": f"tags.{key}"})
    return text


def check_artifact_path(path: str) -> str:
    """Return a normalised relative POSIX artifact path, refusing absolute paths and ``..``.

    Raises:
        InvalidInput: naming ``artifact_path``.
    """
    pure = PurePosixPath(path.replace("\\", "/"))
    parts: Sequence[str] = pure.parts
    if not path or pure.is_absolute() or any(p in ("..", "") for p in parts) or len(path) > 1024:
        raise InvalidInput(
            f"invalid artifact path {path!r}: use a relative path without '..'", {"field": "artifact_path"}
        )
    return "/".join(p for p in parts if p != ".")
