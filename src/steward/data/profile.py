"""Profiles of tabular data: per-column statistics of a dataset version, and the shift between two.

``profile_table`` computes a :class:`DatasetProfile` with DuckDB, over an Arrow table or Parquet files, in
a few vectorised queries (never row by row in Python), each one scan of the columns it needs: (1) counts,
min/max, sums and HyperLogLog distinct estimates of every column; (2) the same over finite values, only for
float columns holding NaN or inf; (3) quantiles over a repeatable reservoir sample; (4) per kind of
aggregate (DuckDB runs them faster apart than together): histograms on the min/max of (1), centred sums of
squares (a two-pass, numerically stable standard deviation), value counts of low-cardinality numeric
columns, exact distinct counts; (5) one grouped count per string column, for distinct, min/max and top values.

Over an in-memory Arrow table, ``profile_arrow`` does part of that on a thread pool beside DuckDB, with the
same results, several times cheaper: the min/max of int and float columns, their histograms and squares,
the value counts of ints of a short span, and (5) for plain string columns, which starts at once.

Columns are renamed by position (``#1 AS c0``), so names with quotes, spaces, unicode, or names that differ
only by case (which DuckDB folds together) never reach SQL text. ``diff_profiles`` compares two profiles.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from steward.data import profile_arrow
from steward.errors import InvalidInput

TOP_K = 10
BINS = 10
QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
SAMPLE_ROWS = 32_768  # quantiles are exact up to this many rows, else over a reservoir sample this size
EXACT_DISTINCT = 100_000  # distinct counts are exact when the HyperLogLog estimate is at most this
VALUE_COUNTS = 10_000  # numeric columns with at most this many distinct values (estimated) are counted
MAX_STRING = 256  # string min/max and top values are cut to this many characters
PSI_SHIFT = 0.2  # PSI at or above this is a shift (the usual rule of thumb for a significant change)
NULL_SHIFT = 0.1  # so is a change of the null share by this much
_EPS = 1e-4  # the share given to an empty bin, so that PSI stays finite
_NUMERIC = ("int", "float", "decimal")

Change = Literal["added", "removed", "type", "shift", "same"]


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column; every value is JSON-ready.

    Attributes:
        name: The column name.
        type: The Arrow type as a string: ``"double"``, ``"int64"``, ``"string"``, ``"timestamp[us]"``...
        count: Rows, nulls included.
        null_count: Null rows. NaN is a value, not a null (see ``nan_count``).
        null_share: ``null_count / count``; 0.0 for an empty table.
        distinct: Distinct non-null values (NaN is one). Exact for strings and bools, and wherever the
            HyperLogLog estimate is at most ``EXACT_DISTINCT`` or the table has at most that many rows
            (``COUNT(DISTINCT)`` or value counts); else DuckDB's estimate (off by up to ~7 %) and
            ``distinct_approx`` is true. None for nested columns.
        distinct_approx: Whether ``distinct`` is a HyperLogLog estimate.
        nan_count: NaN values (float columns).
        inf_count: +inf and -inf values (float columns).
        min: The smallest value: a finite number for numeric columns (decimals as floats), a string cut to
            ``MAX_STRING`` characters, an ISO 8601 string for dates, times and timestamps (zoned ones in
            UTC), a bool; None for binary, nested, and columns without values.
        max: The largest value, as ``min``.
        mean: The mean of the finite values of a numeric column (None if it overflows), rounded to 12
            significant digits so that the same data gets the same profile whatever DuckDB's summing order.
        std: Their sample standard deviation (n - 1), rounded likewise; None below two values.
        quantiles: ``p01`` ... ``p99`` of the finite values, linearly interpolated (as numpy's default),
            over all rows or the reservoir sample of ``DatasetProfile.quantile_sample`` rows.
        histogram: ``{"edges": [11 floats], "counts": [10 ints]}``: equal-width bins from min to max (a
            constant column's centred on its value); bin i holds ``edges[i] <= x < edges[i+1]``, the last
            also ``edges[10]``, as ``numpy.histogram``. The counts add up to the finite values.
        top_k: Up to ``TOP_K`` most frequent non-null ``(value, count)`` pairs, by count then value, for
            strings, bools, and numeric columns that were counted (``VALUE_COUNTS``). NaN and infinities
            appear as ``"nan"``, ``"inf"``, ``"-inf"``.
    """

    name: str
    type: str
    count: int
    null_count: int
    null_share: float
    distinct: int | None
    distinct_approx: bool = False
    nan_count: int = 0
    inf_count: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float | None] = field(default_factory=dict)
    histogram: dict[str, list[Any]] | None = None
    top_k: list[tuple[Any, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that :meth:`from_dict` turns back into an equal profile."""
        return dataclasses.asdict(self) | {"top_k": [[value, n] for value, n in self.top_k]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        """Rebuild a profile from :meth:`to_dict` output; unknown keys are ignored.

        Raises:
            InvalidInput: A required key is missing or a value has the wrong shape.
        """
        kwargs = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        try:
            kwargs["top_k"] = [(value, int(n)) for value, n in kwargs.get("top_k") or []]
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"not a column profile: {exc}", {"column": data.get("name")}) from exc


@dataclass(frozen=True)
class DatasetProfile:
    """The profile of a table: its row count and one :class:`ColumnProfile` per column.

    Attributes:
        rows: Rows in the table.
        columns: The column profiles, in schema order.
        quantile_sample: Rows of the reservoir sample the quantiles come from; None when from all rows.
    """

    rows: int
    columns: tuple[ColumnProfile, ...]
    quantile_sample: int | None = None

    def column(self, name: str) -> ColumnProfile:
        """Return the profile of the column called ``name``.

        Raises:
            InvalidInput: There is no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise InvalidInput(f"the profile has no column {name!r}", {"column": name})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict that :meth:`from_dict` turns back into an equal profile."""
        columns = [c.to_dict() for c in self.columns]
        return {"rows": self.rows, "quantile_sample": self.quantile_sample, "columns": columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            InvalidInput: The dict is not a dataset profile.
        """
        try:
            columns = tuple(ColumnProfile.from_dict(c) for c in data["columns"])
            return cls(int(data["rows"]), columns, data.get("quantile_sample"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a dataset profile: {exc}") from exc


def profile_table(data: pa.Table | str | Path | Sequence[str | Path]) -> DatasetProfile:
    """Profile an Arrow table, or Parquet files of one schema read as one table, with DuckDB (and numpy).

    Args:
        data: An Arrow table, or the path(s) of Parquet files.

    Returns:
        The profile: :class:`ColumnProfile` says what each statistic means and when it is exact.

    Raises:
        InvalidInput: The input is neither, a file cannot be read, or DuckDB cannot scan a column type.
    """
    if isinstance(data, pa.Table) and data.num_columns == 0:  # DuckDB cannot scan a table without columns
        return DatasetProfile(data.num_rows, ())
    con = duckdb.connect()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
            return _profile(con, pool, data)
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot profile the data: {exc}") from exc
    finally:
        con.close()


def _profile(con: duckdb.DuckDBPyConnection, pool: ThreadPoolExecutor, data: object) -> DatasetProfile:
    """The passes: over an Arrow table, numpy and Arrow work on the pool beside DuckDB's queries."""
    con.execute("SET TimeZone = 'UTC'")
    schema = _register(con, data)
    kinds = [_kind(f.type) for f in schema]
    select = ", ".join(f"#{i + 1} AS c{i}" for i in range(len(kinds)))
    con.execute(f"CREATE VIEW t AS SELECT {select} FROM src")
    raw: list[dict[str, Any]] = [{} for _ in kinds]  # query results, by column
    rows = int((con.execute("SELECT count(*) FROM t").fetchone() or (0,))[0])
    table = data if isinstance(data, pa.Table) else None
    fast = _by_arrow(table)
    numbers = {i for i in fast if kinds[i] != "string"}
    first = [(i, pool.submit(profile_arrow.extremes, table.column(i))) for i in sorted(numbers) if table]
    jobs = [(i, pool.submit(job)) for i, job in _string_jobs(table, kinds, fast)]  # need no statistics
    for query in _first_pass(kinds, raw, rows, numbers):
        _run(con, query, raw)
    for i, job in first:
        raw[i] |= job.result()
    for query in _finite_pass(kinds, raw, rows, fast):
        _run(con, query, raw)
    queries = [q for b in (_quantile_pass, _second_pass, _string_pass) for q in b(kinds, raw, rows, fast)]
    if table is None:
        for query in queries:
            _run(con, query, raw)
    else:  # the quantile sample first: DuckDB draws it on one thread
        scannable = _scannable(table)
        apart = [pool.submit(_run_apart, con, scannable, q, raw) for q in queries]
        jobs += [(i, pool.submit(job)) for i, job in _number_jobs(table, kinds, raw, rows, fast)]
        for query_job in apart:
            query_job.result()
    for i, job in jobs:
        raw[i] |= job.result()
    columns = tuple(_column(f, kind, r, rows) for f, kind, r in zip(schema, kinds, raw, strict=True))
    sampled = rows > SAMPLE_ROWS and any(kind in _NUMERIC for kind in kinds)
    return DatasetProfile(rows, columns, SAMPLE_ROWS if sampled else None)


def _register(con: duckdb.DuckDBPyConnection, data: object) -> pa.Schema:
    if isinstance(data, pa.Table):
        con.register("src", _scannable(data))
        return data.schema
    paths = [data] if isinstance(data, str | Path) else data
    if not isinstance(paths, Sequence) or not paths or not all(isinstance(p, str | Path) for p in paths):
        raise InvalidInput("profile_table takes an Arrow table or Parquet file paths")
    try:
        schema = pq.read_schema(str(paths[0]))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read Parquet file {paths[0]}: {exc}", {"path": str(paths[0])}) from exc
    con.read_parquet([str(p) for p in paths]).create_view("src")
    return schema


def _scannable(data: pa.Table) -> pa.Table:
    table = data
    for i, f in enumerate(data.schema):  # DuckDB cannot scan float16
        if pa.types.is_float16(f.type):
            table = table.set_column(i, f.name, data.column(i).cast(pa.float32()))
    return table


def _kind(t: pa.DataType) -> str:
    t = t.value_type if pa.types.is_dictionary(t) else t
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_timestamp(t):
        return "temporal"
    tests = {"bool": pa.types.is_boolean, "float": pa.types.is_floating, "int": pa.types.is_integer}
    tests |= {"decimal": pa.types.is_decimal, "nested": pa.types.is_nested}
    return next((kind for kind, test in tests.items() if test(t)), "other")  # binary, durations, null


def _by_arrow(table: pa.Table | None) -> set[int]:
    """The columns of an in-memory table whose histograms, squares or counts numpy or Arrow compute."""
    handled = (profile_arrow.handles_numeric, profile_arrow.handles_string)
    return (
        {i for i, f in enumerate(table.schema) if any(test(f.type) for test in handled)} if table else set()
    )


_Job = Callable[[], dict[str, Any]]


def _string_jobs(table: pa.Table | None, kinds: list[str], fast: set[int]) -> list[tuple[int, _Job]]:
    """Arrow's counts of the string columns in ``fast``: they need nothing from the first pass."""
    count = functools.partial(profile_arrow.string_pass, top_k=TOP_K, max_string=MAX_STRING)
    return [
        (i, functools.partial(count, table.column(i))) for i in sorted(fast) if table and kinds[i] == "string"
    ]


def _number_jobs(
    table: pa.Table | None, kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]
) -> list[tuple[int, _Job]]:
    """numpy's bins, centred squares and value counts of the numeric columns in ``fast`` (after the edges)."""
    jobs: list[tuple[int, _Job]] = []
    for i in sorted(i for i in fast if "edges" in raw[i]):
        assert table is not None
        column, r, kind = table.column(i), raw[i], kinds[i]
        if _by_bincount(kind, r, rows, fast, i):
            low, high = int(r["min"]), int(r["max"])
            jobs.append((i, functools.partial(profile_arrow.int_pass, column, low, high, _counted(kind, r))))
        if not _counted(kind, r):
            finite = bool(r.get("nan", 0) + r.get("inf", 0))
            numeric = functools.partial(profile_arrow.numeric_pass, column, *_scale(r["edges"]))
            jobs.append((i, functools.partial(numeric, _mean(r), finite, BINS)))
    return jobs


def _by_bincount(kind: str, r: Mapping[str, Any], rows: int, fast: set[int], i: int) -> bool:
    """Whether numpy counts the values (or distinct values) of an int column: they span a short range."""
    if i not in fast or kind != "int" or "edges" not in r or not (_counted(kind, r) or _exact(r, rows)):
        return False
    return bool(int(r["max"]) - int(r["min"]) < profile_arrow.SPAN)


# A query: its FROM clause, and (column index, result key, SQL aggregate) for each of its results.
_Query = tuple[str, list[tuple[int, str, str]]]


def _run(con: duckdb.DuckDBPyConnection, query: _Query, raw: list[dict[str, Any]]) -> None:
    source, wanted = query
    if not wanted:
        return
    row = con.execute(f"SELECT {', '.join(e for _, _, e in wanted)} FROM {source}").fetchone() or ()
    for (i, key, _), value in zip(wanted, row, strict=True):
        raw[i][key] = value


def _run_apart(
    con: duckdb.DuckDBPyConnection, table: pa.Table, query: _Query, raw: list[dict[str, Any]]
) -> None:
    """Run a query on a cursor of its own, for a thread of the pool (the cursor sees the view ``t``)."""
    with con.cursor() as cursor:
        cursor.register("src", table)
        _run(cursor, query, raw)


def _v(i: int, kind: str) -> str:
    return f"c{i}::DOUBLE" if kind == "decimal" else f"c{i}"


def _finite(i: int, r: Mapping[str, Any]) -> str:
    return f" FILTER (WHERE isfinite(c{i}))" if r.get("nan", 0) + r.get("inf", 0) else ""


def _first_pass(kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]) -> list[_Query]:
    wanted: list[tuple[int, str, str]] = []
    for i, kind in enumerate(kinds):
        c, v = f"c{i}", _v(i, kind)
        if kind != "string":
            wanted.append((i, "nonnull", f"count({c})"))
        if kind in _NUMERIC:  # numpy finds the min and max of the columns in fast
            wanted += [(i, k, f"{k}({v})") for k in (("sum",) if i in fast else ("min", "max", "sum"))]
        if kind == "temporal":
            wanted += [(i, k, f"replace({k}({c})::VARCHAR, ' ', 'T')") for k in ("min", "max")]
        if kind in (*_NUMERIC, "temporal", "other"):
            wanted.append((i, "hll", f"approx_count_distinct({c})"))
        if kind == "bool":
            wanted.append((i, "trues", f"coalesce(count_if({c}), 0)"))
    return [("t", wanted)]


def _finite_pass(kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]) -> list[_Query]:
    """A float column whose sum is NaN or infinite holds NaN or inf (or overflows): redo it finitely."""
    wanted: list[tuple[int, str, str]] = []
    for i, kind in enumerate(kinds):
        if kind == "float" and raw[i]["sum"] is not None and not math.isfinite(raw[i]["sum"]):
            c, f = f"c{i}", f" FILTER (WHERE isfinite(c{i}))"
            wanted += [(i, "nan", f"count_if(isnan({c}))"), (i, "inf", f"count_if(isinf({c}))")]
            wanted += [(i, k, f"{k}({c}){f}") for k in ("min", "max", "sum")]
    return [("t", wanted)]


def _quantile_pass(kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]) -> list[_Query]:
    cols = [i for i, kind in enumerate(kinds) if kind in _NUMERIC and _finite_count(raw[i]) > 0]
    qs = ", ".join(map(str, QUANTILES.values()))
    wanted = [(i, "quantiles", f"quantile_cont({_v(i, kinds[i])}, [{qs}]){_finite(i, raw[i])}") for i in cols]
    sample = f"USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (0)"  # same data, same sample
    source = f"(SELECT {', '.join(f'c{i}' for i in cols)} FROM t {sample})" if rows > SAMPLE_ROWS else "t"
    return [(source, wanted)]


