"""EasyBillLegalInvoicing against the local EasyBill stub: payload shapes, idempotency, errors."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import msgspec
import pytest

from adapters.easybill.legal_invoicing import CREDIT_POSITION_TEXT, EasyBillLegalInvoicing, net_for_gross, vat_cents
from billing_core import einvoice
from billing_core.errors import InvalidInput, NotFound, ProviderUnavailable
from billing_core.invoices import Invoice
from billing_core.money import MICROS_PER_CENT
from billing_core.tax import REVERSE_CHARGE_NOTE, TaxConfig, TaxTreatment, tax_line
from tests.support import delivery
from tests.support.easybill_stub import EINVOICE_TEMPLATE, EasyBillStub


@pytest.fixture
def stub() -> Iterator[EasyBillStub]:
    with EasyBillStub() as running:
        yield running


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def easybill(stub: EasyBillStub, sleeps: Sleeps) -> Iterator[EasyBillLegalInvoicing]:
    adapter = EasyBillLegalInvoicing(stub.api_key, base_url=stub.base_url, sleep=sleeps)
    yield adapter
    adapter.close()


def test_issue_creates_the_customer_from_the_invoice_address(stub: EasyBillStub,
                                                             easybill: EasyBillLegalInvoicing) -> None:
    org = delivery.organization()
    easybill.issue(delivery.invoice(), org, delivery.address("DE"), "ap@acme.example")

    [customer] = stub.customers.values()
    assert customer["number"] == str(org.id)
    assert customer["company_name"] == "Acme Robotics GmbH"
    assert (customer["street"], customer["suffix_1"]) == ("Torstrasse 12", "Building 3")
    assert (customer["zip_code"], customer["city"], customer["country"]) == ("20095", "Hamburg", "DE")
    assert customer["emails"] == ["ap@acme.example"]
    assert all(r.headers["authorization"] == f"Bearer {stub.api_key}" for r in stub.requests)


def test_issue_posts_an_invoice_with_positions_and_finalizes_it(stub: EasyBillStub,
                                                                easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice()
    document = easybill.issue(inv, delivery.organization(), delivery.address("DE"), None)

    [create] = stub.calls("POST", "/documents")
    body = create.body
    assert body["type"] == "INVOICE"
    assert body["external_id"] == str(inv.id)
    assert body["currency"] == "EUR"
    assert body["document_date"] == "2026-03-01"
    assert body["due_in_days"] == 14
    assert body["vat_option"] is None
    assert "is_draft" not in body and "number" not in body
    assert "PO number: PO-4711" in body["text"]
    assert "Usage from 2026-02-01 to 2026-02-28." in body["text"]
    tokens, storage = body["items"]
    assert tokens["description"].startswith(f"GPU inference (project {delivery.PROJECT_ID})")
    assert (tokens["quantity"], tokens["single_price_net"]) == (1, inv.items[0].amount.cents)
    assert "1,234,567 token at EUR 0.00002 per token" in tokens["description"]
    assert storage == {"type": "POSITION", "position": 2, "description": "Object storage (all projects)",
                       "quantity": 3, "unit": "GB-month", "single_price_net": 5, "vat_percent": 19}
    assert tokens["vat_percent"] == 19

    assert len(stub.calls("PUT", r"/documents/\d+/done")) == 1
    stored = stub.documents[int(document.document_id)]
    assert stored["is_draft"] is False
    assert document.number == stored["number"] == "RE-00001"
    assert stored["amount"] == inv.amount_due.cents


def test_single_price_net_is_pinned_to_integer_cents(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    """EasyBill leaves the unit of ``single_price_net`` open; we send integer cents and the stub
    computes totals as cents: 7 × 1.25 EUR is single_price_net 125 and total_price_net 875."""
    items = (delivery.item("Build minutes", 7, "minute", 125 * MICROS_PER_CENT),)
    inv = delivery.invoice(items=items, treatment=TaxTreatment.NO_VAT)
    document = easybill.issue(inv, delivery.organization(), delivery.address("US"), None)

    [position] = stub.calls("POST", "/documents")[0].body["items"]
    assert position["single_price_net"] == 125 and type(position["single_price_net"]) is int
    assert position["quantity"] == 7
    stored = stub.documents[int(document.document_id)]
    assert stored["items"][0]["total_price_net"] == 875
    assert stored["amount_net"] == stored["amount"] == 875 == inv.amount_due.cents


def test_sub_cent_prices_become_one_position_worth_the_rounded_line(stub: EasyBillStub,
                                                                    easybill: EasyBillLegalInvoicing) -> None:
    items = (delivery.item("Embeddings", 33_333, "request", 15),)  # 0.499995 EUR, rounded once to 50 cents
    inv = delivery.invoice(items=items, treatment=TaxTreatment.NO_VAT)
    easybill.issue(inv, delivery.organization(), delivery.address("US"), None)
    [position] = stub.calls("POST", "/documents")[0].body["items"]
    assert (position["quantity"], position["single_price_net"]) == (1, 50)
    assert "33,333 request at EUR 0.000015 per request" in position["description"]


def test_reverse_charge_sets_the_vat_option_and_the_note(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice(treatment=TaxTreatment.REVERSE_CHARGE)
    document = easybill.issue(inv, delivery.organization(), delivery.address("AT"), None)
    body = stub.calls("POST", "/documents")[0].body
    assert body["vat_option"] == "nStbUstID"
    assert {p["vat_percent"] for p in body["items"]} == {0}
    assert REVERSE_CHARGE_NOTE in body["text"]
    assert stub.documents[int(document.document_id)]["amount"] == inv.amount_due.cents


def test_buyers_outside_the_eu_are_not_taxable(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    easybill.issue(delivery.invoice(treatment=TaxTreatment.NO_VAT), delivery.organization(),
                   delivery.address("US"), None)
    assert stub.calls("POST", "/documents")[0].body["vat_option"] == "nStb"


def test_credits_applied_are_a_negative_position_so_easybill_totals_match(
        stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice(credit_cents=1000)
    document = easybill.issue(inv, delivery.organization(), delivery.address("DE"), None)
    body = stub.calls("POST", "/documents")[0].body
    credit = body["items"][-1]
    assert credit == {"type": "POSITION", "position": 3, "description": CREDIT_POSITION_TEXT, "quantity": 1,
                      "single_price_net": -1000, "vat_percent": 19}
    assert "Credits applied: EUR 10.00" in body["text"]
    stored = stub.documents[int(document.document_id)]
    assert stored["amount_net"] == inv.subtotal_cents - 1000
    assert stored["amount"] == inv.amount_due.cents


def test_pdf_fetches_the_document_as_pdf(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    document = easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    pdf = easybill.pdf(document.document_id)
    assert pdf == EasyBillStub.pdf_bytes(stub.documents[int(document.document_id)])
    [call] = stub.calls("GET", r"/documents/\d+/pdf")
    assert call.headers["accept"] == "application/pdf"


def test_pdf_of_an_unknown_document_is_not_found(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    with pytest.raises(NotFound):
        easybill.pdf("99999")
    with pytest.raises(NotFound):
        easybill.pdf("../customers")
    assert len(stub.requests) == 1  # the malformed id never reaches EasyBill


def test_reissue_finds_the_document_by_external_id(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    inv, org = delivery.invoice(), delivery.organization()
    first = easybill.issue(inv, org, delivery.address(), None)
    second = easybill.issue(inv, org, delivery.address(), None)
    assert first == second
    assert len(stub.calls("POST", "/documents")) == 1
    assert len(stub.calls("POST", "/customers")) == 1
    assert len(stub.calls("PUT", r"/documents/\d+/done")) == 1


def test_a_draft_left_by_an_interrupted_issue_is_finalized_not_duplicated(
        stub: EasyBillStub, easybill: EasyBillLegalInvoicing, sleeps: Sleeps) -> None:
    inv, org = delivery.invoice(), delivery.organization()
    stub.fail_next(503, times=3, method="PUT", path=r"/documents/\d+/done")
    with pytest.raises(ProviderUnavailable):
        easybill.issue(inv, org, delivery.address(), None)
    [draft] = stub.documents.values()
    assert draft["is_draft"] is True

    document = easybill.issue(inv, org, delivery.address(), None)
    assert document.document_id == str(draft["id"]) and document.number == "RE-00001"
    assert len(stub.calls("POST", "/documents")) == 1


def test_the_customer_is_reused_and_its_address_kept_current(stub: EasyBillStub,
                                                            easybill: EasyBillLegalInvoicing) -> None:
    org = delivery.organization()
    easybill.issue(delivery.invoice(), org, delivery.address("DE"), "ap@acme.example")
    easybill.issue(delivery.invoice(number="INV-000043"), org, delivery.address("DE", company="Acme AG"),
                   "ap@acme.example")
    assert len(stub.customers) == 1
    assert len(stub.calls("POST", "/customers")) == 1
    [update] = stub.calls("PUT", r"/customers/\d+")
    assert update.body["company_name"] == "Acme AG"
    assert {d["customer_id"] for d in stub.documents.values()} == set(stub.customers)


def test_without_an_address_the_customer_is_the_organization(stub: EasyBillStub,
                                                             easybill: EasyBillLegalInvoicing) -> None:
    easybill.issue(delivery.invoice(), delivery.organization("Solo Dev"), None, None)
    [customer] = stub.customers.values()
    assert customer["company_name"] == "Solo Dev"
    assert customer["emails"] == []


def test_partial_credit_note_references_the_invoice_and_is_idempotent(
        stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    invoice_document = easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    first = easybill.credit_note(invoice_document.document_id, amount_cents=1190, reason="Goodwill credit",
                                 idempotency_key="credit-note:1")
    again = easybill.credit_note(invoice_document.document_id, amount_cents=1190, reason="Goodwill credit",
                                 idempotency_key="credit-note:1")
    assert first == again
    credit = stub.documents[int(first.document_id)]
    assert credit["type"] == "CREDIT" and credit["is_draft"] is False
    assert credit["ref_id"] == int(invoice_document.document_id)
    assert credit["external_id"] == "credit-note:1"
    assert credit["items"][0]["single_price_net"] == 1000  # 10.00 net + 19 % = 11.90 gross, exactly
    assert credit["amount"] == 1190
    assert first.number == "GS-00001"
    assert len(stub.calls("POST", "/documents")) == 2


def test_a_full_credit_cancels_the_invoice_once(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice(credit_cents=500)
    invoice_document = easybill.issue(inv, delivery.organization(), delivery.address(), None)
    # The core voids with the invoice total (before credits), which is more than the document's amount.
    storno = easybill.credit_note(invoice_document.document_id, amount_cents=inv.total.cents, reason="voided",
                                  idempotency_key="credit-note:void")
    assert easybill.credit_note(invoice_document.document_id, amount_cents=inv.total.cents, reason="voided",
                                idempotency_key="credit-note:void") == storno
    assert easybill.credit_note(invoice_document.document_id, amount_cents=inv.total.cents, reason="voided",
                                idempotency_key="credit-note:another") == storno
    cancelled = stub.documents[int(storno.document_id)]
    assert cancelled["type"] == "STORNO" and cancelled["ref_id"] == int(invoice_document.document_id)
    assert cancelled["amount"] == -inv.amount_due.cents
    assert stub.documents[int(invoice_document.document_id)]["cancel_id"] == cancelled["id"]
    assert storno.number == "ST-00001"
    assert len(stub.calls("POST", r"/documents/\d+/cancel")) == 1


def test_after_a_partial_credit_a_void_credits_only_the_rest(stub: EasyBillStub,
                                                              easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice(treatment=TaxTreatment.NO_VAT)
    invoice_document = easybill.issue(inv, delivery.organization(), delivery.address("US"), None)
    easybill.credit_note(invoice_document.document_id, amount_cents=100, reason="goodwill", idempotency_key="a")
    rest = easybill.credit_note(invoice_document.document_id, amount_cents=inv.total.cents, reason="void",
                                idempotency_key="b")
    assert stub.documents[int(rest.document_id)]["amount"] == inv.amount_due.cents - 100
    assert stub.calls("POST", r"/documents/\d+/cancel") == []
    with pytest.raises(InvalidInput):
        easybill.credit_note(invoice_document.document_id, amount_cents=1, reason="more", idempotency_key="c")


def test_credit_notes_of_unknown_documents_are_not_found(easybill: EasyBillLegalInvoicing) -> None:
    with pytest.raises(NotFound):
        easybill.credit_note("424242", amount_cents=100, reason="x", idempotency_key="k")


def test_429_is_retried_honoring_retry_after_then_succeeds(stub: EasyBillStub, easybill: EasyBillLegalInvoicing,
                                                          sleeps: Sleeps) -> None:
    stub.fail_next(429, times=2, retry_after="1")
    document = easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    assert document.number == "RE-00001"
    assert sleeps.calls == [1, 1]


def test_429_after_bounded_retries_is_provider_unavailable(stub: EasyBillStub, easybill: EasyBillLegalInvoicing,
                                                          sleeps: Sleeps) -> None:
    stub.fail_next(429, times=10, retry_after="30")
    with pytest.raises(ProviderUnavailable, match="rate limit"):
        easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    assert len(stub.requests) == 3  # max_attempts
    assert sleeps.calls == [2, 2]  # Retry-After capped at 2 s
    assert stub.documents == {}


def test_a_post_answered_with_500_is_not_retried_in_the_call(stub: EasyBillStub, easybill: EasyBillLegalInvoicing,
                                                             sleeps: Sleeps) -> None:
    stub.fail_next(500, times=1, method="POST", path="/documents")
    with pytest.raises(ProviderUnavailable, match="server error 500"):
        easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    assert len(stub.calls("POST", "/documents")) == 1
    assert sleeps.calls == []


def test_a_get_answered_with_500_is_retried_then_gives_up(stub: EasyBillStub, easybill: EasyBillLegalInvoicing,
                                                          sleeps: Sleeps) -> None:
    stub.fail_next(500, times=3, method="GET")
    with pytest.raises(ProviderUnavailable):
        easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    assert len(stub.requests) == 3
    assert sleeps.calls == [0.25, 0.5]


def test_validation_errors_are_invalid_input(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    stub.fail_next(422, method="POST", path="/documents", message="items.0.vat_percent is invalid")
    with pytest.raises(InvalidInput, match=r"vat_percent is invalid"):
        easybill.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)


def test_a_wrong_api_key_is_provider_unavailable_and_the_key_is_not_shown(stub: EasyBillStub) -> None:
    adapter = EasyBillLegalInvoicing("wrong-key", base_url=stub.base_url)
    with pytest.raises(ProviderUnavailable, match="401") as caught:
        adapter.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
    assert "wrong-key" not in str(caught.value) and "wrong-key" not in repr(adapter)
    adapter.close()


def test_an_unreachable_easybill_is_provider_unavailable(sleeps: Sleeps) -> None:
    adapter = EasyBillLegalInvoicing("k", base_url=f"http://127.0.0.1:{delivery.free_port()}/rest/v1", sleep=sleeps)
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        adapter.pdf("1")
    adapter.close()


@pytest.mark.parametrize("gross", [1, 2, 99, 119, 1190, 1191, 123457])
def test_net_for_gross_adds_back_to_the_gross_amount(gross: int) -> None:
    rate = Decimal(19)
    net = net_for_gross(gross, rate)
    assert abs(net + vat_cents(net, rate) - gross) <= 1
    near = gross * 100 // 119
    exact = [n for n in range(max(near - 3, 0), near + 4) if n + vat_cents(n, rate) == gross]
    if exact:
        assert net + vat_cents(net, rate) == gross


def test_fractional_vat_rates_are_sent_as_exact_decimals(stub: EasyBillStub, easybill: EasyBillLegalInvoicing) -> None:
    inv = delivery.invoice()
    inv.tax = tax_line(inv.subtotal_cents, "DE", False, TaxConfig(domestic_vat_basis_points=750))
    document = easybill.issue(inv, delivery.organization(), delivery.address(), None)
    body = stub.calls("POST", "/documents")[0].body
    assert {p["vat_percent"] for p in body["items"]} == {Decimal("7.5")}
    assert stub.documents[int(document.document_id)]["amount"] == inv.amount_due.cents


def test_the_buyers_verified_vat_id_goes_on_the_customer(stub: EasyBillStub,
                                                         easybill: EasyBillLegalInvoicing) -> None:
    easybill.issue(delivery.invoice(), delivery.organization(), delivery.address("FR"), None, "FR40303265045")
    [customer] = stub.customers.values()
    assert customer["vat_identifier"] == "FR40303265045"


def _terms(invoice: Invoice) -> einvoice.EInvoice:
    return einvoice.from_invoice(invoice, organization=delivery.organization(), address=delivery.address("DE"),
                                 billing_email=None, buyer_tax_id=None, seller=einvoice.DEMO_SELLER)


def test_the_einvoice_template_is_requested_and_what_comes_back_is_checked(stub: EasyBillStub,
                                                                           sleeps: Sleeps) -> None:
    adapter = EasyBillLegalInvoicing(stub.api_key, base_url=stub.base_url, sleep=sleeps,
                                     einvoice_template=EINVOICE_TEMPLATE)
    inv = delivery.invoice()
    adapter.issue(inv, delivery.organization(), delivery.address("DE"), None, None, _terms(inv))
    [create] = stub.calls("POST", "/documents")
    assert create.body["pdf_template"] == EINVOICE_TEMPLATE
    assert stub.calls("GET", r"/documents/\d+/pdf"), "the returned e-invoice was not checked"
    adapter.close()


def test_a_document_without_an_einvoice_or_with_other_totals_is_refused(stub: EasyBillStub, sleeps: Sleeps) -> None:
    plain = EasyBillLegalInvoicing(stub.api_key, base_url=stub.base_url, sleep=sleeps, einvoice_template="PLAIN")
    inv = delivery.invoice()
    with pytest.raises(einvoice.EInvoiceInvalid, match="fails FACTUR-X"):
        plain.issue(inv, delivery.organization(), delivery.address("DE"), None, None, _terms(inv))
    other = EasyBillLegalInvoicing(stub.api_key, base_url=stub.base_url, sleep=sleeps,
                                   einvoice_template=EINVOICE_TEMPLATE)
    terms = _terms(inv)
    wrong = msgspec.structs.replace(terms, totals=msgspec.structs.replace(
        terms.totals, payable_cents=terms.totals.payable_cents + 1))
    second = delivery.invoice()
    with pytest.raises(einvoice.EInvoiceInvalid, match="BR-CO-16"):
        other.issue(second, delivery.organization(), delivery.address("DE"), None, None, wrong)
    plain.close()
    other.close()
