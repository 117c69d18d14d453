"""E-invoice documents end to end: CII (Factur-X) and XRechnung UBL validate against the official
XSDs, our EN 16931 rule checks and the official EN 16931 Schematron for a generated corpus, with
totals equal to the ledger's to the cent; the Factur-X PDF is read back with pikepdf (qpdf), a
library independent of the ones that wrote it."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pikepdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.einvoice.cii import to_cii
from adapters.einvoice.ubl import to_ubl
from adapters.einvoice.xsd import xsd_errors
from adapters.fakes import FixedClock
from adapters.pdf import LocalPdfLegalInvoicing, SellerDetails
from billing_core import einvoice as e
from billing_core.invoices import Invoice
from billing_core.money import MICROS_PER_CENT
from billing_core.tax import TaxTreatment
from tests.support import schematron
from tests.support.einvoices import (
    PERIOD_END,
    SELLER,
    Usage,
    buyer,
    cii_totals,
    make_invoice,
    ubl_totals,
)

# Buyers: domestic, EU with and without a verified VAT id, outside the EU; with their VAT ids.
BUYERS = {"DE": "DE987654321", "FR": "FR12345678901", "NL": "NL123456789B01", "AT": "ATU12345678",
          "PL": "PL1234567890", "US": "12-3456789", "GB": "GB123456789", "CH": "CHE123456789MWST", "JP": None}

usages = st.lists(st.builds(
    Usage, product=st.sampled_from(["Compute", "Storage", "Tokens", "GPU hours", "Egress — EU"]),
    quantity=st.integers(0, 50_000_000), unit_price_micros=st.integers(0, 3_000_000),
    extra_micros=st.one_of(st.just(0), st.integers(-5_000, 5_000_000)), project=st.booleans(),
), min_size=1, max_size=6).filter(lambda rows: all(r.quantity * r.unit_price_micros + r.extra_micros >= 0
                                                   for r in rows))


@st.composite
def documents(draw: st.DrawFn) -> tuple[Invoice, e.EInvoice]:
    country = draw(st.sampled_from(sorted(BUYERS)))
    verified = draw(st.booleans()) and BUYERS[country] is not None
    invoice = make_invoice(draw(usages), currency=draw(st.sampled_from(["USD", "EUR", "GBP", "CHF"])),
                           wallet_micros=draw(st.one_of(st.just(0), st.integers(0, 10**9))),
                           buyer_country=country, verified_vat=verified)
    org, address = buyer(country, po_number=draw(st.one_of(st.none(), st.just("PO-2026-17"))))
    terms = e.from_invoice(invoice, organization=org, address=address,
                           billing_email=draw(st.sampled_from(["ap@buyer.example", None])),
                           buyer_tax_id=BUYERS[country] if verified else None, seller=SELLER)
    return invoice, terms


SEEN: dict[str, int] = {}


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.integers(1, 10**7))
def test_corpus_validates_and_matches_the_ledger(case: tuple[Invoice, e.EInvoice], refund_cents: int) -> None:
    invoice, terms = case
    SEEN[invoice.tax.treatment.value] = SEEN.get(invoice.tax.treatment.value, 0) + 1
    assert e.check_rules(terms) == []
    xrechnung = e.as_xrechnung(terms, customer_number=str(invoice.organization_id))
    if terms.buyer.electronic_address:
        assert e.check_xrechnung_rules(xrechnung) == []
    else:
        assert e.check_xrechnung_rules(xrechnung) == ["PEPPOL-EN16931-R010"]
    cii, ubl = to_cii(terms), to_ubl(xrechnung)
    assert xsd_errors(cii) == [] and xsd_errors(ubl) == []
    assert schematron.errors(cii, "cii") == [] and schematron.errors(ubl, "ubl") == []
    ledger_due = invoice.amount_due.cents
    for totals in (cii_totals(cii), ubl_totals(ubl)):
        assert totals.line_total == invoice.subtotal_cents
        assert totals.tax_exclusive == invoice.subtotal_cents - invoice.credit_applied_cents
        assert totals.tax == invoice.tax.tax_cents
        assert totals.tax_inclusive == totals.payable == ledger_due
        assert (totals.tax_accounting is None) == (invoice.currency_iso == "EUR")
    # The ledger's close posts usage_micros − subtotal to revenue: the lines show that same rounding.
    assert invoice.usage_micros - invoice.subtotal_cents * MICROS_PER_CENT == -sum(
        line.rounding_micros for line in terms.lines)
    # A refund or a void: a credit note (381) that references the invoice and validates too.
    note = e.credit_note(terms, number=f"{terms.number}-CN1", issued=terms.issue_date, amount_cents=refund_cents,
                         reason="Refund of unused usage")
    assert e.check_rules(note) == [] and note.preceding_invoice == terms.number
    assert xsd_errors(to_cii(note)) == [] and xsd_errors(to_ubl(note)) == []
    assert schematron.errors(to_cii(note), "cii") == [] and schematron.errors(to_ubl(note), "ubl") == []
    assert note.totals.payable_cents <= max(ledger_due, refund_cents + 1)


def test_the_corpus_covered_every_vat_treatment() -> None:
    # Runs after the corpus in file order; on its own (-k) it generates nothing and checks nothing.
    if SEEN:
        assert {t.value for t in TaxTreatment} <= set(SEEN), SEEN


def test_the_schematron_catches_what_our_checks_catch() -> None:
    """The official rules are really run: a total that does not add up fails them as it fails ours."""
    invoice = make_invoice([Usage("Compute", 10, 1_000_000)], wallet_micros=2_000_000)
    org, address = buyer()
    terms = e.from_invoice(invoice, organization=org, address=address, billing_email=None, buyer_tax_id=None,
                           seller=SELLER)
    wrong = msgspec.structs.replace(terms, totals=msgspec.structs.replace(
        terms.totals, tax_inclusive_cents=terms.totals.tax_inclusive_cents + 1))
    assert e.check_rules(wrong) == ["BR-CO-15", "BR-CO-16"]
    assert "BR-CO-15" in schematron.errors(to_cii(wrong), "cii")
    assert "BR-CO-15" in schematron.errors(to_ubl(wrong), "ubl")


def _local(tmp_path: Path) -> LocalPdfLegalInvoicing:
    seller = SellerDetails(name=SELLER.name, address_1=SELLER.street, postal_code=SELLER.postal_code,
                           city=SELLER.city, country=SELLER.country, vat_id=SELLER.vat_id)
    return LocalPdfLegalInvoicing(tmp_path, seller=seller, clock=FixedClock(PERIOD_END))


def _read_back(pdf: bytes) -> tuple[bytes, str, str]:
    """The embedded XML, its AFRelationship and the XMP's Factur-X conformance level, via pikepdf."""
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert pikepdf.Name("/GTS_PDFA1") == document.Root.OutputIntents[0].S
        assert "/DestOutputProfile" in document.Root.OutputIntents[0]
        spec = document.Root.AF[0]
        assert str(spec.F) == "factur-x.xml"
        xml = document.attachments["factur-x.xml"].get_file().read_bytes()
        metadata = document.open_metadata()
        assert metadata["pdfaid:part"] == "3"
        schemas = str(document.Root.Metadata.read_bytes())
        assert "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#" in schemas
        level = metadata["{urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#}ConformanceLevel"]
        return xml, str(spec.AFRelationship), str(level)


