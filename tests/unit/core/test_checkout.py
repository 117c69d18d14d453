"""Plan choices, the checkout return URL and guest-checkout claims."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from billing_core.catalog import Catalog, PlanCode
from billing_core.checkout import (
    CheckoutSession,
    CheckoutStatus,
    PlanAction,
    claimable,
    plan_action,
    plan_choices,
    return_url_with_status,
)
from billing_core.permissions import Actor, Role

ORG = uuid.uuid4()


def person(role: Role = Role.PRIMARY_OWNER, *, email: str | None = "ada@example.com",
           verified: bool = True) -> Actor:
    return Actor(organization_id=ORG, subject="user-1", role=role, email=email, email_verified=verified)


def guest_session(*, email: str | None = "Ada@Example.com", status: CheckoutStatus = CheckoutStatus.COMPLETE,
                  organization_id: uuid.UUID | None = None) -> CheckoutSession:
    return CheckoutSession(id=uuid.uuid4(), organization_id=organization_id, plan=PlanCode.PRO, trial=False,
                           status=status, client_secret="cs_secret", return_url="https://app.example.com/r",
                           created_at=datetime(2026, 3, 14, tzinfo=UTC), guest_email=email)


def test_plan_action() -> None:
    assert plan_action(False) is PlanAction.START_TRIAL
    assert plan_action(True) is PlanAction.PROCEED_TO_PAYMENT


def test_plan_choices_for_primary_owner(catalog: Catalog) -> None:
    choices = plan_choices(catalog, actor=person(), has_billing_history=False, has_active_subscription=False)
    assert [c.code for c in choices] == [PlanCode.STARTER, PlanCode.PRO, PlanCode.SCALE, PlanCode.ENTERPRISE]
    assert all(c.enabled and c.disabled_reason is None for c in choices)
    assert {c.action_label for c in choices} == {"Start trial"}
    assert choices[1].price_cents == 9900 and choices[1].currency_iso == "USD"
    again = plan_choices(catalog, actor=person(), has_billing_history=True, has_active_subscription=False)
    assert {c.action_label for c in again} == {"Proceed to payment"}


@pytest.mark.parametrize("role", [Role.OWNER, Role.MEMBER])
def test_plan_choices_disabled_for_other_roles(catalog: Catalog, role: Role) -> None:
    choices = plan_choices(catalog, actor=person(role), has_billing_history=False, has_active_subscription=False)
    assert len(choices) == 4
    assert all(not c.enabled for c in choices)
    assert {c.disabled_reason for c in choices} == {"Only the primary owner can subscribe to a plan"}


def test_plan_choices_disabled_with_active_subscription(catalog: Catalog) -> None:
    choices = plan_choices(catalog, actor=person(), has_billing_history=True, has_active_subscription=True)
    assert all(not c.enabled for c in choices)
    assert {c.disabled_reason for c in choices} == {
        "The workspace already has an active subscription; change plans instead"}
    # The role reason wins over the subscription reason.
    member = plan_choices(catalog, actor=person(Role.MEMBER), has_billing_history=True, has_active_subscription=True)
    assert member[0].disabled_reason == "Only the primary owner can subscribe to a plan"


def test_return_url_keeps_other_query_params() -> None:
    url = return_url_with_status("https://app.example.com/billing?tab=plans&ref=x%20y#top", "cs_1",
                                 CheckoutStatus.COMPLETE)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "app.example.com", "/billing", "top")
    assert parse_qs(parts.query) == {"tab": ["plans"], "ref": ["x y"], "checkout_session_id": ["cs_1"],
                                     "checkout_status": ["complete"]}


def test_return_url_replaces_stale_status() -> None:
    url = return_url_with_status("https://a.example/r?checkout_status=open&checkout_session_id=old&a=1", "cs_2",
                                 CheckoutStatus.EXPIRED)
    assert parse_qs(urlsplit(url).query) == {"a": ["1"], "checkout_session_id": ["cs_2"],
                                             "checkout_status": ["expired"]}


def test_return_url_keeps_blank_params() -> None:
    url = return_url_with_status("https://a.example/r?filter=&page=2", "cs_3", CheckoutStatus.CANCELED)
    assert parse_qs(urlsplit(url).query, keep_blank_values=True) == {
        "filter": [""], "page": ["2"], "checkout_session_id": ["cs_3"], "checkout_status": ["canceled"]}


def test_claimable_by_verified_same_email_case_insensitive() -> None:
    assert claimable(guest_session(email="Ada@Example.com"), person(email="ada@EXAMPLE.com"))


@pytest.mark.parametrize(("session", "actor"), [
    (guest_session(), person(verified=False)),
    (guest_session(), person(email="eve@example.com")),
    (guest_session(), person(email=None)),
    (guest_session(email=None), person()),
    (guest_session(status=CheckoutStatus.OPEN), person()),
    (guest_session(status=CheckoutStatus.EXPIRED), person()),
    (guest_session(organization_id=uuid.uuid4()), person()),
])
def test_not_claimable(session: CheckoutSession, actor: Actor) -> None:
    assert not claimable(session, actor)
