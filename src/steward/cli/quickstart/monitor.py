"""The "monitor" stage: the closed loop, printed as a timeline.

A monitor watches the endpoint ``breast-cancer`` (``drift_share > 0.3`` over the last hour, against the
served version's training data; alerts to a webhook; the action: run the training pipeline again). The
stage sends the endpoint drifted traffic (every measurement half as large again: a new scanner's
calibration), lets the scheduler run the monitor, which opens a drift alert, delivers it to a local
webhook receiver and starts the retraining pipeline. The new version's policy verdict is printed; it
takes ``production`` only through the same gate and approval as any other. Then a canary of it is held
to a latency bound no model meets here (0.1 ms at p99) — a deliberately bad canary — and the rollout
controller rolls it back by itself.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from rich.markup import escape

import steward
from steward.cli.output import new_table
from steward.cli.quickstart.govern import ALIAS, approve_request, show_verdict
from steward.cli.quickstart.serve import ENDPOINT, Traffic, _test_rows, inference_server
from steward.cli.quickstart.state import MODEL_NAME, Demo
from steward.errors import Conflict, NotFound, PolicyViolation
from steward.monitoring.models import Action

if TYPE_CHECKING:
    from steward.deploy.service import DeployService
    from steward.registry.service import RegistryService

MONITOR = "breast-cancer-drift"
DRIFT_FACTOR = 1.5
DRIFTED_REQUESTS = 200
RULES = ("drift_share > 0.3",)
DEADLINE_S = 90.0
P99_BOUND_MS = 0.1
"""The canary's latency bound: below even the median answer here (about 0.2 ms), so it must fail."""


class Timeline:
    """What happened, when: printed as it happens and as a table at the end."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.start = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def __call__(self, what: str) -> None:
        at = time.monotonic() - self.start
        self.events.append((at, what))
        self.demo.console.print(f"[dim]{at:6.1f} s[/dim]  {what}")

    def table(self) -> Any:
        """The timeline as a table."""
        grid = new_table("t", "what happened")
        for at, what in self.events:
            grid.add_row(f"{at:.1f} s", what)
        return grid


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that keeps what is posted to it (a stand-in for Slack); yields its URL."""
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/quickstart", received
    finally:
        server.shutdown()
        server.server_close()


def _monitor(demo: Demo, webhook: str) -> None:
    monitoring = steward.default_connection().monitoring
    with suppress(NotFound):
        monitoring.delete_monitor(MONITOR)  # a rerun: its webhook moved to a new port
    params = {"experiment": "quickstart", "run_name": "retrain-on-drift", "seed": demo.seed}
    retrain = Action("retrain", "steward.cli.quickstart.flow:training", params)
    monitoring.create_monitor(MONITOR, ENDPOINT, rules=list(RULES), window="1h", schedule=60,
                              channels=[webhook], actions=[retrain], cooldown="1h")  # fmt: skip


def _send(url: str, rows: list[dict[str, Any]], factor: float, requests: int) -> int:
    drifted = [{k: v * factor for k, v in row.items()} for row in rows]
    sent = 0
    with httpx.Client(timeout=10) as client:
        for i in range(requests):
            batch = [drifted[(i * 10 + j) % len(drifted)] for j in range(10)]
            if client.post(f"{url}/predict/{ENDPOINT}", json={"records": batch}).status_code == 200:
                sent += len(batch)
    return sent


def _logged(count: int) -> None:
    """Wait until the prediction log holds ``count`` rows (its writer flushes in the background)."""
    deadline = time.monotonic() + 20
    while steward.read_predictions(ENDPOINT).num_rows < count and time.monotonic() < deadline:
        time.sleep(0.2)


def _scheduler_pass(registry: RegistryService, now: datetime) -> list[Any]:
    from steward.automation.scheduler import Scheduler

    return Scheduler(registry.platform, holder="quickstart").tick(now)


def _canary(
    demo: Demo, deploy: DeployService, url: str, version: str, rows: list[dict[str, Any]], log: Timeline
) -> None:
    from steward.deploy.controller import Controller, HttpReadiness
    from steward.deploy.models import RolloutState

    options = {"steps": [50.0, 100.0], "min_duration_s": 1.0, "min_requests": 20, "max_p99_ms": P99_BOUND_MS}
    try:
        rollout = deploy.start_rollout(ENDPOINT, "canary", version, options)
    except (Conflict, PolicyViolation) as exc:
        log(f"no canary: {escape(exc.message)}")
        return
    log(f"canary of {version} started at 50%, held to p99 ≤ {P99_BOUND_MS} ms (deliberately impossible)")
    controller = Controller(deploy.platform, [ENDPOINT], interval=0.25, readiness=HttpReadiness([url]))
    controller.start()
    deadline = time.monotonic() + DEADLINE_S
    try:
        with Traffic(url, rows):
            while (
                rollout.state in (RolloutState.RUNNING, RolloutState.PENDING) and time.monotonic() < deadline
            ):
                time.sleep(0.25)
                rollout = deploy.get_rollout(ENDPOINT)
    finally:
        controller.stop()
    for event in rollout.events[1:]:
        log(f"rollout {event.kind}: {escape(event.message)}")
    arms = ", ".join(f"{a.version} {a.role} {a.weight:.0%}" for a in deploy.get_endpoint(ENDPOINT).arms)
    log(f"endpoint plan now: {arms}")


