"""Governance benchmark: the audit trail's append throughput and ``audit verify`` over 1,000,000 entries.

Run with Steward's venv from the repository root::

    .venv/bin/python benchmarks/governance.py                      # embedded SQLite, 1,000,000 entries
    .venv/bin/python benchmarks/governance.py --postgres postgresql://postgres@127.0.0.1/test  # and PG
    .venv/bin/python benchmarks/governance.py --out results.json --write-docs

With ``--postgres``, the same cases run on that database too, in a schema made for the run and dropped
after it.

There is no peer: the figures are held to the goals of the governance issue.

- ``verify``: a trail of ``--entries`` entries (default 1,000,000), signed checkpoints every 1,000, is
  built fast (the chained rows precomputed here and inserted with ``executemany``, untimed), then
  ``steward.governance.audit.verify`` walks it: every hash recomputed, every prev_hash and seq checked,
  every checkpoint signature verified. Best of ``--repeats`` runs. Goal: at least 200,000 entries/s.
- ``append``: ``--appends`` state-changing requests' worth of audit entries appended onto that trail,
  each ``audit.append`` in a transaction of its own, as a request makes it, with checkpoints signed
  every 1,000 with the platform's key file. Reported: entries/s, and the append call's own median and
  99th percentile inside its transaction. No goal (context for the request path).

The second half of the issue's benchmark, the authorisation overhead per request, is
``benchmarks/auth_overhead.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import DOCS_PATH, machine_info, machine_line, markdown_table, print_table, write_docs
from pipelines import DOCS_END as PIPELINES_DOCS_END
from steward.config import load_settings
from steward.governance import audit, signing
from steward.store.metadata import MetadataStore

DOCS_BEGIN = "<!-- BEGIN governance benchmark (written by benchmarks/governance.py --write-docs) -->"
DOCS_END = "<!-- END governance benchmark -->"
HEADERS = ["case", "Steward", "goal", "met?"]
ENTRIES = 1_000_000
APPENDS = 3_000
REPEATS = 3
EVERY = 1_000
VERIFY_GOAL = 200_000.0  # entries/s, at least
_ACTORS = ("ana", "bo", "svc-retrain", "ci")
_ACTIONS = (
    ("dataset.publish", "dataset_version"),
    ("model.register", "model_version"),
    ("alias.set", "model_alias"),
    ("dataset_version.read_pii", "dataset_version"),
)


def build_trail(store: MetadataStore, n: int, signer: signing.Signer, batch: int = 20_000) -> float:
    """Insert ``n`` chained entries (checkpoints every ``EVERY``) with ``executemany``; return seconds."""
    started = time.perf_counter()
    previous = audit.GENESIS
    base = int(time.time() * 1000) - n
    entries: list[tuple[Any, ...]] = []
    checkpoints: list[tuple[Any, ...]] = []
    postgres = store.dialect == "postgresql"
    mark = "%s" if postgres else "?"
    insert_entry = f"INSERT INTO audit_log VALUES ({', '.join([mark] * 15)})"
    insert_checkpoint = f"INSERT INTO audit_checkpoints VALUES ({', '.join([mark] * 5)})"
    with store.transaction() as conn:
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        for seq in range(1, n + 1):
            action, kind = _ACTIONS[seq % len(_ACTIONS)]
            details = json.dumps({"rows": seq * 7, "region": "eu-west", "note": "ünïcode"}, sort_keys=True)
            digest = hashlib.sha256(str(seq).encode()).hexdigest()
            fields = (seq, f"{seq:032x}", base + seq, _ACTORS[seq % len(_ACTORS)], action, kind,
                      f"churn-{seq % 997}", "ok", details, f"{seq:016x}", None, digest, previous)  # fmt: skip
            previous = hashlib.sha256(audit.canonical(fields).encode()).hexdigest()
            entries.append((*fields, previous, "churn"))  # the last column: the entry's project
            if seq % EVERY == 0:
                cp = audit.Checkpointer(signer, EVERY).sign(seq, previous)
                checkpoints.append((cp.seq, cp.hash, cp.key_id, cp.signature, cp.at))
            if len(entries) >= batch:
                cursor.executemany(insert_entry, entries)
                entries.clear()
        if entries:
            cursor.executemany(insert_entry, entries)
        if checkpoints:
            cursor.executemany(insert_checkpoint, checkpoints)
        cursor.close()
    return time.perf_counter() - started


def time_verify(store: MetadataStore, public_key: Any, repeats: int) -> dict[str, Any]:
    """Verify the trail ``repeats`` times; return the best rate and each run's."""
    reports = []
    for _ in range(repeats):
        with store.read() as conn:
            reports.append(audit.verify(conn, public_key))
    bad = [r.first_bad for r in reports if not r.ok]
    if bad:
        raise SystemExit(f"the benchmark trail did not verify: {bad[0]}")
    best = min(reports, key=lambda r: r.seconds)
    return {
        "entries": best.entries,
        "checkpoints": best.checkpoints,
        "seconds": best.seconds,
        "rate": best.rate,
        "rates": [r.rate for r in reports],
    }


