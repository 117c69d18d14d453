"""Checkout: Start trial vs Proceed to payment, plan choices per role, the return URL, guest claims."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from billing_core.catalog import Catalog, PlanCode
from billing_core.checkout import (
    ACTION_LABELS,
    CheckoutSession,
    CheckoutStatus,
    PlanAction,
    check_return_url,
    claimable,
    plan_action,
    plan_choices,
    return_url_with_status,
)
from billing_core.errors import InvalidInput
from billing_core.permissions import Actor, Permission, Role
from billing_core.plan_subscription import SubscriptionStatus
from tests.unit.domain_builders import NOW, ORG, ROLES, person, token


def test_start_trial_without_billing_history_else_proceed_to_payment() -> None:
    assert plan_action(has_billing_history=False) is PlanAction.START_TRIAL
    assert plan_action(has_billing_history=True) is PlanAction.PROCEED_TO_PAYMENT
    assert ACTION_LABELS == {PlanAction.START_TRIAL: "Start trial", PlanAction.PROCEED_TO_PAYMENT: "Proceed to payment"}


@pytest.mark.parametrize(("history", "action", "label"), [(False, PlanAction.START_TRIAL, "Start trial"),
                                                          (True, PlanAction.PROCEED_TO_PAYMENT, "Proceed to payment")])
def test_primary_owner_sees_every_tier_enabled(catalog: Catalog, history: bool, action: PlanAction,
                                               label: str) -> None:
    choices = plan_choices(catalog, actor=person(Role.PRIMARY_OWNER), has_billing_history=history,
                           has_active_subscription=False)
    assert [c.name for c in choices] == ["Starter", "Pro", "Scale", "Enterprise"]
    assert all(c.enabled and c.disabled_reason is None for c in choices)
    assert {(c.action, c.action_label) for c in choices} == {(action, label)}
    pro = choices[1]
    assert (pro.code, pro.price_cents, pro.currency_iso, pro.interval) == (PlanCode.PRO, 9900, "USD", "month")
    assert pro.features == catalog.plan("pro").features and pro.description == catalog.plan("pro").description


@pytest.mark.parametrize("role", [Role.OWNER, Role.MEMBER])
@pytest.mark.parametrize("history", [False, True])
def test_owner_and_member_see_the_selector_with_buttons_disabled(catalog: Catalog, role: Role,
                                                                 history: bool) -> None:
    choices = plan_choices(catalog, actor=person(role), has_billing_history=history, has_active_subscription=False)
    assert len(choices) == 4  # visible to all roles
    assert not any(c.enabled for c in choices)
    assert {c.disabled_reason for c in choices} == {"Only the primary owner can subscribe to a plan"}
    assert {c.action for c in choices} == {plan_action(history)}


@pytest.mark.parametrize("role", ROLES)
def test_an_active_subscription_disables_checkout_for_everyone(catalog: Catalog, role: Role) -> None:
    choices = plan_choices(catalog, actor=person(role), has_billing_history=True, has_active_subscription=True)
    assert not any(c.enabled for c in choices)
    expected = ("Only the primary owner can subscribe to a plan" if role is not Role.PRIMARY_OWNER
                else "The workspace already has an active subscription; change plans instead")
    assert {c.disabled_reason for c in choices} == {expected}


@pytest.mark.parametrize(("actor", "enabled"), [(token(Permission.PLAN_SUBSCRIBE), True),
                                                (token(Permission.BILLING_READ, Permission.BILLING_UPDATE), False)])
def test_tokens_follow_their_scopes(catalog: Catalog, actor: Actor, enabled: bool) -> None:
    choices = plan_choices(catalog, actor=actor, has_billing_history=False, has_active_subscription=False)
    assert all(c.enabled is enabled for c in choices)


# --------------------------------------------------------------------------- return URL


@pytest.mark.parametrize("status", list(CheckoutStatus))
def test_return_url_carries_the_checkout_id_and_status(status: CheckoutStatus) -> None:
    session_id = str(uuid.uuid4())
    url = return_url_with_status("https://app.acme.test/pricing?tab=team#plans", session_id, status)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "app.acme.test", "/pricing", "plans")
    assert parse_qsl(parts.query) == [("tab", "team"), ("checkout_session_id", session_id),
                                      ("checkout_status", status.value)]


def test_return_url_replaces_a_stale_status_and_keeps_the_rest() -> None:
    stale = "https://app.acme.test/pricing?checkout_status=open&ref=&checkout_session_id=old&a=1&a=2&b=x%20y"
    url = return_url_with_status(stale, "new-id", CheckoutStatus.CANCELED)
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert query == {"ref": [""], "a": ["1", "2"], "b": ["x y"], "checkout_session_id": ["new-id"],
                     "checkout_status": ["canceled"]}


def test_return_url_escapes_what_it_adds() -> None:
    url = return_url_with_status("https://app.acme.test/p", "a&b=c d", CheckoutStatus.COMPLETE)
    assert parse_qsl(urlsplit(url).query) == [("checkout_session_id", "a&b=c d"), ("checkout_status", "complete")]


def test_checkout_statuses() -> None:
    assert {s.value for s in CheckoutStatus} == {"open", "complete", "expired", "canceled"}


# --------------------------------------------------------------------------- guest claims


def guest_session(*, email: str | None = "Ada@Example.com", status: CheckoutStatus = CheckoutStatus.COMPLETE,
                  organization_id: uuid.UUID | None = None) -> CheckoutSession:
    return CheckoutSession(id=uuid.uuid4(), organization_id=organization_id, plan=PlanCode.PRO, trial=False,
                           status=status, client_secret="cs_secret", return_url="https://app.acme.test/pricing",
                           created_at=NOW, guest_email=email)


def login(email: str | None, *, verified: bool = True) -> Actor:
    return person(Role.PRIMARY_OWNER, email=email, email_verified=verified)


@pytest.mark.parametrize("email", ["Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM", "aDa@eXample.Com"])
def test_a_verified_login_with_the_same_email_claims_case_insensitively(email: str) -> None:
    assert claimable(guest_session(), login(email))


def test_an_unverified_login_cannot_claim() -> None:
    assert not claimable(guest_session(), login("ada@example.com", verified=False))


@pytest.mark.parametrize("email", ["bob@example.com", "ada@example.co", "ada+x@example.com", None])
def test_another_email_cannot_claim(email: str | None) -> None:
    assert not claimable(guest_session(), login(email))


@pytest.mark.parametrize("status", [CheckoutStatus.OPEN, CheckoutStatus.EXPIRED, CheckoutStatus.CANCELED])
def test_only_completed_guest_checkouts_are_claimed(status: CheckoutStatus) -> None:
    assert not claimable(guest_session(status=status), login("ada@example.com"))


def test_a_claimed_or_organization_checkout_is_not_claimed_again() -> None:
    assert not claimable(guest_session(organization_id=ORG), login("ada@example.com"))
    assert not claimable(guest_session(email=None), login("ada@example.com"))


@pytest.mark.parametrize("url", [
    "https://app.example.com/billing/plans", "http://localhost:8000/b?x=1#y", "/billing/credits", "/",
    "HTTPS://APP.EXAMPLE.COM/B", "https://[::1]:8443/b", "https://bücher.example/konto", "/billing?q=a%20b",
])
def test_a_return_url_is_an_http_url_or_an_absolute_path(url: str) -> None:
    assert check_return_url(url) == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", "java\tscript:alert(1)", "java\nscript:alert(1)",
    " https://app.example.com/", "https://app.example.com/\x7f", "https://app.example.com/\u0085",
    "data:text/html;base64,PHNjcmlwdD4=", "vbscript:x", "file:///etc/passwd", "ftp://example.com/",
    "//evil.example.com", "///evil.example.com", "/\\evil.example.com", "\\/evil.example.com",
    "https:\\\\evil.example.com", "https:/evil.example.com", "https:evil.example.com", "https://", "http://:80/",
    "https://[::1/b", "billing/credits", "?x=1", "#top", "", "/" + "a" * 2000, "/billing\u200b", "/\u202eevil",
    "https://app.example.com/a b",
])
def test_every_other_return_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_return_url(url)
    assert (refused.value.field, refused.value.code) == ("return_url", "invalid_url")


@pytest.mark.parametrize("value", [None, 1, b"/billing", ["/billing"]])
def test_a_return_url_is_text(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_return_url(value)


# Issue 19, item 7: "already has an active subscription" is not shown for unpaid, paused or
# incomplete workspaces (the seed's statuses: "Invoice unpaid", "Subscription is paused",
# "Awaiting payment confirmation").
@pytest.mark.parametrize(("status", "expected"), [
    (SubscriptionStatus.UNPAID, "The workspace's subscription is unpaid — update your payment method"),
    (SubscriptionStatus.PAUSED, "The workspace's subscription is paused — resume it to continue"),
    (SubscriptionStatus.INCOMPLETE, "The workspace's subscription is awaiting payment confirmation"),
    (SubscriptionStatus.PAST_DUE, "The workspace already has an active subscription; change plans instead"),
    (SubscriptionStatus.ACTIVE, "The workspace already has an active subscription; change plans instead"),
])
def test_checkout_closed_by_a_subscription_that_is_not_active_says_so(
        catalog: Catalog, status: SubscriptionStatus, expected: str) -> None:
    choices = plan_choices(catalog, actor=person(Role.PRIMARY_OWNER), has_billing_history=True,
                           has_active_subscription=True, subscription_status=status)
    assert not any(c.enabled for c in choices)
    assert {c.disabled_reason for c in choices} == {expected}
