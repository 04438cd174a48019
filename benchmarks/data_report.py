"""The data benchmark's report: the result table, the notes under it, and its block of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from _common import ROOT, fmt_bytes, fmt_ratio, machine_line, markdown_table
from data_setup import BUSY_LIMIT, FAILURES

if TYPE_CHECKING:
    from data import Options

DOCS_BEGIN = "<!-- BEGIN data benchmark (written by benchmarks/data.py --write-docs) -->"
DOCS_END = "<!-- END data benchmark -->"
HEADERS = ["case", "Steward", "peer", "ratio", "Steward goal", "met?"]
GIB = 2**30


def _ok(result: dict[str, Any] | None) -> bool:
    return result is not None and "error" not in result


def _secs(result: dict[str, Any] | None) -> float | None:
    return float(result["seconds"]) if _ok(result) and result is not None else None


def _mem(result: dict[str, Any] | None) -> float | None:
    if not _ok(result) or result is None or "peak_extra_bytes" not in result:
        return None
    return max(0.0, float(result["peak_extra_bytes"]))  # below 0: the allocator gave back load buffers


def _fmt_s(seconds: float | None, missing: str = "n/a") -> str:
    return missing if seconds is None else f"{seconds:,.2f} s"


def _ratio(peer: float | None, steward: float | None) -> float | None:
    return peer / steward if peer is not None and steward else None


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def _versions(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in ("pandera:validate_pandera", "gx:validate_gx", "pandera:read"):
        r = results.get(key)
        if _ok(r) and r is not None:
            found |= {k: v for k, v in r.get("versions", {}).items() if k not in found}
    return found


def table_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The rows of the result table: case | Steward | peer | ratio | Steward goal | met?"""
    r = results.get
    s_read, p_read = _secs(r("steward:read")), _secs(r("pandera:read"))
    s_val, pa_val, gx_val = (
        _secs(r("steward:validate")),
        _secs(r("pandera:validate_pandera")),
        _secs(r("gx:validate_gx")),
    )
    s_prof, pd_prof = _secs(r("steward:profile")), _secs(r("pandera:profile_pandas"))
    s_both = _secs(r("steward:profile_validate"))
    p_both = pd_prof + pa_val if pd_prof is not None and pa_val is not None else None
    s_ingest = _secs(r("steward:ingest"))

    val_ratio = _ratio(pa_val, s_val)
    both_ratio = _ratio(p_both, s_both)
    both_met = None if s_both is None else (s_both < 2.5 and (both_ratio is None or both_ratio >= 10))
    rows = [
        [
            "read the Parquet file (Steward: file connector to Arrow; peer: pandas.read_parquet)",
            _fmt_s(s_read),
            _fmt_s(p_read),
            fmt_ratio(_ratio(p_read, s_read)),
            "—",
            "—",
        ],
        [
            "validate, 10 expectations (peer: pandera)",
            _fmt_s(s_val),
            _fmt_s(pa_val),
            fmt_ratio(val_ratio),
            "≥ 3x pandera",
            _met(None if val_ratio is None else val_ratio >= 3),
        ],
        [
            "validate, 10 expectations (peer: Great Expectations)",
            _fmt_s(s_val),
            _fmt_s(gx_val),
            fmt_ratio(_ratio(gx_val, s_val)),
            "—",
            "—",
        ],
        [
            "profile (peer: pandas describe + isna().sum() + nunique())",
            _fmt_s(s_prof),
            _fmt_s(pd_prof),
            fmt_ratio(_ratio(pd_prof, s_prof)),
            "—",
            "—",
        ],
        [
            "profile + validate (peer: pandas profile + pandera)",
            _fmt_s(s_both),
            _fmt_s(p_both),
            fmt_ratio(both_ratio),
            "< 2.5 s and ≥ 10x",
            _met(both_met),
        ],
        [
            "full ingest: read, validate, Parquet write, profile, PII scan, metadata",
            _fmt_s(s_ingest),
            "—",
            "—",
            "—",
            "—",
        ],
    ]

    def mem_row(label: str, steward: str, peer: float | None, goal: bool) -> list[str]:
        s = _mem(r(steward))
        met = _met(None if s is None else s < GIB) if goal else "—"
        return [
            label,
            fmt_bytes(s),
            fmt_bytes(peer) if peer is not None else "—",
            fmt_ratio(_ratio(peer, s)) if peer is not None else "—",
            "< 1 GiB" if goal else "—",
            met,
        ]

    pa_mem, gx_mem, pd_mem = (
        _mem(r("pandera:validate_pandera")),
        _mem(r("gx:validate_gx")),
        _mem(r("pandera:profile_pandas")),
    )
    both_mem = max(pa_mem, pd_mem) if pa_mem is not None and pd_mem is not None else None
    rows += [
        mem_row("peak memory beyond the data: validate (peer: pandera)", "steward:validate", pa_mem, True),
        mem_row(
            "peak memory beyond the data: validate (peer: Great Expectations)",
            "steward:validate",
            gx_mem,
            False,
        ),
        mem_row("peak memory beyond the data: profile (peer: pandas)", "steward:profile", pd_mem, True),
        mem_row(
            "peak memory beyond the data: profile + validate (peer: the larger of the two)",
            "steward:profile_validate",
            both_mem,
            True,
        ),
        mem_row("peak memory beyond the data: full ingest", "steward:ingest", None, False),
    ]
    return rows