def test_the_local_renderer_issues_factur_x_pdf_a3_and_credit_notes(tmp_path: Path) -> None:
    invoice = make_invoice([Usage("Compute", 1_234_567, 20), Usage("Storage", 3, 1_500_000)],
                           wallet_micros=2_000_000)
    org, address = buyer()
    terms = e.require_valid(e.from_invoice(invoice, organization=org, address=address, billing_email=None,
                                           buyer_tax_id=None, seller=SELLER))
    legal = _local(tmp_path)
    document = legal.issue(invoice, org, address, None, None, terms)
    xml, relationship, level = _read_back(legal.pdf(document.document_id))
    assert relationship == "/Data" and level == "EN 16931"
    assert xsd_errors(xml) == [] and cii_totals(xml).payable == invoice.amount_due.cents
    assert b"<ram:TypeCode>380</ram:TypeCode>" in xml

    note = legal.credit_note(document.document_id, amount_cents=10**6, reason="voided", idempotency_key="void-1")
    xml, _, _ = _read_back(legal.pdf(note.document_id))
    assert xsd_errors(xml) == [] and b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert f"<ram:IssuerAssignedID>{invoice.number}</ram:IssuerAssignedID>".encode() in xml
    assert cii_totals(xml).payable == invoice.amount_due.cents


def test_the_local_renderer_stores_nothing_for_xml_that_fails_the_xsd(tmp_path: Path) -> None:
    invoice = make_invoice([Usage("Compute", 10, 1_000_000)])
    org, address = buyer()
    terms = e.from_invoice(invoice, organization=org, address=address, billing_email=None, buyer_tax_id=None,
                           seller=SELLER)
    # Text that XML cannot carry (the core refuses control characters in addresses; here they get through).
    broken = msgspec.structs.replace(terms, notes=("bell \x07",))
    legal = _local(tmp_path)
    with pytest.raises(e.EInvoiceInvalid) as raised:
        legal.issue(invoice, org, address, None, None, broken)
    assert raised.value.failed == ("XSD",)
    assert list(tmp_path.iterdir()) == []
