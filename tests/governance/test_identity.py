"""IdentityService: principals, projects and memberships, tokens, authentication and bootstrap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from steward.config import load_settings
from steward.core.time import to_ms
from steward.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from steward.governance import audit, tokens
from steward.governance.context import Identity, acting_as
from steward.governance.identity import (
    CACHE_TTL_MS,
    DEFAULT_TOKEN_LIFETIME,
    IdentityService,
    parse_lifetime,
)
from steward.store.platform import Platform
from steward.store.tables import api_tokens

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand (Unix milliseconds)."""

    def __init__(self) -> None:
        self.ms = to_ms(START)

    def __call__(self) -> int:
        return self.ms

    def advance(self, **span: float) -> None:
        self.ms += int(timedelta(**span).total_seconds() * 1000)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    found = Platform.from_settings(load_settings(home=tmp_path / "home"))
    yield found
    found.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(platform: Platform, clock: Clock) -> IdentityService:
    return IdentityService(platform, clock=clock)


def entries(platform: Platform, action: str | None = None) -> list[audit.AuditEntry]:
    with platform.metadata.read() as conn:
        return audit.entries(conn, action=action)


def login(service: IdentityService, name: str, **token: object) -> Identity:
    """The identity of a fresh token of ``name``."""
    return service.authenticate(service.issue_token(name, **token).secret)  # type: ignore[arg-type]


# -- tokens and authentication -------------------------------------------------------------------------


def test_a_token_authenticates_as_its_principal_with_the_roles_of_its_memberships(
    service: IdentityService,
) -> None:
    service.create_user("ana", display_name="Ana", email="ana@example.com")
    service.create_project("fraud", "fraud models")
    service.add_member("fraud", "ana", "data-scientist")
    service.add_member("default", "ana", "viewer")
    issued = service.issue_token("ana", name="laptop")

    identity = service.authenticate(issued.secret)

    assert (identity.name, identity.kind, identity.token_id) == ("ana", "user", issued.id)
    assert identity.global_roles == frozenset()
    assert dict(identity.project_roles) == {"fraud": {"data-scientist"}, "default": {"viewer"}}
    assert identity.can("models:write", "fraud")
    assert not identity.can("models:write", "default")
    assert identity.can("models:read", "default")
    assert not identity.is_member("churn")
    assert issued.expires_at == START + DEFAULT_TOKEN_LIFETIME
    assert issued.secret not in repr(issued)


def test_the_database_keeps_only_the_hash_of_a_secret(service: IdentityService, platform: Platform) -> None:
    service.create_user("ana")
    issued = service.issue_token("ana")
    secret_hash = tokens.hash_token(issued.secret)
    with platform.metadata.read() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash).where(api_tokens.c.id == issued.id)).scalar()
    assert stored == secret_hash

    home = platform.settings.home
    files = [home / "steward.db", home / "steward.db-wal"]
    data = b"".join(f.read_bytes() for f in files if f.exists())
    assert secret_hash.encode() in data  # the search finds what is there
    assert issued.secret.encode() not in data
    assert issued.secret[4:].encode() not in data
    for entry in entries(platform):
        text = entry.canonical()
        assert issued.secret not in text and secret_hash not in text


def test_listed_tokens_show_no_secret_and_no_hash(service: IdentityService) -> None:
    service.create_user("ana")
    issued = service.issue_token("ana", name="ci", scopes=["models:read"])
    (info,) = service.list_tokens("ana")
    body = str(info.to_json(service.now()))
    assert info.id == issued.id and info.scopes == ("models:read",) and info.name == "ci"
    assert issued.secret not in body and tokens.hash_token(issued.secret) not in body
    assert info.to_json(service.now())["status"] == "active"


def test_unknown_and_malformed_tokens_are_told_apart(service: IdentityService) -> None:
    with pytest.raises(Unauthenticated, match="unknown token"):
        service.authenticate(tokens.generate())
    with pytest.raises(Unauthenticated, match="malformed token"):
        service.authenticate("Bearer nonsense")


def test_an_expired_token_is_refused_even_while_cached(service: IdentityService, clock: Clock) -> None:
    service.create_user("ana")
    short = service.issue_token("ana", expires_in=timedelta(seconds=3))
    longer = service.issue_token("ana", expires_in=timedelta(minutes=5))
    service.authenticate(short.secret)
    service.authenticate(longer.secret)

    clock.advance(seconds=4)  # inside the cache's 5 s: the cached entry knows the expiry
    with pytest.raises(Unauthenticated, match="expired at 2026-12-01T12:00:03"):
        service.authenticate(short.secret)
    clock.advance(minutes=5)
    with pytest.raises(Unauthenticated, match="expired"):
        service.authenticate(longer.secret)
    statuses = {t.id: t.status(service.now()) for t in service.list_tokens("ana")}
    assert statuses == {short.id: "expired", longer.id: "expired"}


