"""Feast's side of the feature store benchmark (``benchmarks/features.py`` drives it).

Runs INSIDE Feast's venv (``benchmarks/.peers/feast``, made by ``bash benchmarks/setup_peers.sh feast``),
never in Steward's, one case per process::

    benchmarks/.peers/feast/bin/python benchmarks/features_feast.py --case setup --data DATA --repo REPO
    benchmarks/.peers/feast/bin/python benchmarks/features_feast.py --case training --data DATA --repo REPO \\
        --out result.parquet

Cases: ``setup`` writes a feature repository into ``--repo`` (local provider, file offline store, SQLite
online store, a file registry whose cache never expires) and applies the entity and the two views through
``FeatureStore.apply``; ``training`` is ``get_historical_features(entity_df, refs).to_df()`` for the entity
rows (read with pandas before the timing; one warm-up call on 100 of them first) and writes the result to
``--out``; ``materialize`` is ``materialize(start, end)`` of both views over the whole data into the
repository's (empty) online store; ``online`` times ``get_online_features(refs, entity_rows).to_dict()``
for one and for 100 entities after warm-up reads. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("FEAST_USAGE", "False")  # no telemetry (before feast is imported)

from _common import release_memory, reset_peak_rss, rss_bytes, wait_quiet  # stdlib only
from features_data import (
    ENTITY,
    JOIN_KEY,
    ONLINE_WARMUP,
    TIMESTAMP,
    TTL,
    VIEWS,
    feature_refs,
    manifest,
    online_batch_ids,
    online_check_ids,
    online_single_ids,
    percentiles,
    vm_hwm_bytes,
)

BUSY_LIMIT = 0.15
PROJECT = "featbench"
REPO_YAML = f"""project: {PROJECT}
registry:
  path: data/registry.db
  cache_ttl_seconds: 0
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def _store(repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def _quiet(max_wait: float) -> float | None:
    busy = wait_quiet(max_wait, BUSY_LIMIT)
    return None if busy is None else round(busy, 3)


def case_setup(info: dict[str, Any], repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write the repository and apply the definitions."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(REPO_YAML)
    customer = Entity(name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.INT64)
    views = [
        FeatureView(
            name=view,
            entities=[customer],
            ttl=TTL,
            schema=[Field(name=JOIN_KEY, dtype=Int64), *(Field(name=n, dtype=Float64) for n in names)],
            source=FileSource(name=f"{view}_source", path=info["views"][view], timestamp_field=TIMESTAMP),
            online=True,
        )
        for view, names in VIEWS.items()
    ]
    t0 = time.perf_counter()
    _store(repo).apply([customer, *views])
    return {"apply_seconds": time.perf_counter() - t0}


def case_training(info: dict[str, Any], repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One point-in-time training set for every entity row, after a warm-up on 100 of them."""
    import pandas as pd

    store = _store(repo)
    refs = feature_refs()
    entity_df = pd.read_parquet(info["entities"])
    t0 = time.perf_counter()
    store.get_historical_features(entity_df=entity_df.head(100), features=refs).to_df()
    warmup = time.perf_counter() - t0
    gc.collect()
    release_memory()
    base = rss_bytes()
    reset_peak_rss()
    busy = _quiet(args.max_wait)
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    seconds = time.perf_counter() - t0
    peak = vm_hwm_bytes()
    names = [r.split(":", 1)[1] for r in refs]
    nulls = {n: int(df[n].isna().sum()) for n in names}
    df[[JOIN_KEY, TIMESTAMP, *names]].to_parquet(args.out, index=False)
    return {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "rows_in": len(entity_df),
        "rows_out": len(df),
        "nulls": nulls,
        "base_rss_bytes": base,
        "peak_rss_bytes": peak,
        "peak_extra_bytes": max(0, peak - base),
        "busy": busy,
    }


def case_materialize(info: dict[str, Any], repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both views, all their rows, into the repository's online store."""
    store = _store(repo)
    start = datetime.fromisoformat(info["start"]) - timedelta(days=1)
    end = datetime.now(UTC)
    store.list_feature_views()  # the registry loaded before the timing
    base = rss_bytes()
    reset_peak_rss()
    busy = _quiet(args.max_wait)
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    seconds = time.perf_counter() - t0
    peak = vm_hwm_bytes()
    return {"seconds": seconds, "peak_rss_bytes": peak, "peak_extra_bytes": max(0, peak - base), "busy": busy}


def case_online(info: dict[str, Any], repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Online reads of the ten features: one entity a read, then 100 entities a read."""
    store = _store(repo)
    refs = feature_refs()

    def read(ids: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = store.get_online_features(
            features=refs, entity_rows=[{JOIN_KEY: i} for i in ids]
        ).to_dict()
        return out

    result: dict[str, Any] = {}
    for kind, batches in (("single", [[i] for i in online_single_ids()]), ("batch", online_batch_ids())):
        for ids in batches[: args.warmup]:
            read(ids)
        result[f"busy_{kind}"] = _quiet(args.max_wait)
        latencies = []
        for ids in batches[args.warmup :]:
            t0 = time.perf_counter_ns()
            read(ids)
            latencies.append(time.perf_counter_ns() - t0)
        result[kind] = percentiles(latencies)
    check = read(online_check_ids())
    result["check"] = check
    return result


CASES = {
    "setup": case_setup,
    "training": case_training,
    "materialize": case_materialize,
    "online": case_online,
}


def main(argv: list[str] | None = None) -> int:
    """Run one case and print its JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--data", type=Path, required=True, help="the generated data's directory")
    p.add_argument("--repo", type=Path, required=True, help="the Feast feature repository")
    p.add_argument("--out", type=Path, help="training: where the result's Parquet goes")
    p.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    p.add_argument("--warmup", type=int, default=ONLINE_WARMUP, help="online: warm-up reads of each kind")
    args = p.parse_args(argv)
    info = manifest(args.data)
    if info is None:
        raise SystemExit(f"no manifest.json in {args.data}")
    import importlib.metadata as md

    result = CASES[args.case](info, args.repo, args)
    result |= {
        "case": args.case,
        "versions": {n: md.version(n) for n in ("feast", "pandas", "pyarrow", "dask")},
    }
    print(json.dumps(result, default=float), flush=True)  # numpy scalars, should any come back
    return 0


if __name__ == "__main__":
    sys.exit(main())