def _second_pass(kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]) -> list[_Query]:
    wanted: list[tuple[int, str, str]] = []
    for i, kind in enumerate(kinds):
        r, v = raw[i], _v(i, kind)
        counted = _counted(kind, r)
        if kind in _NUMERIC and _finite_count(r) > 0:
            r["edges"] = _edges(float(r["min"]), float(r["max"]))
            scale, offset = _scale(r["edges"])
            if not counted and i not in fast:  # else both come from the value counts, or from numpy
                wanted.append((i, "hist", f"histogram(floor({v}::DOUBLE * {scale!r} + {offset!r}))"))
            if (m := _mean(r)) is not None and not counted and i not in fast:
                wanted.append((i, "ss", f"sum(({v}::DOUBLE - {m!r}) * ({v}::DOUBLE - {m!r})){_finite(i, r)}"))
        if _by_bincount(kind, r, rows, fast, i):
            continue  # numpy counts its values
        if counted:  # two lists convert to Python faster than a map
            wanted += [(i, "keys", f"map_keys(histogram({v}))"), (i, "values", f"map_values(histogram({v}))")]
        elif _exact(r, rows):
            wanted.append((i, "distinct", f"count(DISTINCT c{i})"))
    groups = {"hist": "hist", "ss": "ss", "keys": "values", "values": "values", "distinct": "distinct"}
    return [
        ("t", [w for w in wanted if groups[w[1]] == group]) for group in ("hist", "ss", "values", "distinct")
    ]