def run_monitoring(demo: Demo) -> None:
    """Stage "monitor": drifted traffic, the drift alert, the retraining it starts, the new version's
    verdict, and a bad canary rolled back by itself — printed as a timeline."""
    from steward.deploy.service import DeployService
    from steward.registry.gates import check
    from steward.registry.promotion import promote
    from steward.registry.service import RegistryService

    out = demo.console
    registry = steward.default_connection().registry
    if not isinstance(registry, RegistryService):
        out.print("Skipped: the demo runs its inference server in this process, which needs embedded mode.")
        return
    deploy = DeployService(registry.platform, registry)
    try:
        deploy.get_endpoint(ENDPOINT)
    except NotFound:
        out.print(f"Skipped: there is no endpoint {ENDPOINT} (the serve stage did not run).")
        return
    log = Timeline(demo)
    rows = _test_rows(demo)
    before = {v.version for v in registry.list_versions(MODEL_NAME)}
    with webhook_receiver() as (webhook, received), inference_server(registry.platform.settings) as url:
        _monitor(demo, webhook)
        log(f"monitor {MONITOR} watches {ENDPOINT}: {', '.join(RULES)} over the last hour, against the "
            "served version's training data; alerts to a webhook; action: retrain")  # fmt: skip
        logged = steward.read_predictions(ENDPOINT).num_rows
        sent = _send(url, rows, DRIFT_FACTOR, DRIFTED_REQUESTS)
        _logged(logged + sent)
        log(f"sent {sent} drifted rows (every measurement x{DRIFT_FACTOR}) to /predict/{ENDPOINT}")
        firings = _scheduler_pass(registry, datetime.now(UTC) + timedelta(seconds=61))
        alerts = steward.list_alerts(MONITOR, "firing")
        if not alerts:
            log(f"[red]no alert[/red] (scheduler pass: {[f.outcome for f in firings]})")
            return
        alert = alerts[0]
        log(f"[bold]alert[/bold] {alert.rule}: {alert.message or alert.value}")
        for hook in received:
            log(f"webhook received: {escape(str(hook.get('text', '')).splitlines()[0][:100])}")
        for action in alert.actions:
            details = action.get("details", {})
            log(
                f"action {action.get('kind')}: {action.get('outcome')} (pipeline run {details.get('run_id')})"
            )
        new = sorted({v.version for v in registry.list_versions(MODEL_NAME)} - before)
        if not new:
            log("[red]the retraining registered no version[/red]")
            return
        version = new[-1]
        production = registry.get_model(MODEL_NAME).aliases.get(ALIAS)
        log(f"retrained: {MODEL_NAME} {version}; {ALIAS} is still {production} (only the gate moves it)")
        show_verdict(demo, check(registry, MODEL_NAME, version, ALIAS))
        try:
            result = promote(
                registry, MODEL_NAME, version, ALIAS, reason="quickstart: retrained on a drift alert"
            )
        except PolicyViolation as exc:
            log(f"[red]the gate refused {version}[/red]: {escape(exc.message)}")
            return
        if result.status == "pending" and result.request is not None:
            approve_request(demo, registry, result.request)
        now_at = registry.get_model(MODEL_NAME).aliases.get(ALIAS)
        log(f"{ALIAS} → {now_at} (through the policy and an approval)")
        _canary(demo, deploy, url, version, rows, log)
    out.rule("the loop, as a timeline")
    out.print(log.table())
    demo.notes.append(
        f"The monitor {MONITOR} found the drift, alerted a webhook and started the retraining pipeline; "
        "its version took production only through the policy and an approval, and a canary that broke "
        "its bound was rolled back by the controller without anyone acting."
    )
    demo.next_steps += [
        ("steward monitor alerts", "the drift alert, its delivery and the retraining it started"),
        (f"steward monitor report {ENDPOINT} --window 1h --format html -o report.html", "the drift report"),
        ("steward scheduler", "run monitors and triggers on their schedules"),
    ]
