"""One error hierarchy with stable machine codes and, where one input is at fault, its field."""

from __future__ import annotations

import pytest

from billing_core.errors import (
    AuthenticationRequired,
    BillingError,
    Conflict,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    IllegalTransition,
    InvalidInput,
    LedgerImbalance,
    NotFound,
    PaymentDeclined,
    PaymentError,
    PaymentRequired,
    PermissionDenied,
    ProviderUnavailable,
    ReconciliationFailed,
    Unauthenticated,
)


@pytest.mark.parametrize(("error", "code"), [
    (InvalidInput("amount", "bad"), "invalid_input"),
    (InvalidInput("amount", "bad", code="invalid_amount"), "invalid_amount"),
    (NotFound("invoice", 7), "not_found"),
    (Unauthenticated(), "unauthenticated"),
    (PermissionDenied("subscribe to a plan"), "permission_denied"),
    (Conflict("dup"), "conflict"),
    (IdempotencyKeyReused("k"), "idempotency_key_reused"),
    (IdempotencyRequestInProgress("k"), "idempotency_request_in_progress"),
    (IllegalTransition("active", "incomplete"), "illegal_transition"),
    (PaymentRequired("insufficient_credit", "Not enough credits."), "insufficient_credit"),
    (PaymentError("x"), "payment_error"),
    (PaymentDeclined(), "payment_declined"),
    (AuthenticationRequired(), "authentication_required"),
    (ProviderUnavailable(), "provider_unavailable"),
    (LedgerImbalance(3), "ledger_imbalance"),
    (ReconciliationFailed("off"), "reconciliation_failed"),
])
def test_every_error_is_a_billing_error_with_a_stable_code(error: BillingError, code: str) -> None:
    assert isinstance(error, BillingError)
    assert error.code == code
    assert error.as_dict()["code"] == code
    assert error.as_dict()["message"] == str(error)


def test_a_per_instance_code_does_not_leak_into_the_class() -> None:
    InvalidInput("amount", "bad", code="invalid_amount")
    assert InvalidInput("amount", "bad").code == "invalid_input"
    assert InvalidInput.code == "invalid_input"


def test_field_is_reported_only_when_known() -> None:
    assert InvalidInput("billing_email", "bad").as_dict() == {"code": "invalid_input", "message": "bad",
                                                              "field": "billing_email"}
    assert "field" not in NotFound("invoice", 7).as_dict()


def test_errors_keep_their_typed_attributes() -> None:
    missing = NotFound("invoice", 7)
    assert (missing.kind, missing.key, str(missing)) == ("invoice", 7, "invoice 7 not found")
    denied = PermissionDenied("subscribe to a plan")
    assert (denied.action, str(denied)) == ("subscribe to a plan", "not allowed to subscribe to a plan")
    reused = IdempotencyKeyReused("abc")
    assert isinstance(reused, Conflict) and reused.key == "abc"
    required = PaymentRequired("daily_budget_reached", "The daily credit budget is reached.")
    assert required.reason == "daily_budget_reached"
    assert ProviderUnavailable().retryable and not PaymentDeclined().retryable
    assert isinstance(PaymentDeclined(), PaymentError)
    assert LedgerImbalance(-4).total == -4


@pytest.mark.parametrize(("subject", "article"), [("subscription", "a"), ("invoice", "an"), ("payment", "a")])
def test_illegal_transition_names_its_subject(subject: str, article: str) -> None:
    error = IllegalTransition("open", "draft", subject=subject)
    assert str(error) == f"{article} {subject} cannot go from open to draft"
    assert (error.current, error.target) == ("open", "draft")
