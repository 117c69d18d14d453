"""Payment methods on file, payments, refund requests and plan changes."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import payment_methods, payments, plan_changes, refund_requests
from billing_core.errors import ConcurrentUpdate, Conflict, Duplicate, NotFound, PlanChangeExists
from billing_core.payments import Payment, PaymentMethod
from billing_core.plan_change import PlanChange, PlanChangeStatus
from billing_core.ports import Page
from billing_core.refund_policy import RefundRequest, RefundStatus

_m, _p, _r, _c = payment_methods.c, payments.c, refund_requests.c, plan_changes.c


class SqlAlchemyPaymentMethodRepository(SqlAlchemyRepository):
    def list(self, organization_id: uuid.UUID) -> list[PaymentMethod]:
        query = (select(payment_methods).where(_m.organization_id == organization_id)
                 .order_by(_m.is_default.desc(), _m.created_at.desc().nulls_last(), _m.id))
        return [rows.payment_method_from_row(row) for row in self._execute(query)]

    def get(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> PaymentMethod:
        row = self._execute(select(payment_methods).where(_m.id == payment_method_id,
                                                          _m.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("payment method", payment_method_id)
        return rows.payment_method_from_row(row)

    def by_provider_id(self, organization_id: uuid.UUID, provider_payment_method_id: str) -> PaymentMethod | None:
        row = self._execute(select(payment_methods).where(
            _m.organization_id == organization_id,
            _m.provider_payment_method_id == provider_payment_method_id)).first()
        return None if row is None else rows.payment_method_from_row(row)

    def add(self, method: PaymentMethod) -> None:
        with self._guarded():
            result = self._execute(self._insert(payment_methods).on_conflict_do_nothing(),
                                   rows.payment_method_values(method))
        if result.rowcount == 0:
            raise Duplicate("payment method already attached")

    def save(self, method: PaymentMethod) -> None:
        values = rows.payment_method_values(method)
        del values["id"], values["organization_id"]
        with self._guarded():
            result = self._execute(update(payment_methods).where(
                _m.id == method.id, _m.organization_id == method.organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("payment method", method.id)

    def remove(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
        result = self._execute(delete(payment_methods).where(_m.id == payment_method_id,
                                                             _m.organization_id == organization_id))
        if result.rowcount == 0:
            raise NotFound("payment method", payment_method_id)


class SqlAlchemyPaymentRepository(SqlAlchemyRepository):
    def add(self, payment: Payment) -> None:
        with self._guarded():
            result = self._execute(self._insert(payments).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.payment_values(payment))
        if result.rowcount == 0:
            raise Duplicate(f"payment {payment.id} exists")

    def get(self, organization_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
        row = self._execute(select(payments).where(_p.id == payment_id, _p.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("payment", payment_id)
        return rows.payment_from_row(row)

    def by_provider_id(self, provider_payment_id: str) -> Payment | None:
        row = self._execute(select(payments).where(_p.provider_payment_id == provider_payment_id)
                            .order_by(_p.created_at, _p.id).limit(1)).first()
        return None if row is None else rows.payment_from_row(row)

    def by_reference(self, payment_id: uuid.UUID) -> Payment | None:
        row = self._execute(select(payments).where(_p.id == payment_id)).first()
        return None if row is None else rows.payment_from_row(row)

    def save(self, payment: Payment) -> None:
        """Optimistic: the update matches only the version this copy was loaded at, so a save that
        raced another one is refused instead of overwriting it (its ``refunded_cents``, say)."""
        values = rows.payment_values(payment)
        del values["id"], values["organization_id"]
        values["version"] = payment.version + 1
        with self._guarded():
            result = self._execute(update(payments).where(
                _p.id == payment.id, _p.organization_id == payment.organization_id,
                _p.version == payment.version).values(values))
        if result.rowcount == 1:
            payment.version += 1
            return
        self.get(payment.organization_id, payment.id)  # NotFound when it is not there at all
        raise ConcurrentUpdate("the payment changed meanwhile; retry")

    def list(self, organization_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None) -> Page[Payment]:
        query = (select(payments).where(_p.organization_id == organization_id)
                 .order_by(_p.created_at.desc(), _p.id.desc()))
        return self._page(query, rows.payment_from_row, limit, cursor)


class SqlAlchemyRefundRepository(SqlAlchemyRepository):
    def add(self, request: RefundRequest) -> None:
        with self._guarded():
            result = self._execute(self._insert(refund_requests).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.refund_values(request))
        if result.rowcount == 0:
            raise Duplicate(f"refund request {request.id} exists")

    def get(self, organization_id: uuid.UUID, request_id: uuid.UUID) -> RefundRequest:
        row = self._execute(select(refund_requests).where(_r.id == request_id,
                                                          _r.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("refund request", request_id)
        return rows.refund_from_row(row)

    def complete(self, request: RefundRequest) -> bool:
        with self._guarded():
            result = self._execute(update(refund_requests).where(
                _r.id == request.id, _r.organization_id == request.organization_id,
                _r.status == RefundStatus.PENDING.value).values(
                    status=request.status.value, provider_refund_id=request.provider_refund_id,
                    failure_message=request.failure_message, completed_at=request.completed_at))
        if result.rowcount == 1:
            return True
        self.get(request.organization_id, request.id)  # NotFound when it is not there at all
        return False

    def list(self, organization_id: uuid.UUID) -> list[RefundRequest]:
        query = (select(refund_requests).where(_r.organization_id == organization_id)
                 .order_by(_r.created_at.desc(), _r.id.desc()))
        return [rows.refund_from_row(row) for row in self._execute(query)]

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[RefundRequest]:
        query = (select(refund_requests).where(_r.status == RefundStatus.PENDING.value,
                                               _r.created_at < created_before)
                 .order_by(_r.created_at, _r.id).limit(limit))
        return [rows.refund_from_row(row) for row in self._execute(query)]


class SqlAlchemyPlanChangeRepository(SqlAlchemyRepository):
    def add(self, change: PlanChange) -> None:
        try:
            with self._guarded():
                self._execute(insert(plan_changes), rows.plan_change_values(change))
        except Conflict as exc:
            if self.for_version(change.organization_id, change.subscription_id,
                                change.subscription_version) is not None:
                raise PlanChangeExists("the subscription already changed plan at this version") from exc
            raise

    def get(self, organization_id: uuid.UUID, change_id: uuid.UUID) -> PlanChange:
        row = self._execute(select(plan_changes).where(_c.id == change_id,
                                                       _c.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("plan change", change_id)
        return rows.plan_change_from_row(row)

    def for_version(self, organization_id: uuid.UUID, subscription_id: uuid.UUID,
                    subscription_version: int) -> PlanChange | None:
        row = self._execute(select(plan_changes).where(
            _c.organization_id == organization_id, _c.subscription_id == subscription_id,
            _c.subscription_version == subscription_version)).first()
        return None if row is None else rows.plan_change_from_row(row)

    def latest(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanChange | None:
        row = self._execute(select(plan_changes).where(
            _c.organization_id == organization_id, _c.subscription_id == subscription_id)
            .order_by(_c.subscription_version.desc()).limit(1)).first()
        return None if row is None else rows.plan_change_from_row(row)

    def record_invoice(self, change: PlanChange) -> bool:
        with self._guarded():
            result = self._execute(update(plan_changes).where(
                _c.id == change.id, _c.organization_id == change.organization_id,
                _c.status == PlanChangeStatus.PENDING.value).values(
                    status=change.status.value, provider_invoice_id=change.provider_invoice_id,
                    hosted_invoice_url=change.hosted_invoice_url, invoice_status=change.invoice_status,
                    completed_at=change.completed_at))
        if result.rowcount == 1:
            return True
        self.get(change.organization_id, change.id)  # NotFound when it is not there at all
        return False

    def list(self, organization_id: uuid.UUID) -> list[PlanChange]:
        query = (select(plan_changes).where(_c.organization_id == organization_id)
                 .order_by(_c.created_at, _c.subscription_version, _c.id))
        return [rows.plan_change_from_row(row) for row in self._execute(query)]

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[PlanChange]:
        query = (select(plan_changes).where(_c.status == PlanChangeStatus.PENDING.value,
                                            _c.created_at < created_before)
                 .order_by(_c.created_at, _c.id).limit(limit))
        return [rows.plan_change_from_row(row) for row in self._execute(query)]
