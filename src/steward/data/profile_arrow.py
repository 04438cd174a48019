"""The parts of a profile (``steward.data.profile``) that numpy and Arrow compute faster than DuckDB.

Over an in-memory Arrow table, some of the profile's aggregates cost DuckDB much more than they need to:
``histogram()`` hashes every value into a map (for the bins, and for the value counts of low-cardinality
ints), ``min``/``max`` cost more than numpy's reductions, and a grouped count of a string column scanned
from Arrow runs on little more than one core. Here the bins are computed with numpy, in the same pass as
the centred sum of squares, ints of a short span are counted with ``bincount``, and strings with Arrow's
``value_counts``; all release the GIL, so a thread pool runs them for several columns at once, beside
DuckDB's own threads. Each function returns exactly what the SQL it replaces returns (same keys, same
values, the same binning arithmetic), so the profile does not depend on which computed it;
``tests/data/test_profile_arrow.py`` compares the two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SLICE = 65_536  # values handled at once: the temporaries stay in the CPU cache
SPAN = 1 << 18  # int columns whose values span at most this many integers are counted with bincount


def handles_numeric(t: pa.DataType) -> bool:
    """Whether :func:`numeric_pass` takes a column of type ``t`` (ints and floats, not decimals)."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def handles_string(t: pa.DataType) -> bool:
    """Whether :func:`string_pass` takes a column of type ``t`` (plain strings, not dictionaries)."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def extremes(column: pa.ChunkedArray) -> dict[str, Any]:
    """``min`` and ``max`` of an int or float column, as Python numbers, as DuckDB's ``min()``/``max()``
    give them; NaN for a float column holding NaN (which the profile redoes over the finite values);
    None without values. numpy's reductions are several times faster than Arrow's ``min_max``."""
    lows, highs = [], []
    for chunk in column.chunks:
        values = (chunk.drop_null() if chunk.null_count else chunk).to_numpy()
        if len(values):
            lows.append(values.min().item())
            highs.append(values.max().item())
    if not lows:
        return {"min": None, "max": None}
    if any(v != v for v in lows + highs):  # NaN: min() and max() would depend on the chunks' order
        return {"min": math.nan, "max": math.nan}
    return {"min": min(lows), "max": max(highs)}


def _pieces(column: pa.ChunkedArray, finite: bool, buffer: np.ndarray) -> Iterator[np.ndarray]:
    """The non-null values as float64 arrays of at most ``SLICE`` values; only finite ones if asked.

    Values that are not float64 are converted into ``buffer``: a fresh array per slice would cost a
    page fault per page (arrays this size are mapped afresh), which costs more than the arithmetic."""
    for chunk in column.chunks:
        for start in range(0, len(chunk), SLICE):
            piece = chunk.slice(start, SLICE)
            if piece.null_count:
                piece = piece.drop_null()
            values = piece.to_numpy(zero_copy_only=False)
            if values.dtype != np.float64:  # as DuckDB's ``::DOUBLE``: rounded to nearest
                values = buffer[: len(values)]
                np.copyto(values, piece.to_numpy(zero_copy_only=False), casting="unsafe")
            if finite:
                values = values[np.isfinite(values)]
            if len(values):
                yield values


def numeric_pass(
    column: pa.ChunkedArray, scale: float, offset: float, mean: float | None, finite: bool, bins: int
) -> dict[str, Any]:
    """The histogram buckets and the centred sum of squares of a numeric column, as the SQL gives them.

    Args:
        column: An int or float column.
        scale: ``floor(x * scale + offset)`` is the bucket of ``x``, as in the SQL.
        offset: See ``scale``.
        mean: The mean the squares are centred on; None: no sum of squares.
        finite: Whether the column holds NaN or infinities (left out of both).
        bins: Buckets; values beyond the last (rounding at the maximum) are counted in it, as the
            profile does with the SQL's buckets.

    Returns:
        ``{"hist": {bucket: count}}``, the form of DuckDB's ``histogram()``, and ``"ss"`` if ``mean``
        is given (None if there are no values, like SQL's ``sum``).
    """
    counts = np.zeros(bins, dtype=np.int64)
    ss, seen = 0.0, False
    values, work, at = np.empty(SLICE), np.empty(SLICE), np.empty(SLICE, dtype=np.intp)
    with np.errstate(over="ignore", invalid="ignore"):
        for x in _pieces(column, finite, values):
            b, k = work[: len(x)], at[: len(x)]
            np.multiply(x, scale, out=b)
            np.add(b, offset, out=b)
            np.floor(b, out=b)
            np.clip(b, 0, bins - 1, out=b)
            np.copyto(k, b, casting="unsafe")
            counts += np.bincount(k, minlength=bins)
            if mean is not None:
                np.subtract(x, mean, out=b)
                ss += float(np.einsum("i,i->", b, b))  # not np.dot: BLAS threads would fight the pool
            seen = True
    out: dict[str, Any] = {"hist": {float(k): int(n) for k, n in enumerate(counts) if n}}
    if mean is not None:
        out["ss"] = ss if seen else None
    return out


def int_counts(column: pa.ChunkedArray, low: int, high: int) -> np.ndarray:
    """How many times each integer from ``low`` to ``high`` (the column's min and max) occurs in it."""
    counts = np.zeros(high - low + 1, dtype=np.int64)
    for chunk in column.chunks:  # whole chunks: a bincount costs its span as well as its values
        present = chunk.drop_null() if chunk.null_count else chunk
        x = present.to_numpy()
        if not len(x):
            continue
        unsigned = x.dtype.kind == "u"  # then x >= low: the difference cannot wrap
        at = (x - x.dtype.type(low)).astype(np.intp) if unsigned else x.astype(np.int64) - low
        found = np.bincount(at)
        counts[: len(found)] += found
    return counts


def int_pass(column: pa.ChunkedArray, low: int, high: int, values: bool) -> dict[str, Any]:
    """As the SQL's ``map_keys``/``map_values`` of ``histogram()`` (keys ascending) if ``values``, else
    its ``count(DISTINCT)``, for an int column whose span ``high - low`` is at most ``SPAN``."""
    counts = int_counts(column, low, high)
    present = np.flatnonzero(counts)
    if not values:
        return {"distinct": len(present)}
    return {"keys": [low + int(k) for k in present], "values": counts[present].tolist()}


def string_pass(column: pa.ChunkedArray, top_k: int, max_string: int) -> dict[str, Any]:
    """Distinct count, nulls, min, max and top values of a string column, as the profile's SQL gives them.

    Strings compare by their UTF-8 bytes (as DuckDB and Arrow do; for Python strings, by code point);
    top values go by count, then value; min, max and top values are cut to ``max_string`` characters.
    """
    counted = pc.value_counts(column)
    values, counts = counted.field("values"), counted.field("counts")
    if values.null_count:
        keep = pc.is_valid(values)
        values, counts = values.filter(keep), counts.filter(keep)
    out: dict[str, Any] = {"distinct": len(values), "nulls": column.null_count}
    if not len(values):
        return out | {"min": None, "max": None, "top": None}
    extremes = pc.min_max(values).as_py()
    order = pc.sort_indices(
        pa.table({"n": counts, "v": values}), sort_keys=[("n", "descending"), ("v", "ascending")]
    )[:top_k]
    top = [
        {"v": v[:max_string], "n": n}
        for v, n in zip(values.take(order).to_pylist(), counts.take(order).to_pylist(), strict=True)
    ]
    return out | {"min": extremes["min"][:max_string], "max": extremes["max"][:max_string], "top": top}
