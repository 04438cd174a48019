"""The peers' side of the data benchmark (``benchmarks/data.py`` drives it): pandas, pandera, GX Core.

Runs INSIDE a peer venv made by ``benchmarks/setup_peers.sh``, never in Steward's venv: the pandera venv
(pandas and pandera) for ``read``, ``validate_pandera``, ``profile_pandas`` and ``failing_pandera``; the
Great Expectations venv for ``validate_gx`` and ``failing_gx``::

    benchmarks/.peers/pandera/bin/python benchmarks/peer_data.py --case validate_pandera \\
        --data /tmp/x/data.parquet --checks /tmp/x/checks.json --repeats 3

Prints one JSON line: ``{"case": ..., "seconds": <median>, "times": [...], "data_bytes": ...,
"peak_extra_bytes": ..., "versions": {...}}``, plus ``"counts"`` (failing rows per checked column) for
the validations.

Every case reads the Parquet file with ``pandas.read_parquet`` (pyarrow engine) before the timing, except
``read``, which times exactly that. The checks come from ``--checks``, the same JSON file Steward's side
builds its ``DatasetSchema`` from: five ranges (inclusive, nulls ignored), two not-null, one allowed-values,
one unique, one regex (a full match: ``^…$`` around the pattern). Memory: ``data_bytes`` is the RSS the
loaded DataFrame added; ``peak_extra_bytes`` the RSS high-water mark during the timed repeats above the
RSS once the data was loaded (the mark is reset after loading). Before each timed repeat the process waits
(up to ``--max-wait`` seconds) until other work uses at most 15 % of the CPUs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Keep Great Expectations off the network and its progress bars quiet (before it is imported).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

from _common import peak_rss_bytes, release_memory, reset_peak_rss, rss_bytes, wait_quiet  # stdlib only

Checks = dict[str, Any]
BUSY_LIMIT = 0.15  # as in data.py: other work above this share of the CPUs delays a timed repeat
_WAIT = {"max": 60.0}
_BUSY: list[float] = []  # the busy share of the machine seen before each timed repeat


def _quiet() -> None:
    """Before a timed repeat: wait for other work on the machine to calm down; record how busy it was."""
    busy = wait_quiet(_WAIT["max"], BUSY_LIMIT)
    if busy is not None:
        _BUSY.append(round(busy, 3))


def _versions(*names: str) -> dict[str, str]:
    import importlib.metadata as md

    return {n: md.version(n) for n in ("pandas", "pyarrow", "numpy", *names)}


def _read(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path, engine="pyarrow")


def _full(pattern: str) -> str:
    """The pattern as a full match (pandera's ``str_matches`` anchors the start only, GX searches)."""
    return f"^(?:{pattern})$"


# --------------------------------------------------------------------------------------------
# pandera
# --------------------------------------------------------------------------------------------


def pandera_schema(checks: Checks) -> Any:
    """A ``DataFrameSchema`` with the ten checks; columns are nullable unless a not-null check says not."""
    import pandera.pandas as pa

    cols: dict[str, Any] = {}
    for col, (low, high) in checks["ranges"].items():
        cols[col] = pa.Column(checks=pa.Check.in_range(low, high), nullable=True)
    for col in checks["not_null"]:
        cols[col] = pa.Column(nullable=False)
    for col, values in checks["allowed"].items():
        cols[col] = pa.Column(checks=pa.Check.isin(values), nullable=True)
    for col in checks["unique"]:
        cols[col] = pa.Column(unique=True, nullable=True)
    for col, pattern in checks["regex"].items():
        cols[col] = pa.Column(checks=pa.Check.str_matches(_full(pattern)), nullable=True)
    return pa.DataFrameSchema(cols)


def pandera_counts(schema: Any, df: Any) -> dict[str, int]:
    """Failing rows per column (each checked column has one check), from a lazy validation."""
    import pandera.errors

    try:
        schema.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return {str(k): int(v) for k, v in cases.groupby("column").size().items()}
    return {}


# --------------------------------------------------------------------------------------------
# Great Expectations (GX Core 1.x, ephemeral context, pandas datasource)
# --------------------------------------------------------------------------------------------


def gx_setup(checks: Checks) -> tuple[Any, Any]:
    """An ephemeral context's whole-dataframe batch definition and the suite of the ten expectations."""
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    asset = ctx.data_sources.add_pandas("bench").add_dataframe_asset("bench")
    batch_definition = asset.add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name="bench"))
    e = gx.expectations
    for col, (low, high) in checks["ranges"].items():
        suite.add_expectation(e.ExpectColumnValuesToBeBetween(column=col, min_value=low, max_value=high))
    for col in checks["not_null"]:
        suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=col))
    for col, values in checks["allowed"].items():
        suite.add_expectation(e.ExpectColumnValuesToBeInSet(column=col, value_set=values))
    for col in checks["unique"]:
        suite.add_expectation(e.ExpectColumnValuesToBeUnique(column=col))
    for col, pattern in checks["regex"].items():
        suite.add_expectation(e.ExpectColumnValuesToMatchRegex(column=col, regex=_full(pattern)))
    return batch_definition, suite


def gx_validate(batch_definition: Any, suite: Any, df: Any) -> Any:
    """Validate ``df`` against the suite (result format SUMMARY: counts and partial lists)."""
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    return batch.validate(suite, result_format="SUMMARY")


