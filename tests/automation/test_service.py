"""Triggers through ``AutomationService``: created with every check done up front, listed, deleted,
audited, kept to their project and refused to those without the permission."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.automation.models import TriggerKind
from steward.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from steward.governance.context import Identity, acting_as
from tests.automation.pipelines_for_tests import Env, env_for

HELLO = "tests.automation.pipelines_for_tests:hello"


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from env_for(request, tmp_path, monkeypatch)


def test_a_cron_trigger_is_created_listed_and_deleted_with_audit_entries(env: Env) -> None:
    service = env.automation
    made = service.create_trigger("hourly", "cron", "0  * * * *", HELLO, params={"message": "hi"})
    assert (made.kind, made.spec, made.enabled) == (TriggerKind.CRON, "0 * * * *", True)
    assert made.action is not None and made.action.params == {"message": "hi"}
    assert made.action.executor == "local" and made.created_by
    assert (
        made.next_due_at is not None and made.next_due_at.minute == 0 and made.next_due_at > made.created_at
    )
    assert [t.name for t in service.list_triggers()] == ["hourly"]
    assert service.get_trigger("hourly") == made
    assert made.to_json()["action"]["target"] == HELLO
    service.delete_trigger("hourly", reason="not needed")
    with pytest.raises(NotFound):
        service.get_trigger("hourly")
    created, deleted = env.trail("trigger.create"), env.trail("trigger.delete")
    assert created[0].resource_id == "hourly" and created[0].details["spec"] == "0 * * * *"
    assert deleted[0].details["reason"] == "not needed"


def test_an_interval_trigger_is_due_one_period_after_its_creation(env: Env) -> None:
    made = env.automation.create_trigger("often", "interval", "15m", HELLO)
    assert made.spec == "900"
    assert made.next_due_at is not None
    assert 899 <= (made.next_due_at - made.created_at).total_seconds() <= 901


def test_a_dataset_trigger_starts_past_the_versions_that_exist(env: Env) -> None:
    env.ingest("tx", 1)
    env.ingest("tx", 2)
    made = env.automation.create_trigger("on-tx", "dataset", "tx", HELLO)
    assert (made.kind, made.spec, made.cursor, made.next_due_at) == (TriggerKind.DATASET, "tx", "2", None)


def test_a_dataset_trigger_needs_the_dataset(env: Env) -> None:
    with pytest.raises(NotFound, match="dataset 'nope' not found") as caught:
        env.automation.create_trigger("on-nope", "dataset", "nope", HELLO)
    assert caught.value.details["field"] == "dataset"
    assert env.automation.list_triggers() == []


@pytest.mark.parametrize(
    ("kind", "spec", "pipeline", "extra", "field"),
    [
        ("cron", "61 * * * *", HELLO, {}, "spec"),
        ("interval", "soon", HELLO, {}, "spec"),
        ("weekly", "x", HELLO, {}, "kind"),
        ("monitor", "drift", HELLO, {}, "kind"),
        ("cron", "@hourly", "tests.automation.pipelines_for_tests", {}, "pipeline"),
        ("cron", "@hourly", "tests.automation.pipelines_for_tests:not_a_pipeline", {}, "pipeline"),
        ("cron", "@hourly", "tests.automation.pipelines_for_tests:missing", {}, "pipeline"),
        ("cron", "@hourly", "no_such_module_here:thing", {}, "pipeline"),
        ("cron", "@hourly", HELLO, {"params": {"colour": "red"}}, "params"),
        ("cron", "@hourly", HELLO, {"params": {"message": object()}}, "params"),
        ("cron", "@hourly", HELLO, {"executor": "gpu"}, "executor"),
    ],
)
def test_a_bad_trigger_is_refused_naming_the_field_and_nothing_is_stored(
    env: Env, kind: str, spec: str, pipeline: str, extra: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        env.automation.create_trigger("bad", kind, spec, pipeline, **extra)  # type: ignore[arg-type]
    assert caught.value.details["field"] == field, caught.value.message
    assert env.automation.list_triggers() == []


def test_a_name_is_unique_in_a_project_and_projects_are_kept_apart(env: Env) -> None:
    env.automation.create_trigger("nightly", "cron", "0 2 * * *", HELLO)
    with pytest.raises(AlreadyExists):
        env.automation.create_trigger("nightly", "cron", "0 3 * * *", HELLO)
    admin = Identity("alice", "user", frozenset({"admin"}))
    with acting_as(admin, "other"):
        assert env.automation.list_triggers() == []
        with pytest.raises(NotFound):
            env.automation.get_trigger("nightly")
        env.automation.create_trigger("nightly", "cron", "0 4 * * *", HELLO)
    assert env.automation.get_trigger("nightly").spec == "0 2 * * *"


def test_a_viewer_may_list_but_not_create_or_delete(env: Env) -> None:
    env.automation.create_trigger("nightly", "cron", "0 2 * * *", HELLO)
    viewer = Identity("vic", "user", project_roles={"default": frozenset({"viewer"})})
    with acting_as(viewer, "default"):
        with pytest.raises(Forbidden, match="automation:write"):
            env.automation.create_trigger("mine", "cron", "0 2 * * *", HELLO)
        with pytest.raises(Forbidden):
            env.automation.delete_trigger("nightly")
    assert [t.name for t in env.automation.list_triggers()] == ["nightly"]


def test_firings_are_listed_within_bounds(env: Env) -> None:
    env.automation.create_trigger("nightly", "cron", "0 2 * * *", HELLO)
    assert env.automation.list_firings("nightly") == []
    with pytest.raises(InvalidInput):
        env.automation.list_firings("nightly", limit=0)
    with pytest.raises(NotFound):
        env.automation.list_firings("other")
