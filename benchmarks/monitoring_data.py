"""The drift benchmark's data (``benchmarks/monitoring.py`` drives it): a reference and a current table.

Both tables have the same 50 columns: ``num_00``-``num_39`` (float64; normal, log-normal, uniform,
exponential and gamma columns in turn, each with its own location and scale) and ``cat_0``-``cat_9``
(strings, 8 values ``v0``-``v7`` each, with skewed probabilities that differ per column). The current table
draws from the same distributions except for 10 numeric columns, shifted by +0.3 standard deviations of
their distribution, and 3 categorical columns whose probabilities move one value along (a Jensen-Shannon
distance of 0.22 from the reference's). Which 13 columns changed is drawn from the seed and recorded in
``manifest.json`` next to the two Parquet files.

The files go to ``benchmarks/.data/monitoring/<scale>/`` and are reused while their manifest matches what
this module would write (the generator's ``VERSION``, the rows, the seed). Both sides' case processes
import it (``timed``, ``verdict``), in either venv, so only the standard library is imported at module
level (numpy and pyarrow inside ``generate``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

VERSION = 1  # bump when the tables change, so cached files are regenerated
SEED = 20261201
BUSY_LIMIT = 0.15  # other work above this share of the CPUs delays a timed repeat (up to --max-wait)
SCALES = {"small": 100_000, "full": 1_000_000}
NUMERIC = 40
CATEGORICAL = 10
CATEGORIES = 8
SHIFTED_NUMERIC = 10
CHANGED_CATEGORICAL = 3
SHIFT_SIGMAS = 0.3
KINDS = ("normal", "lognormal", "uniform", "exponential", "gamma")
# Category probabilities before rotating them per column; a changed column rotates them one step further.
BASE_PROBS = (0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04)

NUMERIC_COLUMNS = tuple(f"num_{i:02d}" for i in range(NUMERIC))
CATEGORICAL_COLUMNS = tuple(f"cat_{i}" for i in range(CATEGORICAL))
VALUES = tuple(f"v{k}" for k in range(CATEGORIES))


def _numeric(rng: Any, kind: str, loc: float, scale: float, rows: int) -> tuple[Any, float]:
    """``rows`` draws of one column's distribution, and that distribution's standard deviation."""
    import numpy as np

    if kind == "normal":
        return rng.normal(loc, scale, rows), scale
    if kind == "lognormal":
        sigma = 0.5
        std = float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2))) * scale
        return loc + scale * rng.lognormal(0.0, sigma, rows), std
    if kind == "uniform":
        return rng.uniform(loc - scale, loc + scale, rows), 2 * scale / float(np.sqrt(12))
    if kind == "exponential":
        return loc + rng.exponential(scale, rows), scale
    shape = 2.0  # gamma
    return loc + rng.gamma(shape, scale, rows), float(np.sqrt(shape)) * scale


def _tables(rows: int, seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """The reference and current Arrow tables, and what was changed between them."""
    import numpy as np
    import pyarrow as pa

    plan = np.random.default_rng(seed)
    shifted = sorted(str(c) for c in plan.choice(NUMERIC_COLUMNS, SHIFTED_NUMERIC, replace=False))
    changed = sorted(str(c) for c in plan.choice(CATEGORICAL_COLUMNS, CHANGED_CATEGORICAL, replace=False))
    specs = {
        col: (KINDS[i % len(KINDS)], float(plan.uniform(-50, 50)), float(plan.uniform(0.5, 20)))
        for i, col in enumerate(NUMERIC_COLUMNS)
    }
    ref_rng, cur_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    shifts: dict[str, float] = {}
    for col, (kind, loc, scale) in specs.items():
        reference[col], std = _numeric(ref_rng, kind, loc, scale, rows)
        current[col], _ = _numeric(cur_rng, kind, loc, scale, rows)
        if col in shifted:
            shifts[col] = SHIFT_SIGMAS * std
            current[col] += shifts[col]
    values = np.array(VALUES)
    for i, col in enumerate(CATEGORICAL_COLUMNS):
        probs = np.roll(np.array(BASE_PROBS), i)
        reference[col] = values[ref_rng.choice(CATEGORIES, rows, p=probs)]
        cur_probs = np.roll(probs, 1) if col in changed else probs
        current[col] = values[cur_rng.choice(CATEGORIES, rows, p=cur_probs)]
    order = [*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS]
    ref_table = pa.table({c: reference[c] for c in order})
    cur_table = pa.table({c: current[c] for c in order})
    truth = {
        "shifted_numeric": shifted,
        "changed_categorical": changed,
        "shifts": shifts,
        "numeric_kinds": {c: s[0] for c, s in specs.items()},
    }
    return ref_table, cur_table, truth


def _expected(rows: int, seed: int) -> dict[str, Any]:
    return {"version": VERSION, "rows": rows, "seed": seed}


def manifest(data_dir: Path) -> dict[str, Any]:
    """The manifest of the tables in ``data_dir`` (raises if there are none)."""
    loaded: dict[str, Any] = json.loads((data_dir / "manifest.json").read_text())
    return loaded


def is_fresh(data_dir: Path, rows: int, seed: int = SEED) -> bool:
    """Whether ``data_dir`` holds the tables this module would generate for ``rows`` and ``seed``."""
    try:
        info = manifest(data_dir)
    except (OSError, ValueError):
        return False
    same = all(info.get(k) == v for k, v in _expected(rows, seed).items())
    return same and all((data_dir / info[k]).exists() for k in ("reference", "current"))


def generate(data_dir: Path, rows: int, seed: int = SEED) -> dict[str, Any]:
    """Write ``reference.parquet``, ``current.parquet`` and ``manifest.json`` into ``data_dir``.

    Args:
        data_dir: Where the files go (created).
        rows: Rows in each table.
        seed: The seed of every draw, including which columns change.

    Returns:
        The manifest: the files, the columns, the 13 changed columns (``drifted``) and the shifts.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    ref, cur, truth = _tables(rows, seed)
    for name, table in (("reference.parquet", ref), ("current.parquet", cur)):
        pq.write_table(table, data_dir / f".{name}.tmp")
        (data_dir / f".{name}.tmp").replace(data_dir / name)
    info = {
        **_expected(rows, seed),
        "reference": "reference.parquet",
        "current": "current.parquet",
        "numeric": list(NUMERIC_COLUMNS),
        "categorical": list(CATEGORICAL_COLUMNS),
        "values": list(VALUES),
        "shift_sigmas": SHIFT_SIGMAS,
        "drifted": sorted([*truth["shifted_numeric"], *truth["changed_categorical"]]),
        **truth,
        "arrow_bytes": ref.nbytes + cur.nbytes,
        "file_bytes": sum((data_dir / f).stat().st_size for f in ("reference.parquet", "current.parquet")),
        "generated_s": round(time.perf_counter() - t0, 2),
    }
    (data_dir / "manifest.json").write_text(json.dumps(info, indent=2))
    return info


