"""Who may do what: the seed's role matrix, API permissions and their role presets.

Presets are data. A use case asks :func:`require` with an :class:`Action`; the answer depends only
on the actor's role in the organization, or on an API token's scopes.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import msgspec

from billing_core.errors import NotFound, PermissionDenied


class Role(StrEnum):
    PRIMARY_OWNER = "primary-owner"
    OWNER = "owner"
    MEMBER = "member"


class Permission(StrEnum):
    """API permissions. Tokens carry these as scopes; roles carry them through presets."""

    BILLING_READ = "billing:read"
    BILLING_UPDATE = "billing:update"
    PLAN_SUBSCRIBE = "plan:subscribe"
    PORTAL_ACCESS = "portal:access"
    CREDIT_PACKS_PURCHASE = "credit_packs:purchase"
    LOW_BALANCE_ALERTS_MANAGE = "low_balance_alerts:manage"
    USAGE_WRITE = "usage:write"


class Action(StrEnum):
    """Things an actor does, named as the seed names them."""

    VIEW_BILLING = "view the billing interface"
    SUBSCRIBE_TO_PLAN = "subscribe to a plan"
    ACCESS_BILLING_PORTAL = "access the billing portal"
    PURCHASE_CREDIT_PACKS = "purchase credit packs"
    MANAGE_LOW_BALANCE_ALERTS = "manage low-balance alerts"
    UPDATE_BILLING = "update billing settings"
    ADD_CREDITS = "add usage credits"
    REQUEST_REFUND = "request a refund"
    REPORT_USAGE = "report usage"


ACTION_PERMISSION: dict[Action, Permission] = {
    Action.VIEW_BILLING: Permission.BILLING_READ,
    Action.SUBSCRIBE_TO_PLAN: Permission.PLAN_SUBSCRIBE,
    Action.ACCESS_BILLING_PORTAL: Permission.PORTAL_ACCESS,
    Action.PURCHASE_CREDIT_PACKS: Permission.CREDIT_PACKS_PURCHASE,
    Action.MANAGE_LOW_BALANCE_ALERTS: Permission.LOW_BALANCE_ALERTS_MANAGE,
    Action.UPDATE_BILLING: Permission.BILLING_UPDATE,
    Action.ADD_CREDITS: Permission.BILLING_UPDATE,
    Action.REQUEST_REFUND: Permission.BILLING_UPDATE,
    Action.REPORT_USAGE: Permission.USAGE_WRITE,
}

# The seed's matrix: every role views billing; subscribe, portal, packs and low-balance alerts are
# the primary-owner's alone. Owners also manage payment methods and settings (billing:update);
# members only read. Usage reporting belongs to platform service tokens, never to people.
ROLE_PRESETS: dict[Role, frozenset[Permission]] = {
    Role.PRIMARY_OWNER: frozenset({
        Permission.BILLING_READ, Permission.BILLING_UPDATE, Permission.PLAN_SUBSCRIBE,
        Permission.PORTAL_ACCESS, Permission.CREDIT_PACKS_PURCHASE, Permission.LOW_BALANCE_ALERTS_MANAGE,
    }),
    Role.OWNER: frozenset({Permission.BILLING_READ, Permission.BILLING_UPDATE}),
    Role.MEMBER: frozenset({Permission.BILLING_READ}),
}

# What the console shows next to a disabled button, per action.
DENIAL_MESSAGES: dict[Action, str] = {
    Action.SUBSCRIBE_TO_PLAN: "Only the primary owner can subscribe to a plan",
    Action.ACCESS_BILLING_PORTAL: "Only the primary owner can access the billing portal",
    Action.PURCHASE_CREDIT_PACKS: "Only the team creator can purchase credit packs",
    Action.MANAGE_LOW_BALANCE_ALERTS: "Only the primary owner can manage low-balance alerts",
    Action.UPDATE_BILLING: "Your role can view billing but not change it",
    Action.ADD_CREDITS: "Your role can view billing but not add credits",
    Action.REQUEST_REFUND: "Your role can view billing but not request refunds",
}


class Actor(msgspec.Struct, frozen=True):
    """Someone acting on one organization: a member with a role, or an API token with scopes.

    ``role`` is set for people, ``scopes`` for tokens. ``email_verified`` matters for guest-checkout
    claims only.
    """

    organization_id: uuid.UUID
    subject: str
    role: Role | None = None
    scopes: frozenset[Permission] = frozenset()
    email: str | None = None
    email_verified: bool = False

    @property
    def is_token(self) -> bool:
        return self.role is None

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.role is not None:
            return ROLE_PRESETS[self.role]
        return self.scopes


def allows(actor: Actor, action: Action) -> bool:
    """True when the actor's role preset or token scopes include the action's permission."""
    return ACTION_PERMISSION[action] in actor.permissions


def require(actor: Actor, action: Action, organization_id: uuid.UUID) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may perform ``action`` in ``organization_id``.

    An actor from another organization learns nothing: the organization is reported as not found.
    """
    if actor.organization_id != organization_id:
        raise NotFound("organization", organization_id)
    if not allows(actor, action):
        raise PermissionDenied(action.value, DENIAL_MESSAGES.get(action))
