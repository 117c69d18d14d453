"""Authentication's token read (:class:`~billing_core.ports.TokenReader`): the token as committed,
with its user's membership of the token's organization, never a cached or uncommitted copy."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from adapters.testing.builders import NOW, new_org
from adapters.testing.storage import StorageBackend
from billing_core.organization import ApiToken, Membership
from billing_core.permissions import Permission, Role
from billing_core.ports import TokenReader


def _reader(storage: StorageBackend) -> TokenReader:
    if storage.tokens is None:
        pytest.skip(f"{storage.kind} storage has no token reader")
    return storage.tokens


def _token(organization_id: uuid.UUID, token_hash: str, **fields: object) -> ApiToken:
    return msgspec.structs.replace(ApiToken(id=uuid.uuid4(), organization_id=organization_id, token_hash=token_hash,
                                            name="ci", created_at=NOW), **fields)


class TokenReaderContract:
    """What ``authenticate`` relies on when it reads tokens outside a unit of work."""

    def test_a_service_token_reads_back_whole_without_membership(self, storage: StorageBackend) -> None:
        reader = _reader(storage)
        org = new_org(storage)
        token = _token(org.id, "a" * 64, scopes=frozenset({Permission.USAGE_WRITE, Permission.BILLING_READ}),
                       expires_at=NOW + timedelta(days=30, microseconds=7))
        with storage.uow() as uow:
            uow.organizations.add_token(token)
            uow.commit()
        assert reader.credential("b" * 64) is None
        found = reader.credential("a" * 64)
        assert found is not None
        assert found.token == token
        assert found.membership is None

    def test_a_member_token_comes_with_its_membership_of_the_tokens_organization(
            self, storage: StorageBackend) -> None:
        reader = _reader(storage)
        org, other = new_org(storage), new_org(storage, name="Other")
        mine = Membership(organization_id=org.id, user_id="u-1", email="u1@example.test", role=Role.OWNER,
                          email_verified=False)
        token = _token(org.id, "c" * 64, user_id="u-1")
        stranger = _token(org.id, "d" * 64, user_id="u-2")
        with storage.uow() as uow:
            uow.organizations.add_membership(mine)
            # The same user id in another organization is not this token's membership.
            uow.organizations.add_membership(Membership(organization_id=other.id, user_id="u-2",
                                                        email="u2@example.test", role=Role.PRIMARY_OWNER))
            uow.organizations.add_token(token)
            uow.organizations.add_token(stranger)
            uow.commit()
        found = reader.credential("c" * 64)
        assert found is not None and found.token == token and found.membership == mine
        lone = reader.credential("d" * 64)
        assert lone is not None and lone.token == stranger and lone.membership is None

    def test_it_reads_what_was_committed_so_a_revocation_counts_at_once(self, storage: StorageBackend) -> None:
        reader = _reader(storage)
        org = new_org(storage)
        token = _token(org.id, "e" * 64)
        with storage.uow() as uow:
            uow.organizations.add_token(_token(org.id, "f" * 64))  # rolled back: never visible
        assert reader.credential("f" * 64) is None
        with storage.uow() as uow:
            uow.organizations.add_token(token)
            uow.commit()
        first = reader.credential("e" * 64)
        assert first is not None and first.token.revoked_at is None
        with storage.uow() as uow:
            uow.organizations.save_token(msgspec.structs.replace(token, revoked_at=NOW))
            uow.commit()
        again = reader.credential("e" * 64)
        assert again is not None and again.token.revoked_at == NOW
        assert not again.token.usable_at(NOW)
