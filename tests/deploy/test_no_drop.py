"""No request is dropped, failed or answered by a version the plan did not allow while traffic moves.

A real inference server (``steward.serving``, built as ``steward serve --endpoint churn`` builds it)
follows the endpoint through ``EndpointSource``; eight clients keep single-row requests going through a
whole canary (10% -> 50% -> 100%, each step analysed by the controller over the windows the server
writes) and then an instant rollback. Every request is counted and every answer checked: status 200,
and the version that answered was live in a plan in force around then (the server takes a new plan up
within a poll, once its versions are loaded), never one that no plan allowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import steward
from steward.config import Settings, load_settings
from steward.deploy.controller import Controller, HttpReadiness
from steward.deploy.models import RolloutState
from steward.deploy.service import DeployService
from steward.serving.models import LIVE_ROLES
from steward.serving.server import ServeOptions, build_app
from steward.store.platform import Platform
from tests.plugins.server import running_server

CLIENTS = 8
LAG_S = 2.0
"""How long after a plan changed the server may still answer by the one before: a poll (0.1 s here),
then loading a new version; measured here, the last answer by a replaced plan was sent within 0.1 s."""
DEADLINE_S = 90.0


@dataclass
class Answer:
    sent: float
    received: float
    status: int
    version: str | None


@dataclass
class Load:
    """Clients sending single-row requests until stopped; every request sent ends as one ``Answer``."""

    url: str
    row: list[float]
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[Answer] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                with self.lock:
                    self.sent += 1
                started = time.time()
                try:
                    response = http.post("/predict/churn", json={"instances": [self.row]})
                    version = response.json().get("version") if response.status_code == 200 else None
                    answer = Answer(started, time.time(), response.status_code, version)
                except httpx.HTTPError:
                    answer = Answer(started, time.time(), 0, None)
                with self.lock:
                    self.answers.append(answer)

    def start(self) -> Load:
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def count(self) -> int:
        with self.lock:
            return len(self.answers)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}", pytrace=False)
        time.sleep(0.05)


@contextmanager
def inference_server(settings: Settings) -> Iterator[str]:
    """``steward serve --endpoint churn`` in a thread on a free port; yields its base URL once ready."""
    options = ServeOptions(
        endpoints=("churn",),
        use_endpoints=True,
        source_factory="steward.deploy.source:EndpointSource",
        poll_interval=0.1,
        window_seconds=1,
        log_sample_rate=0.0,
        port=0,
        log_level="warning",
    )
    with running_server(build_app(options, settings), "/v2/health/ready", timeout_graceful_shutdown=5) as url:
        yield url


@pytest.fixture
def endpoint(steward_home: Path) -> Iterator[tuple[Settings, DeployService, list[float]]]:
    """Endpoint ``churn`` serving 1.0.0 of a logistic regression whose 1.1.0 is registered too."""
    features, y = make_classification(n_samples=200, n_features=6, random_state=0)
    signature = steward.infer_signature(features, y)
    for c in (1.0, 0.5):
        model = LogisticRegression(C=c).fit(features, y)
        steward.register_model("churn", model, signature=signature)
    settings = load_settings(home=steward_home)
    platform = Platform.from_settings(settings)
    deploy = DeployService(platform)
    deploy.create_endpoint("churn", "churn", "1.0.0")
    yield settings, deploy, [float(v) for v in features[0]]
    platform.close()


def live(arms: list[dict[str, object]]) -> frozenset[str]:
    return frozenset(str(a["version"]) for a in arms if a["role"] in LIVE_ROLES and float(a["weight"]) > 0)  # type: ignore[arg-type]


def timeline(deploy: DeployService) -> list[tuple[float, frozenset[str]]]:
    """When each plan of the endpoint took effect in the store, with its live versions."""
    created = deploy.get_endpoint("churn").created_at.timestamp()
    events = deploy.get_rollout("churn").events
    return [(created, frozenset({"1.0.0"}))] + [(e.at.timestamp(), live(e.details["arms"])) for e in events]


def misanswered(
    answers: list[Answer], plans: list[tuple[float, frozenset[str]]]
) -> list[tuple[float, str | None]]:
    """Answers by a version that no plan in force while the request was out (or ``LAG_S`` before) allowed."""

    def allowed(answer: Answer) -> set[str]:
        found: set[str] = set()
        for index, (start, versions) in enumerate(plans):
            end = plans[index + 1][0] + LAG_S if index + 1 < len(plans) else float("inf")
            if start <= answer.received and answer.sent <= end:
                found |= versions
        return found

    return [(a.sent, a.version) for a in answers if a.version not in allowed(a)]


def versions_sent(answers: list[Answer], after: float, before: float = float("inf")) -> set[str | None]:
    """The versions that answered requests sent after ``after`` and answered before ``before``."""
    return {a.version for a in answers if after < a.sent and a.received < before}


def ended_at(deploy: DeployService) -> float:
    ended = deploy.get_rollout("churn").ended_at
    assert ended is not None
    return ended.timestamp()


def settle(load: Load, since: float) -> None:
    """Wait until a plan written at ``since`` has surely been taken up, then for 300 answers more."""
    wait_for(lambda: time.time() > since + LAG_S, "the plan to be taken up")
    seen = load.count()
    wait_for(lambda: load.count() > seen + 300, "answers by the plan")


def test_a_load_through_a_full_canary_and_a_rollback_loses_no_request(
    endpoint: tuple[Settings, DeployService, list[float]],
) -> None:
    settings, deploy, row = endpoint
    with inference_server(settings) as url:
        load = Load(url, row).start()
        controller = Controller(deploy.platform, ["churn"], interval=0.2, readiness=HttpReadiness([url]))
        try:
            wait_for(lambda: load.count() > 200, "the load to run")
            options = {"steps": [10, 50, 100], "min_duration_s": 0, "min_requests": 20, "p99_slack_ms": 50}
            deploy.start_rollout("churn", "canary", "1.1.0", options)
            controller.start()
            wait_for(lambda: not deploy.get_rollout("churn").active, "the canary to end")
            controller.stop()
            assert deploy.get_rollout("churn").state is RolloutState.SUCCEEDED, deploy.get_rollout(
                "churn"
            ).message
            full = ended_at(deploy)
            settle(load, full)
            back = deploy.rollback("churn", "drill")
            assert back.state is RolloutState.ROLLED_BACK
            rolled = ended_at(deploy)
            settle(load, rolled)
        finally:
            controller.stop()
            load.finish()
    rollout, answers = deploy.get_rollout("churn"), load.answers
    assert [e.kind for e in rollout.events] == ["started", "step", "succeeded", "rolled_back"]
    assert load.sent == len(answers)  # every request sent came back
    assert [a for a in answers if a.status != 200] == []  # and each was answered
    assert misanswered(answers, timeline(deploy)) == []
    started = rollout.created_at.timestamp()
    assert {a.version for a in answers if a.received < started} == {"1.0.0"}
    assert versions_sent(answers, started, full) == {"1.0.0", "1.1.0"}  # the canary took a share
    assert versions_sent(answers, full + LAG_S, rolled) == {"1.1.0"}
    assert versions_sent(answers, rolled + LAG_S) == {"1.0.0"}


def test_blue_green_switches_once_the_server_has_the_candidate_ready(
    endpoint: tuple[Settings, DeployService, list[float]],
) -> None:
    settings, deploy, row = endpoint
    with inference_server(settings) as url:
        probe = HttpReadiness([url])
        assert probe.ready("churn", "1.1.0") is False  # not in the plan, not loaded
        load = Load(url, row).start()
        controller = Controller(deploy.platform, ["churn"], interval=0.1, readiness=probe)
        try:
            wait_for(lambda: load.count() > 200, "the load to run")
            deploy.start_rollout("churn", "blue-green", "1.1.0")
            controller.start()
            wait_for(lambda: not deploy.get_rollout("churn").active, "the switch")
            controller.stop()
            switched = ended_at(deploy)
            assert probe.ready("churn", "1.1.0") and probe.ready("churn", "1.0.0")  # both warm
            settle(load, switched)
            rolled = deploy.rollback("churn").ended_at
            assert rolled is not None
            settle(load, rolled.timestamp())
        finally:
            controller.stop()
            load.finish()
    rollout, answers = deploy.get_rollout("churn"), load.answers
    assert [e.kind for e in rollout.events] == ["started", "succeeded", "rolled_back"]
    assert rollout.events[1].details["analysis"]["message"] == "1.1.0 reported ready"
    assert load.sent == len(answers) and {a.status for a in answers} == {200}
    assert misanswered(answers, timeline(deploy)) == []
    assert versions_sent(answers, 0, switched) == {"1.0.0"}  # warming as standby, it took no traffic
    assert versions_sent(answers, switched + LAG_S, rolled.timestamp()) == {"1.1.0"}
    assert versions_sent(answers, rolled.timestamp() + LAG_S) == {"1.0.0"}
