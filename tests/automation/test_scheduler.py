"""The scheduler: timed and data-arrival triggers fire once per due time, across threads and processes,
on SQLite and PostgreSQL; leases keep a slow action from starting twice and pass on when they expire; a
failing action is a failed firing and the loop goes on."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from steward.automation import repository as repo
from steward.automation.models import Firing, Outcome, PipelineAction, Trigger
from steward.automation.scheduler import Scheduler
from steward.core.time import to_ms
from tests.automation import pipelines_for_tests as pft
from tests.automation.pipelines_for_tests import T0, Env, env_for

HELLO = "tests.automation.pipelines_for_tests:hello"
FAILING = "tests.automation.pipelines_for_tests:failing"
SLOW = "tests.automation.pipelines_for_tests:slow"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch, request.param)


@pytest.fixture
def sqlite_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch)


def due(trigger: Trigger) -> datetime:
    assert trigger.next_due_at is not None
    return trigger.next_due_at


def test_a_cron_trigger_fires_at_its_time_once_and_moves_on(env: Env) -> None:
    made = env.automation.create_trigger("hourly", "cron", "0 * * * *", HELLO, params={"message": "tick"})
    at = due(made)
    scheduler = env.scheduler("a")
    assert scheduler.tick(at - timedelta(seconds=1)) == []
    fired = scheduler.tick(at)
    assert [(f.trigger, f.due_at, f.outcome) for f in fired] == [("hourly", at, Outcome.SUCCEEDED)]
    assert scheduler.tick(at) == [] and scheduler.tick(at + timedelta(minutes=59)) == []
    assert env.automation.get_trigger("hourly").next_due_at == at + timedelta(hours=1)
    (run,) = env.runs("hello")
    assert run.params == {"message": "tick"} and fired[0].details["result"]["details"]["run_id"] == run.run_id
    stored = env.automation.list_firings("hourly")
    assert [(f.due_at, f.outcome, f.fired_by) for f in stored] == [(at, Outcome.SUCCEEDED, "a")]
    entry = env.trail("automation.pipeline")[-1]
    assert entry.resource_kind == "trigger" and entry.resource_id == "hourly" and entry.outcome == "ok"
    assert (
        entry.details["cause"]["due_at"] == at.isoformat()
        and entry.details["details"]["run_id"] == run.run_id
    )


def test_missed_times_coalesce_into_one_firing(env: Env) -> None:
    made = env.automation.create_trigger("hourly", "cron", "0 * * * *", HELLO)
    late = due(made) + timedelta(hours=5, minutes=30)
    assert len(env.scheduler("a").tick(late)) == 1
    assert env.automation.get_trigger("hourly").next_due_at == due(made) + timedelta(hours=6)
    assert len(env.runs("hello")) == 1


def test_a_data_arrival_trigger_fires_once_per_new_version_and_starts_the_pipeline(env: Env) -> None:
    env.ingest("tx", 1)
    env.automation.create_trigger("on-tx", "dataset", "tx", HELLO, params={"message": "new data"})
    scheduler = env.scheduler("a")
    assert scheduler.tick(T0) == []  # the version that was there before the trigger is not new
    assert env.ingest("tx", 2) == 2
    (first,) = scheduler.tick(T0)
    assert first.details["cause"]["version"] == 2 and first.details["cause"]["previous"] == 1
    assert scheduler.tick(T0) == [] and scheduler.tick(T0 + timedelta(hours=1)) == []
    assert env.automation.get_trigger("on-tx").cursor == "2"
    env.ingest("tx", 3)
    env.ingest("tx", 4)
    (second,) = scheduler.tick(T0)  # two versions since the last pass: one firing, for the newest
    assert (second.details["cause"]["version"], second.details["cause"]["previous"]) == (4, 2)
    runs = env.runs("hello")
    assert len(runs) == 2 and all(r.params == {"message": "new data"} for r in runs)
    from steward.tracking.service import TrackingService

    tags = TrackingService(env.platform).get_run(runs[0].run_id).tags
    assert tags["steward.automation.trigger"] == "on-tx"


def test_a_disabled_trigger_does_not_fire(env: Env) -> None:
    made = env.automation.create_trigger("hourly", "cron", "0 * * * *", HELLO, enabled=False)
    assert env.scheduler("a").tick(due(made) + timedelta(hours=1)) == []


def _race(schedulers: list[Scheduler], now: datetime) -> int:
    """Tick every scheduler at ``now`` from its own thread, all at once; return how many fired."""
    barrier = threading.Barrier(len(schedulers))
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            barrier.wait(30)
            counts.append(len(scheduler.tick(now)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return sum(counts)


def test_schedulers_in_threads_fire_each_due_time_exactly_once(env: Env) -> None:
    made = env.automation.create_trigger("minutely", "interval", "60", HELLO)
    env.ingest("tx", 1)
    env.automation.create_trigger("on-tx", "dataset", "tx", HELLO)
    schedulers = [env.scheduler(f"s{i}") for i in range(3)]
    rounds = 4
    for k in range(rounds):
        env.ingest("tx", 10 + k)
        assert _race(schedulers, due(made) + timedelta(minutes=k)) == 2
    assert len(env.automation.list_firings("minutely")) == rounds
    assert len(env.automation.list_firings("on-tx")) == rounds
    assert len(env.runs("hello")) == 2 * rounds


def test_without_leases_the_firing_key_alone_lets_one_scheduler_through(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = env.automation.create_trigger("minutely", "interval", "60", HELLO)
    monkeypatch.setattr(Scheduler, "_take_lease", lambda self, trigger, at: True)
    schedulers = [env.scheduler(f"s{i}") for i in range(3)]
    for k in range(3):
        assert _race(schedulers, due(made) + timedelta(minutes=k)) == 1
    assert len(env.runs("hello")) == 3


def test_the_database_refuses_a_second_firing_of_one_due_time(sqlite_env: Env) -> None:
    from sqlalchemy.exc import IntegrityError

    made = sqlite_env.automation.create_trigger("hourly", "cron", "0 * * * *", HELLO)
    values = {"trigger_id": made.id, "due_at": to_ms(due(made)), "project": "default", "fired_at": 1,
              "fired_by": "a", "outcome": "running", "details": "{}"}  # fmt: skip
    with sqlite_env.platform.metadata.transaction() as conn:
        repo.insert_firing(conn, values)
    with pytest.raises(IntegrityError), sqlite_env.platform.metadata.transaction() as conn:
        repo.insert_firing(conn, {**values, "fired_by": "b"})


def test_schedulers_in_separate_processes_fire_a_due_time_exactly_once(env: Env) -> None:
    made = env.automation.create_trigger("hourly", "cron", "0 * * * *", HELLO)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    args = [(str(env.home), env.db, due(made).isoformat(), f"proc-{i}", barrier, results) for i in range(2)]
    processes = [context.Process(target=pft.tick_in_process, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0, 0]
    assert sorted(results.get(timeout=10) for _ in processes) == [0, 1]
    (firing,) = env.automation.list_firings("hourly")
    assert firing.outcome is Outcome.SUCCEEDED and firing.fired_by.startswith("proc-")
    assert len(env.runs("hello")) == 1


def start_slow(scheduler: Scheduler, at: datetime, fired: list[int]) -> threading.Thread:
    """Tick ``scheduler`` at ``at`` in a thread; return once the slow pipeline's step is running."""
    pft.release_slow.clear()
    pft.slow_started.clear()
    worker = threading.Thread(target=lambda: fired.append(len(scheduler.tick(at))))
    worker.start()
    assert pft.slow_started.wait(60)
    return worker