def test_a_token_that_never_expires_must_be_asked_for(service: IdentityService, clock: Clock) -> None:
    service.create_user("ci-bot")
    forever = service.issue_token("ci-bot", expires_in=None)
    assert forever.expires_at is None
    clock.advance(days=5000)
    assert service.authenticate(forever.secret).name == "ci-bot"
    assert parse_lifetime("never") is None
    assert parse_lifetime("30d") == timedelta(days=30)
    assert parse_lifetime(" 12h ") == timedelta(hours=12)
    with pytest.raises(InvalidInput, match="lifetime"):
        parse_lifetime("forever")
    with pytest.raises(InvalidInput, match="never"):
        service.issue_token("ci-bot", expires_in=timedelta(days=4000))
    with pytest.raises(InvalidInput, match="lifetime"):
        service.issue_token("ci-bot", expires_in=timedelta(0))


def test_a_revoked_token_stops_at_once_here_and_within_the_ttl_elsewhere(
    service: IdentityService, platform: Platform, clock: Clock
) -> None:
    service.create_user("ana")
    issued = service.issue_token("ana")
    other_process = IdentityService(platform, clock=clock)
    service.authenticate(issued.secret)
    other_process.authenticate(issued.secret)

    revoked = service.revoke_token(issued.id)

    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="revoked"):
        service.authenticate(issued.secret)
    assert other_process.authenticate(issued.secret).name == "ana"  # its cache, up to 5 s old
    clock.advance(milliseconds=CACHE_TTL_MS)
    with pytest.raises(Unauthenticated, match="revoked"):
        other_process.authenticate(issued.secret)
    with pytest.raises(Conflict, match="revoked already"):
        service.revoke_token(issued.id)
    with pytest.raises(NotFound):
        service.revoke_token("0" * 32)
    assert [e.resource_id for e in entries(platform, "token.revoke")] == [issued.id]


