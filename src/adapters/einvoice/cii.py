"""UN/CEFACT CII (Factur-X / ZUGFeRD, EN 16931 profile) from an :class:`~billing_core.einvoice.EInvoice`,
built with drafthorse's document model (which validates against the Factur-X EN 16931 XSD as it
serializes). Amounts are formatted from integer cents here, never through floats."""

from __future__ import annotations

from decimal import Decimal

from drafthorse.models.accounting import ApplicableTradeTax, CategoryTradeTax, TradeAllowanceCharge
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.tradelines import LineItem

from billing_core.einvoice import (
    CREDIT_NOTE,
    EInvoice,
    Party,
    VatCategory,
    format_cents,
    format_micros,
    format_rate,
)

FACTURX_EN16931 = "urn:cen.eu:en16931:2017"
"""BT-24 of a Factur-X / ZUGFeRD EN 16931 document."""
SCHEMA = "FACTUR-X_EN16931"


def _amount(cents: int) -> Decimal:
    return Decimal(format_cents(cents))


def _party(target: object, party: Party, *, seller: bool) -> None:
    target.name = party.name  # type: ignore[attr-defined]
    if party.legal_registration_id:
        target.legal_organization.id = party.legal_registration_id  # type: ignore[attr-defined]
    if seller and (party.contact_name or party.contact_phone or party.contact_email):
        contact = target.contact  # type: ignore[attr-defined]
        if party.contact_name:
            contact.person_name = party.contact_name
        if party.contact_phone:
            contact.telephone.number = party.contact_phone
        if party.contact_email:
            contact.email.address = party.contact_email
    address = party.address
    if address is not None:
        target_address = target.address  # type: ignore[attr-defined]
        if address.postal_code:
            target_address.postcode = address.postal_code
        if address.line_1:
            target_address.line_one = address.line_1
        if address.line_2:
            target_address.line_two = address.line_2
        if address.city:
            target_address.city_name = address.city
        if address.country:
            target_address.country_id = address.country
        if address.region:
            target_address.country_subdivision = address.region
    if party.electronic_address:
        target.electronic_address.uri_ID = ("EM", party.electronic_address)  # type: ignore[attr-defined]
    if party.vat_id:
        target.tax_registrations.add(TaxRegistration(id=("VA", party.vat_id)))  # type: ignore[attr-defined]
    if seller and party.tax_number:
        target.tax_registrations.add(TaxRegistration(id=("FC", party.tax_number)))  # type: ignore[attr-defined]


def _tax(target: object, category: VatCategory, rate_basis_points: int) -> None:
    target.type_code = "VAT"  # type: ignore[attr-defined]
    target.category_code = category.value  # type: ignore[attr-defined]
    if category != VatCategory.NOT_SUBJECT:  # BR-O-05: no rate for "not subject to VAT"
        target.rate_applicable_percent = Decimal(format_rate(rate_basis_points))  # type: ignore[attr-defined]


def to_cii(document: EInvoice) -> bytes:
    """The document as CII XML bytes (UTF-8), schema-valid for the Factur-X EN 16931 profile.

    drafthorse raises (lxml's XMLSyntaxError) when the result does not validate against that XSD."""
    doc = Document()
    doc.context.guideline_parameter.id = FACTURX_EN16931
    if document.business_process:
        doc.context.business_parameter.id = document.business_process
    doc.header.id = document.number
    doc.header.type_code = document.type_code
    doc.header.issue_date_time = document.issue_date
    for text in document.notes:
        doc.header.notes.add(IncludedNote(content=text))

    agreement = doc.trade.agreement
    if document.buyer_reference:
        agreement.buyer_reference = document.buyer_reference
    _party(agreement.seller, document.seller, seller=True)
    _party(agreement.buyer, document.buyer, seller=False)

    settlement = doc.trade.settlement
    settlement.currency_code = document.currency
    if document.vat_accounting_currency:
        settlement.tax_currency_code = document.vat_accounting_currency
    if document.remittance_information:
        settlement.payment_reference = document.remittance_information
    means = PaymentMeans()
    means.type_code = document.payment_means_code
    if document.payee_iban:
        means.payee_account.iban = document.payee_iban
        if document.payee_account_name:
            means.payee_account.account_name = document.payee_account_name
    if document.payee_bic:
        means.payee_institution.bic = document.payee_bic
    settlement.payment_means.add(means)
    for row in document.vat_breakdown:
        tax = ApplicableTradeTax()
        tax.calculated_amount = _amount(row.tax_cents)
        tax.basis_amount = _amount(row.taxable_cents)
        _tax(tax, row.category, row.rate_basis_points)
        if row.exemption_reason:
            tax.exemption_reason = row.exemption_reason
        if row.exemption_code:
            tax.exemption_reason_code = row.exemption_code
        settlement.trade_tax.add(tax)
    settlement.period.start = document.period_start
    settlement.period.end = document.period_end
    for allowance in document.allowances:
        charge = TradeAllowanceCharge()
        charge.indicator = False
        charge.actual_amount = _amount(allowance.amount_cents)
        charge.reason_code = allowance.reason_code
        charge.reason = allowance.reason
        category = CategoryTradeTax()
        _tax(category, allowance.category, allowance.rate_basis_points)
        charge.trade_tax.add(category)
        settlement.allowance_charge.add(charge)
    if document.payment_terms or document.due_date:
        terms = PaymentTerms()
        if document.payment_terms:
            terms.description = document.payment_terms
        if document.due_date:
            terms.due = document.due_date
        settlement.terms.add(terms)
    totals = document.totals
    summation = settlement.monetary_summation
    summation.line_total = _amount(totals.line_total_cents)
    summation.charge_total = _amount(totals.charge_total_cents)
    summation.allowance_total = _amount(totals.allowance_total_cents)
    summation.tax_basis_total = _amount(totals.tax_exclusive_cents)
    summation.tax_total = (_amount(totals.tax_total_cents), document.currency)
    if document.vat_accounting_currency and totals.tax_total_accounting_cents is not None:
        summation.tax_total_other_currency.add((_amount(totals.tax_total_accounting_cents),
                                                document.vat_accounting_currency))
    summation.grand_total = _amount(totals.tax_inclusive_cents)
    summation.prepaid_total = _amount(totals.prepaid_cents)
    summation.due_amount = _amount(totals.payable_cents)
    if document.type_code == CREDIT_NOTE and document.preceding_invoice:
        settlement.invoice_referenced_document.issuer_assigned_id = document.preceding_invoice
        if document.preceding_invoice_date:
            settlement.invoice_referenced_document.issue_date_time = document.preceding_invoice_date

    for line in document.lines:
        item = LineItem()
        item.document.line_id = line.id
        if line.note:
            item.document.notes.add(IncludedNote(content=line.note))
        item.product.name = line.name
        if line.description:
            item.product.description = line.description
        item.agreement.net.amount = Decimal(format_micros(line.unit_price_micros))
        item.delivery.billed_quantity = (Decimal(line.quantity), line.unit_code)
        _tax(item.settlement.trade_tax, line.category, line.rate_basis_points)
        item.settlement.monetary_summation.total_amount = _amount(line.net_cents)
        doc.trade.items.add(item)
    result: bytes = doc.serialize(schema=SCHEMA)
    return result
