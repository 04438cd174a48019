"""An Arrow table's profile (numpy and Arrow on a thread pool beside DuckDB) equals its Parquet file's
(DuckDB alone), column by column, for the types and shapes the fast path takes apart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from steward.data import profile_arrow
from steward.data.profile import SAMPLE_ROWS, profile_table

ROWS = 1 << 17  # more than one numpy slice per chunk, and a power of two: the sums below are exact


def mixed() -> pa.Table:
    """Symmetric dyadic floats: every sum is exact and 0, so any summing order gives the same mean and std."""
    rng = np.random.default_rng(7)
    half = rng.integers(-(2**17), 2**17, ROWS // 2) / 256  # ~50,000 values: not counted, distinct exact
    holes = np.r_[rng.random(ROWS // 2) < 0.03, np.zeros(ROWS // 2, bool)]
    special = [1.0, float("nan"), None, float("inf"), -np.inf, -1.0] * 4
    table = pa.table(
        {
            "float": pa.array(np.r_[half, -half]),
            "holes": pa.array(np.r_[half, -half], mask=np.r_[holes[: ROWS // 2], holes[: ROWS // 2]]),
            "odd": pa.array(special + list(np.r_[half[12:], -half[12:]])),  # finite pass, finite bins
            "counted": pa.array(rng.integers(-20, 20, ROWS), mask=holes),  # few values: value counts
            "exact": pa.array(rng.integers(0, 30_000, ROWS)),  # span < SPAN: distinct counted with bincount
            "wide": pa.array(rng.integers(-(2**62), 2**62, ROWS)),  # span too wide: SQL's count(DISTINCT)
            "int8": pa.array(rng.integers(-128, 128, ROWS, dtype=np.int8)),
            "uint64": pa.array(np.uint64(2**64 - 1) - rng.integers(0, 50, ROWS).astype(np.uint64)),
            "float32": pa.array(rng.integers(-64, 64, ROWS).astype(np.float32) / 8),
            "const": pa.array(np.full(ROWS, 7.5)),
            "allnull": pa.array([None] * ROWS, pa.float64()),
            "text": pa.array(rng.choice(["b", "a", "", "é" * 300, "Z"], ROWS), mask=holes),
            "large": pa.array(rng.choice(["x", "y"], ROWS), pa.large_string()),
        }
    )
    return pa.concat_tables([table.slice(0, 1000), table.slice(1000, 0), table.slice(1000)])  # 3 chunks


def test_the_arrow_path_profiles_like_duckdb_alone(tmp_path: Path) -> None:
    table = mixed()
    pq.write_table(table, tmp_path / "t.parquet")
    fast, sql = profile_table(table), profile_table(tmp_path / "t.parquet")
    assert fast.quantile_sample == sql.quantile_sample == SAMPLE_ROWS
    for got, want in zip(fast.columns, sql.columns, strict=True):  # the samples differ: scans differ
        assert replace(got, quantiles={}) == replace(want, quantiles={}), got.name
    exact, wide, counted = fast.column("exact"), fast.column("wide"), fast.column("counted")
    assert (exact.distinct, exact.distinct_approx) == (len(np.unique(table["exact"].to_numpy())), False)
    assert wide.distinct_approx and not counted.distinct_approx and len(counted.top_k) == 10
    assert fast.column("text").top_k[0][1] >= fast.column("text").top_k[-1][1]
    assert fast.column("uint64").max == 2**64 - 1
    for name in ("float", "holes", "odd"):  # binned and squared by numpy, not counted
        col = fast.column(name)
        assert col.mean == 0.0 and col.std is not None and len(col.top_k) == 0, name
    assert (fast.column("odd").nan_count, fast.column("odd").inf_count) == (4, 8)


def test_numeric_pass_bins_as_the_sql_does() -> None:
    column = pa.chunked_array([[0.0, 1.0, 2.5, None, 9.999, 10.0], [float("nan"), 5.0]])
    out = profile_arrow.numeric_pass(column, 1.0, 0.0, 5.0, True, 10)
    assert out["hist"] == {0.0: 1, 1.0: 1, 2.0: 1, 5.0: 1, 9.0: 2}  # 10.0, the maximum, in the last bin
    assert out["ss"] == sum((x - 5.0) ** 2 for x in [0.0, 1.0, 2.5, 9.999, 10.0, 5.0])
    assert profile_arrow.numeric_pass(pa.chunked_array([], pa.float64()), 1.0, 0.0, 0.0, False, 10) == {
        "hist": {},
        "ss": None,
    }
