"""Routing and moving traffic: weights, sticky keys, shadows, swaps under load, failed loads."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

import steward
from steward.serving.app import ServingApp
from steward.serving.router import Router, sticky_fraction
from tests.serving.conftest import Models, PlanSource, make_app, plan, register, serving, wait_for

STABLE = ("1.0.0", "stable", 1.0)


@dataclass
class Served:
    url: str
    app: ServingApp
    source: PlanSource


@pytest.fixture(scope="module")
def served(models: Models) -> Iterator[Served]:
    source = PlanSource(plan("ab", "ab", STABLE))
    app = make_app(models, source=source, poll_interval=0.05)
    app.router.retry_seconds = 0.2
    with serving(app) as url:
        yield Served(url, app, source)


def _switch(served: Served, *arms: tuple[str, str, float], sticky: str | None = None) -> None:
    """Set a new plan and wait until the endpoint serves it."""
    new = plan("ab", "ab", *arms, sticky=sticky, revision=len(arms))
    served.source.set(new)

    def routed() -> bool:
        state = served.app.router.endpoint("ab")
        return state is not None and state.table is not None and state.table.plan == new

    wait_for(routed, what=f"the plan {arms}")


def test_sticky_fraction_is_stable_and_spread() -> None:
    assert sticky_fraction("ab", "user-1") == sticky_fraction("ab", "user-1")
    assert round(sticky_fraction("ab", "user-1"), 12) == 0.513592474779  # the same in every process, forever
    points = [sticky_fraction("ab", f"user-{i}") for i in range(2000)]
    assert 0.45 < sum(p < 0.5 for p in points) / len(points) < 0.55
    assert sticky_fraction("other", "user-1") != sticky_fraction("ab", "user-1")


def test_weights_split_traffic(served: Served) -> None:
    _switch(served, ("1.0.0", "stable", 0.8), ("1.1.0", "canary", 0.2))
    table = served.app.router.endpoint("ab").table  # type: ignore[union-attr]
    assert table is not None
    picks = Counter(table.pick().arm.version for _ in range(20_000))
    assert 0.77 < picks["1.0.0"] / 20_000 < 0.83
    _switch(served, STABLE)


def test_one_sticky_key_always_lands_on_one_arm(served: Served, models: Models) -> None:
    _switch(served, ("1.0.0", "stable", 0.5), ("1.1.0", "candidate", 0.5), sticky="user")
    record = models.records([0])
    with httpx.Client(base_url=served.url, timeout=30) as http:
        seen: dict[str, set[str]] = {}
        for i in range(60):
            key = f"user-{i}"
            for _ in range(3):
                by_header = http.post("/predict/ab", json={"records": record}, headers={"X-Steward-Key": key})
                seen.setdefault(key, set()).add(by_header.json()["version"])
            by_body = http.post("/predict/ab", json={"records": record, "parameters": {"user": key}})
            seen[key].add(by_body.json()["version"])
        assert all(len(versions) == 1 for versions in seen.values())
        arms = Counter(next(iter(v)) for v in seen.values())
        assert set(arms) == {"1.0.0", "1.1.0"}
    _switch(served, STABLE)


@dataclass
class Load:
    """Clients posting in a loop until stopped, keeping every answer."""

    url: str
    body: dict[str, object]
    threads: int = 4
    sent: int = 0
    answers: list[tuple[int, str, object]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                with self._lock:
                    self.sent += 1
                try:
                    answer = http.post("/predict/ab", json=self.body)
                    body = answer.json()
                    with self._lock:
                        self.answers.append(
                            (answer.status_code, body.get("version"), body.get("predictions"))
                        )
                except Exception as exc:
                    with self._lock:
                        self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def since(self, start: int) -> list[tuple[int, str, object]]:
        with self._lock:
            return self.answers[start:]


def test_traffic_moves_under_load_without_a_lost_or_mixed_answer(served: Served, models: Models) -> None:
    record = models.records([0])  # the regression says 0 for it; version 1.1.0 always says 1
    assert models.lr.predict(models.X.iloc[[0]]).tolist() == [0]
    with Load(served.url, {"records": record}) as load:
        wait_for(lambda: load.count() > 50, what="answers")
        _switch(served, ("1.1.0", "stable", 1.0))  # blue-green: 1.1.0 loads while 1.0.0 answers
        mark = load.count()
        wait_for(lambda: any(v == "1.1.0" for _, v, _ in load.since(mark)), what="answers from 1.1.0")
        _switch(served, ("1.1.0", "stable", 0.5), ("1.0.0", "canary", 0.5))
        mark = load.count()
        wait_for(lambda: len({v for _, v, _ in load.since(mark)}) == 2, what="answers from both")
        _switch(served, STABLE)  # roll back
        mark = load.count()
        wait_for(lambda: load.count() > mark + 50, what="answers after the rollback")
        after = load.since(mark + 10)  # requests in flight at the swap may still finish on 1.1.0
    assert not load.failures
    assert load.sent == len(load.answers)
    expected = {"1.0.0": [0], "1.1.0": [1]}
    for status, version, predictions in load.answers:
        assert status == 200 and predictions == expected[version]
    assert {version for _, version, _ in after} == {"1.0.0"}
    wait_for(lambda: {k.version for k in served.app.router.loaded} == {"1.0.0"}, what="1.1.0 to unload")


def _loaded(served: Served) -> set[str]:
    return {key.version for key in served.app.router.loaded}


def test_a_rolled_back_canary_is_released_while_every_request_is_answered(
    served: Served, models: Models
) -> None:
    record = models.records([0])  # 1.0.0 says 0 for it, 1.1.0 always 1
    with Load(served.url, {"records": record}) as load:
        _switch(served, ("1.0.0", "stable", 0.5), ("1.1.0", "canary", 0.5))
        mark = load.count()
        wait_for(lambda: len({v for _, v, _ in load.since(mark)}) == 2, what="answers from both")
        _switch(served, ("1.0.0", "stable", 1.0), ("1.1.0", "canary", 0.0))  # what a rollback writes
        wait_for(lambda: _loaded(served) == {"1.0.0"}, what="the rolled-back canary to be released")
        mark = load.count()
        wait_for(lambda: load.count() > mark + 50, what="answers after the release")
        after = load.since(mark)
    assert not load.failures and load.sent == len(load.answers)
    expected = {"1.0.0": [0], "1.1.0": [1]}
    assert all(status == 200 and predictions == expected[v] for status, v, predictions in load.answers)
    assert {version for _, version, _ in after} == {"1.0.0"}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        ready = http.get("/v2/models/ab/versions/1.1.0/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert http.get("/v2/models/ab/versions/1.0.0/ready").status_code == 200
        assert http.get("/v2/models/ab/ready").status_code == 200  # the endpoint serves its newest plan
        row = list(record[0].values())
        body = {"inputs": [{"name": "X", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
        assert http.post("/v2/models/ab/versions/1.0.0/infer", json=body).status_code == 200
        direct = http.post("/v2/models/ab/versions/1.1.0/infer", json=body)
        assert direct.status_code == 404 and direct.json()["details"] == {"field": "version"}
        metadata = http.get("/v2/models/ab").json()
        assert metadata["versions"] == ["1.0.0"] and [t["version"] for t in metadata["traffic"]] == ["1.0.0"]
        assert 'steward_model_version_loaded{model="ab",version="1.1.0"} 0.0' in http.get("/metrics").text
    _switch(served, STABLE)


def test_a_standby_version_stays_loaded_and_ready(served: Served) -> None:
    _switch(served, ("1.1.0", "stable", 1.0), ("1.0.0", "standby", 0.0))  # a finished rollout
    wait_for(lambda: _loaded(served) == {"1.0.0", "1.1.0"}, what="both versions loaded")
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.get("/v2/models/ab/versions/1.0.0/ready").status_code == 200
    _switch(served, ("1.1.0", "stable", 1.0), ("1.0.0", "candidate", 0.0))  # B rolled back, A gone too
    wait_for(lambda: _loaded(served) == {"1.1.0"}, what="the weight-0 arm to be released")
    _switch(served, STABLE)
    wait_for(lambda: _loaded(served) == {"1.0.0"}, what="1.1.0 to leave with the plan")


def test_a_released_version_finishes_its_request_in_flight_and_no_sooner(models: Models) -> None:
    canary_plan = plan("ab", "ab", ("1.0.0", "stable", 0.8), ("1.1.0", "canary", 0.2))
    rolled_back = plan("ab", "ab", ("1.0.0", "stable", 1.0), ("1.1.0", "canary", 0.0), revision=1)
    source = PlanSource(canary_plan)
    app = make_app(models, source=source, poll_interval=3600.0)  # refreshed by hand below

    async def scenario() -> None:
        await app.startup()
        try:
            state = app.router.endpoint("ab")
            assert state is not None and state.table is not None
            route = state.table.version("1.1.0")
            assert route is not None
            canary = route.served
            Router.enter(canary)  # a request that picked the canary before the rollback
            source.set(rolled_back)
            await app.router.refresh()
            assert state.table.plan == rolled_back and state.table.version("1.1.0") is None
            assert {key.version for key in app.router.loaded} == {"1.0.0"}
            assert canary.retired and not canary.closed  # its request is still being answered
            answer = await canary.predict(canary.enforce(models.X.iloc[[0]]), 1)
            assert answer.tolist() == [1]
            Router.leave(canary)
            assert canary.closed  # released with its last request
        finally:
            await app.shutdown()

    asyncio.run(scenario())


def test_shadows_get_a_copy_and_their_agreement_is_counted(served: Served, models: Models) -> None:
    rows = list(range(0, 120, 3))
    _switch(served, ("1.0.0", "stable", 1.0), ("1.2.0", "shadow", 0.0), ("1.1.0", "shadow", 0.0))
    recorder = served.app.recorder
    assert recorder is not None

    def shadow_counts(version: str) -> tuple[int, int]:
        stats = [s for (_, _, v, _), s in recorder.snapshot().items() if v == version]
        return sum(s.shadow_compared for s in stats), sum(s.shadow_agreed for s in stats)

    before = {v: shadow_counts(v) for v in ("1.1.0", "1.2.0")}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for row in rows:
            answer = http.post("/predict/ab", json={"records": models.records([row])})
            assert answer.json()["version"] == "1.0.0"
    wait_for(lambda: shadow_counts("1.1.0")[0] - before["1.1.0"][0] == len(rows), what="the shadow copies")
    wait_for(lambda: shadow_counts("1.2.0")[0] - before["1.2.0"][0] == len(rows), what="the shadow copies")
    labels = models.lr.predict(models.X.iloc[rows])
    ones = int((labels == 1).sum())
    assert shadow_counts("1.1.0")[1] - before["1.1.0"][1] == ones  # the constant model agrees where 1
    agreed = shadow_counts("1.2.0")[1] - before["1.2.0"][1]
    assert agreed >= len(rows) - 2  # a refit of the same regression: the same labels, all but a few
    _switch(served, STABLE)


@pytest.fixture(scope="module")
def broken(models: Models) -> str:
    """A model ``broken`` with a good 1.0.0 and a 1.1.0 whose stored file was altered after registration."""
    signature = steward.infer_signature(models.X, models.X.iloc[:, 0] > 15)
    good = LogisticRegression(max_iter=10_000).fit(models.X, models.lr.predict(models.X))
    register(models.home, "broken", good, signature)
    bad = LogisticRegression(max_iter=10_000, C=0.5).fit(models.X, models.lr.predict(models.X))
    register(models.home, "broken", bad, signature)
    from tests.serving.conftest import sdk_on

    with sdk_on(models.home):
        digest = steward.get_model_version("models:/broken/1.1.0").files[0].digest
    blob = Path(models.home) / "artifacts" / "blobs" / digest[:2] / digest
    blob.write_bytes(b"not the model any more")
    return "broken"


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(models: Models, broken: str) -> None:
    source = PlanSource(plan(broken, broken, STABLE))
    app = make_app(models, source=source, poll_interval=0.05)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(f"/v2/models/{broken}/ready").status_code == 200
        source.set(plan(broken, broken, ("1.1.0", "stable", 1.0), revision=1))
        wait_for(lambda: app.router.endpoint(broken).error is not None, what="the failed load")  # type: ignore[union-attr]
        ready = http.get(f"/v2/models/{broken}/ready")
        assert ready.status_code == 503
        assert "1.1.0" in ready.json()["error"] and "failed verification" in ready.json()["error"]
        metadata = http.get(f"/v2/models/{broken}").json()
        assert metadata["ready"] is False and metadata["versions"] == ["1.0.0"] and metadata["error"]
        answer = http.post(f"/predict/{broken}", json={"records": models.records([0])})
        assert answer.status_code == 200 and answer.json()["version"] == "1.0.0"
        assert http.get("/v2/health/ready").status_code == 200  # the server still serves
        assert f'steward_endpoint_ready{{endpoint="{broken}"}} 0.0' in http.get("/metrics").text
        source.set(plan(broken, broken, STABLE, revision=2))
        wait_for(lambda: http.get(f"/v2/models/{broken}/ready").status_code == 200, what="ready again")
