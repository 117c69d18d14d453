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
    CREDITS_PURCHASE = "credits:purchase"
    """Add Usage Credits ($5-$5,000, card or crypto) and auto-recharge: buying credits other than packs."""
    REFUNDS_REQUEST = "refunds:request"
    SPEND_MANAGEMENT_MANAGE = "spend_management:manage"
    """The daily budget, the daily email threshold, the alert webhook URL and its signing secret."""
    CREDITS_GRANT = "credits:grant"
    """Grant promotional credits (ADR 0016): the platform's back office, never a role (no preset has it)."""


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
    MANAGE_AUTO_RECHARGE = "manage auto-recharge"
    MANAGE_SPEND_MANAGEMENT = "manage spend management"
    GRANT_CREDITS = "grant promotional credits"

    @property
    def key(self) -> str:
        """A stable identifier for clients (``add_credits``), independent of the wording."""
        return self.name.lower()


ACTION_PERMISSION: dict[Action, Permission] = {
    Action.VIEW_BILLING: Permission.BILLING_READ,
    Action.SUBSCRIBE_TO_PLAN: Permission.PLAN_SUBSCRIBE,
    Action.ACCESS_BILLING_PORTAL: Permission.PORTAL_ACCESS,
    Action.PURCHASE_CREDIT_PACKS: Permission.CREDIT_PACKS_PURCHASE,
    Action.MANAGE_LOW_BALANCE_ALERTS: Permission.LOW_BALANCE_ALERTS_MANAGE,
    Action.UPDATE_BILLING: Permission.BILLING_UPDATE,
    Action.ADD_CREDITS: Permission.CREDITS_PURCHASE,
    Action.MANAGE_AUTO_RECHARGE: Permission.CREDITS_PURCHASE,
    Action.REQUEST_REFUND: Permission.REFUNDS_REQUEST,
    Action.MANAGE_SPEND_MANAGEMENT: Permission.SPEND_MANAGEMENT_MANAGE,
    Action.REPORT_USAGE: Permission.USAGE_WRITE,
    Action.GRANT_CREDITS: Permission.CREDITS_GRANT,
}

# The seed's matrix (permissions-plans-statuses-credit-packs.txt): every role views billing;
# subscribing, the billing portal, purchasing credit packs and managing low-balance alerts are the
# primary-owner's alone. Where the seed is silent we follow what its rows have in common, "whoever
# spends the organization's money or manages its alerts is the primary owner":
# - Add Usage Credits ($5-$5,000, card or crypto) is a purchase like a pack (credits:purchase);
#   auto-recharge buys credits on a card without anyone clicking, so configuring it is a purchase too;
# - a refund request moves money back from a purchase only the primary owner could make;
# - spend management (daily budget, email threshold, alert webhook and its signing secret) is
#   alert management, like low-balance alerts.
# Owners keep what the HTTP seed gives billing:update ("setting default, removing a payment
# method") and the invoice details (address, billing email, tax registrations); members only read.
# Usage reporting belongs to platform service tokens, never to people. So does granting promotional
# credits (credits:grant, ADR 0016): credits given for nothing are the platform's decision (a
# campaign, goodwill from support), and a primary owner granting credits to its own organization
# would make them free; only a token issued with that scope (or the operator's CLI) grants.
ROLE_PRESETS: dict[Role, frozenset[Permission]] = {
    Role.PRIMARY_OWNER: frozenset({
        Permission.BILLING_READ, Permission.BILLING_UPDATE, Permission.PLAN_SUBSCRIBE,
        Permission.PORTAL_ACCESS, Permission.CREDIT_PACKS_PURCHASE, Permission.LOW_BALANCE_ALERTS_MANAGE,
        Permission.CREDITS_PURCHASE, Permission.REFUNDS_REQUEST, Permission.SPEND_MANAGEMENT_MANAGE,
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
    Action.ADD_CREDITS: "Only the primary owner can add usage credits",
    Action.REQUEST_REFUND: "Only the primary owner can request refunds",
    Action.MANAGE_AUTO_RECHARGE: "Only the primary owner can manage auto-recharge",
    Action.MANAGE_SPEND_MANAGEMENT: "Only the primary owner can manage spend management",
    Action.GRANT_CREDITS: "Promotional credits are granted by the platform, not by members",
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
    token_id: uuid.UUID | None = None
    """The API token the actor authenticated with (a service token or a member's): the token
    budget (ADR 0017) that usage it reports counts against. None for the library and the console."""

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
