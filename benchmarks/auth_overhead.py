"""Authorisation overhead per API request: the same route with ``--auth`` off and on, side by side.

Two servers on two fresh homes in this process (uvicorn in a thread each, as the test suite runs them);
each answers ``GET /api/v1/experiments`` (a project with 20 experiments) ``--requests`` times over one
keep-alive connection, interleaved in rounds so that machine noise hits both alike. With auth on, every
request carries an API token, is authenticated (hash lookup, cached 5 s) and authorised for
``tracking:read`` in its project. Goal (issue 6): auth adds under 1 ms per request at the median.

    python benchmarks/auth_overhead.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.plugins.server import running_server

from steward.api.app import create_app
from steward.api.identity import identity_service_of
from steward.config import load_settings
from steward.governance.context import acting_as, local_identity


def _timed(client: httpx.Client, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get("/api/v1/experiments")
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"unexpected {response.status_code}: {response.text}")
    return samples


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per server (3000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        off_app = create_app(load_settings(home=Path(tmp) / "off"))
        on_app = create_app(load_settings(home=Path(tmp) / "on", auth=True))
        identities = identity_service_of(on_app.state)
        identities.create_user("root", global_role="admin")  # the server no longer awaits bootstrap
        identities.create_user("bench")
        identities.create_project("bench")
        identities.add_member("bench", "bench", "viewer")
        token = identities.issue_token("bench").secret
        for app, project in ((off_app, "default"), (on_app, "bench")):
            with acting_as(local_identity("bench"), project):
                for i in range(20):
                    app.state.tracking.create_experiment(f"exp-{i}")
        with running_server(off_app) as off_url, running_server(on_app) as on_url:
            off = httpx.Client(base_url=off_url)
            on = httpx.Client(
                base_url=on_url, headers={"Authorization": f"Bearer {token}", "X-Steward-Project": "bench"}
            )
            _timed(off, 200), _timed(on, 200)  # warm both
            off_samples: list[float] = []
            on_samples: list[float] = []
            rounds = 10
            for _ in range(rounds):
                off_samples += _timed(off, args.requests // rounds)
                on_samples += _timed(on, args.requests // rounds)
            assert len(on.get("/api/v1/experiments").json()["experiments"]) == 20
    off_ms = statistics.median(off_samples) * 1000
    on_ms = statistics.median(on_samples) * 1000
    p99 = lambda s: sorted(s)[int(len(s) * 0.99)] * 1000  # noqa: E731
    print("| GET /api/v1/experiments (20 rows) | median | p99 |")
    print("|---|---:|---:|")
    print(f"| auth off | {off_ms:.3f} ms | {p99(off_samples):.3f} ms |")
    print(f"| auth on (API token, viewer) | {on_ms:.3f} ms | {p99(on_samples):.3f} ms |")
    extra_p99 = p99(on_samples) - p99(off_samples)
    print(f"| **overhead** | **{on_ms - off_ms:.3f} ms** (goal < 1 ms) | {extra_p99:.3f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