def test_a_slow_action_is_not_started_twice_while_its_lease_is_held(sqlite_env: Env) -> None:
    env = sqlite_env
    made = env.automation.create_trigger("often", "interval", "10", SLOW)
    first, second = env.scheduler("a"), env.scheduler("b")
    fired: list[int] = []
    worker = start_slow(first, due(made), fired)
    try:
        # its next due time has come, but the first scheduler still runs the action: nobody starts it
        assert second.tick(due(made) + timedelta(seconds=20)) == []
        with env.platform.metadata.read() as conn:
            assert repo.lease_holder(conn, made.id) == ("a", to_ms(due(made)) + 60_000)
    finally:
        pft.release_slow.set()
        worker.join(60)
    assert fired == [1]
    (after,) = second.tick(due(made) + timedelta(seconds=20))
    assert after.fired_by == "b" and after.outcome is Outcome.SUCCEEDED
    with env.platform.metadata.read() as conn:
        assert repo.lease_holder(conn, made.id) is None  # given up after each firing
    assert len(env.runs("slow")) == 2


def test_a_lease_is_renewed_while_its_action_runs(sqlite_env: Env) -> None:
    env = sqlite_env
    made = env.automation.create_trigger("often", "interval", "10", SLOW)
    worker = start_slow(env.scheduler("a", lease_s=0.3), due(made), [])
    try:
        first_expiry = to_ms(due(made)) + 300
        renewed = threading.Event()
        for _ in range(200):
            with env.platform.metadata.read() as conn:
                held = repo.lease_holder(conn, made.id)
            if held is not None and held[1] > first_expiry:
                renewed.set()
                break
            renewed.wait(0.05)
        assert renewed.is_set() and held is not None and held[0] == "a"
    finally:
        pft.release_slow.set()
        worker.join(60)


