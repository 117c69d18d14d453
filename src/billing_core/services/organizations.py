"""Organizations, members and credentials."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

import msgspec

from billing_core.billing_settings import BillingSettings, check_email, check_text
from billing_core.errors import InvalidInput, Unauthenticated
from billing_core.organization import (
    ApiToken,
    Membership,
    Organization,
    TokenSummary,
    hash_token,
    new_token_secret,
)
from billing_core.permissions import Action, Actor, Permission, Role, require
from billing_core.ports import Page, check_page_limit
from billing_core.services.context import BillingContext
from billing_core.spend_guard import limits_for
from billing_core.wallet import WalletAccount


def create_organization(ctx: BillingContext, *, name: str, owner_user_id: str, owner_email: str,
                        organization_id: uuid.UUID | None = None) -> Organization:
    """A new organization with its wallet, default settings and the primary owner (its creator)."""
    name = check_text(name, "name", max_length=200, required=True) or ""
    owner_email = check_email(owner_email, "owner_email")
    user_id = check_text(owner_user_id, "owner_user_id", max_length=128, required=True) or ""
    now = ctx.clock.now()
    org = Organization(id=organization_id or uuid.uuid4(), name=name, created_at=now,
                       currency_iso=ctx.catalog.currency, webhook_secret="whsec_" + secrets.token_hex(24))
    with ctx.uow() as uow:
        uow.organizations.add(org)
        settings = BillingSettings(organization_id=org.id, billing_email=owner_email)
        uow.settings.save(settings)
        uow.wallets.create(WalletAccount(organization_id=org.id))
        uow.wallets.set_limits(org.id, limits_for(ctx.catalog, None, settings))
        uow.organizations.add_membership(Membership(organization_id=org.id, user_id=user_id, email=owner_email,
                                                    role=Role.PRIMARY_OWNER))
        uow.commit()
    return org


def add_member(ctx: BillingContext, *, organization_id: uuid.UUID, user_id: str, email: str, role: Role,
               email_verified: bool = True) -> Membership:
    membership = Membership(organization_id=organization_id,
                            user_id=check_text(user_id, "user_id", max_length=128, required=True) or "",
                            email=check_email(email), role=Role(role), email_verified=email_verified)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.organizations.add_membership(membership)
        uow.commit()
    return membership


def issue_token(ctx: BillingContext, *, organization_id: uuid.UUID, name: str, user_id: str | None = None,
                scopes: frozenset[Permission] = frozenset(), expires_at: datetime | None = None,
                secret: str | None = None) -> tuple[ApiToken, str]:
    """A bearer token for a member (``user_id``) or a service (``scopes``). Returns the secret once;
    only its hash is stored."""
    if (user_id is None) == (not scopes):
        raise InvalidInput("scopes", "a token is either a member's (user_id) or a service's (scopes)")
    secret = secret or new_token_secret()
    token = ApiToken(id=uuid.uuid4(), organization_id=organization_id, token_hash=hash_token(secret),
                     name=check_text(name, "name", max_length=100, required=True) or "",
                     created_at=ctx.clock.now(), user_id=user_id, scopes=frozenset(scopes), expires_at=expires_at)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        if user_id is not None and uow.organizations.membership(organization_id, user_id) is None:
            raise InvalidInput("user_id", "the user is not a member of the organization")
        uow.organizations.add_token(token)
        uow.commit()
    return token, secret


def list_tokens(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                cursor: str | None = None) -> Page[TokenSummary]:
    """The organization's API tokens, oldest first, revoked and expired ones too, each with its status
    now and never its secret's hash: what the console names token budgets by. Reading them is
    reading billing, as the budgets are."""
    require(actor, Action.VIEW_BILLING, organization_id)
    check_page_limit(limit)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        page = uow.organizations.list_tokens(organization_id, limit=limit, cursor=cursor)
    return Page(items=[TokenSummary.of(token, now) for token in page.items], next_cursor=page.next_cursor)


def revoke_token(ctx: BillingContext, *, secret: str) -> None:
    with ctx.uow() as uow:
        token = uow.organizations.token_by_hash(hash_token(secret))
        if token is None:
            raise Unauthenticated("unknown token")
        uow.organizations.save_token(msgspec.structs.replace(token, revoked_at=ctx.clock.now()))
        uow.commit()


def authenticate(ctx: BillingContext, secret: str | None) -> Actor:
    """The actor behind a bearer secret. Unknown, expired or revoked tokens are Unauthenticated;
    a member token whose membership was removed is too.

    Nothing is cached: each call reads the token as last committed (through ``ctx.tokens`` in one
    statement when the host gives a reader, else in a unit of work), so a revocation takes effect
    on the next request."""
    if not secret or len(secret) > 512:
        raise Unauthenticated()
    token_hash = hash_token(secret)
    if ctx.tokens is not None:
        credential = ctx.tokens.credential(token_hash)
        token = None if credential is None else credential.token
        membership = None if credential is None else credential.membership
    else:
        with ctx.uow() as uow:
            token = uow.organizations.token_by_hash(token_hash)
            membership = None if token is None or token.user_id is None else uow.organizations.membership(
                token.organization_id, token.user_id)
    if token is None or not token.usable_at(ctx.clock.now()):
        raise Unauthenticated("the token is unknown, expired or revoked")
    if token.user_id is None:
        return Actor(organization_id=token.organization_id, subject=f"token:{token.id}", scopes=token.scopes,
                     token_id=token.id)
    if membership is None:
        raise Unauthenticated("the token's user is no longer a member")
    return Actor(organization_id=token.organization_id, subject=f"user:{membership.user_id}",
                 role=membership.role, email=membership.email, email_verified=membership.email_verified,
                 token_id=token.id)


def webhook_secret(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> str:
    """The secret outbound webhooks are signed with (receivers verify with it). Part of managing
    the alert webhook, so primary-owner only."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    with ctx.uow() as uow:
        return uow.organizations.get(organization_id).webhook_secret or ""


def rotate_webhook_secret(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> str:
    """Replace the webhook signing secret. Messages already queued are signed with the new one when
    delivered, so receivers should accept the old and the new secret while they switch."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    with ctx.uow() as uow:
        # The organization row is saved whole: under its lock, so that a concurrent save of it (the
        # provider customer written on a first payment) is never overwritten with a stale copy.
        uow.wallets.lock(organization_id)
        org = uow.organizations.get(organization_id)
        org.webhook_secret = "whsec_" + secrets.token_hex(24)
        uow.organizations.save(org)
        uow.commit()
        return org.webhook_secret