def _string_pass(kinds: list[str], raw: list[dict[str, Any]], rows: int, fast: set[int]) -> list[_Query]:
    queries: list[_Query] = []
    top = f"min_by({{'v': left(v, {MAX_STRING}), 'n': n}}, {{'n': -n, 'v': v}}, {TOP_K})"  # count, value
    top += " FILTER (WHERE v IS NOT NULL)"
    for i in (i for i, kind in enumerate(kinds) if kind == "string" and i not in fast):
        wanted = [(i, "distinct", "count(v)"), (i, "nulls", "coalesce(sum(n) FILTER (WHERE v IS NULL), 0)")]
        wanted += [(i, k, f"left({k}(v), {MAX_STRING})") for k in ("min", "max")] + [(i, "top", top)]
        queries.append((f"(SELECT c{i}::VARCHAR AS v, count(*) AS n FROM t GROUP BY ALL)", wanted))
    return queries


def _counted(kind: str, r: Mapping[str, Any]) -> bool:
    """Whether a column's values are counted (few distinct numbers): its histogram comes from them."""
    return kind in _NUMERIC and r["hll"] <= VALUE_COUNTS


def _exact(r: Mapping[str, Any], rows: int) -> bool:
    """Whether a column's distinct values are counted exactly (few of them, or a small table)."""
    return "hll" in r and (r["hll"] <= EXACT_DISTINCT or rows <= EXACT_DISTINCT)


