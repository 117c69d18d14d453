"""Billing settings (optimistically versioned) and tax registrations."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import billing_settings, tax_registrations
from billing_core.billing_settings import BillingSettings, TaxRegistration
from billing_core.errors import ConcurrentUpdate, DuplicateTaxRegistration, NotFound

_s, _t = billing_settings.c, tax_registrations.c


class SqlAlchemySettingsRepository(SqlAlchemyRepository):
    def get(self, organization_id: uuid.UUID) -> BillingSettings:
        row = self._execute(select(billing_settings).where(_s.organization_id == organization_id)).first()
        return BillingSettings(organization_id=organization_id) if row is None else rows.settings_from_row(row)

    def save(self, settings: BillingSettings) -> None:
        """Compare-and-set on ``version``: the stored version must be the one ``settings`` was read
        at (nothing stored yet: any version inserts). On success ``settings.version`` is the new one."""
        new_version = settings.version + 1
        values = rows.settings_values(settings, new_version)
        with self._guarded():
            updated = self._execute(update(billing_settings).where(
                _s.organization_id == settings.organization_id, _s.version == settings.version,
            ).values({k: v for k, v in values.items() if k != "organization_id"})).rowcount
            if updated == 0:
                updated = self._execute(
                    self._insert(billing_settings).on_conflict_do_nothing(index_elements=["organization_id"]),
                    values).rowcount
        if updated == 0:
            raise ConcurrentUpdate("the settings changed meanwhile; retry")
        settings.version = new_version

    def tax_registrations(self, organization_id: uuid.UUID) -> list[TaxRegistration]:
        query = (select(tax_registrations).where(_t.organization_id == organization_id)
                 .order_by(_t.created_at, _t.id))
        return [rows.tax_registration_from_row(row) for row in self._execute(query)]

    def get_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> TaxRegistration:
        row = self._execute(select(tax_registrations).where(_t.id == registration_id,
                                                            _t.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("tax registration", registration_id)
        return rows.tax_registration_from_row(row)

    def add_tax_registration(self, registration: TaxRegistration) -> None:
        with self._guarded():
            result = self._execute(self._insert(tax_registrations).on_conflict_do_nothing(),
                                   rows.tax_registration_values(registration))
        if result.rowcount == 0:
            raise DuplicateTaxRegistration("this tax registration exists already", field="value")

    def save_tax_registration(self, registration: TaxRegistration) -> None:
        values = rows.tax_registration_values(registration)
        del values["id"], values["organization_id"]
        with self._guarded():
            result = self._execute(update(tax_registrations).where(
                _t.id == registration.id, _t.organization_id == registration.organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("tax registration", registration.id)

    def remove_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> None:
        result = self._execute(delete(tax_registrations).where(_t.id == registration_id,
                                                               _t.organization_id == organization_id))
        if result.rowcount == 0:
            raise NotFound("tax registration", registration_id)
