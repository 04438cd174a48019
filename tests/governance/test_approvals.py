"""Approval requests: separation of duties, N distinct approvers, one decision each, all audited."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from steward.config import load_settings
from steward.errors import Conflict, Forbidden, InvalidInput, NotFound
from steward.governance import audit
from steward.governance.approvals import ApprovalRequest, ApprovalService, ApprovalStatus
from steward.governance.context import Identity, acting_as
from steward.registry.models import VersionSpec
from steward.registry.service import RegistryService
from steward.store.platform import Platform

POLICIES = [{"name": "gate", "version": 1}]


def person(name: str, role: str = "approver", project: str = "default") -> Identity:
    return Identity(name, "user", frozenset(), {project: frozenset({role})})


@dataclass
class Env:
    platform: Platform
    model_id: str
    version_id: str

    def approvals(self, on_approved: Any = None) -> ApprovalService:
        return ApprovalService(self.platform, on_approved)

    def open(self, required: int = 2, service: ApprovalService | None = None) -> ApprovalRequest:
        """A request to move production to churn 1.0.0, opened by ``eng``."""
        with acting_as(person("eng", "ml-engineer"), "default"):
            request, _ = (service or self.approvals()).open(
                self.model_id, self.version_id, "production", required, POLICIES, "better"
            )
        return request


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """Model ``churn`` 1.0.0 registered by ``dee``."""
    db = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    platform = Platform.from_settings(load_settings(home=tmp_path / "home", db=db))
    registry = RegistryService(platform)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    with acting_as(person("dee", "data-scientist"), "default"):
        upload = registry.upload_file("churn", weights, "model.bin")
        version = registry.create_version("churn", VersionSpec(flavor="sklearn", files=[upload]))
    yield Env(platform, registry.get_model("churn").id, version.id)
    platform.close()


def decide(
    service: ApprovalService, who: str, request_id: str, comment: str = "ok", reject: bool = False
) -> Any:
    with acting_as(person(who), "default"):
        return service.reject(request_id, comment) if reject else service.approve(request_id, comment)


def trail(platform: Platform) -> list[tuple[str, str, str]]:
    with platform.metadata.read() as conn:
        entries = audit.entries(conn, resource_kind="approval_request")
    return [(e.actor, e.action, e.outcome) for e in entries]


def test_a_request_is_opened_once_per_version_and_alias(env: Env) -> None:
    request = env.open()
    assert (request.model, request.version, request.alias, request.status) == (
        "churn", "1.0.0", "production", ApprovalStatus.PENDING,
    )  # fmt: skip
    assert (request.author, request.requested_by, request.required, request.approvals) == ("dee", "eng", 2, 0)
    assert request.policies == tuple(POLICIES)
    again = env.open(required=3)
    assert again.id == request.id and again.required == 3
    assert [r.id for r in env.approvals().list(ApprovalStatus.PENDING)] == [request.id]
    assert env.approvals().find_open(env.model_id, env.version_id, "production") == again
    assert env.approvals().find_open(env.model_id, env.version_id, "staging") is None
    assert [a for _, a, _ in trail(env.platform)] == ["approval.open", "approval.update"]


def test_neither_the_author_nor_the_requester_may_approve(env: Env) -> None:
    service = env.approvals()
    request = env.open()
    for who, what in (("dee", "registered churn 1.0.0"), ("eng", "requested the promotion")):
        with pytest.raises(Forbidden, match="separation of duties") as info:
            decide(service, who, request.id)
        assert what in info.value.message and info.value.details["rule"] == "separation_of_duties"
    assert service.get(request.id).approvals == 0
    assert trail(env.platform)[-2:] == [
        ("dee", "approval.approve", "denied"),
        ("eng", "approval.approve", "denied"),
    ]


def test_an_approver_needs_approvals_decide(env: Env) -> None:
    request = env.open()
    with acting_as(person("vic", "viewer"), "default"), pytest.raises(Forbidden, match="approvals:decide"):
        env.approvals().approve(request.id, "lgtm")
    assert trail(env.platform)[-1] == ("vic", "approval.approve", "denied")
    assert env.approvals().get(request.id).decisions == ()


def test_each_approver_decides_once_and_n_distinct_approvals_complete_the_request(env: Env) -> None:
    completed: list[ApprovalRequest] = []

    def on_approved(request: ApprovalRequest) -> Mapping[str, Any]:
        completed.append(request)
        return {"promoted": True}

    service = env.approvals(on_approved)
    request = env.open(required=2, service=service)
    first = decide(service, "ana", request.id, "metrics look right")
    assert (first.approvals, first.outcome, completed) == (1, None, [])
    with pytest.raises(Conflict, match="already"):
        decide(service, "ana", request.id)
    second = decide(service, "bo", request.id)
    assert second.outcome == {"promoted": True}
    assert [r.approvers for r in completed] == [["ana", "bo"]]
    assert [(d.approver, d.decision, d.comment) for d in second.decisions] == [
        ("ana", "approve", "metrics look right"), ("bo", "approve", "ok"),
    ]  # fmt: skip
    assert [a for _, a, o in trail(env.platform) if o == "ok"] == ["approval.open"] + ["approval.approve"] * 2


def test_a_completion_that_fails_leaves_the_approval_recorded_and_says_why(env: Env) -> None:
    def on_approved(request: ApprovalRequest) -> Mapping[str, Any]:
        raise Conflict("the version was archived meanwhile")

    service = env.approvals(on_approved)
    request = env.open(required=1, service=service)
    done = decide(service, "ana", request.id)
    assert done.outcome is not None and done.outcome["promoted"] is False
    assert done.outcome["message"] == "the version was archived meanwhile"
    assert done.status is ApprovalStatus.PENDING and done.approvals == 1


def test_one_rejection_closes_the_request_and_needs_a_reason(env: Env) -> None:
    service = env.approvals()
    request = env.open()
    with pytest.raises(InvalidInput, match="needs a comment"):
        decide(service, "ana", request.id, "  ", reject=True)
    rejected = decide(service, "ana", request.id, "auc dropped on the holdout", reject=True)
    assert rejected.status is ApprovalStatus.REJECTED and rejected.resolved_at is not None
    with pytest.raises(Conflict, match="rejected, not pending"):
        decide(service, "bo", request.id)
    assert service.list("pending") == [] and [r.id for r in service.list("rejected")] == [request.id]
    # A new promotion opens a new request.
    assert env.open().id != request.id


def test_requests_are_scoped_to_the_project_and_statuses_are_checked(env: Env) -> None:
    request = env.open()
    with acting_as(person("ana", "approver", "other"), "other"):
        assert env.approvals().list() == []
        with pytest.raises(NotFound):
            env.approvals().get(request.id)
        with pytest.raises(NotFound):
            env.approvals().approve(request.id)
    with pytest.raises(InvalidInput, match="unknown status 'open'"):
        env.approvals().list("open")
    with pytest.raises(NotFound):
        env.approvals().get("no-such-request")