def _finite_count(r: Mapping[str, Any]) -> int:
    return int(r["nonnull"]) - int(r.get("nan", 0)) - int(r.get("inf", 0))


def _mean(r: Mapping[str, Any]) -> float | None:
    n = _finite_count(r)
    return _stable(r["sum"] / n) if n and r.get("sum") is not None else None


def _stable(value: float) -> float | None:
    """Round to 12 significant digits: DuckDB sums in parallel, in an order that changes the last bits."""
    value = float(f"{value:.12g}")
    return value if math.isfinite(value) else None


def _num(value: Any) -> Any:
    """A JSON-ready statistic: Decimal as float, NaN and infinities (overflow) as None."""
    value = float(value) if value is not None and not isinstance(value, int | str) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _nan_last(value: Any) -> tuple[bool, Any]:
    nan = isinstance(value, float) and math.isnan(value)
    return nan, 0 if nan else value


def _edges(lo: float, hi: float) -> list[float]:
    """BINS + 1 increasing edges from lo to hi; a constant (or too narrow) range is widened around it."""
    edges = [lo * (1 - k / BINS) + hi * (k / BINS) for k in range(BINS + 1)]  # cannot overflow
    if all(a < b for a, b in itertools.pairwise(edges)) and math.isfinite(BINS / (hi / 2 - lo / 2)):
        return [lo, *edges[1:-1], hi]
    mid, top = lo / 2 + hi / 2, sys.float_info.max
    pad = max(abs(mid), 1.0) / 2
    return _edges(max(mid - pad, -top), min(mid + pad, top))


