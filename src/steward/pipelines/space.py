"""The search space of ``tune``: parameter name to a spec (choices, a range, or an Optuna distribution)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, cast

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from steward.core.names import validate_key
from steward.errors import InvalidInput

_SPEC_KEYS = {"low", "high", "log", "step"}


def float_range(
    low: float, high: float, *, log: bool = False, step: float | None = None
) -> FloatDistribution:
    """A float parameter between ``low`` and ``high`` (on a log scale, or a grid of ``step``).

    Raises:
        InvalidInput: For a bad range.
    """
    spec = {"low": float(low), "high": float(high), "log": log, "step": step}
    return cast(FloatDistribution, _distribution("float_range", spec))


def int_range(low: int, high: int, *, step: int = 1, log: bool = False) -> IntDistribution:
    """An integer parameter from ``low`` to ``high`` inclusive (by ``step``, or on a log scale).

    Raises:
        InvalidInput: For a bad range, or bounds that are not whole numbers.
    """
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in (low, high, step)):
        raise InvalidInput(
            f"int_range: {low!r}, {high!r} and step {step!r} must be whole numbers", {"field": "space"}
        )
    return cast(
        IntDistribution, _distribution("int_range", {"low": low, "high": high, "step": step, "log": log})
    )


def choice(*options: bool | int | float | str | None) -> CategoricalDistribution:
    """A categorical parameter taking one of ``options``.

    Raises:
        InvalidInput: If there are no options, or one is not a string, number, boolean or ``None``.
    """
    return cast(CategoricalDistribution, _distribution("choice", list(options)))


def parse_space(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Turn a search space (see the module's help) into Optuna distributions.

    Raises:
        InvalidInput: Naming the first parameter whose spec is not understood.
    """
    if not isinstance(space, Mapping) or not space:
        raise InvalidInput("space must be a non-empty dict of parameter name to spec", {"field": "space"})
    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        if not isinstance(name, str):
            raise InvalidInput(f"space: parameter names are strings, got {name!r}", {"field": "space"})
        validate_key(name, "params")
        out[name] = _distribution(name, spec)
    return out


def _distribution(name: str, spec: Any) -> BaseDistribution:
    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"space[{name!r}]: {why}", {"field": f"space.{name}"})

    if isinstance(spec, BaseDistribution):
        return spec
    if isinstance(spec, Mapping) and set(spec) == {"choices"}:
        spec = spec["choices"]
    if isinstance(spec, list | tuple):
        if not spec:
            raise bad("a list of choices needs at least one")
        for option in spec:
            if option is not None and not isinstance(option, bool | int | float | str):
                raise bad(
                    f"choice {option!r} is a {type(option).__name__}; choices are strings, numbers, "
                    "booleans or None (pass anything bigger by name and look it up in the objective)"
                )
        return CategoricalDistribution(list(spec))
    if not isinstance(spec, Mapping):
        raise bad(
            f"{spec!r} is not a spec: use a list of choices, {{'low': …, 'high': …}} or an Optuna "
            "distribution (a fixed value is a keyword argument of tune, not part of the space)"
        )
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}: a range has low, high, log and step")
    if "low" not in spec or "high" not in spec:
        raise bad("a range needs both low and high")
    low, high, use_log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for what, number in (("low", low), ("high", high), ("step", step)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, numbers.Real)):
            raise bad(f"{what} must be a number, got {number!r}")
        if number is not None and not math.isfinite(number):
            raise bad(f"{what} must be finite, got {number!r}")
    if not isinstance(use_log, bool):
        raise bad(f"log must be True or False, got {use_log!r}")
    if low > high:
        raise bad(f"low ({low}) is above high ({high})")
    if use_log and low <= 0:
        raise bad(f"a log range needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise bad(f"step must be positive, got {step}")
    integral = isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral)
    if integral and (step is None or isinstance(step, numbers.Integral)):
        if use_log and step not in (None, 1):
            raise bad("an integer range takes log or a step other than 1, not both")
        return IntDistribution(int(low), int(high), log=use_log, step=int(step or 1))
    if use_log and step is not None:
        raise bad("a float range takes log or step, not both")
    return FloatDistribution(float(low), float(high), log=use_log, step=None if step is None else float(step))