def _cpu_seconds() -> tuple[float, float]:
    """The machine's busy CPU seconds (all cores, from ``/proc/stat``) and this process's, now."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    own = os.times()
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def timed(
    repeats: int, max_wait: float, call: Callable[[], Any], busy: list[float], others: list[float]
) -> tuple[list[float], Any]:
    """Time ``call`` ``repeats`` times, each after waiting for a quiet machine (``_common.wait_quiet``).

    Appends to ``busy`` the share of the CPUs in use just before each repeat, and to ``others`` the share
    that other processes used during it (the machine's busy time less this process's, over the wall time
    of all cores), so a figure taken while the machine was shared says so.

    Returns:
        The times in seconds and the last result.
    """
    import gc

    from _common import wait_quiet

    times, out = [], None
    for _ in range(repeats):
        out = None
        gc.collect()
        before = wait_quiet(max_wait, BUSY_LIMIT)
        if before is not None:
            busy.append(round(before, 3))
        machine0, own0 = _cpu_seconds()
        t0 = time.perf_counter()
        out = call()
        wall = time.perf_counter() - t0
        machine1, own1 = _cpu_seconds()
        times.append(wall)
        cores = os.cpu_count() or 1
        others.append(round(max(0.0, (machine1 - machine0) - (own1 - own0)) / (wall * cores), 3))
    return times, out


def verdict(flagged: list[str], truth: list[str]) -> dict[str, Any]:
    """How a system's flagged columns compare with the changed ones."""
    got, want = set(flagged), set(truth)
    return {
        "flagged": sorted(got),
        "missed": sorted(want - got),
        "extra": sorted(got - want),
        "exact": got == want,
    }
