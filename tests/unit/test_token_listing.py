"""Listing an organization's API tokens (what the console names token budgets by): every member
reads them, oldest first, each with its status and never its secret's hash; another
organization's tokens are never listed, and a token without billing:read may not list them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import services
from billing_core.errors import InvalidInput, NotFound, PermissionDenied
from billing_core.organization import ApiToken, TokenStatus, TokenSummary
from billing_core.permissions import Actor, Permission, Role
from tests.unit.domain_builders import NOW


class Team:
    """An organization with a primary owner, an owner and a member, each with a token, and two
    service tokens: one that reads billing, one that only writes usage."""

    def __init__(self, billing: InMemoryBilling, name: str) -> None:
        ctx = billing.ctx
        self.org = services.organizations.create_organization(ctx, name=name, owner_user_id=f"{name}-ada",
                                                              owner_email=f"ada@{name}.test")
        self.tokens: dict[str, ApiToken] = {}
        self.actors: dict[str, Actor] = {}
        for user, role in ((f"{name}-bo", Role.OWNER), (f"{name}-cy", Role.MEMBER)):
            services.organizations.add_member(ctx, organization_id=self.org.id, user_id=user,
                                              email=f"{user}@{name}.test", role=role)
        members = {"primary-owner": f"{name}-ada", "owner": f"{name}-bo", "member": f"{name}-cy"}
        for key, user in members.items():
            self._issue(billing, key, user_id=user)
            billing.clock.advance(timedelta(minutes=1))
        self._issue(billing, "reader", scopes=frozenset({Permission.BILLING_READ}))
        self._issue(billing, "writer", scopes=frozenset({Permission.USAGE_WRITE}))

    def _issue(self, billing: InMemoryBilling, key: str, *, user_id: str | None = None,
               scopes: frozenset[Permission] = frozenset()) -> None:
        token, secret = services.organizations.issue_token(billing.ctx, organization_id=self.org.id, name=key,
                                                           user_id=user_id, scopes=scopes)
        self.tokens[key] = token
        self.actors[key] = services.organizations.authenticate(billing.ctx, secret)


@pytest.fixture
def billing() -> InMemoryBilling:
    return in_memory_billing(NOW)


def test_every_member_and_a_billing_reader_list_the_tokens_oldest_first(billing: InMemoryBilling) -> None:
    team = Team(billing, "acme")
    expected = sorted(team.tokens.values(), key=lambda t: (t.created_at, str(t.id)))
    for reader in ("primary-owner", "owner", "member", "reader"):
        page = services.organizations.list_tokens(billing.ctx, team.actors[reader], organization_id=team.org.id)
        assert [t.id for t in page.items] == [t.id for t in expected], reader
        assert page.next_cursor is None
    listed = {t.name: t for t in page.items}
    assert listed["member"].user_id == "acme-cy" and listed["member"].scopes == frozenset()
    assert listed["writer"].user_id is None and listed["writer"].scopes == frozenset({Permission.USAGE_WRITE})
    assert {t.status for t in page.items} == {TokenStatus.ACTIVE}


def test_a_summary_never_carries_the_secrets_hash(billing: InMemoryBilling) -> None:
    team = Team(billing, "acme")
    page = services.organizations.list_tokens(billing.ctx, team.actors["member"], organization_id=team.org.id)
    assert "token_hash" not in TokenSummary.__struct_fields__
    encoded = msgspec.json.encode(page).decode()
    for token in team.tokens.values():
        assert token.token_hash not in encoded


def test_another_organizations_tokens_are_never_listed_nor_readable(billing: InMemoryBilling) -> None:
    acme, globex = Team(billing, "acme"), Team(billing, "globex")
    page = services.organizations.list_tokens(billing.ctx, acme.actors["owner"], organization_id=acme.org.id)
    assert {t.organization_id for t in page.items} == {acme.org.id}
    assert not {t.id for t in page.items} & {t.id for t in globex.tokens.values()}
    with pytest.raises(NotFound):
        services.organizations.list_tokens(billing.ctx, acme.actors["primary-owner"], organization_id=globex.org.id)
    with pytest.raises(NotFound):
        services.organizations.list_tokens(billing.ctx, acme.actors["owner"], organization_id=uuid.uuid4())


def test_a_token_without_billing_read_may_not_list(billing: InMemoryBilling) -> None:
    team = Team(billing, "acme")
    with pytest.raises(PermissionDenied):
        services.organizations.list_tokens(billing.ctx, team.actors["writer"], organization_id=team.org.id)


def test_revoked_and_expired_tokens_are_listed_with_their_status(billing: InMemoryBilling) -> None:
    team = Team(billing, "acme")
    ctx = billing.ctx
    services.organizations.issue_token(ctx, organization_id=team.org.id, name="expiring",
                                       scopes=frozenset({Permission.USAGE_WRITE}),
                                       expires_at=billing.clock.now() + timedelta(hours=1))
    _, revoked_secret = services.organizations.issue_token(ctx, organization_id=team.org.id, name="revoked",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    services.organizations.revoke_token(ctx, secret=revoked_secret)

    def statuses() -> dict[str, TokenStatus]:
        page = services.organizations.list_tokens(ctx, team.actors["member"], organization_id=team.org.id)
        return {t.name: t.status for t in page.items}

    assert (statuses()["expiring"], statuses()["revoked"]) == (TokenStatus.ACTIVE, TokenStatus.REVOKED)
    billing.clock.advance(timedelta(hours=1))
    assert statuses()["expiring"] == TokenStatus.EXPIRED, "expired at expires_at, as usable_at says"


def test_pages_follow_the_cursor_and_the_limit_is_checked(billing: InMemoryBilling) -> None:
    team = Team(billing, "acme")
    ctx, actor, org = billing.ctx, team.actors["member"], team.org.id
    first = services.organizations.list_tokens(ctx, actor, organization_id=org, limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    rest = services.organizations.list_tokens(ctx, actor, organization_id=org, limit=200, cursor=first.next_cursor)
    assert len(rest.items) == 3 and rest.next_cursor is None
    for limit in (0, 201):
        with pytest.raises(InvalidInput):
            services.organizations.list_tokens(ctx, actor, organization_id=org, limit=limit)