def gx_counts(result: Any) -> dict[str, int]:
    """Failing rows per column from a suite result (``unexpected_count`` of each expectation)."""
    counts: dict[str, int] = {}
    for r in result.results:
        if not r.success:
            col = r.expectation_config.kwargs["column"]
            counts[col] = int(r.result.get("unexpected_count") or 0)
    return counts


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def _timed(repeats: int, call: Callable[[], Any]) -> tuple[list[float], Any]:
    """Call ``call`` ``repeats`` times; its times and its last result."""
    times, out = [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        _quiet()
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    return times, out


def _loaded(data: str) -> tuple[Any, int, int]:
    """The DataFrame, the RSS it added, and the RSS after loading (the high-water mark reset there)."""
    before = rss_bytes()
    df = _read(data)
    release_memory()
    after = rss_bytes()
    reset_peak_rss()
    return df, after - before, after


def case_read(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """``pandas.read_parquet`` of the whole file (the frame of the last repeat is measured)."""
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    times = []
    df = None
    for _ in range(repeats):
        df = None
        gc.collect()
        _quiet()
        t0 = time.perf_counter()
        df = _read(data)
        times.append(time.perf_counter() - t0)
    peak = peak_rss_bytes()
    release_memory()
    data_bytes = rss_bytes() - base
    shape = list(df.shape) if df is not None else None
    return {
        "times": times,
        "data_bytes": data_bytes,
        "peak_extra_bytes": max(0, peak - base - data_bytes),
        "shape": shape,
    }


def case_validate_pandera(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """``DataFrameSchema.validate(df, lazy=True)`` (every check run and reported)."""
    schema = pandera_schema(checks)
    df, data_bytes, loaded = _loaded(data)
    times, _ = _timed(repeats, lambda: pandera_counts(schema, df))
    return {"times": times, "data_bytes": data_bytes, "peak_extra_bytes": max(0, peak_rss_bytes() - loaded)}


def case_validate_gx(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """``batch.validate(suite)`` on a whole-dataframe batch (the context and suite are made before)."""
    batch_definition, suite = gx_setup(checks)
    df, data_bytes, loaded = _loaded(data)
    times, result = _timed(repeats, lambda: gx_validate(batch_definition, suite, df))
    if not result.success:
        raise RuntimeError(f"GX says the passing data fails: {gx_counts(result)}")
    return {"times": times, "data_bytes": data_bytes, "peak_extra_bytes": max(0, peak_rss_bytes() - loaded)}


def case_profile_pandas(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """``df.describe()``, ``df.isna().sum()`` and ``df.nunique()``, each timed."""
    df, data_bytes, loaded = _loaded(data)
    parts: dict[str, list[float]] = {"describe": [], "isna_sum": [], "nunique": []}
    times = []
    for _ in range(repeats):
        gc.collect()
        _quiet()
        t0 = time.perf_counter()
        df.describe()
        t1 = time.perf_counter()
        df.isna().sum()
        t2 = time.perf_counter()
        df.nunique()
        t3 = time.perf_counter()
        times.append(t3 - t0)
        for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            parts[key].append(seconds)
    medians = {k: statistics.median(v) for k, v in parts.items()}
    return {
        "times": times,
        "parts": medians,
        "data_bytes": data_bytes,
        "peak_extra_bytes": max(0, peak_rss_bytes() - loaded),
    }


def case_failing_pandera(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """One lazy validation of the failing file; its failure counts."""
    schema = pandera_schema(checks)
    df, _, _ = _loaded(data)
    times, counts = _timed(1, lambda: pandera_counts(schema, df))
    return {"times": times, "counts": counts}


def case_failing_gx(data: str, checks: Checks, repeats: int) -> dict[str, Any]:
    """One validation of the failing file; its failure counts."""
    batch_definition, suite = gx_setup(checks)
    df, _, _ = _loaded(data)
    times, result = _timed(1, lambda: gx_validate(batch_definition, suite, df))
    return {"times": times, "counts": gx_counts(result)}


CASES: dict[str, tuple[Callable[[str, Checks, int], dict[str, Any]], tuple[str, ...]]] = {
    "read": (case_read, ()),
    "validate_pandera": (case_validate_pandera, ("pandera",)),
    "profile_pandas": (case_profile_pandas, ()),
    "failing_pandera": (case_failing_pandera, ("pandera",)),
    "validate_gx": (case_validate_gx, ("great_expectations",)),
    "failing_gx": (case_failing_gx, ("great_expectations",)),
}


def main(argv: list[str] | None = None) -> int:
    """Run one case and print its JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--data", required=True, help="the Parquet file")
    p.add_argument("--checks", type=Path, required=True, help="the checks' JSON file")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine")
    args = p.parse_args(argv)
    _WAIT["max"] = args.max_wait
    run, packages = CASES[args.case]
    checks = json.loads(args.checks.read_text())
    import pandas  # noqa: F401  (imported before any RSS is measured, so it never counts as data)

    result = run(args.data, checks, args.repeats)
    result |= {"case": args.case, "seconds": statistics.median(result["times"])}
    result["versions"] = _versions(*packages)
    result["busy"] = _BUSY
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