def test_an_expired_lease_is_taken_over_and_the_dead_holders_firing_marked_abandoned(env: Env) -> None:
    made = env.automation.create_trigger("often", "interval", "10", HELLO)
    at = to_ms(due(made))
    with env.platform.metadata.transaction() as conn:  # a scheduler that claimed a firing, then died
        assert repo.acquire_lease(conn, made.id, "dead", at, at + 60_000) == (True, None)
        lost = {"trigger_id": made.id, "due_at": at - 10_000, "project": "default", "fired_at": at,
                "fired_by": "dead", "outcome": "running", "details": "{}"}  # fmt: skip
        repo.insert_firing(conn, lost)
    heir = env.scheduler("heir")
    assert heir.tick(due(made)) == []  # the lease still holds
    (fired,) = heir.tick(due(made) + timedelta(seconds=61))
    assert fired.fired_by == "heir" and fired.outcome is Outcome.SUCCEEDED
    outcomes = {f.fired_by: f.outcome for f in env.automation.list_firings("often")}
    assert outcomes == {"heir": Outcome.SUCCEEDED, "dead": Outcome.ABANDONED}
    (taken,) = env.trail("trigger.take_over")
    assert taken.details["previous_holder"] == "dead" and taken.details["abandoned"] == 1


def test_a_failing_action_is_a_failed_firing_and_the_others_still_fire(env: Env) -> None:
    failing = env.automation.create_trigger("bad", "interval", "60", FAILING, params={"message": "m"})
    env.automation.create_trigger("good", "interval", "60", HELLO)
    gone = env.automation.create_trigger("gone", "interval", "60", HELLO)
    corrupt = env.automation.create_trigger("corrupt", "interval", "60", HELLO)
    with env.platform.metadata.transaction() as conn:  # its module was deleted since; a bad stored spec
        repo.update_trigger(conn, gone.id, spec=repo.spec_json("60", PipelineAction("no_such_module:p")))
        repo.update_trigger(conn, corrupt.id, spec=repo.spec_json("soon", corrupt.action))
    fired = {f.trigger: f for f in env.scheduler("a").tick(due(failing) + timedelta(seconds=5))}
    assert set(fired) == {"bad", "good", "gone"}
    assert fired["good"].outcome is Outcome.SUCCEEDED
    bad = fired["bad"].details["result"]
    assert fired["bad"].outcome is Outcome.FAILED and bad["details"]["state"] == "FAILED"
    assert "explode" in bad["details"]["error"]
    assert fired["gone"].outcome is Outcome.FAILED
    assert "no_such_module" in fired["gone"].details["result"]["details"]["error"]
    assert [e.outcome for e in env.trail("automation.pipeline")].count("failed") == 2
    assert env.automation.list_firings("bad")[0].outcome is Outcome.FAILED


def test_run_forever_keeps_going_after_failures_until_stopped(sqlite_env: Env) -> None:
    env = sqlite_env
    made = env.automation.create_trigger("bad", "interval", "60", FAILING)
    moments = iter(due(made) + timedelta(minutes=k) for k in range(100))
    scheduler = Scheduler(
        env.platform, holder="loop", interval=0, clock=lambda: next(moments), monitoring=None
    )
    stop, passes = threading.Event(), list[list[Firing]]()

    def on_tick(fired: list[Firing]) -> None:
        passes.append(fired)
        if len(passes) == 3:
            stop.set()

    scheduler.run_forever(stop, on_tick)
    assert [len(p) for p in passes] == [1, 1, 1]
    assert (scheduler.status.ticks, scheduler.status.fired, scheduler.status.failed) == (3, 3, 3)
    assert all(f.outcome is Outcome.FAILED for f in env.automation.list_firings("bad"))
