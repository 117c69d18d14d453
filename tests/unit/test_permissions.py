"""The seed's permission matrix, API permission presets, token scopes and organization isolation."""

from __future__ import annotations

import pytest

from billing_core.errors import NotFound, PermissionDenied
from billing_core.permissions import (
    ACTION_PERMISSION,
    DENIAL_MESSAGES,
    ROLE_PRESETS,
    Action,
    Actor,
    Permission,
    Role,
    allows,
    require,
)
from tests.unit.domain_builders import ORG, OTHER_ORG, person, token

PO, OW, ME = Role.PRIMARY_OWNER, Role.OWNER, Role.MEMBER

# The seed's table, row by row: | Action | primary-owner | owner | member |
SEED_MATRIX: list[tuple[Action, dict[Role, bool]]] = [
    (Action.VIEW_BILLING, {PO: True, OW: True, ME: True}),
    (Action.SUBSCRIBE_TO_PLAN, {PO: True, OW: False, ME: False}),
    (Action.ACCESS_BILLING_PORTAL, {PO: True, OW: False, ME: False}),
    (Action.PURCHASE_CREDIT_PACKS, {PO: True, OW: False, ME: False}),
    (Action.MANAGE_LOW_BALANCE_ALERTS, {PO: True, OW: False, ME: False}),
    # billing:update (HTTP seed: "setting default, removing a payment method"; invoice details):
    # owners too, never members.
    (Action.UPDATE_BILLING, {PO: True, OW: True, ME: False}),
    # Where the seed is silent, money follows its purchase and alert rows: primary-owner only.
    (Action.ADD_CREDITS, {PO: True, OW: False, ME: False}),
    (Action.MANAGE_AUTO_RECHARGE, {PO: True, OW: False, ME: False}),
    (Action.REQUEST_REFUND, {PO: True, OW: False, ME: False}),
    (Action.MANAGE_SPEND_MANAGEMENT, {PO: True, OW: False, ME: False}),
    # Action.REPORT_USAGE: no role may (test_usage_reporting_is_for_service_tokens_only).
]
MATRIX_CASES = [(action, role, allowed) for action, row in SEED_MATRIX for role, allowed in row.items()]


def test_role_values_are_the_seeds() -> None:
    assert [r.value for r in Role] == ["primary-owner", "owner", "member"]
    assert Permission.BILLING_READ.value == "billing:read"
    assert Permission.BILLING_UPDATE.value == "billing:update"


@pytest.mark.parametrize(("action", "role", "allowed"), MATRIX_CASES,
                         ids=[f"{a.name}-{r.value}" for a, r, _ in MATRIX_CASES])
def test_seed_matrix(action: Action, role: Role, allowed: bool) -> None:
    actor = person(role)
    assert allows(actor, action) is allowed
    if allowed:
        require(actor, action, ORG)
    else:
        with pytest.raises(PermissionDenied) as info:
            require(actor, action, ORG)
        assert info.value.code == "permission_denied"
        assert info.value.action == action.value
        assert info.value.message == DENIAL_MESSAGES[action]