def _scale(edges: list[float]) -> tuple[float, float]:
    """``(scale, offset)``: ``floor(x * scale + offset)`` is the bin of ``x`` (BINS for the maximum)."""
    scale = BINS / 2 / (edges[-1] / 2 - edges[0] / 2)  # halves, as hi - lo may overflow
    return scale, -edges[0] * scale


def _histogram(r: Mapping[str, Any]) -> dict[str, list[Any]]:
    scale, offset = _scale(r["edges"])
    if "values" in r:  # the same arithmetic as the SQL, hence the same bins
        buckets = [
            (math.floor(float(x) * scale + offset), n) for x, n in r["values"].items() if _num(x) is not None
        ]
    else:  # NaN and inf fall on non-finite buckets: left out
        buckets = [(int(b), n) for b, n in (r["hist"] or {}).items() if math.isfinite(b)]
    counts = [0] * BINS
    for bucket, n in buckets:
        counts[max(0, min(bucket, BINS - 1))] += int(n)
    return {"edges": r["edges"], "counts": counts}


def _std(r: Mapping[str, Any]) -> float | None:
    n, m, ss = _finite_count(r), _mean(r), r.get("ss")
    if "values" in r and m is not None:  # counted: the centred sum of squares over the distinct values
        ss = sum(k * (float(x) - m) * (float(x) - m) for x, k in r["values"].items() if _num(x) is not None)
    return _stable(math.sqrt(ss / (n - 1))) if n > 1 and ss is not None and math.isfinite(ss) else None


