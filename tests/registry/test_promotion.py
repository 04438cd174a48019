"""Policy-gated promotion: the facts a gate reads, protected aliases, approvals and re-evaluation."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from steward.config import load_settings
from steward.data.privacy import PrivacyPolicy, Rule
from steward.data.service import DataService
from steward.errors import Conflict, Forbidden, InvalidInput, PolicyViolation
from steward.governance import audit
from steward.governance.approvals import ApprovalStatus
from steward.governance.context import Identity, acting_as
from steward.governance.policy import Facts
from steward.governance.policy_store import PolicyStore
from steward.registry import gates, promotion
from steward.registry.flavors import FLAVOR_NAMES, get_flavor
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.store.platform import Platform
from steward.tracking.models import MetricSeries
from steward.tracking.service import TrackingService

GATE = """\
name: gate
rules:
  - metrics.auc >= 0.85
  - metrics.auc >= current.metrics.auc - 0.01
  - approvals >= 2
"""


def approver(name: str) -> Identity:
    return Identity(name, "user", frozenset(), {"default": frozenset({"approver"})})


@dataclass
class Env:
    """An embedded registry (with tracking and data) on one SQLite home."""

    folder: Path
    platform: Platform
    registry: RegistryService
    tracking: TrackingService
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> DataService:
        return DataService(self.platform)

    @property
    def policies(self) -> PolicyStore:
        return PolicyStore(self.platform)

    def register(
        self,
        metrics: dict[str, float] | None = None,
        *,
        model: str = "churn",
        flavor: str = "sklearn",
        path: str = "model.bin",
        datasets: dict[str, str] | None = None,
        run_metrics: dict[str, float] | None = None,
    ) -> str:
        """Register a version over one small file; return its number."""
        local = self.folder / f"file-{next(self.counter)}"
        local.write_bytes(b"weights")
        upload = self.registry.upload_file(model, local, path)
        run_id = None
        if run_metrics is not None:
            run = self.tracking.create_run("exp", "train")
            now = int(time.time() * 1000)
            points = [MetricSeries(k, np.asarray([0]), np.asarray([v]), np.asarray([now]))
                      for k, v in run_metrics.items()]  # fmt: skip
            self.tracking.log_metrics(run.id, points)
            run_id = run.id
        spec = VersionSpec(flavor=flavor, files=[upload], metrics=metrics or {}, datasets=datasets or {},
                           run_id=run_id)  # fmt: skip
        return self.registry.create_version(model, spec).version

    def aliases(self, model: str = "churn") -> dict[str, str]:
        return dict(self.registry.get_model(model).aliases)

    def trail(self, kind: str = "model_alias") -> list[tuple[str, str, str]]:
        with self.platform.metadata.read() as conn:
            return [(e.actor, e.action, e.outcome) for e in audit.entries(conn, resource_kind=kind)]


def open_env(folder: Path, **settings: Any) -> Env:
    platform = Platform.from_settings(
        load_settings(home=folder / "home", privacy_secret="s" * 32, **settings)
    )
    tracking = TrackingService(platform)
    return Env(folder, platform, RegistryService(platform, tracking), tracking)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    found = open_env(tmp_path)
    yield found
    found.platform.close()


def gathered(env: Env, version: str, alias: str = "production") -> Facts:
    return gates.gather(env.registry, env.registry.get_version("churn", version), alias)


def facts(env: Env, version: str, alias: str = "production") -> dict[str, Any]:
    return dict(gathered(env, version, alias).values)


# -- facts ----------------------------------------------------------------------------------------------


def test_code_bearing_flavors_are_those_whose_flavor_says_so() -> None:
    for name in FLAVOR_NAMES:
        try:
            flavor = get_flavor(name)
        except InvalidInput:  # an optional extra (onnx, torch) is not installed here
            continue
        assert (name in gates.CODE_BEARING_FLAVORS) == flavor.code_bearing, name


def test_metrics_come_from_the_run_and_the_version_with_fairness_and_the_current_holder(env: Env) -> None:
    first = env.register({"auc": 0.9})
    env.registry.set_alias("churn", "production", first)
    second = env.register({"auc": 0.93}, run_metrics={"auc": 0.5, "loss": 0.2, "fairness.dpd": 0.03})
    found = facts(env, second)
    assert found["metrics.auc"] == 0.93  # what the version recorded wins over the run's value
    assert (found["metrics.loss"], found["fairness.dpd"], found["metrics.fairness.dpd"]) == (0.2, 0.03, 0.03)
    assert (found["current.version"], found["current.metrics.auc"]) == ("1.0.0", 0.9)
    assert (found["model"], found["version"], found["flavor"], found["approvals"]) == (
        "churn",
        "1.1.0",
        "sklearn",
        0,
    )
    assert not any(path.startswith("current.") for path in facts(env, second, "staging"))


def test_card_and_flavor_checks(env: Env) -> None:
    plain = env.register()
    assert facts(env, plain)["card_present"] is False
    env.registry.save_card("churn", plain, {"intended_use": "churn scoring"})
    assert facts(env, plain)["card_present"] is True and facts(env, plain)["safe_flavor"] is True
    assert facts(env, env.register(flavor="pyfunc"))["safe_flavor"] is False
    found = gathered(env, env.register(path="model.pkl"))
    assert found.values["safe_flavor"] is False and "model:model.pkl" in found.notes["safe_flavor"]


def test_without_steward_datasets_data_checks_record_nothing_and_residency_holds(env: Env) -> None:
    found = gathered(env, env.register())
    assert "data_validated" not in found.values and "pii_protected" not in found.values
    assert "no Steward dataset version" in found.notes["data_validated"]
    assert found.values["residency_ok"] is True


PEOPLE = pa.table({"customer_id": ["C-1", "C-2"], "email": ["ana@example.org", "bo@example.com"],
                   "spend": [10.0, 20.0]})  # fmt: skip


def test_pii_is_protected_only_in_a_version_made_by_a_privacy_policy(env: Env) -> None:
    raw = env.data.ingest(PEOPLE, "people").version
    assert raw is not None
    exposed = gathered(env, env.register(datasets={"train": raw.id}))
    assert exposed.values["pii_protected"] is False and "people@1: email" in exposed.notes["pii_protected"]
    safe = env.data.protect("people", raw.number, PrivacyPolicy(by_tag={"email": Rule("drop")}))
    protected = facts(env, env.register(datasets={"train": safe.id}))
    assert protected["pii_protected"] is True and protected["data_validated"] is True


def test_data_released_from_quarantine_is_not_validated(env: Env) -> None:
    checks = {"columns": {"spend": {"type": "float64", "min": 0}}}
    env.data.create_dataset("orders", expectations=checks)
    good = env.data.ingest(pa.table({"spend": [1.0, 2.0]}), "orders").version
    assert good is not None
    held = env.data.ingest(pa.table({"spend": [-1.0]}), "orders").quarantined[0]
    released = env.data.release(held.id, reason="known refund")
    assert facts(env, env.register(datasets={"train": good.id}))["data_validated"] is True
    found = gathered(env, env.register(datasets={"train": good.id, "extra": released.id}))
    assert found.values["data_validated"] is False
    assert "orders@2" in found.notes["data_validated"]


def test_residency_is_judged_against_where_the_store_is_now(tmp_path: Path) -> None:
    eu = open_env(tmp_path, region="eu")
    dataset = eu.data.ingest(PEOPLE, "people", region="eu").version
    assert dataset is not None
    version = eu.register(datasets={"train": dataset.id})
    assert facts(eu, version)["residency_ok"] is True
    eu.platform.close()
    us = open_env(tmp_path, region="us")
    found = gathered(us, version)
    assert found.values["residency_ok"] is False and "'us'" in found.notes["residency_ok"]
    us.platform.close()


# -- protected aliases ----------------------------------------------------------------------------------


def test_unprotected_aliases_move_as_before_and_every_move_is_audited(env: Env) -> None:
    version = env.register({"auc": 0.9})
    result = promotion.promote(env.registry, "churn", version, "production", "first")
    assert (result.status, result.verdict, env.aliases()) == ("promoted", None, {"production": "1.0.0"})
    env.registry.set_alias("churn", "staging", version)
    env.registry.delete_alias("churn", "staging", "done")
    assert [a for _, a, _ in env.trail()] == ["model.alias_set", "model.alias_set", "model.alias_deleted"]


def test_a_protected_alias_is_never_moved_or_removed_directly(env: Env) -> None:
    first = env.register({"auc": 0.9})
    env.registry.set_alias("churn", "production", first)
    env.policies.apply(GATE)
    second = env.register({"auc": 0.95})
    with pytest.raises(PolicyViolation, match="protected by policy 'gate'") as info:
        env.registry.set_alias("churn", "production", second)
    assert "steward models promote churn" in info.value.message
    with pytest.raises(PolicyViolation):
        env.registry.delete_alias("churn", "production")
    assert env.aliases() == {"production": "1.0.0"}
    assert [(a, o) for _, a, o in env.trail()[-2:]] == [
        ("model.alias_set", "denied"),
        ("model.alias_deleted", "denied"),
    ]
    env.registry.set_alias("churn", "staging", second)  # not protected
    env.policies.apply("name: fraud\nmodels: ['fraud*']\nrules: [card_present]\n")
    env.policies.retire("gate")
    env.registry.set_alias("churn", "production", second)  # the fraud gate does not cover churn
    assert env.aliases() == {"production": "1.1.0", "staging": "1.1.0"}


def test_a_failing_rule_refuses_the_promotion_with_the_verdict(env: Env) -> None:
    env.registry.set_alias("churn", "production", env.register({"auc": 0.9}))
    env.policies.apply(GATE)
    worse = env.register({"auc": 0.86})
    with pytest.raises(PolicyViolation) as info:
        promotion.promote(env.registry, "churn", worse, "production")
    verdict = info.value.details["verdict"]
    assert verdict["passed"] is False and verdict["pending_only"] is False
    regression = next(r for r in verdict["results"] if "current" in r["rule"])
    assert (regression["passed"], regression["actual"], regression["required"]) == (
        False, 0.86, ">= 0.89 (current.metrics.auc - 0.01)",
    )  # fmt: skip
    assert env.aliases() == {"production": "1.0.0"}
    assert env.trail()[-1][1:] == ("model.promote", "denied")
    assert promotion.approval_service(env.registry).list() == []


def test_approvals_open_a_request_and_the_last_one_promotes(env: Env) -> None:
    env.policies.apply(GATE)
    version = env.register({"auc": 0.9})
    check = gates.check(env.registry, "churn", version)
    assert check.pending_only and check.results[1].message == "no current version"
    pending = promotion.promote(env.registry, "churn", version, "production", "first release")
    assert pending.status == "pending" and pending.request is not None
    assert pending.request.required == 2 and env.aliases() == {}
    again = promotion.promote(env.registry, "churn", version, "production", "first release")
    assert again.request is not None and again.request.id == pending.request.id
    service = promotion.approval_service(env.registry)
    with acting_as(approver("ana"), "default"):
        first = service.approve(pending.request.id, "good")
    assert first.outcome is None and env.aliases() == {}
    with acting_as(approver("bo"), "default"):
        done = service.approve(pending.request.id, "good too")
    assert done.outcome is not None and done.outcome["promoted"] is True
    assert done.status is ApprovalStatus.APPROVED and env.aliases() == {"production": "1.0.0"}
    event = env.registry.alias_history("churn", "production")[-1]
    assert event.actor == "bo" and pending.request.id in event.reason
    with env.platform.metadata.read() as conn:
        moved = audit.entries(conn, action="model.alias_set")[-1]
    assert moved.details["approval_request"] == pending.request.id and moved.details["approvers"] == [
        "ana",
        "bo",
    ]
    assert promotion.promote(env.registry, "churn", version, "production").status == "unchanged"


def test_the_policies_are_judged_again_when_the_last_approval_arrives(env: Env) -> None:
    env.policies.apply("name: gate\nrules: [approvals >= 1]\n")
    version = env.register({"auc": 0.9})
    request = promotion.promote(env.registry, "churn", version).request
    assert request is not None
    env.policies.apply("name: gate\nrules: [card_present, approvals >= 1]\n")
    service = promotion.approval_service(env.registry)
    with acting_as(approver("ana"), "default"):
        blocked = service.approve(request.id)
    assert blocked.outcome is not None and blocked.outcome["promoted"] is False
    assert "card_present" in blocked.outcome["message"]
    assert blocked.status is ApprovalStatus.PENDING and env.aliases() == {}
    env.registry.save_card("churn", version, {"intended_use": "scoring"})
    done = promotion.promote(env.registry, "churn", version)  # the approval stands: it completes now
    assert done.status == "promoted" and env.aliases() == {"production": "1.0.0"}
    assert service.get(request.id).status is ApprovalStatus.APPROVED


def test_a_policy_asking_for_more_approvals_keeps_the_request_waiting(env: Env) -> None:
    env.policies.apply("name: gate\nrules: [approvals >= 1]\n")
    version = env.register()
    request = promotion.promote(env.registry, "churn", version).request
    assert request is not None
    env.policies.apply("name: gate\nrules: [approvals >= 2]\n")
    service = promotion.approval_service(env.registry)
    with acting_as(approver("ana"), "default"):
        waiting = service.approve(request.id)
    assert waiting.outcome is not None and waiting.outcome["pending"] is True
    assert waiting.required == 2 and env.aliases() == {}
    with acting_as(approver("bo"), "default"):
        done = service.approve(request.id)
    assert done.outcome is not None and done.outcome["promoted"] is True
    assert env.aliases() == {"production": "1.0.0"}


def test_an_archived_version_cannot_be_promoted_and_promoting_needs_the_permission(env: Env) -> None:
    env.policies.apply(GATE)
    version = env.register({"auc": 0.9})
    env.registry.archive_version("churn", version)
    with pytest.raises(Conflict, match="archived"):
        promotion.promote(env.registry, "churn", version)
    with acting_as(approver("ana"), "default"), pytest.raises(Forbidden, match="models:promote"):
        promotion.promote(env.registry, "churn", version)


def test_an_alias_moved_while_the_gate_was_judged_is_not_overwritten(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.policies.apply("name: gate\nrules: [metrics.auc >= current.metrics.auc]\n")
    better = env.register({"auc": 0.95})
    rival = env.register({"auc": 0.99})
    judged = gates.verdict_for

    def racing(*args: Any, **kwargs: Any) -> Any:
        verdict = judged(*args, **kwargs)
        env.policies.retire("gate")  # someone moves the alias meanwhile
        env.registry.set_alias("churn", "production", rival)
        return verdict

    monkeypatch.setattr(promotion, "verdict_for", racing)
    with pytest.raises(Conflict, match=r"moved to 1\.1\.0"):
        promotion.promote(env.registry, "churn", better)
    assert env.aliases() == {"production": "1.1.0"}