@pytest.mark.parametrize(("action", "message"), [
    (Action.SUBSCRIBE_TO_PLAN, "Only the primary owner can subscribe to a plan"),
    (Action.ACCESS_BILLING_PORTAL, "Only the primary owner can access the billing portal"),
    (Action.PURCHASE_CREDIT_PACKS, "Only the team creator can purchase credit packs"),
    (Action.MANAGE_LOW_BALANCE_ALERTS, "Only the primary owner can manage low-balance alerts"),
])
def test_primary_owner_only_actions_explain_themselves(action: Action, message: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        require(person(Role.MEMBER), action, ORG)
    assert str(info.value) == message


def test_billing_read_and_update_presets() -> None:
    """billing:read for every role; billing:update for the owners, never for members."""
    assert {role for role in Role if Permission.BILLING_READ in ROLE_PRESETS[role]} == {PO, OW, ME}
    assert {role for role in Role if Permission.BILLING_UPDATE in ROLE_PRESETS[role]} == {PO, OW}
    assert ROLE_PRESETS[ME] == frozenset({Permission.BILLING_READ})
    # Nobody gets usage reporting through a role: it belongs to service tokens.
    assert all(Permission.USAGE_WRITE not in ROLE_PRESETS[role] for role in Role)
    # The primary owner holds everything but usage:write and credits:grant (the platform's back office
    # grants credits: an organization granting itself credits would make credit free).
    assert ROLE_PRESETS[PO] == frozenset(Permission) - {Permission.USAGE_WRITE, Permission.CREDITS_GRANT}


def test_billing_update_actions() -> None:
    assert [a for a in Action if ACTION_PERMISSION[a] is Permission.BILLING_UPDATE] == [Action.UPDATE_BILLING]
    assert DENIAL_MESSAGES[Action.UPDATE_BILLING].startswith("Your role can view billing but not")


def test_every_money_action_is_the_primary_owners_alone() -> None:
    """Seed: "Purchase credit packs | ✓ | — | —" and "Manage low-balance alerts | ✓ | — | —". Adding
    usage credits ($5-$5,000, card or crypto), auto-recharge, refund requests and spend management
    (daily budget, thresholds, the alert webhook) spend money or manage alerts the same way."""
    money = [Action.SUBSCRIBE_TO_PLAN, Action.ACCESS_BILLING_PORTAL, Action.PURCHASE_CREDIT_PACKS,
             Action.MANAGE_LOW_BALANCE_ALERTS, Action.ADD_CREDITS, Action.MANAGE_AUTO_RECHARGE,
             Action.REQUEST_REFUND, Action.MANAGE_SPEND_MANAGEMENT]
    for action in money:
        assert [role for role in Role if allows(person(role), action)] == [PO], action
        assert DENIAL_MESSAGES[action].startswith("Only the "), action


def test_action_keys_are_stable_identifiers() -> None:
    assert Action.ADD_CREDITS.key == "add_credits"
    assert Action.MANAGE_SPEND_MANAGEMENT.key == "manage_spend_management"
    assert len({a.key for a in Action}) == len(Action)


def test_usage_reporting_is_for_service_tokens_only() -> None:
    for role in Role:
        with pytest.raises(PermissionDenied) as info:
            require(person(role), Action.REPORT_USAGE, ORG)
        assert info.value.message == "not allowed to report usage"
    require(token(Permission.USAGE_WRITE), Action.REPORT_USAGE, ORG)


def test_every_action_maps_to_a_permission() -> None:
    assert set(ACTION_PERMISSION) == set(Action)


@pytest.mark.parametrize("action", list(Action))
def test_token_scopes_grant_exactly_their_actions(action: Action) -> None:
    needed = ACTION_PERMISSION[action]
    require(token(needed), action, ORG)
    others = frozenset(Permission) - {needed}
    with pytest.raises(PermissionDenied):
        require(token(*others), action, ORG)
    with pytest.raises(PermissionDenied):
        require(token(), action, ORG)


def test_read_token_reads_but_does_not_update() -> None:
    reader = token(Permission.BILLING_READ)
    assert reader.is_token and reader.permissions == frozenset({Permission.BILLING_READ})
    require(reader, Action.VIEW_BILLING, ORG)
    for action in (Action.UPDATE_BILLING, Action.ADD_CREDITS, Action.SUBSCRIBE_TO_PLAN, Action.REPORT_USAGE):
        assert not allows(reader, action)
    writer = token(Permission.BILLING_READ, Permission.BILLING_UPDATE)
    assert allows(writer, Action.UPDATE_BILLING)
    for action in (Action.PURCHASE_CREDIT_PACKS, Action.ADD_CREDITS, Action.REQUEST_REFUND,
                   Action.MANAGE_SPEND_MANAGEMENT, Action.MANAGE_AUTO_RECHARGE):
        assert not allows(writer, action)


def test_a_role_wins_over_scopes() -> None:
    """A member's own token cannot smuggle in scopes beyond the member's role."""
    member = Actor(organization_id=ORG, subject="cy", role=ME, scopes=frozenset(Permission))
    assert not member.is_token
    assert member.permissions == ROLE_PRESETS[ME]
    with pytest.raises(PermissionDenied):
        require(member, Action.UPDATE_BILLING, ORG)


@pytest.mark.parametrize("actor", [person(PO, organization_id=OTHER_ORG), person(ME, organization_id=OTHER_ORG),
                                   token(*Permission, organization_id=OTHER_ORG)],
                         ids=["primary-owner", "member", "all-scopes-token"])
@pytest.mark.parametrize("action", list(Action))
def test_another_organizations_actor_learns_nothing(actor: Actor, action: Action) -> None:
    with pytest.raises(NotFound) as info:
        require(actor, action, ORG)
    assert info.value.code == "not_found"
    assert info.value.kind == "organization"
    assert not isinstance(info.value, PermissionDenied)
