"""The peers' side of the drift benchmark (``benchmarks/monitoring.py`` drives it): Evidently and NannyML.

Runs INSIDE a peer venv made by ``benchmarks/setup_peers.sh``, never in Steward's venv: Evidently in
``benchmarks/.peers/evidently``, NannyML in ``benchmarks/.peers/nannyml``::

    benchmarks/.peers/evidently/bin/python benchmarks/monitoring_peer.py --case evidently \\
        --data benchmarks/.data/monitoring/small

Prints one JSON line: ``{"case", "version", "load_s", "times", "seconds", "data_bytes", "rss_loaded",
"peak_rss", "peak_extra_bytes", "flagged", "scores", "busy", ...}``.

Both cases read the two Parquet files with ``pandas.read_parquet`` (timed apart as ``load_s``), hand
freed reader buffers back to the OS, take the RSS, reset the RSS high-water mark, and then time the
report alone; ``peak_extra_bytes`` is the high-water mark during the report above the RSS with the data
loaded, so the DataFrames themselves are not counted.

- Evidently: ``Report([DataDriftPreset()], include_tests=True).run(current_data=cur,
  reference_data=ref)`` with every default (column types inferred, the stat test chosen per column by
  type and size). The per-column verdicts are the ``ValueDrift`` tests of the snapshot's ``dict()``
  (status ``FAIL`` = drift), taken after the timing.
- NannyML: ``UnivariateDriftCalculator`` with one chunk per table (the whole table against the whole
  reference, as Evidently compares them), Wasserstein for the numeric columns and Jensen-Shannon for the
  categorical ones. NannyML has no normed Wasserstein, so its distance is divided by the reference
  column's standard deviation (inside the timing) and, like Evidently's, held to 0.1; Jensen-Shannon
  alerts through ``ConstantThreshold(upper=0.1)``, Evidently's threshold too. ``fit`` and ``calculate``
  are both timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML's

from _common import peak_rss_bytes, release_memory, reset_peak_rss, rss_bytes  # stdlib only
from monitoring_data import timed  # stdlib only at import

THRESHOLD = 0.1  # Evidently's default for the normed Wasserstein and Jensen-Shannon distances
_BUSY: list[float] = []  # the busy share of the CPUs before each timed repeat
_OTHERS: list[float] = []  # the share other processes used during each


def _versions(*names: str) -> dict[str, str]:
    import importlib.metadata as md

    return {n: md.version(n) for n in ("pandas", "pyarrow", "numpy", "scipy", *names)}


def _load(data: Path) -> tuple[Any, Any, float, int, int]:
    """Both DataFrames, the load time, the RSS they added and the RSS with them (high-water mark reset)."""
    import pandas as pd

    manifest = json.loads((data / "manifest.json").read_text())
    before = rss_bytes()
    t0 = time.perf_counter()
    ref = pd.read_parquet(data / manifest["reference"], engine="pyarrow")
    cur = pd.read_parquet(data / manifest["current"], engine="pyarrow")
    load_s = time.perf_counter() - t0
    release_memory()
    loaded = rss_bytes()
    reset_peak_rss()
    return ref, cur, load_s, loaded - before, loaded


def _timed(repeats: int, max_wait: float, call: Callable[[], Any]) -> tuple[list[float], Any]:
    return timed(repeats, max_wait, call, _BUSY, _OTHERS)


def evidently_case(data: Path, repeats: int, max_wait: float) -> dict[str, Any]:
    """Evidently's ``DataDriftPreset`` report of the current table against the reference."""
    import evidently  # type: ignore[import-not-found]
    from evidently import Report
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    ref, cur, load_s, data_bytes, loaded = _load(data)

    def run() -> Any:
        return Report([DataDriftPreset()], include_tests=True).run(current_data=cur, reference_data=ref)

    times, snapshot = _timed(repeats, max_wait, run)
    peak = peak_rss_bytes()
    t0 = time.perf_counter()
    result = snapshot.dict()
    extract_s = time.perf_counter() - t0
    flagged, scores, methods = [], {}, {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            scores[config["column"]] = metric["value"]
            methods[config["column"]] = f"{config['method']} (threshold {config['threshold']})"
    tested = set()
    for test in result["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            tested.add(params["column"])
            if test["status"] == "FAIL":
                flagged.append(params["column"])
    if tested != set(scores):
        raise RuntimeError(f"Evidently tested {sorted(tested)} but scored {sorted(scores)}")
    return {
        "version": evidently.__version__,
        "versions": _versions("evidently"),
        "load_s": load_s,
        "times": times,
        "data_bytes": data_bytes,
        "rss_loaded": loaded,
        "peak_rss": peak,
        "peak_extra_bytes": peak - loaded,
        "flagged": sorted(flagged),
        "scores": scores,
        "methods": sorted(set(methods.values())),
        "extract_s": extract_s,
    }


def nannyml_case(data: Path, repeats: int, max_wait: float) -> dict[str, Any]:
    """NannyML's univariate drift of the current table against the reference, one chunk each."""
    import nannyml  # type: ignore[import-not-found]
    from nannyml.thresholds import ConstantThreshold  # type: ignore[import-not-found]

    manifest = json.loads((data / "manifest.json").read_text())
    numeric, categorical = manifest["numeric"], manifest["categorical"]
    ref, cur, load_s, data_bytes, loaded = _load(data)

    def run() -> dict[str, bool]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the resulting number of chunks is too low": one is meant
            calc = nannyml.UnivariateDriftCalculator(
                column_names=[*numeric, *categorical],
                treat_as_categorical=categorical,
                continuous_methods=["wasserstein"],
                categorical_methods=["jensen_shannon"],
                chunk_number=1,
                thresholds={"jensen_shannon": ConstantThreshold(upper=THRESHOLD)},
            )
            calc.fit(ref)
            frame = calc.calculate(cur).filter(period="analysis").to_df()
        std = ref[numeric].std()
        drifted = {c: bool(frame[(c, "wasserstein", "value")].iloc[0] / std[c] >= THRESHOLD) for c in numeric}
        drifted |= {c: bool(frame[(c, "jensen_shannon", "alert")].iloc[0]) for c in categorical}
        return drifted

    times, drifted = _timed(repeats, max_wait, run)
    peak = peak_rss_bytes()
    return {
        "version": nannyml.__version__,
        "versions": _versions("nannyml"),
        "load_s": load_s,
        "times": times,
        "data_bytes": data_bytes,
        "rss_loaded": loaded,
        "peak_rss": peak,
        "peak_extra_bytes": peak - loaded,
        "flagged": sorted(c for c, d in drifted.items() if d),
        "methods": [
            "Wasserstein / reference std (threshold 0.1)",
            "Jensen-Shannon distance (threshold 0.1)",
        ],
    }


CASES = {"evidently": evidently_case, "nannyml": nannyml_case}


def main(argv: list[str] | None = None) -> int:
    """Run one case and print its JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--data", type=Path, required=True, help="the directory monitoring_data.py wrote")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--max-wait", type=float, default=60.0)
    args = p.parse_args(argv)
    result = CASES[args.case](args.data, args.repeats, args.max_wait)
    result |= {
        "case": args.case,
        "seconds": statistics.median(result["times"]),
        "busy": _BUSY,
        "others": _OTHERS,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
