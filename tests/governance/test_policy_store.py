"""Policies in the database: versioned by content, retired, audited and scoped to the acting project."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.config import load_settings
from steward.errors import Conflict, Forbidden, InvalidInput, NotFound
from steward.governance import audit
from steward.governance.context import Identity, acting_as
from steward.governance.policy_store import PolicyStore
from steward.store.platform import Platform

GATE = "name: gate\nrules:\n  - metrics.auc >= 0.85\n  - approvals >= 1\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    found = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    yield found
    found.close()


def actions(platform: Platform) -> list[tuple[str, str, str]]:
    with platform.metadata.read() as conn:
        return [(e.action, e.resource_id, e.outcome) for e in audit.entries(conn, resource_kind="policy")]


def test_applying_changed_content_makes_a_new_version_and_the_same_content_changes_nothing(
    platform: Platform,
) -> None:
    store = PolicyStore(platform)
    first = store.apply(GATE)
    assert (first.status, first.policy.version, first.policy.in_force) == ("created", 1, True)
    assert store.apply(GATE).status == "unchanged"
    # Comments and layout are not content.
    assert store.apply("# the production gate\n" + GATE.replace("  - ", "    - ")).status == "unchanged"
    second = store.apply(GATE.replace("0.85", "0.9"))
    assert (second.status, second.policy.version) == ("updated", 2)
    assert [p.version for p in store.history("gate")] == [1, 2]
    assert [p.in_force for p in store.history("gate")] == [False, True]
    assert store.get("gate").policy.rules[0].text == "metrics.auc >= 0.9"
    assert store.get("gate", 1).document == GATE
    assert [(p.name, p.version) for p in store.list()] == [("gate", 2)]
    assert actions(platform) == [("policy.apply", "gate", "ok")] * 2


def test_a_bad_document_stores_nothing(platform: Platform) -> None:
    store = PolicyStore(platform)
    with pytest.raises(InvalidInput, match="line 3"):
        store.apply("name: gate\nrules:\n  - metrics.auc >> 1\n")
    assert store.list(include_retired=True) == []
    assert actions(platform) == []


def test_retiring_takes_every_version_out_of_force(platform: Platform) -> None:
    store = PolicyStore(platform)
    store.apply(GATE)
    store.apply(GATE.replace("0.85", "0.9"))
    retired = store.retire("gate", reason="moving to a new gate")
    assert not retired.in_force and retired.retired_at is not None
    assert store.list() == [] and store.protecting("churn", "production") == []
    assert [p.name for p in store.list(include_retired=True)] == ["gate"]
    with pytest.raises(Conflict, match="retired already"):
        store.retire("gate")
    # The same content again is a new version in force, not the retired one back.
    again = store.apply(GATE)
    assert (again.status, again.policy.version, again.policy.in_force) == ("updated", 3, True)
    assert actions(platform)[-2:] == [("policy.retire", "gate", "ok"), ("policy.apply", "gate", "ok")]


def test_policies_protect_the_aliases_and_models_they_name(platform: Platform) -> None:
    store = PolicyStore(platform)
    store.apply(GATE)
    store.apply("name: fraud\naliases: [production, champion]\nmodels: ['fraud*']\nrules: [card_present]\n")
    assert [p.name for p in store.protecting("churn", "production")] == ["gate"]
    assert [p.name for p in store.protecting("fraud-eu", "production")] == ["fraud", "gate"]
    assert [p.name for p in store.protecting("fraud-eu", "champion")] == ["fraud"]
    assert store.protecting("churn", "staging") == []


def test_missing_policies_and_versions_are_not_found(platform: Platform) -> None:
    store = PolicyStore(platform)
    with pytest.raises(NotFound):
        store.get("gate")
    store.apply(GATE)
    with pytest.raises(NotFound, match="no version 7"):
        store.get("gate", 7)
    with pytest.raises(NotFound):
        store.retire("other")


def test_policies_belong_to_the_acting_project_and_need_policies_write(platform: Platform) -> None:
    store = PolicyStore(platform)
    store.apply(GATE)
    owner = Identity("ana", "user", frozenset(), {"fraud-team": frozenset({"admin"})})
    with acting_as(owner, "fraud-team"):
        assert store.list() == []
        assert store.apply(GATE).status == "created"  # its own version 1
    viewer = Identity("vic", "user", frozenset(), {"default": frozenset({"viewer"})})
    with acting_as(viewer, "default"), pytest.raises(Forbidden, match="policies:write"):
        store.apply(GATE.replace("0.85", "0.5"))
    assert store.get("gate").version == 1