def time_appends(store: MetadataStore, checkpointer: audit.Checkpointer, n: int) -> dict[str, Any]:
    """Append ``n`` entries, each in its own transaction; return the rate and the append call's latency."""
    calls: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        with store.transaction() as conn:
            t0 = time.perf_counter()
            audit.append(
                conn, actor="ana", action="model.register", resource_kind="model_version",
                resource_id=f"churn/{i}", details={"version": f"1.{i}.0"}, request_id=f"{i:016x}",
                checkpoint=checkpointer,
            )  # fmt: skip
            calls.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    calls.sort()
    return {
        "entries": n,
        "seconds": seconds,
        "rate": n / seconds,
        "median_ms": statistics.median(calls) * 1000,
        "p99_ms": calls[int(len(calls) * 0.99) - 1] * 1000,
    }


def run(db: str | None, n: int, appends: int, repeats: int) -> dict[str, Any]:
    """Build the trail in a fresh home (on ``db``, else SQLite) and time both cases."""
    home = Path(tempfile.mkdtemp(prefix="steward-bench-governance-"))
    try:
        settings = load_settings(home=home, db=db, audit_checkpoint_every=EVERY)
        store = MetadataStore(settings.db_url)
        try:
            signer = signing.platform_signer(settings)
            build = build_trail(store, n, signer)
            print(f"{store.dialect}: built {n:,} entries in {build:.1f} s", file=sys.stderr, flush=True)
            verify = time_verify(store, signer.public_key, repeats)
            append = time_appends(store, audit.checkpointer_for(settings), appends)
            with store.read() as conn:  # the appended entries chain on and their checkpoints verify
                after = audit.verify(conn, signer.public_key, every=EVERY)
            assert after.ok and after.entries == n + appends, after.first_bad
        finally:
            store.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"db": store.dialect, "build_seconds": build, "verify": verify, "append": append}


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A URL of ``url``'s PostgreSQL database whose ``search_path`` is a new schema, dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from steward.core.ids import new_id

    parsed = make_url(url).set(drivername="postgresql+psycopg")
    schema = f"steward_bench_{new_id()}"
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

