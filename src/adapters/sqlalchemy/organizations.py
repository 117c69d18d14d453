"""Organizations, their memberships and API tokens."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import api_tokens, memberships, organizations
from billing_core.errors import Duplicate, NotFound
from billing_core.organization import ApiToken, Membership, Organization
from billing_core.ports import Page


class SqlAlchemyOrganizationRepository(SqlAlchemyRepository):
    def add(self, organization: Organization) -> None:
        with self._guarded():
            result = self._execute(self._insert(organizations).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.organization_values(organization))
        if result.rowcount == 0:
            raise Duplicate(f"organization {organization.id} exists")

    def get(self, organization_id: uuid.UUID) -> Organization:
        row = self._execute(select(organizations).where(organizations.c.id == organization_id)).first()
        if row is None:
            raise NotFound("organization", organization_id)
        return rows.organization_from_row(row)

    def save(self, organization: Organization) -> None:
        values = rows.organization_values(organization)
        del values["id"]
        with self._guarded():
            result = self._execute(update(organizations).where(organizations.c.id == organization.id).values(values))
        if result.rowcount == 0:
            raise NotFound("organization", organization.id)

    def by_provider_customer(self, customer_id: str) -> Organization | None:
        row = self._execute(select(organizations).where(organizations.c.provider_customer_id == customer_id)
                            .order_by(organizations.c.created_at, organizations.c.id).limit(1)).first()
        return None if row is None else rows.organization_from_row(row)

    def ids(self) -> list[uuid.UUID]:
        return list(self._execute(select(organizations.c.id).order_by(organizations.c.id)).scalars())

    def add_membership(self, membership: Membership) -> None:
        values = rows.membership_values(membership)
        statement = self._insert(memberships)
        statement = statement.on_conflict_do_update(
            index_elements=["organization_id", "user_id"],
            set_={name: statement.excluded[name] for name in ("email", "email_key", "role", "email_verified")})
        with self._guarded():
            self._execute(statement, values)

    def membership(self, organization_id: uuid.UUID, user_id: str) -> Membership | None:
        row = self._execute(select(memberships).where(memberships.c.organization_id == organization_id,
                                                      memberships.c.user_id == user_id)).first()
        return None if row is None else rows.membership_from_row(row)

    def memberships_by_email(self, email: str) -> list[Membership]:
        result = self._execute(select(memberships).where(memberships.c.email_key == rows.email_key(email))
                               .order_by(memberships.c.organization_id, memberships.c.user_id))
        return [rows.membership_from_row(row) for row in result]

    def add_token(self, token: ApiToken) -> None:
        with self._guarded():
            result = self._execute(self._insert(api_tokens).on_conflict_do_nothing(index_elements=["token_hash"]),
                                   rows.token_values(token))
        if result.rowcount == 0:
            raise Duplicate("token exists")

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self._execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash)).first()
        return None if row is None else rows.token_from_row(row)

    def find_token(self, organization_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
        row = self._execute(select(api_tokens).where(api_tokens.c.id == token_id,
                                                     api_tokens.c.organization_id == organization_id)).first()
        return None if row is None else rows.token_from_row(row)

    def save_token(self, token: ApiToken) -> None:
        values = rows.token_values(token)
        for key in ("id", "organization_id", "token_hash"):
            del values[key]
        with self._guarded():
            result = self._execute(update(api_tokens).where(api_tokens.c.token_hash == token.token_hash,
                                                            api_tokens.c.organization_id == token.organization_id)
                                   .values(values))
        if result.rowcount == 0:
            raise NotFound("token", token.id)

    def list_tokens(self, organization_id: uuid.UUID, *, limit: int = 50,
                    cursor: str | None = None) -> Page[ApiToken]:
        query = (select(api_tokens).where(api_tokens.c.organization_id == organization_id)
                 .order_by(api_tokens.c.created_at, api_tokens.c.id))
        return self._page(query, rows.token_from_row, limit, cursor)
