"""Organizations, their members and API tokens: who the billing belongs to and who acts on it."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.permissions import Permission, Role


class Organization(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    currency_iso: str = "USD"
    provider_customer_id: str | None = None
    """The payment provider's customer, created once on first need."""
    webhook_secret: str | None = None
    """Signs outbound webhooks; rotatable."""


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: uuid.UUID
    user_id: str
    email: str
    role: Role
    email_verified: bool = True


class ApiToken(msgspec.Struct, frozen=True, kw_only=True):
    """A bearer credential. Only the SHA-256 of the secret is stored.

    A token either speaks for a member (``user_id`` set: the member's role applies) or is a service
    token with explicit ``scopes``.
    """

    id: uuid.UUID
    organization_id: uuid.UUID
    token_hash: str
    name: str
    created_at: datetime
    user_id: str | None = None
    scopes: frozenset[Permission] = frozenset()
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        return token_status(self, now) == TokenStatus.ACTIVE


class TokenStatus(StrEnum):
    """Whether a token authenticates now: revoked wins over expired, as in :meth:`ApiToken.usable_at`."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def token_status(token: ApiToken, now: datetime) -> TokenStatus:
    if token.revoked_at is not None and token.revoked_at <= now:
        return TokenStatus.REVOKED
    if token.expires_at is not None and now >= token.expires_at:
        return TokenStatus.EXPIRED
    return TokenStatus.ACTIVE


class TokenSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What may be shown of an API token: everything but its secret's hash, with its status at a time."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    created_at: datetime
    user_id: str | None
    scopes: frozenset[Permission]
    expires_at: datetime | None
    revoked_at: datetime | None
    status: TokenStatus

    @classmethod
    def of(cls, token: ApiToken, now: datetime) -> TokenSummary:
        return cls(id=token.id, organization_id=token.organization_id, name=token.name, created_at=token.created_at,
                   user_id=token.user_id, scopes=token.scopes, expires_at=token.expires_at,
                   revoked_at=token.revoked_at, status=token_status(token, now))


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A stored token with the membership of its user (None for a service token, or when the user
    is no longer a member of the token's organization): what authentication needs, read at once."""

    token: ApiToken
    membership: Membership | None = None


def hash_token(secret: str) -> str:
    """Tokens are stored hashed; the same function finds them again on each request."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token_secret() -> str:
    return "bc_" + secrets.token_urlsafe(32)
