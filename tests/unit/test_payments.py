"""Payments move along their own table; repeated provider events are no-ops."""

from __future__ import annotations

import itertools
import uuid

import pytest

from billing_core.errors import IllegalTransition
from billing_core.payments import Payment, PaymentPurpose, PaymentStatus, PaymentType
from tests.unit.domain_builders import NOW, ORG

PS = PaymentStatus
ALLOWED = {(PS.PENDING, PS.SUCCEEDED), (PS.PENDING, PS.FAILED), (PS.SUCCEEDED, PS.REFUNDED),
           (PS.SUCCEEDED, PS.DISPUTED)}
PAIRS = [(a, b) for a, b in itertools.product(PS, PS) if a != b]


def payment(status: PS) -> Payment:
    return Payment(id=uuid.uuid4(), organization_id=ORG, purpose=PaymentPurpose.ADD_CREDITS, amount_cents=2500,
                   currency_iso="USD", credits_micros=25_000_000, status=status, created_at=NOW)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair_of_payment_statuses(current: PS, target: PS) -> None:
    paid = payment(current)
    if (current, target) in ALLOWED:
        assert paid.move_to(target) is True
        assert paid.status is target
    else:
        with pytest.raises(IllegalTransition) as info:
            paid.move_to(target)
        assert str(info.value) == f"a payment cannot go from {current.value} to {target.value}"
        assert paid.status is current


@pytest.mark.parametrize("status", list(PS))
def test_a_repeated_status_is_reported_not_raised(status: PS) -> None:
    paid = payment(status)
    assert paid.move_to(status) is False
    assert paid.status is status


def test_defaults() -> None:
    paid = payment(PS.PENDING)
    assert paid.payment_type is PaymentType.CARD
    assert (paid.refunded_cents, paid.settled_at, paid.provider_payment_id) == (0, None, None)
    assert {t.value for t in PaymentType} == {"card", "sepa_debit", "crypto", "us_bank_account"}
