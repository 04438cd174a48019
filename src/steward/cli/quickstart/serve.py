"""The "serve" stage: the production model behind an endpoint, live traffic, a canary of a retrained
version to 100 %, the endpoint's status and a few Prometheus lines.

The endpoint ``breast-cancer`` serves the version ``production`` points at (creating it runs the policy
gate). An inference server, what ``steward serve --endpoint breast-cancer`` runs, starts in this process
on a free loopback port, and a background client sends it the test rows over ``/predict`` while the
rest happens. The pipeline is run again with the tuned ``alpha`` (its data steps come from the cache),
the new version is promoted through the same policy and approval as in "govern", and a canary moves
traffic to it in steps of 25, 50 and 100 %, each analysed by the rollout controller over what the
server measured (error rate and p99 latency against the stable version) before the next.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.markup import escape

import steward
from steward.cli.quickstart import flow
from steward.cli.quickstart.govern import ALIAS, approve_request
from steward.cli.quickstart.lifecycle import EXECUTOR
from steward.cli.quickstart.state import DATASET_NAME, EXPERIMENT, ID_COLUMN, MODEL_NAME, TARGET, Demo
from steward.cli.serve import ENDPOINT_SOURCE
from steward.errors import Conflict, NotFound, PolicyViolation

if TYPE_CHECKING:
    from steward.deploy.service import DeployService
    from steward.registry.service import RegistryService

ENDPOINT = MODEL_NAME
CANARY_STEPS = (25.0, 50.0, 100.0)
STEP_SECONDS = 1.5
"""How long each canary step lasts before its analysis (a real rollout waits minutes)."""
STEP_REQUESTS = 40
DEADLINE_S = 90.0
_METRIC_PREFIXES = ("steward_requests_total", "steward_request_duration_seconds_count")


class Traffic:
    """A background client posting rows to ``/predict/<endpoint>`` until stopped; counts each answer."""

    def __init__(self, url: str, rows: list[dict[str, Any]]) -> None:
        self.url = f"{url}/predict/{ENDPOINT}"
        self.rows = rows
        self.answers: dict[str, int] = {}
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="quickstart-traffic", daemon=True)

    def _send(self) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                response = client.post(self.url, json={"records": [self.rows[i % len(self.rows)]]})
                i += 1
                if response.status_code == 200:
                    version = str(response.json().get("version"))
                    self.answers[version] = self.answers.get(version, 0) + 1
                else:
                    self.failures += 1
                time.sleep(0.002)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    @property
    def total(self) -> int:
        """Answers so far, failures included."""
        return sum(self.answers.values()) + self.failures


@contextmanager
def inference_server(settings: Any, endpoints: tuple[str, ...] = (ENDPOINT,)) -> Iterator[str]:
    """``steward serve --endpoint breast-cancer`` (or other ``endpoints``) in a thread, on a free loopback
    port; yields its URL."""
    import uvicorn

    from steward.serving.server import ServeOptions, build_app

    options = ServeOptions(
        endpoints=endpoints,
        use_endpoints=True,
        source_factory=ENDPOINT_SOURCE,
        poll_interval=0.2,
        window_seconds=1,
        port=0,
        log_level="warning",
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        build_app(options, settings), log_config=None, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not _ready(url):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the inference server did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _test_rows(demo: Demo) -> list[dict[str, Any]]:
    number = demo.dataset.number if demo.dataset is not None else 2
    frame = steward.get_dataset(DATASET_NAME, version=number, format="pandas")
    features = frame.drop(columns=[ID_COLUMN, TARGET])
    return [{k: float(v) for k, v in row.items()} for row in features.head(100).to_dict("records")]


def _endpoint(demo: Demo, deploy: DeployService, version: str) -> None:
    """Create the endpoint at ``version`` (through the gate), or reuse it and end a rollout left over."""
    try:
        endpoint = deploy.get_endpoint(ENDPOINT)
    except NotFound:
        deploy.create_endpoint(ENDPOINT, MODEL_NAME, version, description="the quickstart's model")
        demo.console.print(
            f"Endpoint [bold]{ENDPOINT}[/bold] created at {MODEL_NAME} {version} (it passed the policy gate "
            f"of {ALIAS})."
        )
        return
    if endpoint.active_rollout is not None:
        deploy.abort(ENDPOINT, reason="quickstart: a rollout left over from an earlier run")
    demo.console.print(f"Endpoint [bold]{ENDPOINT}[/bold] exists; its plan: {_plan(deploy)}.")


def _plan(deploy: DeployService) -> str:
    arms = deploy.get_endpoint(ENDPOINT).arms
    return ", ".join(f"{a.version} {a.role} {a.weight:.0%}" for a in arms)


def _retrain(demo: Demo, registry: RegistryService) -> str | None:
    """Run the pipeline again with the tuned alpha and promote what it registers; return the version."""
    from steward.registry.promotion import promote

    alpha = float((demo.best_params or {}).get("alpha", 5e-4))
    with demo.console.status(f"Retraining with alpha {alpha:.3g} (the data steps come from the cache) …"):
        run = flow.training.run(
            EXECUTOR, experiment=EXPERIMENT, run_name="retrain", seed=demo.seed, alpha=alpha
        )
    if not run.succeeded:
        demo.console.print("[red]The retraining pipeline failed[/red]: steward runs show " + run.id)
        return None
    version = str(run.result.version)
    demo.console.print(f"Retrained: [bold]{MODEL_NAME} {version}[/bold] (pipeline run {run.id}).")
    if registry.get_model(MODEL_NAME).aliases.get(ALIAS) != version:
        try:
            result = promote(registry, MODEL_NAME, version, ALIAS, reason="quickstart: the retrained model")
        except PolicyViolation as exc:
            demo.console.print(f"[red]The gate refused the retrained version[/red]: {escape(exc.message)}")
            return None
        if result.status == "pending" and result.request is not None:
            approve_request(demo, registry, result.request)
    return version


def _canary(demo: Demo, deploy: DeployService, url: str, version: str, traffic: Traffic) -> None:
    from steward.deploy.controller import Controller, HttpReadiness
    from steward.deploy.models import RolloutState

    options: dict[str, Any] = {
        "steps": list(CANARY_STEPS),
        "min_duration_s": STEP_SECONDS,
        "min_requests": STEP_REQUESTS,
    }
    try:
        rollout = deploy.start_rollout(ENDPOINT, "canary", version, options)
    except (Conflict, PolicyViolation) as exc:
        demo.console.print(f"[yellow]No canary[/yellow]: {escape(exc.message)}")
        return
    demo.console.print(
        f"Canary {rollout.id}: {rollout.baseline} → {version} in steps of "
        f"{', '.join(f'{s:g}%' for s in CANARY_STEPS)}, each analysed after {STEP_SECONDS:g} s and "
        f"{STEP_REQUESTS} requests (error rate, p99 latency against {rollout.baseline})."
    )
    controller = Controller(deploy.platform, [ENDPOINT], interval=0.25, readiness=HttpReadiness([url]))
    controller.start()
    seen = 0
    deadline = time.monotonic() + DEADLINE_S
    try:
        with demo.console.status("Canary under way …") as status:
            while True:
                rollout = deploy.get_rollout(ENDPOINT)
                for event in rollout.events[seen:]:
                    demo.console.print(f"  {event.kind:<11} {escape(event.message)}")
                seen = len(rollout.events)
                status.update(f"Canary at step {rollout.step + 1}; {traffic.total} requests answered")
                if rollout.state is not RolloutState.RUNNING and rollout.state is not RolloutState.PENDING:
                    break
                if time.monotonic() > deadline:
                    deploy.abort(ENDPOINT, reason="quickstart: the canary took too long")
                    break
                time.sleep(0.2)
    finally:
        controller.stop()
    colour = "green" if rollout.state is RolloutState.SUCCEEDED else "red"
    demo.console.print(f"Canary [{colour}]{rollout.state.value}[/{colour}]: {escape(rollout.message)}")


def _prometheus_lines(url: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return [line for line in text.splitlines() if line.startswith(_METRIC_PREFIXES)][:6]


def run_serving(demo: Demo) -> None:
    """Stage "serve": an endpoint for ``production``, traffic, a canary of a retrained version to 100 %,
    the endpoint's status and a few Prometheus lines."""
    from steward.cli.deploy import print_status
    from steward.deploy.service import DeployService
    from steward.registry.service import RegistryService

    out = demo.console
    registry = steward.default_connection().registry
    if not isinstance(registry, RegistryService):
        out.print("Skipped: the demo runs its inference server in this process, which needs embedded mode.")
        return
    production = registry.get_model(MODEL_NAME).aliases.get(ALIAS)
    if production is None:
        out.print(f"Skipped: no version of {MODEL_NAME} holds {ALIAS} (the govern stage did not promote).")
        return
    deploy = DeployService(registry.platform, registry)
    _endpoint(demo, deploy, production)
    rows = _test_rows(demo)
    with inference_server(registry.platform.settings) as url:
        first = httpx.post(f"{url}/predict/{ENDPOINT}", json={"records": rows[:2]}, timeout=10).json()
        out.print(f"Serving on {url}. POST /predict/{ENDPOINT} with two test rows answered:")
        out.print(f"  {escape(str(first))}")
        with Traffic(url, rows) as traffic:
            version = _retrain(demo, registry)
            stable = {a.version for a in deploy.get_endpoint(ENDPOINT).arms if a.weight > 0}
            if version is None or version in stable:
                out.print(f"{MODEL_NAME} {version} already serves all traffic: nothing to roll out.")
            else:
                _canary(demo, deploy, url, version, traffic)
        out.print(
            f"Traffic: {traffic.total} requests, {traffic.failures} not answered 200; by version: "
            + ", ".join(f"{v} {n}" for v, n in sorted(traffic.answers.items()))
        )
        print_status(deploy.status(ENDPOINT), out)
        out.rule("/metrics (a few lines)")
        for line in _prometheus_lines(url):
            out.print(escape(line), soft_wrap=True)
    if traffic.failures:
        raise typer.Exit(code=1)
    demo.notes.append(
        f"Endpoint {ENDPOINT} moved to the retrained version by a canary: each step was analysed over "
        "what the server measured, and a bad step would have rolled it back by itself. Every answer was "
        "logged to the prediction log; steward.log_labels(request_ids, labels) adds ground truth later."
    )
    demo.next_steps += [
        (f"steward serve --endpoint {ENDPOINT}", "serve it yourself (OIP v2, /predict, /metrics)"),
        (f"steward deploy status {ENDPOINT}", "the plan, the canary's steps and what each version served"),
        (f"steward deploy export {MODEL_NAME}@{ALIAS} --target kubernetes", "manifests for a cluster"),
    ]
