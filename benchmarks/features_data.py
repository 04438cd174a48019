"""What both sides of the feature store benchmark share: the data, the feature references, the read sets,
the memory probe.

``benchmarks/features.py`` generates the data once per scale with Steward's venv (numpy, pyarrow) into
``benchmarks/.data/features/<scale>/`` and reuses it while it is fresh; ``features_feast.py`` (run by
Feast's venv) imports the names and the read sets from here, so only the standard library is imported at
module level.

The data: 100,000 customers and two feature views, ``customer_spend`` (``spend_0``-``spend_4``) and
``customer_activity`` (``activity_0``-``activity_4``), each a Parquet file of ``customer_id`` (int64),
``event_timestamp`` (UTC, microseconds) and five float64 features, with the same number of rows for every
customer at random times over 90 days that end at midnight UTC of the day the data was made (so online
reads find values within the views' 30-day TTL). Entity rows are ``customer_id`` and ``event_timestamp``:
98 % known customers at random times in the 90 days, 1 % unknown customers, 1 % timestamps before the
first event of any view, all in random order and unique, so a system that drops rows shows it.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DATA_VERSION = 1  # bump when the generator changes: cached data of another version is made again
SEED = 20261201
CUSTOMERS = 100_000
DAYS = 90
TTL = timedelta(days=30)
UNKNOWN_SHARE = 0.01
EARLY_SHARE = 0.01
EARLY_DAYS = 5  # early entity rows fall this many days (at most) before the data starts
FRESH_DAYS = 7  # cached data whose last day is older than this is made again (the online TTL)

SCALES: dict[str, tuple[int, int]] = {"small": (100_000, 1_000_000), "full": (1_000_000, 10_000_000)}
"""Per scale: (entity rows of the training set, rows per view)."""

VIEWS: dict[str, tuple[str, ...]] = {
    "customer_spend": tuple(f"spend_{i}" for i in range(5)),
    "customer_activity": tuple(f"activity_{i}" for i in range(5)),
}
ENTITY = "customer"
JOIN_KEY = "customer_id"
TIMESTAMP = "event_timestamp"

# Online reads: warm-up reads first, then the timed ones; the same entity ids on both sides.
ONLINE_WARMUP = 200
ONLINE_SINGLE_READS = 5_000
ONLINE_BATCH_READS = 1_000
ONLINE_BATCH = 100
CHECK_UNKNOWN = 5  # unknown ids among the 100 of the cross-checked online read


def feature_refs() -> list[str]:
    """The ten ``view:feature`` references every read asks for."""
    return [f"{view}:{name}" for view, names in VIEWS.items() for name in names]


def online_single_ids() -> list[int]:
    """Known customer ids, one per read: the warm-up reads, then the timed ones."""
    rng = random.Random(SEED + 10)
    return [rng.randrange(CUSTOMERS) for _ in range(ONLINE_WARMUP + ONLINE_SINGLE_READS)]


def online_batch_ids() -> list[list[int]]:
    """Batches of ``ONLINE_BATCH`` distinct known customer ids: the warm-up reads, then the timed ones."""
    rng = random.Random(SEED + 11)
    return [rng.sample(range(CUSTOMERS), ONLINE_BATCH) for _ in range(ONLINE_WARMUP + ONLINE_BATCH_READS)]


def online_check_ids() -> list[int]:
    """The 100 ids of the online read both sides report in full: known ones and ``CHECK_UNKNOWN`` unknown."""
    rng = random.Random(SEED + 12)
    known = rng.sample(range(CUSTOMERS), ONLINE_BATCH - CHECK_UNKNOWN)
    return known + [CUSTOMERS + 7 * k for k in range(CHECK_UNKNOWN)]


def manifest(data_dir: Path) -> dict[str, Any] | None:
    """The ``manifest.json`` of generated data, or None if there is none."""
    try:
        loaded: dict[str, Any] = json.loads((data_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return loaded


def is_fresh(info: dict[str, Any] | None, scale: str, now: datetime | None = None) -> bool:
    """Whether cached data was made by this generator for ``scale`` and ended at most ``FRESH_DAYS`` ago."""
    if info is None or info.get("version") != DATA_VERSION or info.get("scale") != scale:
        return False
    end = datetime.fromisoformat(info["end"])
    return (now or datetime.now(UTC)) - end <= timedelta(days=FRESH_DAYS)


def vm_hwm_bytes() -> int:
    """This process's RSS high-water mark (``VmHWM``, which ``/proc/self/clear_refs`` resets), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def percentiles(latencies_ns: list[int]) -> dict[str, float]:
    """p50, p99, mean and max of per-call latencies, in milliseconds."""
    ordered = sorted(latencies_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "mean_ms": sum(ordered) / len(ordered) / 1e6,
        "max_ms": ordered[-1] / 1e6,
        "reads": len(ordered),
    }


# --------------------------------------------------------------------------------------------
# Generating (with Steward's venv: numpy, pyarrow)
# --------------------------------------------------------------------------------------------