def _column(f: pa.Field, kind: str, r: dict[str, Any], rows: int) -> ColumnProfile:
    nulls = int(r["nulls"]) if kind == "string" else rows - int(r["nonnull"])
    top: list[tuple[Any, int]] = []
    if kind == "string":
        top = [(item["v"], int(item["n"])) for item in r["top"] or []]
    elif kind == "bool":
        trues, falses = int(r["trues"]), rows - nulls - int(r["trues"])
        top = sorted([(v, n) for v, n in ((True, trues), (False, falses)) if n], key=lambda vn: -vn[1])
        r |= {"distinct": len(top), "min": falses == 0 if top else None, "max": trues > 0 if top else None}
    elif "values" in r:
        r["values"] = values = dict(zip(r["keys"] or [], r["values"] or [], strict=True))
        order = heapq.nsmallest(TOP_K, values.items(), key=lambda vn: (-vn[1], *_nan_last(vn[0])))
        top = [(str(float(v)) if _num(v) is None else _num(v), int(n)) for v, n in order]
        r["distinct"] = len(values)
    stats: dict[str, Any] = {}
    if kind in _NUMERIC and _finite_count(r) > 0:
        quantiles = dict(zip(QUANTILES, map(_num, r.get("quantiles") or []), strict=False))
        stats = {"mean": _mean(r), "std": _std(r), "quantiles": quantiles, "histogram": _histogram(r)}
    has_values = kind not in ("nested", "other") and (rows - nulls if kind == "string" else _finite_count(r))
    approx = "hll" in r and "distinct" not in r
    return ColumnProfile(
        name=f.name,
        type=str(f.type),
        count=rows,
        null_count=nulls,
        null_share=nulls / rows if rows else 0.0,
        distinct=None if kind == "nested" else int(r["hll"] if approx else r["distinct"]),
        distinct_approx=approx,
        nan_count=int(r.get("nan", 0)),
        inf_count=int(r.get("inf", 0)),
        min=_num(r.get("min")) if has_values else None,
        max=_num(r.get("max")) if has_values else None,
        top_k=top,
        **stats,
    )


