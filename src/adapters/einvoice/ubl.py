"""OASIS UBL 2.1 Invoice / CreditNote (XRechnung 3.0, the UBL syntax) from an
:class:`~billing_core.einvoice.EInvoice`, built with lxml's ElementMaker (no string templates).

Element order follows the UBL 2.1 schema (xsd:sequence), which :func:`adapters.einvoice.xsd.check_ubl`
verifies. Amounts are formatted from integer cents; a credit note states its amounts positive."""

from __future__ import annotations

from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from billing_core.einvoice import (
    CREDIT_NOTE,
    EInvoice,
    Party,
    VatCategory,
    format_cents,
    format_micros,
    format_rate,
)

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

cac = ElementMaker(namespace=NS_CAC, nsmap={"cac": NS_CAC})
cbc = ElementMaker(namespace=NS_CBC, nsmap={"cbc": NS_CBC})

Element = Any
"""lxml elements (lxml ships no type information that mypy --strict reads)."""


def _amount(tag: str, cents: int, currency: str) -> Element:
    return getattr(cbc, tag)(format_cents(cents), currencyID=currency)


def _address(party: Party) -> Element:
    address = party.address
    children: list[Element] = []
    if address is not None:
        if address.line_1:
            children.append(cbc.StreetName(address.line_1))
        if address.line_2:
            children.append(cbc.AdditionalStreetName(address.line_2))
        if address.city:
            children.append(cbc.CityName(address.city))
        if address.postal_code:
            children.append(cbc.PostalZone(address.postal_code))
        if address.region:
            children.append(cbc.CountrySubentity(address.region))
        if address.country:
            children.append(cac.Country(cbc.IdentificationCode(address.country)))
    return cac.PostalAddress(*children)


def _party(party: Party, *, seller: bool) -> Element:
    children: list[Element] = []
    if party.electronic_address:
        children.append(cbc.EndpointID(party.electronic_address, schemeID="EM"))
    children.append(cac.PartyName(cbc.Name(party.name)))
    children.append(_address(party))
    if party.vat_id:
        children.append(cac.PartyTaxScheme(cbc.CompanyID(party.vat_id), cac.TaxScheme(cbc.ID("VAT"))))
    if seller and party.tax_number:
        children.append(cac.PartyTaxScheme(cbc.CompanyID(party.tax_number), cac.TaxScheme(cbc.ID("FC"))))
    legal = [cbc.RegistrationName(party.name)]
    if party.legal_registration_id:
        legal.append(cbc.CompanyID(party.legal_registration_id))
    children.append(cac.PartyLegalEntity(*legal))
    if seller and (party.contact_name or party.contact_phone or party.contact_email):
        contact: list[Element] = []
        if party.contact_name:
            contact.append(cbc.Name(party.contact_name))
        if party.contact_phone:
            contact.append(cbc.Telephone(party.contact_phone))
        if party.contact_email:
            contact.append(cbc.ElectronicMail(party.contact_email))
        children.append(cac.Contact(*contact))
    return cac.Party(*children)


def _category(tag: str, category: VatCategory, rate_basis_points: int, *, reason: str | None = None,
              reason_code: str | None = None) -> Element:
    children: list[Element] = [cbc.ID(category.value)]
    if category != VatCategory.NOT_SUBJECT:  # BR-O-05: no rate for "not subject to VAT"
        children.append(cbc.Percent(format_rate(rate_basis_points)))
    if reason_code:
        children.append(cbc.TaxExemptionReasonCode(reason_code))
    if reason:
        children.append(cbc.TaxExemptionReason(reason))
    children.append(cac.TaxScheme(cbc.ID("VAT")))
    return getattr(cac, tag)(*children)