def cross_check(results: dict[str, dict[str, Any]]) -> str:
    """Whether every system counted exactly ``FAILURES`` on the failing file, as one sentence."""
    names = {"steward:failing": "Steward", "pandera:failing_pandera": "pandera", "gx:failing_gx": "GX"}
    lines, agree = [], True
    for key, name in names.items():
        res = results.get(key)
        if res is None:
            continue
        if "error" in res:
            lines.append(f"{name} failed ({res['error'].splitlines()[0] if res['error'] else 'error'})")
            agree = False
            continue
        counts = res.get("counts", {})
        if counts == FAILURES:
            lines.append(f"{name} agrees")
        else:
            agree = False
            wrong = {
                c: counts.get(c, 0)
                for c in FAILURES.keys() | counts.keys()
                if counts.get(c, 0) != FAILURES.get(c, 0)
            }
            lines.append(f"{name} differs: {wrong}")

    injected = ", ".join(f"{col} {n:,}" for col, n in FAILURES.items())
    verdict = "all agree" if agree and lines else "MISMATCH"
    found = "; ".join(lines)
    return f"Correctness cross-check on a copy with known failing rows ({injected}): {found} ({verdict})."


def notes(results: dict[str, dict[str, Any]], info: dict[str, Any], opts: Options) -> list[str]:
    """The lines under the table: data, method, breakdowns, one-core figures, load."""
    r = results.get
    out = [
        f"Data: {info['rows']:,} rows by {info['columns']} columns generated from a fixed seed (10 float, "
        "5 int including the unique `id`, 5 string columns of 10-12 values; `f1`, `f2`, `f9` and `s3` hold "
        f"1-2 % nulls), one Parquet file of {fmt_bytes(info['file_bytes'])} (snappy); "
        f"{fmt_bytes(info['arrow_bytes'])} as an Arrow table"
        + (
            f", {fmt_bytes(r('pandera:read')['data_bytes'])} of RSS as a pandas DataFrame"
            if _ok(r("pandera:read"))
            else ""
        )  # type: ignore[index]
        + ". It passes all ten checks, so every system does the whole work.",
        "",
        "Checks: ranges on `f0`, `f1`, `f2`, `f3`, `i1` (inclusive, nulls ignored), not-null on `f4` and "
        "`s1`, allowed values on `s0` (10 values), unique `id`, full-match regex `[A-Z]{2}-[0-9]{4}` on "
        "`s2`. Steward: `validate(table, DatasetSchema.from_dict(...))` on the Arrow table; pandera: "
        "`DataFrameSchema` with `Check.in_range`, `nullable=False`, `Check.isin`, `unique=True`, "
        "`Check.str_matches`, `validate(df, lazy=True)`; GX: the matching `ExpectColumnValuesTo…` "
        "expectations in one suite, ephemeral context, pandas whole-dataframe batch, "
        '`batch.validate(suite, result_format="SUMMARY")`.',
        "",
    ]
    prof = r("pandera:profile_pandas")
    if _ok(prof) and prof is not None:
        parts = prof["parts"]
        out.append(
            f"pandas profile, median parts: `describe()` {parts['describe']:.2f} s, `isna().sum()` "
            f"{parts['isna_sum']:.2f} s, `nunique()` {parts['nunique']:.2f} s. Steward's profile computes "
            "more (counts, nulls, min/max, mean/std, 7 quantiles, histograms, distinct counts, top-10 values "
            "of every column)."
        )
        out.append("")
    s1v, s1p = _secs(r("steward1:validate")), _secs(r("steward1:profile"))
    if s1v is not None or s1p is not None:
        out.append(
            f"Steward on one core (`taskset -c 0`, so DuckDB runs one thread): validate {_fmt_s(s1v)}, "
            f"profile {_fmt_s(s1p)}. The table's figures let DuckDB use both cores; pandas and pandera use "
            "one."
        )
        out.append("")
    out.append(
        "profile + validate: Steward's is measured in one process (validate, then profile); the peer's is "
        "the sum of the pandas profile and pandera medians, and its memory the larger of their two peaks."
    )
    out.append("")
    out.append(cross_check(results))
    out.append("")
    ingest = r("steward:ingest")
    if _ok(ingest) and ingest is not None:
        out.append(
            "Memory: the RSS high-water mark during a case's repeats above the RSS with the data loaded "
            "(reset after loading), in a fresh process per case. Full ingest reads the file itself, so its "
            f"figure is its peak above the process before it ({fmt_bytes(ingest['peak_bytes'])}) minus the "
            f"Arrow table ({fmt_bytes(ingest['arrow_bytes'])})."
        )
        out.append("")
    busy = max(opts.busy) if opts.busy else None
    out.append(
        f"Each case: a fresh process, the data loaded untimed, then the median of {opts.repeats} repeats "
        "(the failing-file validations: one). "
        + ("Nothing pinned. " if not opts.pin else "Every process pinned to core 0 (`taskset -c 0`). ")
        + (
            "Steward ran from that commit's `src/`, exported with `git archive`, so edits in the working "
            "tree were not measured. "
            if opts.src != ROOT / "src"
            else ""
        )
        + (
            f"Before each timed repeat the case waited (up to {opts.max_wait:.0f} s) for other work on this "
            f"shared machine to drop below {BUSY_LIMIT:.0%} of its CPUs; the busiest start: {busy:.0%}. "
            "Even so, the same case varied by up to 1.5x between runs on this VM: compare the figures of "
            "one run with each other."
            if busy is not None
            else ""
        )
    )
    return out


def render_docs(
    rows: list[list[str]],
    results: dict[str, dict[str, Any]],
    info: dict[str, Any],
    mach: dict[str, str],
    command: str,
    opts: Options,
) -> str:
    """The data section of ``docs/benchmarks.md``, between its markers."""
    versions = _versions(results)
    duckdb = results.get("steward:validate", {}).get("versions", {}).get("duckdb", "?")
    peers = (
        f"pandera {versions.get('pandera', '?')} and GX Core {versions.get('great_expectations', '?')} "
        f"(each with pandas {versions.get('pandas', '?')}, pyarrow {versions.get('pyarrow', '?')}) in their "
        f"own venvs (`benchmarks/setup_peers.sh`); Steward with DuckDB {duckdb}"
    )
    lines = [
        DOCS_BEGIN,
        "## Data: Steward vs pandera, Great Expectations and pandas",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit {opts.commit} with:",
        "",
        "```",
        command,
        "```",
        "",
        *markdown_table(rows, HEADERS),
        "",
        "ratio: how many times faster Steward is than the peer (for memory: how many times less it needs).",
        "",
        *notes(results, info, opts),
        "",
        machine_line(mach, peers),
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"
