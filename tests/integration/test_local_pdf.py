"""LocalPdfLegalInvoicing: real PDFs, read back with pypdf."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from adapters.fakes import FixedClock
from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
from adapters.pdf.rendering import format_rate, format_unit_price, latin1
from billing_core.errors import InvalidInput, NotFound
from billing_core.tax import REVERSE_CHARGE_NOTE, TaxTreatment
from tests.support import delivery


@pytest.fixture
def local(tmp_path: Path) -> LocalPdfLegalInvoicing:
    return LocalPdfLegalInvoicing(tmp_path / "documents", seller=delivery.SELLER,
                                  clock=FixedClock(datetime(2026, 3, 20, 12, tzinfo=UTC)))


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_invoice_pdf_shows_what_the_invoice_says(local: LocalPdfLegalInvoicing) -> None:
    inv = delivery.invoice(credit_cents=500)
    document = local.issue(inv, delivery.organization(), delivery.address("DE"), "ap@acme.example")
    pdf = local.pdf(document.document_id)
    assert pdf.startswith(b"%PDF")
    text = text_of(pdf)

    assert document.number == "INV-000042"
    for expected in [
        "INVOICE", "INV-000042", "billing-core demo GmbH", "VAT ID: DE136695976",
        "Acme Robotics GmbH", "Torstrasse 12", "Building 3", "20095 Hamburg", "ap@acme.example",
        "PO number", "PO-4711", "Issue date", "2026-03-01", "Service period", "2026-02-01 to 2026-02-28",
        "Due date", "2026-03-15",
        "GPU inference", "1,234,567", "token", "EUR 0.00002", "EUR 24.69",
        "Object storage", "All projects", "GB-month", "EUR 0.05", "EUR 0.15",
        f"Subtotal EUR {inv.subtotal_cents // 100}.{inv.subtotal_cents % 100:02d}",
        "Credits applied -EUR 5.00", "VAT 19%",
        f"Amount due {inv.amount_due.format()}",
    ]:
        assert expected in text, expected
    assert REVERSE_CHARGE_NOTE not in text


def test_reverse_charge_invoices_carry_the_note(local: LocalPdfLegalInvoicing) -> None:
    inv = delivery.invoice(treatment=TaxTreatment.REVERSE_CHARGE)
    text = text_of(local.pdf(local.issue(inv, delivery.organization(), delivery.address("AT"), None).document_id))
    assert "VAT 0% (reverse charge)" in text
    assert "Reverse charge: VAT to be accounted for by the recipient" in text
    assert f"Amount due {inv.amount_due.format()}" in text


def test_unicode_names_do_not_crash_and_stay_readable(local: LocalPdfLegalInvoicing) -> None:
    address = delivery.address("PL", company="Łódź Müller & Søn — 東京 🚀 Sp. z o.o.", po_number="ZAM/2026/ąę")
    inv = delivery.invoice(items=(delivery.item("Résumé parsing “pro”", 10, "page", 10_000),))
    text = text_of(local.pdf(local.issue(inv, delivery.organization("Zoë"), address, None).document_id))
    assert "Lódz Müller & Søn - ?? ? Sp. z o.o." in text
    assert "ZAM/2026/ae" in text
    assert 'Résumé parsing "pro"' in text


def test_issue_is_idempotent_per_invoice(local: LocalPdfLegalInvoicing) -> None:
    inv, org = delivery.invoice(), delivery.organization()
    first = local.issue(inv, org, delivery.address(), None)
    pdf = local.pdf(first.document_id)
    second = local.issue(inv, org, delivery.address(company="Renamed Ltd"), None)
    assert first == second
    assert local.pdf(second.document_id) == pdf
    assert local.issue(delivery.invoice(number="INV-000043"), org, None, None).document_id != first.document_id


def test_documents_survive_a_new_adapter_on_the_same_directory(local: LocalPdfLegalInvoicing) -> None:
    document = local.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    reopened = LocalPdfLegalInvoicing(local.storage_dir, seller=delivery.SELLER)
    assert reopened.pdf(document.document_id) == local.pdf(document.document_id)


def test_unknown_or_malformed_documents_are_not_found(local: LocalPdfLegalInvoicing) -> None:
    for document_id in ["inv_" + "0" * 32, "../../etc/passwd", "", "cn_nothex"]:
        with pytest.raises(NotFound):
            local.pdf(document_id)
    with pytest.raises(NotFound):
        local.credit_note("inv_" + "0" * 32, amount_cents=1, reason="x", idempotency_key="k")


def test_a_partial_credit_note(local: LocalPdfLegalInvoicing) -> None:
    document = local.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    note = local.credit_note(document.document_id, amount_cents=250, reason="Outage on 2026-02-03",
                             idempotency_key="credit-note:1")
    assert note == local.credit_note(document.document_id, amount_cents=250, reason="Outage on 2026-02-03",
                                     idempotency_key="credit-note:1")
    assert note.number == "INV-000042-CN1"
    text = text_of(local.pdf(note.document_id))
    for expected in ["CREDIT NOTE", "INV-000042-CN1", "For invoice", "INV-000042", "Acme Robotics GmbH",
                     "Reason: Outage on 2026-02-03", "Amount credited EUR 2.50", "2026-03-20"]:
        assert expected in text, expected


def test_a_void_cancels_in_full_what_is_left(local: LocalPdfLegalInvoicing) -> None:
    inv = delivery.invoice(credit_cents=500)
    document = local.issue(inv, delivery.organization(), delivery.address(), None)
    local.credit_note(document.document_id, amount_cents=100, reason="goodwill", idempotency_key="a")
    void = local.credit_note(document.document_id, amount_cents=inv.total.cents, reason="voided",
                             idempotency_key="b")
    assert void.number == "INV-000042-CN2"
    text = text_of(local.pdf(void.document_id))
    assert "CANCELLATION" in text and "cancels invoice INV-000042 in full" in text
    left = inv.amount_due.cents - 100
    assert f"Amount credited EUR {left // 100}.{left % 100:02d}" in text


def test_credit_note_amounts_must_be_positive(local: LocalPdfLegalInvoicing) -> None:
    document = local.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    with pytest.raises(InvalidInput):
        local.credit_note(document.document_id, amount_cents=0, reason="x", idempotency_key="k")


def test_formatting_is_exact() -> None:
    assert format_unit_price(20, "USD") == "USD 0.00002"
    assert format_unit_price(1_500_000, "EUR") == "EUR 1.50"
    assert format_unit_price(1_234_000_000, "EUR") == "EUR 1,234.00"
    assert format_rate(1900) == "19%" and format_rate(1950) == "19.5%" and format_rate(725) == "7.25%"
    assert latin1("€ 5 – “ok” Ł") == "EUR 5 - \"ok\" L"


def test_the_buyers_vat_id_is_printed(local: LocalPdfLegalInvoicing) -> None:
    document = local.issue(delivery.invoice(), delivery.organization(), delivery.address("FR"), None,
                           "FR40303265045")
    assert "VAT ID: FR40303265045" in text_of(local.pdf(document.document_id))
