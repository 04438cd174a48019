"""What both sides of the data benchmark share: the generated table, the ten checks, the failing copy.

``benchmarks/data.py`` generates the table with Steward's venv (numpy, pyarrow) in a subprocess; the checks
go to ``checks.json`` next to it, so that ``peer_data.py`` builds its schemas from the same definition as
Steward's side (``steward_expectations``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROWS = 10_000_000
QUICK_ROWS = 200_000
SEED = 20261123
BUSY_LIMIT = 0.15  # other work above this share of the CPUs delays a timed repeat (up to --max-wait s)

S0 = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
S1 = ["Dubai", "Abu Dhabi", "Sharjah", "Riyadh", "Paris", "Lyon", "Cairo", "Doha", "Muscat", "Amman"]
S2 = [
    f"{p}-{1234 + 777 * k}"
    for k, p in enumerate(["AB", "CD", "EF", "GH", "JK", "LM", "NP", "QR", "ST", "UV"])
]
S3 = ["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white", "grey", "brown"]
S4 = [f"segment-{k}" for k in range(12)]

CHECKS: dict[str, Any] = {
    "ranges": {"f0": [0, 100], "f1": [0, 100], "f2": [0, 1000], "f3": [-1, 1], "i1": [0, 999]},
    "not_null": ["f4", "s1"],
    "allowed": {"s0": S0},
    "unique": ["id"],
    "regex": {"s2": "[A-Z]{2}-[0-9]{4}"},
}
"""The ten checks, in a neutral form both sides build their schemas from (see ``peer_data.py``)."""

FAILURES = {"f0": 1_000, "i1": 150, "f4": 500, "s1": 250, "s0": 300, "id": 200, "s2": 400}
"""Rows of the failing file that fail each check (``id``: 100 values given to a second row each)."""


def steward_expectations(checks: dict[str, Any]) -> dict[str, Any]:
    """The checks as Steward's ``DatasetSchema`` dict form (nullable unless a not-null check says not)."""
    columns: dict[str, dict[str, Any]] = {}
    for col, (low, high) in checks["ranges"].items():
        columns[col] = {"min": low, "max": high}
    for col in checks["not_null"]:
        columns[col] = {"nullable": False}
    for col, values in checks["allowed"].items():
        columns[col] = {"allowed": list(values)}
    for col in checks["unique"]:
        columns[col] = {"unique": True}
    for col, pattern in checks["regex"].items():
        columns[col] = {"regex": pattern}
    return {"columns": columns}


# --------------------------------------------------------------------------------------------
# The data (made in a subprocess with Steward's venv: numpy and pyarrow)
# --------------------------------------------------------------------------------------------


def generate(out: Path, rows: int) -> dict[str, Any]:
    """Write ``data.parquet`` (passes every check), ``failing.parquet`` (``FAILURES``) and ``checks.json``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)

    def nulls(share: float) -> np.ndarray:
        return rng.random(rows) < share

    def strings(values: list[str], share: float = 0.0) -> pa.Array:
        mask = nulls(share) if share else None
        return pc.take(
            pa.array(values), pa.array(rng.integers(0, len(values), rows, dtype=np.int32), mask=mask)
        )

    cols: dict[str, pa.Array] = {
        "id": pa.array((np.arange(rows, dtype=np.int64) * 1_000_003) % rows + 1),  # unique, scrambled
        "f0": pa.array(rng.random(rows) * 100),
        "f1": pa.array(rng.normal(50, 10, rows).clip(0, 100), mask=nulls(0.01)),
        "f2": pa.array(rng.exponential(5, rows).clip(0, 1000), mask=nulls(0.02)),
        "f3": pa.array(rng.random(rows) * 2 - 1),
        "f4": pa.array(rng.normal(0, 1, rows)),
    }
    for k in range(5, 10):
        cols[f"f{k}"] = pa.array(rng.normal(k, k, rows), mask=nulls(0.01) if k == 9 else None)
    for name, high in (("i1", 1_000), ("i2", 100), ("i3", 1_000_000), ("i4", 50_000)):
        cols[name] = pa.array(rng.integers(0, high, rows, dtype=np.int64))
    for name, values, share in (("s0", S0, 0), ("s1", S1, 0), ("s2", S2, 0), ("s3", S3, 0.01), ("s4", S4, 0)):
        cols[name] = strings(values, share)
    table = pa.table(cols)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "data.parquet")

    # The failing copy: disjoint rows per check, so each check's count is exactly FAILURES[col].
    picked = np.random.default_rng(SEED + 1).choice(rows, sum(FAILURES.values()), replace=False)
    start, rows_of = 0, {}
    for col, n in FAILURES.items():
        rows_of[col], start = picked[start : start + n], start + n

    def mask(col: str) -> pa.Array:
        m = np.zeros(rows, dtype=bool)
        m[rows_of[col]] = True
        return pa.array(m)

    def replaced(col: str, value: Any) -> pa.Array:
        arr = table.column(col).combine_chunks()
        return pc.if_else(mask(col), pa.scalar(value, arr.type), arr)

    failing = {name: table.column(name) for name in table.column_names}
    failing |= {"f0": replaced("f0", 150.0), "i1": replaced("i1", -5), "f4": replaced("f4", None)}
    failing |= {"s1": replaced("s1", None), "s0": replaced("s0", "omega"), "s2": replaced("s2", "AB1234")}
    ids = table.column("id").to_numpy().copy()
    half = FAILURES["id"] // 2
    ids[rows_of["id"][half:]] = ids[rows_of["id"][:half]]
    failing["id"] = pa.array(ids)
    pq.write_table(pa.table(failing), out / "failing.parquet")
    (out / "checks.json").write_text(json.dumps(CHECKS))
    return {
        "rows": rows,
        "columns": table.num_columns,
        "arrow_bytes": table.nbytes,
        "file_bytes": (out / "data.parquet").stat().st_size,
    }
