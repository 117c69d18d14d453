"""The seed's permission matrix, row by row, and the plan subscription's full transition table."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import pytest

from billing_core import IllegalTransition, NotFound, PermissionDenied
from billing_core.catalog import PlanCode
from billing_core.permissions import Action, Actor, Permission, Role, allows, require
from billing_core.plan_subscription import (
    PRESENTATION,
    TRANSITIONS,
    PlanSubscription,
    StatusColor,
    SubscriptionStatus,
)

ORG = uuid.UUID("11111111-1111-4111-8111-111111111111")
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# The seed's table: action → (primary-owner, owner, member)
SEED_MATRIX = {
    Action.VIEW_BILLING: (True, True, True),
    Action.SUBSCRIBE_TO_PLAN: (True, False, False),
    Action.ACCESS_BILLING_PORTAL: (True, False, False),
    Action.PURCHASE_CREDIT_PACKS: (True, False, False),
    Action.MANAGE_LOW_BALANCE_ALERTS: (True, False, False),
    # billing:update (set default, remove payment method, settings): owners too, never members.
    Action.UPDATE_BILLING: (True, True, False),
    Action.ADD_CREDITS: (True, True, False),
    Action.REQUEST_REFUND: (True, True, False),
    # Usage is reported by platform service tokens only.
    Action.REPORT_USAGE: (False, False, False),
}
ROLES = (Role.PRIMARY_OWNER, Role.OWNER, Role.MEMBER)


@pytest.mark.parametrize(("action", "role"), list(itertools.product(SEED_MATRIX, ROLES)))
def test_every_cell_of_the_matrix(action: Action, role: Role) -> None:
    actor = Actor(organization_id=ORG, subject=f"user:{role}", role=role)
    expected = SEED_MATRIX[action][ROLES.index(role)]
    assert allows(actor, action) is expected
    if expected:
        require(actor, action, ORG)
    else:
        with pytest.raises(PermissionDenied) as denied:
            require(actor, action, ORG)
        assert denied.value.code == "permission_denied"


def test_the_pack_denial_uses_the_seeds_words() -> None:
    member = Actor(organization_id=ORG, subject="user:m", role=Role.MEMBER)
    with pytest.raises(PermissionDenied) as denied:
        require(member, Action.PURCHASE_CREDIT_PACKS, ORG)
    assert denied.value.message == "Only the team creator can purchase credit packs"


@pytest.mark.parametrize("scopes", [frozenset(), frozenset({Permission.BILLING_READ}),
                                    frozenset({Permission.BILLING_READ, Permission.BILLING_UPDATE}),
                                    frozenset({Permission.USAGE_WRITE})])
def test_tokens_carry_exactly_their_scopes(scopes: frozenset[Permission]) -> None:
    token = Actor(organization_id=ORG, subject="token:t", scopes=scopes)
    assert allows(token, Action.VIEW_BILLING) is (Permission.BILLING_READ in scopes)
    assert allows(token, Action.UPDATE_BILLING) is (Permission.BILLING_UPDATE in scopes)
    assert allows(token, Action.REPORT_USAGE) is (Permission.USAGE_WRITE in scopes)
    assert not allows(token, Action.SUBSCRIBE_TO_PLAN)


def test_another_organization_is_not_found_not_forbidden() -> None:
    owner = Actor(organization_id=uuid.uuid4(), subject="user:x", role=Role.PRIMARY_OWNER)
    with pytest.raises(NotFound):
        require(owner, Action.VIEW_BILLING, ORG)


SEED_STATUSES = {
    SubscriptionStatus.ACTIVE: ("Active", StatusColor.GREEN, "Subscription is current"),
    SubscriptionStatus.TRIALING: ("Trialing", StatusColor.GREEN, "Free trial is running"),
    SubscriptionStatus.PAST_DUE: ("Past due", StatusColor.RED, "Payment failed — update your payment method"),
    SubscriptionStatus.CANCELED: ("Canceled", StatusColor.RED, "Subscription is canceled"),
    SubscriptionStatus.UNPAID: ("Unpaid", StatusColor.RED, "Invoice unpaid — update your payment method"),
    SubscriptionStatus.INCOMPLETE: ("Incomplete", StatusColor.YELLOW, "Awaiting payment confirmation"),
    SubscriptionStatus.INCOMPLETE_EXPIRED: ("Incomplete expired", StatusColor.RED,
                                            "Payment window expired — restart checkout"),
    SubscriptionStatus.PAUSED: ("Paused", StatusColor.YELLOW, "Subscription is paused"),
}


@pytest.mark.parametrize("status", list(SubscriptionStatus))
def test_status_colors_and_messages_are_the_seeds(status: SubscriptionStatus) -> None:
    shown = PRESENTATION[status]
    assert (shown.label, shown.color, shown.message) == SEED_STATUSES[status]


def _subscription(status: SubscriptionStatus) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=ORG, plan=PlanCode.PRO, status=status,
                            created_at=T0, current_period_start=T0, current_period_end=T0)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(SubscriptionStatus, SubscriptionStatus)))
def test_every_pair_of_statuses(current: SubscriptionStatus, target: SubscriptionStatus) -> None:
    sub = _subscription(current)
    at = datetime(2026, 2, 1, tzinfo=UTC)
    if current == target:
        sub.transition(target, at)  # webhooks repeat themselves: a no-op
        assert sub.status == current
    elif target in TRANSITIONS[current]:
        sub.transition(target, at)
        assert sub.status == target
        assert sub.past_due_since == (at if target == SubscriptionStatus.PAST_DUE else None)
    else:
        with pytest.raises(IllegalTransition) as refused:
            sub.transition(target, at)
        assert refused.value.code == "illegal_transition"
        assert sub.status == current


def test_terminal_statuses_lead_nowhere() -> None:
    assert TRANSITIONS[SubscriptionStatus.CANCELED] == frozenset()
    assert TRANSITIONS[SubscriptionStatus.INCOMPLETE_EXPIRED] == frozenset()
    assert SubscriptionStatus.INCOMPLETE_EXPIRED in TRANSITIONS[SubscriptionStatus.INCOMPLETE]


def test_product_subscription_dates_must_be_aware() -> None:
    from billing_core import InvalidInput
    from billing_core.product_subscription import new_product_subscription

    naive = datetime(2026, 3, 1)
    for start, end, field in ((naive, None, "start_date"), (T0, naive, "end_date")):
        with pytest.raises(InvalidInput) as refused:
            new_product_subscription(organization_id=ORG, project_id=None, product_id=uuid.uuid4(),
                                     start_date=start, end_date=end)
        assert refused.value.field == field
    sub = new_product_subscription(organization_id=ORG, project_id=None, product_id=uuid.uuid4(), start_date=T0)
    with pytest.raises(InvalidInput):
        sub.end(naive)