def _unique_rows(ids: Any, offsets: Any, draw: Any) -> Any:
    """Offsets redrawn (``draw(mask)`` gives new ones for the rows in ``mask``) until every ``(id, offset)``
    pair is unique; returns them."""
    import numpy as np

    while True:
        key = ids.astype(np.int64) * (1 << 43) + offsets
        _, first = np.unique(key, return_index=True)
        if len(first) == len(key):
            return offsets
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        offsets[dup] = draw(dup)


def generate(out: Path, scale: str, today: datetime | None = None) -> dict[str, Any]:
    """Write the two views, the entity rows and ``manifest.json`` into ``out``; return the manifest."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    entity_rows, view_rows = SCALES[scale]
    now = today or datetime.now(UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    span_us = DAYS * 86_400_000_000
    start_us = int(start.timestamp() * 1_000_000)
    ts_type = pa.timestamp("us", tz="UTC")
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for view, names in VIEWS.items():
        ids = np.repeat(np.arange(CUSTOMERS, dtype=np.int64), view_rows // CUSTOMERS)
        offsets = rng.integers(0, span_us, len(ids), dtype=np.int64)
        offsets = _unique_rows(ids, offsets, lambda m: rng.integers(0, span_us, int(m.sum()), dtype=np.int64))
        order = np.argsort(offsets, kind="stable")  # in event-time order, as data lands day by day
        cols: dict[str, Any] = {
            JOIN_KEY: pa.array(ids[order]),
            TIMESTAMP: pa.array(start_us + offsets[order], type=pa.int64()).cast(ts_type),
        }
        for k, name in enumerate(names):
            cols[name] = pa.array(rng.random(len(ids)) * (10.0 ** (k % 3)))
        path = out / f"{view}.parquet"
        pq.write_table(pa.table(cols), path)
        files[view] = str(path)

    n_unknown = int(entity_rows * UNKNOWN_SHARE)
    n_early = int(entity_rows * EARLY_SHARE)
    n_known = entity_rows - n_unknown - n_early
    early_us = EARLY_DAYS * 86_400_000_000
    ids = np.concatenate(
        [
            rng.integers(0, CUSTOMERS, n_known + n_early, dtype=np.int64),
            rng.integers(CUSTOMERS, 2 * CUSTOMERS, n_unknown, dtype=np.int64),
        ]
    )
    # Offsets from EARLY_DAYS before the start: the early rows below 0, the others inside the 90 days.
    offsets = np.concatenate(
        [
            rng.integers(early_us, early_us + span_us, n_known, dtype=np.int64),
            rng.integers(0, early_us, n_early, dtype=np.int64),
            rng.integers(early_us, early_us + span_us, n_unknown, dtype=np.int64),
        ]
    )
    kinds = np.concatenate(
        [np.zeros(n_known, np.int8), np.ones(n_early, np.int8), np.full(n_unknown, 2, np.int8)]
    )

    def redraw(mask: Any) -> Any:  # a redrawn row keeps its kind (early rows stay early)
        early = kinds[mask] == 1
        inside = rng.integers(early_us, early_us + span_us, len(early), dtype=np.int64)
        return np.where(early, rng.integers(0, early_us, len(early), dtype=np.int64), inside)

    offsets = _unique_rows(ids, offsets, redraw)
    order = rng.permutation(entity_rows)
    entities = pa.table(
        {
            JOIN_KEY: pa.array(ids[order]),
            TIMESTAMP: pa.array(start_us - early_us + offsets[order], type=pa.int64()).cast(ts_type),
        }
    )
    pq.write_table(entities, out / "entities.parquet")
    info = {
        "version": DATA_VERSION,
        "scale": scale,
        "customers": CUSTOMERS,
        "view_rows": view_rows,
        "entity_rows": entity_rows,
        "unknown_entity_rows": n_unknown,
        "early_entity_rows": n_early,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "views": files,
        "entities": str(out / "entities.parquet"),
        "view_file_bytes": {v: Path(p).stat().st_size for v, p in files.items()},
        "generated_at": now.isoformat(),
    }
    (out / "manifest.json").write_text(json.dumps(info, indent=2))
    return info


# --------------------------------------------------------------------------------------------
# Checking (with Steward's venv: DuckDB), after both sides ran and outside every timing
# --------------------------------------------------------------------------------------------


def _reference_sql(info: dict[str, Any]) -> str:
    """The expected training set as DuckDB SQL: per entity row and view, the latest row at or before its
    timestamp, its features null when that row is older than the TTL (or there is none)."""
    ttl_us = int(TTL.total_seconds() * 1_000_000)
    select, joins = [], []
    for k, (view, names) in enumerate(VIEWS.items()):
        alias = f"v{k}"
        fresh = f"{alias}.{TIMESTAMP} >= e.{TIMESTAMP} - to_microseconds({ttl_us})"
        select += [f"CASE WHEN {fresh} THEN {alias}.{n} END AS {n}" for n in names]
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{info['views'][view]}') {alias} "
            f"ON e.{JOIN_KEY} = {alias}.{JOIN_KEY} AND e.{TIMESTAMP} >= {alias}.{TIMESTAMP}"
        )
    return (
        f"SELECT e.{JOIN_KEY}, e.{TIMESTAMP}, {', '.join(select)} "
        f"FROM read_parquet('{info['entities']}') e {' '.join(joins)}"
    )


def check_training(info: dict[str, Any], result: Path) -> dict[str, Any]:
    """Compare a side's training set (a Parquet file) with the reference join, row by row.

    Returns the rows it kept, missed and added, the kept rows whose values differ from the reference
    (beyond 1e-9 relative), and the missed rows by kind: unknown customers, timestamps before the data,
    rows that get no value from at least one view (before that customer's first event there, or past the
    TTL), and the others.
    """
    import duckdb

    names = [n for ns in VIEWS.values() for n in ns]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TEMP TABLE ref AS {_reference_sql(info)}")
    con.execute(
        f"CREATE TEMP TABLE got AS SELECT {JOIN_KEY}, {TIMESTAMP}::TIMESTAMPTZ AS {TIMESTAMP}, "
        f"{', '.join(names)} FROM read_parquet('{result}')"
    )
    differs = " OR ".join(
        f"(r.{n} IS NULL) <> (g.{n} IS NULL) OR abs(r.{n} - g.{n}) > 1e-9 * greatest(1, abs(r.{n}))"
        for n in names
    )
    some_view_null = " OR ".join(f"r.{ns[0]} IS NULL" for ns in VIEWS.values())
    start = info["start"]
    row = con.execute(
        f"""
        SELECT
            (SELECT count(*) FROM got) AS rows_out,
            (SELECT count(*) FROM (SELECT DISTINCT {JOIN_KEY}, {TIMESTAMP} FROM got)) AS distinct_out,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NULL) AS missed,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NULL AND r.{JOIN_KEY} >= {CUSTOMERS}) AS missed_unknown,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NULL AND r.{JOIN_KEY} < {CUSTOMERS}
                             AND r.{TIMESTAMP} < TIMESTAMPTZ '{start}') AS missed_early,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NULL AND r.{JOIN_KEY} < {CUSTOMERS}
                             AND r.{TIMESTAMP} >= TIMESTAMPTZ '{start}'
                             AND ({some_view_null})) AS missed_no_value,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NULL AND r.{JOIN_KEY} < {CUSTOMERS}
                             AND r.{TIMESTAMP} >= TIMESTAMPTZ '{start}'
                             AND NOT ({some_view_null})) AS missed_other,
            count(*) FILTER (WHERE g.{JOIN_KEY} IS NOT NULL AND ({differs})) AS wrong,
            count(*) FILTER (WHERE {some_view_null}) AS ref_rows_with_nulls
        FROM ref r LEFT JOIN got g USING ({JOIN_KEY}, {TIMESTAMP})
        """
    ).fetchone()
    assert row is not None
    keys = [d[0] for d in con.description or ()]
    out = dict(zip(keys, (int(v) for v in row), strict=True))
    out["added"] = out["rows_out"] - (info["entity_rows"] - out["missed"])
    con.close()
    return out


def latest_values(info: dict[str, Any], ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per customer in ``ids``: each view's latest event time (``<view>@``) and feature values."""
    import duckdb

    con = duckdb.connect()
    out: dict[int, dict[str, Any]] = {i: {} for i in ids}
    id_list = ", ".join(str(i) for i in ids)
    for view, names in VIEWS.items():
        cols = ", ".join(f"arg_max({n}, {TIMESTAMP})" for n in names)
        rows = con.execute(
            f"SELECT {JOIN_KEY}, max({TIMESTAMP}), {cols} FROM read_parquet('{info['views'][view]}') "
            f"WHERE {JOIN_KEY} IN ({id_list}) GROUP BY 1"
        ).fetchall()
        for cid, ts, *values in rows:
            out[int(cid)][f"{view}@"] = ts
            out[int(cid)].update(zip(names, values, strict=True))
    con.close()
    return out