@dataclass(frozen=True)
class ColumnShift:
    """How one column changed between two profiles.

    Attributes:
        name: The column name.
        change: ``"added"``, ``"removed"``, ``"type"`` (its Arrow type changed), ``"shift"`` (PSI at or
            above the threshold, or the null share moved by ``NULL_SHIFT`` or more) or ``"same"``.
        old_type: The type before; None when added.
        new_type: The type after; None when removed.
        psi: The population stability index (see :func:`diff_profiles`); None when not comparable.
        mean_shift_std: ``(mean_after - mean_before) / std_before`` (0.0 for equal means); else None.
        null_share_delta: ``null_share_after - null_share_before``; None when added or removed.
    """

    name: str
    change: Change
    old_type: str | None
    new_type: str | None
    psi: float | None = None
    mean_shift_std: float | None = None
    null_share_delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnShift:
        """Build from the dict ``to_dict`` returns."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class ProfileDiff:
    """The differences between two profiles, one :class:`ColumnShift` per column of either.

    Attributes:
        rows_before: Rows of the first profile.
        rows_after: Rows of the second profile.
        columns: The columns of ``before`` in order, then those only in ``after``.
    """

    rows_before: int
    rows_after: int
    columns: tuple[ColumnShift, ...]

    @property
    def schema_changed(self) -> bool:
        """Whether a column was added, removed, or changed type."""
        return any(c.change in ("added", "removed", "type") for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (with ``schema_changed``)."""
        columns = [c.to_dict() for c in self.columns]
        rows = {"rows_before": self.rows_before, "rows_after": self.rows_after}
        return rows | {"schema_changed": self.schema_changed, "columns": columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileDiff:
        """Build from the dict ``to_dict`` returns (``schema_changed`` is derived from the columns)."""
        columns = tuple(ColumnShift.from_dict(c) for c in data.get("columns") or ())
        return cls(int(data["rows_before"]), int(data["rows_after"]), columns)


def diff_profiles(
    before: DatasetProfile, after: DatasetProfile, *, psi_threshold: float = PSI_SHIFT
) -> ProfileDiff:
    """Compare two profiles column by column, matching columns by name.

    PSI is ``sum((a - b) * ln(a / b))`` over bins holding the shares ``b`` of non-null values before and
    ``a`` after, an empty bin counting as ``1e-4``. The bins come from what the profiles hold:

    - if both ``top_k`` lists are complete (they list every non-null value: bools, strings and counted
      numbers of at most ``TOP_K`` values), or a side has no histogram (strings): the values listed on
      both sides, or on one side when the other is complete, plus one bin for all other values;
    - else, for numeric columns: the ``before`` histogram's bins, plus one below and one above them.
      The ``after`` shares in them come from its own histogram, read as a piecewise-linear distribution
      function (its values spread evenly within each of its bins).

    Args:
        before: The reference profile (e.g. the previous version, or the training data).
        after: The profile compared with it.
        psi_threshold: The PSI at or above which a column counts as shifted.

    Returns:
        The row counts and one :class:`ColumnShift` per column.
    """
    new, old = {c.name: c for c in after.columns}, {c.name for c in before.columns}
    shifts = [_shift(b, new.get(b.name), psi_threshold) for b in before.columns]
    shifts += [ColumnShift(a.name, "added", None, a.type) for a in after.columns if a.name not in old]
    return ProfileDiff(before.rows, after.rows, tuple(shifts))


def _shift(b: ColumnProfile, a: ColumnProfile | None, psi_threshold: float) -> ColumnShift:
    if a is None:
        return ColumnShift(b.name, "removed", b.type, None)
    psi, delta, mean_shift = _psi(b, a), a.null_share - b.null_share, None
    if a.mean is not None and b.mean is not None and b.std is not None:
        mean_shift = _num((a.mean - b.mean) / b.std) if b.std > 0 else 0.0 if a.mean == b.mean else None
    shifted = (psi is not None and psi >= psi_threshold) or abs(delta) >= NULL_SHIFT
    change: Change = "type" if a.type != b.type else "shift" if shifted else "same"
    return ColumnShift(b.name, change, b.type, a.type, psi, mean_shift, delta)


def _psi(b: ColumnProfile, a: ColumnProfile) -> float | None:
    nb, na = b.count - b.null_count, a.count - a.null_count
    full_b, full_a = sum(n for _, n in b.top_k) == nb, sum(n for _, n in a.top_k) == na
    if b.top_k and a.top_k and ((full_b and full_a) or not (b.histogram and a.histogram)):
        tb, ta = dict(b.top_k), dict(a.top_k)
        values = [v for v in {**tb, **ta} if (v in tb or full_b) and (v in ta or full_a)]
        p = np.array([tb.get(v, 0) for v in values] + [nb - sum(tb.get(v, 0) for v in values)]) / nb
        q = np.array([ta.get(v, 0) for v in values] + [na - sum(ta.get(v, 0) for v in values)]) / na
    elif b.histogram and a.histogram:
        counts_b, counts_a = np.array(b.histogram["counts"], float), np.array(a.histogram["counts"], float)
        cdf_a = np.r_[0, np.cumsum(counts_a)] / counts_a.sum()
        at_edges = np.interp(b.histogram["edges"], a.histogram["edges"], cdf_a)  # 0 below, 1 above
        p = np.r_[0, counts_b / counts_b.sum(), 0]
        q = np.r_[at_edges[0], np.diff(at_edges), 1 - at_edges[-1]]
    else:
        return None
    p, q = np.maximum(p, _EPS), np.maximum(q, _EPS)
    return float(np.sum((q - p) * np.log(q / p)))
