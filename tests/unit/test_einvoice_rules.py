"""The EN 16931 terms the core derives from an invoice, its one rounding rule, and the business
rules it checks (each rule is shown failing on a document that breaks it)."""

from __future__ import annotations

import msgspec
import pytest

from billing_core import einvoice as e
from billing_core.einvoice import VatCategory, check_rules, check_xrechnung_rules, from_invoice
from billing_core.invoices import Invoice
from billing_core.money import MICROS_PER_CENT
from billing_core.tax import TaxTreatment
from tests.support.einvoices import SELLER, Usage, buyer, make_invoice


def _terms(invoice: Invoice, country: str = "DE", tax_id: str | None = None,
           po_number: str | None = "PO-7") -> e.EInvoice:
    org, address = buyer(country, po_number=po_number)
    return from_invoice(invoice, organization=org, address=address, billing_email="ap@acme.example",
                        buyer_tax_id=tax_id, seller=SELLER)


def test_domestic_invoice_with_credits_matches_the_ledger_to_the_cent() -> None:
    invoice = make_invoice([Usage("Compute", 1_234_567, 20), Usage("Storage", 3, 1_500_000),
                            Usage("Tokens", 7, 333, extra_micros=4_999)], wallet_micros=5_004_999)
    terms = _terms(invoice)
    assert check_rules(terms) == []
    totals = terms.totals
    assert totals.line_total_cents == invoice.subtotal_cents
    assert terms.allowances[0].amount_cents == invoice.credit_applied_cents == 500
    assert totals.tax_total_cents == invoice.tax.tax_cents
    assert totals.payable_cents == invoice.amount_due.cents and totals.prepaid_cents == 0
    # The rounding the close posts to revenue is exactly the rounding the lines show.
    assert invoice.usage_micros - invoice.subtotal_cents * MICROS_PER_CENT == -sum(
        line.rounding_micros for line in terms.lines)
    compute = terms.lines[0]
    assert (compute.quantity, compute.unit_price_micros, compute.net_cents) == (1_234_567, 20, 2469)
    assert compute.note is not None and "rounding -0.00134" in compute.note
    tokens = terms.lines[2]  # a price that does not multiply out: quantity 1 at the exact amount
    assert (tokens.quantity, tokens.unit_price_micros) == (1, 7 * 333 + 4_999)
    assert terms.buyer_reference == "PO-7" and terms.vat_accounting_currency == "EUR"
    assert totals.tax_total_accounting_cents == e.half_up(invoice.tax.tax_cents * 920_000, 1_000_000)


def test_reverse_charge_and_not_subject_categories() -> None:
    reverse = make_invoice([Usage("Compute", 100, 10_000)], buyer_country="FR", verified_vat=True)
    assert reverse.tax.treatment == TaxTreatment.REVERSE_CHARGE
    terms = _terms(reverse, "FR", "FR12345678901")
    assert check_rules(terms) == []
    row = terms.vat_breakdown[0]
    assert (row.category, row.tax_cents, row.exemption_code) == (VatCategory.REVERSE_CHARGE, 0, "VATEX-EU-AE")
    assert check_rules(_terms(reverse, "FR", None)) == ["BR-AE-02"]

    export = make_invoice([Usage("Compute", 100, 10_000)], buyer_country="US")
    terms = _terms(export, "US", "12-3456789")
    assert check_rules(terms) == []
    # BR-O-02: neither the seller's nor the buyer's VAT id on a "not subject" invoice; the seller is
    # identified by its registration (BR-CO-26) and tax number instead.
    assert terms.seller.vat_id is None and terms.buyer.vat_id is None
    assert terms.vat_breakdown[0].category == VatCategory.NOT_SUBJECT


def _broken(terms: e.EInvoice, **changes: object) -> list[str]:
    return check_rules(msgspec.structs.replace(terms, **changes))


def test_each_rule_fails_on_a_document_that_breaks_it() -> None:
    terms = _terms(make_invoice([Usage("Compute", 10, 1_000_000)], wallet_micros=3_000_000))
    totals = terms.totals
    assert _broken(terms, number="") == ["BR-02"]
    assert _broken(terms, buyer=msgspec.structs.replace(terms.buyer, address=None)) == ["BR-10", "BR-11"]
    assert _broken(terms, lines=()) == ["BR-16", "BR-CO-10", "BR-S-08"]
    assert "BR-CO-10" in _broken(terms, totals=msgspec.structs.replace(totals, line_total_cents=1))
    assert "BR-CO-13" in _broken(terms, totals=msgspec.structs.replace(totals, tax_exclusive_cents=1))
    assert _broken(terms, totals=msgspec.structs.replace(totals, tax_total_cents=1)) == ["BR-CO-14", "BR-CO-15"]
    assert _broken(terms, totals=msgspec.structs.replace(totals, payable_cents=1)) == ["BR-CO-16"]
    wrong_vat = msgspec.structs.replace(terms.vat_breakdown[0], tax_cents=terms.vat_breakdown[0].tax_cents + 1)
    assert _broken(terms, vat_breakdown=(wrong_vat,)) == ["BR-CO-14", "BR-CO-17", "BR-S-09"]
    assert _broken(terms, due_date=None, payment_terms=None) == ["BR-CO-25"]
    seller = msgspec.structs.replace(terms.seller, vat_id=None, legal_registration_id=None, tax_number=None)
    assert _broken(terms, seller=seller) == ["BR-CO-26", "BR-S-02"]
    exempted = msgspec.structs.replace(terms.vat_breakdown[0], exemption_reason="why")
    assert _broken(terms, vat_breakdown=(exempted,)) == ["BR-S-10"]
    assert _broken(terms, vat_breakdown=()) == ["BR-CO-14", "BR-S-01"]
    line = msgspec.structs.replace(terms.lines[0], net_cents=terms.lines[0].net_cents + 1)
    assert "BC-02" in _broken(terms, lines=(line,))


def test_credit_notes_reference_the_invoice_and_balance() -> None:
    terms = _terms(make_invoice([Usage("Compute", 10, 1_234_567)], wallet_micros=1_000_000))
    full = e.credit_note(terms, number="INV-000042-CN1", issued=terms.issue_date, amount_cents=10**9, reason="void")
    assert full.type_code == "381" and full.preceding_invoice == terms.number
    assert full.totals == terms.totals and check_rules(full) == []
    part = e.credit_note(terms, number="INV-000042-CN2", issued=terms.issue_date, amount_cents=1190, reason="refund")
    assert check_rules(part) == [] and part.totals.payable_cents == 1190
    assert part.totals.tax_total_cents == 190 and part.lines[0].net_cents == 1000
    assert _broken(part, preceding_invoice=None) == ["BC-01"]


def test_xrechnung_needs_a_buyer_reference_and_electronic_addresses() -> None:
    terms = _terms(make_invoice([Usage("Compute", 10, 1_000_000)]), po_number=None)
    assert "BR-DE-21" in check_xrechnung_rules(terms)
    xrechnung = e.as_xrechnung(terms, customer_number="cust-1")
    assert check_xrechnung_rules(xrechnung) == [] and xrechnung.buyer_reference == "cust-1"
    no_mail = msgspec.structs.replace(xrechnung, buyer=msgspec.structs.replace(xrechnung.buyer,
                                                                                  electronic_address=None))
    with pytest.raises(e.EInvoiceInvalid, match="PEPPOL-EN16931-R010") as raised:
        e.require_valid(no_mail)
    assert raised.value.code == "einvoice_invalid"
