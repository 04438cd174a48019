"""Proofs that a check passes, from Arrow aggregates, without counting rows one by one.

Most batches pass most checks, and a passing check needs no failing-row count and no examples. A range
holds if the column's min and max lie inside it (and a float column has no NaN); ``not_null`` if the
null count (kept in Arrow's metadata) is 0; ``allowed`` and ``regex`` if every *distinct* value passes —
a low-cardinality column has few of those, so the regex runs on a handful of strings instead of ten
million; ``unique`` if a bitmap over a dense integer key's range is hit once per value. Each proof is
one or two vectorised kernels, run for several columns at once on a thread pool (they release the GIL).

A proof that fails says only "maybe": the check then goes to the DuckDB scan of ``validation``, which
counts its failing rows and finds examples. So these never change a report, only how fast a clean
batch is cleared.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.data.expectations import ColumnRule, parse_moment

DISTINCT_SHARE = 0.05
"""``allowed`` and ``regex`` test the distinct values when there are at most this share of the rows."""


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The column, if its type is one these proofs handle (not dictionary-encoded, nested or binary)."""
    t = column.type
    ok = (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
    )
    return column if ok else None


def _bound(value: Any, t: pa.DataType) -> Any:
    """A rule's bound in the Python type that ``as_py()`` gives for a column of type ``t``."""
    if pa.types.is_timestamp(t):
        moment = parse_moment(str(value), "datetime")
        assert isinstance(moment, datetime)
        if t.tz is None:  # a naive column holds UTC times
            return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if pa.types.is_date(t):
        moment = parse_moment(str(value), "date")
        assert isinstance(moment, date)
        return moment
    return value


def _float_extremes(column: pa.ChunkedArray) -> tuple[float | None, float | None]:
    """The min and max of a float column, NaN if it holds NaN: numpy's reductions (which keep NaN)
    are several times faster than Arrow's ``min_max`` (which skips it) and make ``is_nan`` needless."""
    lows, highs = [], []
    for chunk in column.chunks:
        values = (chunk.drop_null() if chunk.null_count else chunk).to_numpy()
        if len(values):
            lows.append(float(values.min()))
            highs.append(float(values.max()))
    if not lows:
        return None, None
    if any(math.isnan(v) for v in lows + highs):
        return math.nan, math.nan
    return min(lows), max(highs)


def range_holds(column: pa.ChunkedArray, rule: ColumnRule) -> bool:
    """Whether every non-null value lies within ``rule.min``/``rule.max`` (NaN never does)."""
    plain = _plain(column)
    if plain is None or pa.types.is_boolean(plain.type):
        return False
    if pa.types.is_floating(plain.type):
        low, high = _float_extremes(plain)
        if low is not None and math.isnan(low):
            return False
    else:
        extremes = pc.min_max(plain).as_py()
        low, high = extremes["min"], extremes["max"]
    if low is None:  # no values but nulls
        return True
    try:
        if rule.min is not None and low < _bound(rule.min, plain.type):
            return False
        if rule.max is not None and high > _bound(rule.max, plain.type):
            return False
    except TypeError:  # a bound that does not compare with the values: let the scan decide
        return False
    return True


def _distinct(column: pa.ChunkedArray) -> pa.Array | None:
    """The distinct non-null values, if there are few enough of them for testing them to pay off."""
    sample = column.slice(0, 10_000)
    if len(pc.unique(sample)) > max(100, DISTINCT_SHARE * len(sample)):
        return None  # high cardinality: a hash of every value would cost more than it saves
    values = pc.unique(column)
    return values.filter(pc.is_valid(values))


def allowed_holds(column: pa.ChunkedArray, rule: ColumnRule) -> bool:
    """Whether every non-null value is one of ``rule.allowed``."""
    plain = _plain(column)
    if (
        plain is None
        or rule.allowed is None
        or pa.types.is_timestamp(plain.type)
        or pa.types.is_date(plain.type)
    ):
        return False
    distinct = _distinct(plain)
    if distinct is None:
        value_set = pa.array(list(rule.allowed)).cast(plain.type, safe=False)
        matched = pc.is_in(plain, value_set=value_set, skip_nulls=True)
        return bool(pc.all(matched).as_py() is not False)
    allowed = set(rule.allowed)
    return all(value in allowed for value in distinct.to_pylist())


def regex_holds(column: pa.ChunkedArray, rule: ColumnRule) -> bool:
    """Whether every non-null string matches ``rule.regex`` in full (RE2, as DuckDB's scan uses)."""
    plain = _plain(column)
    if (
        plain is None
        or rule.regex is None
        or not (pa.types.is_string(plain.type) or pa.types.is_large_string(plain.type))
    ):
        return False
    pattern = f"^(?:{rule.regex})$"
    distinct = _distinct(plain)
    target: pa.Array | pa.ChunkedArray = plain if distinct is None else distinct
    if len(target) == 0:
        return True
    return bool(pc.all(pc.match_substring_regex(target, pattern)).as_py() is not False)


DENSE_SPAN = 8
"""An integer column whose values span at most this many times its row count is checked on a bitmap."""


def unique_holds(column: pa.ChunkedArray) -> bool:
    """Whether no non-null value appears twice.

    Integer keys usually span a range not much wider than their count (ids 1..n, scrambled or not):
    those are marked on a bitmap of the range, one pass and one byte per possible value, where a hash
    of ten million keys would cost seconds. Other columns are left to DuckDB's parallel hash.
    """
    values = len(column) - column.null_count
    if values <= 1:
        return True
    if not pa.types.is_integer(column.type):
        return False
    extremes = pc.min_max(column).as_py()
    span = int(extremes["max"]) - int(extremes["min"]) + 1
    if span < values or span > DENSE_SPAN * values + 1024:
        return False  # surely repeated (more values than room), or too sparse for a bitmap
    seen = np.zeros(span, dtype=np.bool_)
    low = int(extremes["min"])
    for chunk in column.chunks:
        present = chunk.drop_null() if chunk.null_count else chunk
        seen[present.to_numpy().astype(np.int64, copy=False) - low] = True
    return bool(int(np.count_nonzero(seen)) == values)


def proves(check: str, column: pa.ChunkedArray, rule: ColumnRule) -> bool:
    """Whether Arrow's aggregates prove that ``check`` passes on ``column`` (False: maybe not).

    Args:
        check: ``not_null``, ``range``, ``allowed``, ``regex`` or ``unique``.
        column: The batch's column.
        rule: Its rule.
    """
    try:
        if check == "not_null":
            return bool(column.null_count == 0)
        if check == "range":
            return range_holds(column, rule)
        if check == "allowed":
            return allowed_holds(column, rule)
        if check == "regex":
            return regex_holds(column, rule)
        if check == "unique":
            return unique_holds(column)
    except (pa.ArrowException, ValueError, TypeError):  # an unusual type: the scan decides
        return False
    return False
