"""Organizations' API tokens: stored hashed, usable until they expire or are revoked."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from billing_core.organization import (
    ApiToken,
    Organization,
    TokenStatus,
    TokenSummary,
    hash_token,
    new_token_secret,
    token_status,
)
from billing_core.permissions import Permission
from tests.unit.domain_builders import NOW, ORG


def api_token(**changes: object) -> ApiToken:
    fields: dict[str, object] = {"id": uuid.uuid4(), "organization_id": ORG, "token_hash": hash_token("s"),
                                 "name": "ci", "created_at": NOW, "scopes": frozenset({Permission.USAGE_WRITE})}
    fields.update(changes)
    return ApiToken(**fields)  # type: ignore[arg-type]


def test_tokens_are_stored_as_sha256() -> None:
    assert hash_token("bc_secret") == hashlib.sha256(b"bc_secret").hexdigest()
    assert hash_token("bc_secret") != hash_token("bc_secreT")


def test_new_secrets_are_prefixed_and_unique() -> None:
    secrets = {new_token_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(s.startswith("bc_") and len(s) >= 40 for s in secrets)


def test_usable_until_expiry_exclusive() -> None:
    token = api_token(expires_at=NOW + timedelta(hours=1))
    assert token.usable_at(NOW)
    assert token.usable_at(NOW + timedelta(minutes=59))
    assert not token.usable_at(NOW + timedelta(hours=1))
    assert api_token().usable_at(NOW + timedelta(days=10_000))


def test_revoked_from_the_revocation_on() -> None:
    token = api_token(revoked_at=NOW)
    assert token.usable_at(NOW - timedelta(seconds=1))
    assert not token.usable_at(NOW)
    assert not token.usable_at(NOW + timedelta(days=1))


def test_status_agrees_with_usable_at_and_revoked_wins_over_expired() -> None:
    token = api_token(expires_at=NOW + timedelta(hours=1), revoked_at=NOW + timedelta(hours=2))
    for at, status in ((NOW, TokenStatus.ACTIVE), (NOW + timedelta(hours=1), TokenStatus.EXPIRED),
                       (NOW + timedelta(hours=2), TokenStatus.REVOKED)):
        assert token_status(token, at) == status
        assert token.usable_at(at) == (status == TokenStatus.ACTIVE)
    summary = TokenSummary.of(token, NOW)
    assert (summary.id, summary.name, summary.scopes, summary.status) == (token.id, "ci", token.scopes,
                                                                          TokenStatus.ACTIVE)


def test_organization_defaults() -> None:
    org = Organization(id=ORG, name="Acme", created_at=NOW)
    assert (org.currency_iso, org.provider_customer_id, org.webhook_secret) == ("USD", None, None)