_DB_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The rows of the table: both cases on each database run."""
    rows = []
    for run_ in results["runs"]:
        verify, append, db = run_["verify"], run_["append"], _DB_NAMES.get(run_["db"], run_["db"])
        met = "yes" if verify["rate"] >= VERIFY_GOAL else "no"
        rows += [
            [f"{db}: audit verify, {verify['entries']:,} entries ({verify['checkpoints']:,} checkpoints)",
             f"{verify['rate']:,.0f} entries/s ({verify['seconds']:.2f} s)", "≥ 200,000 entries/s", met],
            [f"{db}: audit append, one per transaction ({append['entries']:,})",
             f"{append['rate']:,.0f} entries/s", "none (context)", "n/a"],
            [f"{db}: the append call inside its transaction",
             f"median {append['median_ms']:.3f} ms, p99 {append['p99_ms']:.3f} ms", "none (context)", "n/a"],
        ]  # fmt: skip
    return rows


def notes(results: dict[str, Any]) -> list[str]:
    """The lines under the table."""
    lines = [
        "- Each verify run recomputes every hash (SQLite renders each entry's canonical JSON with "
        "`json_array`; PostgreSQL streams the raw columns through COPY and Python renders them), hashes "
        "it in Python, checks every seq and prev_hash, and verifies every checkpoint's Ed25519 "
        f"signature; best of {results['repeats']}. The trail is built untimed: chained rows precomputed "
        "and inserted with `executemany`, a checkpoint signed every 1,000 entries.",
        "- append: each entry in its own write transaction (as a state-changing request makes it) onto "
        "the built trail, checkpoints signed with the platform key file; the trail then verifies whole.",
    ]
    for run_ in results["runs"]:
        rates = ", ".join(f"{r:,.0f}" for r in run_["verify"]["rates"])
        lines.append(
            f"- {_DB_NAMES.get(run_['db'], run_['db'])}: verify runs {rates} entries/s; trail built in "
            f"{run_['build_seconds']:.1f} s."
        )
    if any(run_["db"] == "postgresql" for run_ in results["runs"]):
        lines.append(
            "- PostgreSQL ran on this machine, on the other core from the verifier: it streams the rows "
            "while the verifier renders and hashes them, which is the bound. SQLite (embedded, WAL, "
            "synchronous=NORMAL as Steward sets it) is the default store."
        )
    lines.append(
        "- Authorisation overhead per request (auth on vs off, goal: under 1 ms at the median): "
        "`benchmarks/auth_overhead.py`, in its own section below."
    )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The governance section of ``docs/benchmarks.md``, between its markers."""
    info = results["machine"]
    lines = [
        DOCS_BEGIN,
        "## Governance: the audit trail",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{info['commit']}` with:",
        "",
        "```",
        results.get("command", ".venv/bin/python benchmarks/governance.py"),
        "```",
        "",
        *markdown_table(table_rows(results), HEADERS),
        "",
        "No peer: the figures are held to the governance issue's goals.",
        "",
        *notes(results),
        "",
        machine_line(info, "no peer"),
        DOCS_END,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the cases, print the table, optionally write the JSON results and the docs section."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=ENTRIES, help=f"entries in the trail ({ENTRIES:,})")
    p.add_argument("--appends", type=int, default=APPENDS, help=f"entries appended one by one ({APPENDS:,})")
    p.add_argument("--repeats", type=int, default=REPEATS, help=f"verify runs, best reported ({REPEATS})")
    p.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL database (in a new schema)")
    p.add_argument("--out", type=Path, help="write the raw results to this JSON file")
    p.add_argument(
        "--write-docs", action="store_true", help="update the governance section of docs/benchmarks.md"
    )
    p.add_argument("--docs-path", type=Path, default=DOCS_PATH, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    runs = [run(None, args.entries, args.appends, args.repeats)]
    if args.postgres:
        with fresh_schema(args.postgres) as url:
            runs.append(run(url, args.entries, args.appends, args.repeats))
    info = machine_info(None)
    info.pop("mlflow", None)
    results: dict[str, Any] = {
        "machine": info,
        "repeats": args.repeats,
        "command": shlex.join([".venv/bin/python", "benchmarks/governance.py", *(argv or sys.argv[1:])]),
        "runs": runs,
    }
    print_table(table_rows(results), "Governance: the audit trail", HEADERS)
    print("\n".join(notes(results)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    if args.write_docs:
        write_docs(markdown(results), args.docs_path, DOCS_BEGIN, DOCS_END, after=PIPELINES_DOCS_END)
        print(f"wrote the governance section of {args.docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
