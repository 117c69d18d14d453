"""Fail closed: an invoice whose e-invoice fails EN 16931 is not issued. The outbox keeps the
message as a dead letter naming the rule, at once (a retry would fail the same way), and nothing
was created anywhere: no legal document, no hosted invoice, no email."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from adapters.fakes import in_memory_billing
from billing_core import services
from billing_core.outbox import OutboxStatus, OutboxTopic
from tests.support.customers import BERLIN, give_invoice_address, sign_up
from tests.unit.domain_builders import DOLLAR


def test_an_invoice_without_the_buyers_address_is_dead_lettered_naming_the_rule() -> None:
    billing = in_memory_billing(datetime(2026, 3, 10, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx)
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=5 * DOLLAR, description="g",
                                  idempotency_key="g")
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=50).allowed
    billing.clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-03").invoice_ids[0]

    report = services.dispatch.dispatch(ctx, billing.deliverers)

    assert (report.sent, report.retried, report.dead) == (0, 0, 1)
    [dead] = services.dispatch.dead_letters(ctx, organization_id=org_id)
    assert dead.topic == OutboxTopic.LEGAL_INVOICE and dead.attempts == 1
    assert dead.last_error is not None and "BR-10" in dead.last_error and "BR-11" in dead.last_error
    assert billing.legal.issued == {} and billing.mailer.sent == []
    invoice = services.invoicing.get_invoice(ctx, owner, organization_id=org_id, invoice_id=invoice_id)
    assert invoice.legal_document_id is None and invoice.hosted_invoice_url is None
    with ctx.uow() as uow:
        assert uow.outbox.list(status=OutboxStatus.PENDING) == []


def test_an_invoice_that_validates_is_issued_with_its_terms() -> None:
    billing = in_memory_billing(datetime(2026, 3, 10, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx)
    give_invoice_address(ctx, owner, org_id)
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=5 * DOLLAR, description="g",
                                  idempotency_key="g")
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=50).allowed
    billing.clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-03").invoice_ids[0]
    assert services.dispatch.dispatch(ctx, billing.deliverers).sent == 1
    terms = billing.legal.documents[str(invoice_id)]
    invoice = services.invoicing.get_invoice(ctx, owner, organization_id=org_id, invoice_id=invoice_id)
    assert terms.totals.payable_cents == invoice.amount_due.cents and terms.buyer.name == "Acme GmbH"
    assert invoice.legal_document_id is not None


def test_once_the_address_is_fixed_the_operator_requeues_the_dead_letter_and_it_is_issued() -> None:
    billing = in_memory_billing(datetime(2026, 3, 10, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx)
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=5 * DOLLAR, description="g",
                                  idempotency_key="g")
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=50).allowed
    billing.clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-03").invoice_ids[0]
    assert services.dispatch.dispatch(ctx, billing.deliverers).dead == 1
    [dead] = services.dispatch.dead_letters(ctx, organization_id=org_id)

    give_invoice_address(ctx, owner, org_id)
    assert services.dispatch.requeue_dead_letters(ctx, organization_id=org_id) == [dead.id]
    assert services.dispatch.requeue_dead_letters(ctx, message_ids=[dead.id]) == []  # once

    assert services.dispatch.dispatch(ctx, billing.deliverers).sent == 1
    assert services.dispatch.dead_letters(ctx) == []
    assert str(invoice_id) in billing.legal.documents


def test_the_xml_of_an_issued_invoice_keeps_the_buyer_it_was_issued_to() -> None:
    """The legal invoice is what was issued: a buyer who moves afterwards still downloads the
    e-invoice with the address it states (the terms are kept at issue), in both syntaxes."""
    billing = in_memory_billing(datetime(2026, 3, 10, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx)
    give_invoice_address(ctx, owner, org_id)
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=5 * DOLLAR, description="g",
                                  idempotency_key="g")
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=50).allowed
    billing.clock.set(datetime(2026, 4, 2, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-03").invoice_ids[0]
    assert services.dispatch.dispatch(ctx, billing.deliverers).sent == 1

    give_invoice_address(ctx, owner, org_id, msgspec.structs.replace(BERLIN, address_1="Neue Allee 99",
                                                                    city="Hamburg", postal_code="20095"))
    renderer = billing.deliverers.einvoice
    assert renderer is not None
    for syntax in ("cii", "xrechnung-ubl"):
        xml = services.einvoicing.einvoice_xml(ctx, renderer, owner, organization_id=org_id,
                                               invoice_id=invoice_id, syntax=syntax).xml
        assert "Torstraße 1".encode() in xml and b"Berlin" in xml
        assert b"Neue Allee" not in xml and b"Hamburg" not in xml
    with ctx.uow() as uow:
        kept = uow.invoices.issued_einvoice(org_id, invoice_id)
        assert kept is not None and kept == billing.legal.documents[str(invoice_id)]
        assert not uow.invoices.record_einvoice(org_id, invoice_id, kept)  # once
