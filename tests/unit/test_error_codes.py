"""Errors by concept: every leaf's ``code`` is a class attribute, unique across the hierarchy, and
its docstring names the rule it guards; HTTP statuses follow the category, never the code."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

import billing_core.einvoice
import billing_core.errors as errors
from billing_core.errors import (
    BillingError,
    ConcurrentUpdate,
    Conflict,
    InvalidSignature,
    PaymentError,
    ProviderUnavailable,
    SpendDenied,
    StorageError,
    StorageUnavailable,
    Unavailable,
    WalletError,
)
from entrypoints.http.problems import status_for

assert billing_core.einvoice  # its EInvoiceInvalid is a leaf too: imported so the walk sees it


def _all_errors() -> list[type[BillingError]]:
    seen: list[type[BillingError]] = []
    todo: list[type[BillingError]] = [BillingError]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def _own_code(cls: type[BillingError]) -> str | None:
    code = vars(cls).get("code")
    return code if isinstance(code, str) else None


def test_the_walk_sees_the_whole_hierarchy() -> None:
    classes = _all_errors()
    assert ConcurrentUpdate in classes and SpendDenied in classes
    assert billing_core.einvoice.EInvoiceInvalid in classes
    assert len(classes) >= 30


def test_every_class_code_is_unique() -> None:
    owners: dict[str, list[str]] = {}
    for cls in _all_errors():
        code = _own_code(cls)
        if code is not None:
            owners.setdefault(code, []).append(cls.__qualname__)
    duplicates = {code: names for code, names in owners.items() if len(names) > 1}
    assert duplicates == {}


def test_every_error_class_has_a_docstring_naming_its_rule() -> None:
    missing = [cls.__qualname__ for cls in _all_errors() if not (inspect.getdoc(cls) or "").strip()
               or cls.__doc__ is None]
    assert missing == []


def test_the_concept_roots_exist_and_are_billing_errors() -> None:
    for name in ("WalletError", "UsageError", "SubscriptionError", "CheckoutError", "PaymentError",
                 "RefundError", "InvoiceError", "DeliveryError", "StorageError"):
        root = getattr(errors, name)
        assert issubclass(root, BillingError)


@pytest.mark.parametrize(("error", "status", "code"), [
    (ConcurrentUpdate("the wallet changed concurrently; retry"), 409, "concurrent_update"),
    (InvalidSignature("Stripe-Signature", "missing signature"), 400, "invalid_signature"),
    (ProviderUnavailable(), 503, "provider_unavailable"),
    (StorageUnavailable(), 503, "storage_unavailable"),
    (SpendDenied("insufficient_credit", "Not enough credits.", None), 402, "insufficient_credit"),
    (PaymentError("refused", code="provider_error"), 402, "provider_error"),
])
def test_leaves_keep_their_released_code_and_status(error: BillingError, status: int, code: str) -> None:
    assert error.code == code
    assert status_for(error) == status


def test_leaves_belong_to_their_concept_and_category() -> None:
    assert isinstance(ConcurrentUpdate("x"), StorageError) and isinstance(ConcurrentUpdate("x"), Conflict)
    assert isinstance(StorageUnavailable(), StorageError) and isinstance(StorageUnavailable(), Unavailable)
    unavailable = ProviderUnavailable()
    assert not isinstance(unavailable, PaymentError)
    assert isinstance(unavailable, Unavailable) and unavailable.retryable
    denied = SpendDenied("daily_budget_reached", "budget", datetime(2026, 1, 2, tzinfo=UTC))
    assert isinstance(denied, WalletError) and denied.retry_at == datetime(2026, 1, 2, tzinfo=UTC)