def check_online(info: dict[str, Any], columns: dict[str, list[Any]], now: datetime) -> dict[str, int]:
    """Compare an online read of ``online_check_ids()`` with the views' latest rows.

    Counts values that match the latest row (``fresh``: within the TTL, ``stale``: older), nulls where it is
    older than the TTL (``stale_null``) or there is none (``unknown_null``), and anything else (``wrong``).
    """
    ids = online_check_ids()
    latest = latest_values(info, ids)
    counts = {"fresh": 0, "stale": 0, "stale_null": 0, "unknown_null": 0, "wrong": 0}
    got_ids = [int(v) for v in columns.get(JOIN_KEY, ids)]
    if got_ids != ids:
        counts["wrong"] += len(ids)
        return counts
    for view, names in VIEWS.items():
        for k, cid in enumerate(ids):
            ref = latest[cid]
            stale = f"{view}@" in ref and now - ref[f"{view}@"] > TTL
            for n in names:
                value = columns[n][k]
                if n not in ref:
                    counts["unknown_null" if value is None else "wrong"] += 1
                elif value is None:
                    counts["stale_null" if stale else "wrong"] += 1
                elif abs(float(value) - ref[n]) <= 1e-9 * max(1.0, abs(ref[n])):
                    counts["stale" if stale else "fresh"] += 1
                else:
                    counts["wrong"] += 1
    return counts