def to_ubl(document: EInvoice) -> bytes:
    """The document as UBL 2.1 XML bytes (UTF-8): an Invoice, or a CreditNote for type 381."""
    credit = document.type_code == CREDIT_NOTE
    root_ns = NS_CREDIT_NOTE if credit else NS_INVOICE
    root = ElementMaker(namespace=root_ns, nsmap={None: root_ns, "cac": NS_CAC, "cbc": NS_CBC})
    currency = document.currency
    children: list[Element] = [cbc.CustomizationID(document.specification)]
    if document.business_process:
        children.append(cbc.ProfileID(document.business_process))
    children += [cbc.ID(document.number), cbc.IssueDate(document.issue_date.isoformat())]
    if document.due_date and not credit:
        children.append(cbc.DueDate(document.due_date.isoformat()))
    children.append(cbc.CreditNoteTypeCode(document.type_code) if credit
                    else cbc.InvoiceTypeCode(document.type_code))
    children += [cbc.Note(text) for text in document.notes]
    children.append(cbc.DocumentCurrencyCode(currency))
    if document.vat_accounting_currency:
        children.append(cbc.TaxCurrencyCode(document.vat_accounting_currency))
    if document.buyer_reference:
        children.append(cbc.BuyerReference(document.buyer_reference))
    children.append(cac.InvoicePeriod(cbc.StartDate(document.period_start.isoformat()),
                                      cbc.EndDate(document.period_end.isoformat())))
    if document.preceding_invoice:
        reference = [cbc.ID(document.preceding_invoice)]
        if document.preceding_invoice_date:
            reference.append(cbc.IssueDate(document.preceding_invoice_date.isoformat()))
        children.append(cac.BillingReference(cac.InvoiceDocumentReference(*reference)))
    children.append(cac.AccountingSupplierParty(_party(document.seller, seller=True)))
    children.append(cac.AccountingCustomerParty(_party(document.buyer, seller=False)))
    means: list[Element] = [cbc.PaymentMeansCode(document.payment_means_code)]
    if document.remittance_information:
        means.append(cbc.PaymentID(document.remittance_information))
    if document.payee_iban:
        account: list[Element] = [cbc.ID(document.payee_iban)]
        if document.payee_account_name:
            account.append(cbc.Name(document.payee_account_name))
        if document.payee_bic:
            account.append(cac.FinancialInstitutionBranch(cbc.ID(document.payee_bic)))
        means.append(cac.PayeeFinancialAccount(*account))
    children.append(cac.PaymentMeans(*means))
    if document.payment_terms:
        children.append(cac.PaymentTerms(cbc.Note(document.payment_terms)))
    for allowance in document.allowances:
        children.append(cac.AllowanceCharge(
            cbc.ChargeIndicator("false"), cbc.AllowanceChargeReasonCode(allowance.reason_code),
            cbc.AllowanceChargeReason(allowance.reason), _amount("Amount", allowance.amount_cents, currency),
            _category("TaxCategory", allowance.category, allowance.rate_basis_points)))
    totals = document.totals
    subtotals = [cac.TaxSubtotal(
        _amount("TaxableAmount", row.taxable_cents, currency), _amount("TaxAmount", row.tax_cents, currency),
        _category("TaxCategory", row.category, row.rate_basis_points, reason=row.exemption_reason,
                  reason_code=row.exemption_code)) for row in document.vat_breakdown]
    children.append(cac.TaxTotal(_amount("TaxAmount", totals.tax_total_cents, currency), *subtotals))
    if document.vat_accounting_currency and totals.tax_total_accounting_cents is not None:
        children.append(cac.TaxTotal(_amount("TaxAmount", totals.tax_total_accounting_cents,
                                             document.vat_accounting_currency)))
    children.append(cac.LegalMonetaryTotal(
        _amount("LineExtensionAmount", totals.line_total_cents, currency),
        _amount("TaxExclusiveAmount", totals.tax_exclusive_cents, currency),
        _amount("TaxInclusiveAmount", totals.tax_inclusive_cents, currency),
        _amount("AllowanceTotalAmount", totals.allowance_total_cents, currency),
        _amount("ChargeTotalAmount", totals.charge_total_cents, currency),
        _amount("PrepaidAmount", totals.prepaid_cents, currency),
        _amount("PayableRoundingAmount", totals.rounding_cents, currency),
        _amount("PayableAmount", totals.payable_cents, currency)))
    for line in document.lines:
        line_children: list[Element] = [cbc.ID(line.id)]
        if line.note:
            line_children.append(cbc.Note(line.note))
        quantity_tag = "CreditedQuantity" if credit else "InvoicedQuantity"
        line_children.append(getattr(cbc, quantity_tag)(str(line.quantity), unitCode=line.unit_code))
        line_children.append(_amount("LineExtensionAmount", line.net_cents, currency))
        item: list[Element] = []
        if line.description:
            item.append(cbc.Description(line.description))
        item.append(cbc.Name(line.name))
        item.append(_category("ClassifiedTaxCategory", line.category, line.rate_basis_points))
        line_children.append(cac.Item(*item))
        line_children.append(cac.Price(cbc.PriceAmount(format_micros(line.unit_price_micros), currencyID=currency)))
        line_children.append(getattr(cac, "CreditNoteLine" if credit else "InvoiceLine")(*line_children))
        children.append(line_children.pop())
    element = getattr(root, "CreditNote" if credit else "Invoice")(*children)
    result: bytes = etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return result