def test_scopes_narrow_a_token_below_its_principals_roles(service: IdentityService) -> None:
    service.create_user("ana")
    service.add_member("default", "ana", "ml-engineer")

    narrow = login(service, "ana", scopes=["models:read", "tracking:read"])
    full = login(service, "ana")

    assert narrow.can("models:read", "default") and not narrow.can("models:write", "default")
    assert full.can("models:write", "default")
    # A scope the roles do not grant grants nothing.
    assert not login(service, "ana", scopes=["audit:read"]).can("audit:read", "default")
    with pytest.raises(InvalidInput, match="unknown permission"):
        service.issue_token("ana", scopes=["models:everything"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        service.issue_token("ana", scopes=[])


def test_a_disabled_principal_cannot_authenticate_until_enabled(service: IdentityService) -> None:
    service.create_user("root", global_role="admin")
    service.create_service_account("ci-bot")
    issued = service.issue_token("ci-bot")
    service.authenticate(issued.secret)

    assert service.disable_principal("ci-bot").disabled
    with pytest.raises(Unauthenticated, match="'ci-bot' is disabled"):
        service.authenticate(issued.secret)
    with pytest.raises(Conflict, match="disabled"):
        service.issue_token("ci-bot")
    with pytest.raises(Conflict, match="disabled already"):
        service.disable_principal("ci-bot")
    service.enable_principal("ci-bot")
    assert service.authenticate(issued.secret).kind == "service"


def test_last_use_is_written_at_most_once_a_minute(
    service: IdentityService, clock: Clock, platform: Platform
) -> None:
    service.create_user("ana")
    issued = service.issue_token("ana")

    def last_used() -> int | None:
        with platform.metadata.read() as conn:
            query = select(api_tokens.c.last_used_at).where(api_tokens.c.id == issued.id)
            return conn.execute(query).scalar()

    service.authenticate(issued.secret)
    first = last_used()
    assert first == clock.ms
    clock.advance(seconds=30)  # past the cache: the row is read again, but not written
    service.authenticate(issued.secret)
    assert last_used() == first
    clock.advance(seconds=31)
    service.authenticate(issued.secret)
    assert last_used() == clock.ms


# -- principals, projects and who may change them ---------------------------------------------------------


def test_principals_are_validated_and_unique(service: IdentityService) -> None:
    service.create_user("ana")
    with pytest.raises(AlreadyExists):
        service.create_service_account("ana")
    with pytest.raises(InvalidInput, match="principal name"):
        service.create_user("ana smith")
    with pytest.raises(InvalidInput, match="reserved"):
        service.create_user("anonymous")
    with pytest.raises(InvalidInput, match="e-mail"):
        service.create_user("bo", email="not an address")
    with pytest.raises(InvalidInput, match="global role"):
        service.create_user("bo", global_role="viewer")
    with pytest.raises(InvalidInput, match="global role"):
        service.set_global_role("ana", "data-scientist")
    assert [p.name for p in service.list_principals()] == ["ana"]


def test_memberships_give_roles_and_taking_them_away_removes_them(service: IdentityService) -> None:
    service.create_user("ana")
    service.create_project("fraud")
    member = service.add_member("fraud", "ana", "viewer")
    service.add_member("fraud", "ana", "approver")
    service.add_member("fraud", "ana", "approver")  # holding it already changes nothing
    assert member.roles == ("viewer",)
    assert [(m.name, m.roles) for m in service.members("fraud")] == [("ana", ("approver", "viewer"))]

    assert service.remove_member("fraud", "ana", "viewer") == ["viewer"]
    assert dict(login(service, "ana").project_roles) == {"fraud": {"approver"}}
    assert service.remove_member("fraud", "ana") == ["approver"]
    with pytest.raises(NotFound, match="does not hold any role"):
        service.remove_member("fraud", "ana")
    with pytest.raises(InvalidInput, match="unknown role"):
        service.add_member("fraud", "ana", "owner")
    with pytest.raises(NotFound, match="principal 'zed'"):
        service.add_member("fraud", "zed", "viewer")


def test_projects_are_listed_only_to_their_members(service: IdentityService) -> None:
    for name in ("fraud", "churn"):
        service.create_project(name)
    service.create_user("ana")
    service.create_user("olga", global_role="auditor")
    service.add_member("fraud", "ana", "viewer")
    ana, olga = login(service, "ana"), login(service, "olga")

    assert [p.name for p in service.list_projects()] == ["churn", "default", "fraud"]  # the local admin
    assert [p.name for p in service.list_projects(olga)] == ["churn", "default", "fraud"]
    assert [p.name for p in service.list_projects(ana)] == ["fraud"]
    with acting_as(ana, "fraud"):
        assert service.get_project("fraud").name == "fraud"
        with pytest.raises(NotFound, match="project 'churn' not found"):
            service.get_project("churn")
        with pytest.raises(NotFound):
            service.members("churn")
    # A token narrowed away from projects:read sees none.
    assert service.list_projects(login(service, "ana", scopes=["models:read"])) == []


def test_the_default_project_exists_without_being_made(service: IdentityService, platform: Platform) -> None:
    assert [p.name for p in service.list_projects()] == ["default"]
    assert service.get_project("default").created_by == platform.local_actor
    assert [e.details["implicit"] for e in entries(platform, "project.create")] == [True]
    with pytest.raises(AlreadyExists):
        service.create_project("default")


def test_a_project_admin_manages_only_its_own_project(service: IdentityService, platform: Platform) -> None:
    service.create_user("pat")
    service.create_user("ana")
    service.create_project("fraud")
    service.add_member("fraud", "pat", "admin")
    pat = login(service, "pat")

    with acting_as(pat, "fraud"):
        service.add_member("fraud", "ana", "viewer")
        with pytest.raises(Forbidden, match="projects:admin"):
            service.add_member("default", "ana", "viewer")
        with pytest.raises(Forbidden, match="identity:admin"):
            service.create_user("eve")
        with pytest.raises(Forbidden, match="identity:admin"):
            service.issue_token("ana")
        made = service.create_project("churn")  # its creator becomes its admin
    assert made.created_by == "pat"
    assert [(m.name, m.roles) for m in service.members("churn")] == [("pat", ("admin",))]
    denied = [(e.action, e.actor) for e in entries(platform) if e.outcome == "denied"]
    assert denied == [("project.add_member", "pat"), ("principal.create", "pat"), ("token.issue", "pat")]


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(service: IdentityService) -> None:
    service.create_user("root", global_role="admin")
    with pytest.raises(Conflict, match="last enabled admin"):
        service.disable_principal("root")
    with pytest.raises(Conflict, match="last enabled admin"):
        service.set_global_role("root", "auditor")
    service.create_user("second")
    service.set_global_role("second", "admin")
    assert service.set_global_role("root", None).global_role is None
    assert service.authenticate(service.issue_token("second").secret).global_roles == {"admin"}


def test_a_principal_issues_and_revokes_its_own_tokens_never_wider_ones(service: IdentityService) -> None:
    service.create_user("ana")
    service.create_user("bo")
    bo_token = service.issue_token("bo")
    narrow = login(service, "ana", scopes=["models:read"])

    with acting_as(narrow, "default"):
        inherited = service.issue_own_token("laptop")
        assert (inherited.principal, inherited.scopes) == ("ana", ("models:read",))
        with pytest.raises(Forbidden, match="limited to models:read"):
            service.issue_own_token(scopes=["models:read", "models:write"])
        assert {t.id for t in service.list_own_tokens()} >= {inherited.id, narrow.token_id}
        assert bo_token.id not in {t.id for t in service.list_own_tokens()}
        with pytest.raises(NotFound):
            service.revoke_own_token(bo_token.id)
        service.revoke_own_token(inherited.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        service.authenticate(inherited.secret)
    with pytest.raises(NotFound, match="not a Steward user"):
        service.issue_own_token()  # the local OS user holds no tokens


def test_state_changes_are_audited_with_the_acting_principal(
    service: IdentityService, platform: Platform
) -> None:
    service.create_user("pat", global_role="admin")
    pat = login(service, "pat")
    with acting_as(pat, "default", request_id="req-1"):
        service.create_project("fraud")
        service.create_user("ana")
        service.add_member("fraud", "ana", "viewer")
    found = [(e.actor, e.action, e.resource_id, e.request_id) for e in entries(platform)[-3:]]
    assert found == [
        ("pat", "project.create", "fraud", "req-1"),
        ("pat", "principal.create", "ana", "req-1"),
        ("pat", "project.add_member", "fraud", "req-1"),
    ]
    assert entries(platform, "project.add_member")[-1].details == {
        "principal": "ana", "role": "viewer", "project": "fraud",
    }  # fmt: skip


# -- bootstrap ---------------------------------------------------------------------------------------------


def test_bootstrap_makes_the_first_admin_once(service: IdentityService, platform: Platform) -> None:
    assert service.needs_bootstrap()
    first = service.start_bootstrap()
    secret = service.start_bootstrap()  # a restart replaces the earlier one
    assert first is not None and secret is not None and tokens.looks_like_token(secret)
    with pytest.raises(Unauthenticated, match="bootstrap token: redeem it"):
        service.authenticate(secret)
    with pytest.raises(Unauthenticated, match="unknown or already used"):
        service.redeem_bootstrap(first, "root")

    issued = service.redeem_bootstrap(secret, "root")

    root = service.authenticate(issued.secret)
    assert (root.name, root.global_roles) == ("root", frozenset({"admin"}))
    assert not service.needs_bootstrap()
    assert service.start_bootstrap() is None
    with pytest.raises(Unauthenticated, match="unknown or already used"):
        service.redeem_bootstrap(secret, "root2")
    with platform.metadata.read() as conn:
        purposes = [row.purpose for row in conn.execute(select(api_tokens.c.purpose))]
    assert purposes == ["api"]
    actions = [(e.action, e.outcome) for e in entries(platform) if e.action.startswith("bootstrap")]
    assert actions == [
        ("bootstrap.start", "ok"), ("bootstrap.start", "ok"), ("bootstrap.redeem", "denied"),
        ("bootstrap.redeem", "ok"), ("bootstrap.redeem", "denied"),
    ]  # fmt: skip


def test_bootstrap_is_not_needed_once_an_admin_exists(service: IdentityService) -> None:
    secret = service.start_bootstrap()
    assert secret is not None
    service.create_user("root", global_role="admin")  # made locally, e.g. with the CLI
    assert not service.needs_bootstrap()
    with pytest.raises(Unauthenticated, match="admin already"):
        service.redeem_bootstrap(secret, "other")


def test_a_bootstrap_refused_for_its_admin_name_keeps_the_token(service: IdentityService) -> None:
    service.create_user("root")
    secret = service.start_bootstrap()
    assert secret is not None
    with pytest.raises(Conflict, match="exists already"):
        service.redeem_bootstrap(secret, "root")
    with pytest.raises(InvalidInput):
        service.redeem_bootstrap(secret, "bad name")
    assert service.redeem_bootstrap(secret, "admin").principal == "admin"
