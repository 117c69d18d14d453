"""SIGKILL in the middle of outbox dispatch and of webhook processing; a restart finishes the job.

Dispatch: about 40 outbox messages (legal invoices rendered by ``LocalPdfLegalInvoicing`` and emails
written as ``.eml`` files by ``ConsoleMailer``) are delivered by a subprocess that is killed after a
few deliveries. A second run (its clock past the claim lease) delivers the rest: every message ends
SENT, every legal invoice document exists once, and each email arrived at least once, duplicates
only for messages the killed run had claimed but not marked sent.

Webhooks: a subprocess handles a stream of provider events (payments settling, refunds, a dispute,
subscription status changes, redeliveries) and is killed part-way. A restart replays ALL events:
the final state equals a clean single run, and every event the killed run acknowledged is answered
``duplicate``.
"""

from __future__ import annotations

import email
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from adapters.email.console import ConsoleMailer
from adapters.fakes import FixedClock, InMemoryPaymentProvider, InMemoryWebhookSender
from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
from adapters.pdf.rendering import SellerDetails
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.testing.storage import SqlKind, migrated_database
from billing_core import Permission, Role, services
from billing_core.catalog import load_catalog
from billing_core.invoices import Invoice
from billing_core.outbox import OutboxMessage, OutboxStatus
from billing_core.permissions import Actor
from billing_core.ports import EmailMessage, LegalDocument
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import CLAIM_LEASE, Deliverers
from billing_core.services.notifications import enqueue_email
from tests.support.processes import worker

pytestmark = pytest.mark.timeout(40)

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DOLLAR = 1_000_000
INVOICES = 12
NOTICES = 28
SELLER = SellerDetails(name="billing-core demo GmbH", address_1="Hauptstr. 1", postal_code="10115", city="Berlin",
                       country="DE")
ORG_ID = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
PAYMENTS = 10


# --------------------------------------------------------------------------- shared helpers


def _context(url: str, schema: str, at: datetime, payments: InMemoryPaymentProvider | None = None,
             ) -> tuple[BillingContext, Engine]:
    engine = make_engine(url, schema=schema or None)
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(at), catalog=load_catalog(),
                         payments=payments or InMemoryPaymentProvider())
    return ctx, engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> SqlKind:
    value: SqlKind = request.param
    return value


# --------------------------------------------------------------------------- the worker process


class _Slow:
    """Wraps a deliverer: announce each delivery on stdout, then pause so a kill lands mid-run."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def send(self, message: EmailMessage) -> None:
        self.inner.send(message)
        print(f"mail {message.subject}", flush=True)
        time.sleep(self.delay)

    def issue(self, invoice: Invoice, *args: Any) -> LegalDocument:
        document: LegalDocument = self.inner.issue(invoice, *args)
        print(f"legal {invoice.id}", flush=True)
        time.sleep(self.delay)
        return document

    def pdf(self, document_id: str) -> bytes:
        data: bytes = self.inner.pdf(document_id)
        return data

    def credit_note(self, document_id: str, **kwargs: Any) -> LegalDocument:
        document: LegalDocument = self.inner.credit_note(document_id, **kwargs)
        return document


def main(*argv: str) -> None:
    """The child: ``dispatch`` the outbox, or handle the ``events`` in a file, printing each step."""
    mode, url, schema, at = argv[0], argv[1], argv[2], datetime.fromisoformat(argv[3])
    delay = float(argv[4])
    ctx, engine = _context(url, schema, at)
    try:
        if mode == "dispatch":
            mail_dir, legal_dir = Path(argv[5]), Path(argv[6])
            deliverers = Deliverers(mailer=_Slow(ConsoleMailer(mail_dir), delay), webhooks=InMemoryWebhookSender(),
                                    legal=_Slow(LocalPdfLegalInvoicing(legal_dir, seller=SELLER), delay))
            while True:
                report = services.dispatch.dispatch(ctx, deliverers)
                if report.sent + report.retried + report.dead == 0:
                    break
                assert report.retried == report.dead == 0, report
        else:
            events = json.loads(Path(argv[5]).read_text())
            for index, (payload, signature) in enumerate(events):
                result = services.provider_events.handle_event(ctx, payload.encode(), signature)
                print(f"{index} {result.event_id} {result.outcome}", flush=True)
                time.sleep(delay)
        print("done", flush=True)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- dispatch


def _seed_outbox(ctx: BillingContext) -> set[str]:
    """INVOICES organizations with a closed February (a legal invoice each) and NOTICES emails.
    Returns the subjects of the notices."""
    org_ids: list[uuid.UUID] = []
    for n in range(INVOICES):
        org = services.organizations.create_organization(ctx, name=f"Kunde {n}", owner_user_id=f"u{n}",
                                                         owner_email=f"billing{n}@example.com")
        owner = Actor(organization_id=org.id, subject=f"user:u{n}", role=Role.PRIMARY_OWNER)
        platform = Actor(organization_id=org.id, subject="token:p", scopes=frozenset({Permission.USAGE_WRITE}))
        services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                         project_id=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
        services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=20 * DOLLAR, description="Trial",
                                      idempotency_key="trial")
        outcome = services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="feb",
                                              product="compute", quantity=100 + n,
                                              occurred_at=datetime(2026, 2, 10, tzinfo=UTC))
        assert outcome.allowed, outcome
        org_ids.append(org.id)
    assert services.invoicing.close_period(ctx, period="2026-02").invoices_created == INVOICES
    subjects: set[str] = set()
    with ctx.uow() as uow:
        for k in range(NOTICES):
            assert enqueue_email(uow, organization_id=org_ids[k % INVOICES], to=f"ops{k}@example.com",
                                 subject=f"Notice {k}", text=f"Notice number {k}", now=NOW, dedupe_key=f"notice-{k}")
            subjects.add(f"Notice {k}")
        uow.commit()
    return subjects


def _outbox(ctx: BillingContext) -> list[OutboxMessage]:
    with ctx.uow() as uow:
        return [m for status in OutboxStatus for m in uow.outbox.list(status=status, limit=1000)]


def test_dispatch_killed_mid_run_finishes_on_restart(kind: SqlKind, tmp_path: Path) -> None:
    mail_dir, legal_dir = tmp_path / "mail", tmp_path / "legal"
    with migrated_database(kind, tmp_path, "dispatch") as (url, schema):
        ctx, engine = _context(url, schema, NOW)
        try:
            expected = _seed_outbox(ctx)
            assert len(_outbox(ctx)) == INVOICES + NOTICES

            with worker(main, "dispatch", url, schema, NOW.isoformat(), "0.05", str(mail_dir),
                        str(legal_dir)) as child:
                killed = child.kill_after(8, within=20)
            after_kill = _outbox(ctx)
            sent_before = [m.id for m in after_kill if m.status == OutboxStatus.SENT]
            claimed_unsent = [m.id for m in after_kill if m.status != OutboxStatus.SENT
                              and m.next_attempt_at is not None and m.next_attempt_at > NOW]
            assert 0 < len(sent_before) < len(after_kill), killed

            restart = NOW + CLAIM_LEASE + timedelta(minutes=1)
            with worker(main, "dispatch", url, schema, restart.isoformat(), "0", str(mail_dir),
                        str(legal_dir)) as child:
                assert child.finish()[-1] == "done"
            final = _outbox(ctx)
        finally:
            engine.dispose()
    assert len(final) == INVOICES * 2 + NOTICES  # each legal invoice queued its invoice email
    assert all(m.status == OutboxStatus.SENT for m in final), final
    assert all(m.attempts == 1 for m in final)

    documents = sorted(p.name for p in legal_dir.iterdir())
    pdfs = [name for name in documents if name.endswith(".pdf")]
    assert len(pdfs) == INVOICES and len(set(pdfs)) == INVOICES, documents
    assert all(name.endswith((".pdf", ".json")) for name in documents), documents  # no temporary leftovers

    subjects = Counter(email.message_from_bytes(p.read_bytes())["Subject"] for p in mail_dir.glob("*.eml"))
    assert expected <= set(subjects)
    assert sum(1 for s in subjects if s.startswith("Invoice ")) == INVOICES
    duplicates = sum(count - 1 for count in subjects.values())
    assert duplicates <= len(claimed_unsent), (duplicates, claimed_unsent)


# --------------------------------------------------------------------------- webhooks


def _seed_payments(ctx: BillingContext) -> tuple[list[str], str]:
    """One organization on the pro plan with PAYMENTS top-ups still processing at the provider."""
    org = services.organizations.create_organization(ctx, name="Webhooks", owner_user_id="w",
                                                     owner_email="w@example.com", organization_id=ORG_ID)
    owner = Actor(organization_id=org.id, subject="user:w", role=Role.PRIMARY_OWNER)
    services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                               return_url="https://app.example.com/billing")
    assert session.provider_session_id is not None
    subscription_id = "sub_webhooks"
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=subscription_id)
    intents = []
    for n in range(PAYMENTS):
        payment = services.payments.add_credits(ctx, owner, organization_id=org.id, amount_micros=(5 + n) * DOLLAR)
        assert payment.provider_payment_id is not None
        intents.append(payment.provider_payment_id)
    return intents, subscription_id


def _events(provider: InMemoryPaymentProvider, intents: list[str], subscription_id: str) -> list[tuple[str, str]]:
    built: list[tuple[bytes, str]] = []
    for intent in intents:
        built.append(provider.event("payment_intent.succeeded", {"id": intent, "object": "payment_intent"}))
    built.append(provider.event("customer.subscription.updated", {"id": subscription_id, "status": "past_due"}))
    built.append(provider.event("charge.refunded", {"id": "ch_1", "payment_intent": intents[0], "refunded": True}))
    built.append(provider.event("charge.dispute.created", {"id": "dp_1", "payment_intent": intents[1]}))
    built.append(provider.event("customer.subscription.updated", {"id": subscription_id, "status": "active"}))
    built.append(provider.event("payment_intent.payment_failed", {"id": intents[2]}))  # stale: already settled
    built += built[:4]  # the provider redelivers some
    built.append(provider.event("customer.subscription.updated", {"id": subscription_id, "status": "past_due"}))
    built += built[11:13]  # the refund and the dispute again, after everything else
    return [(payload.decode(), signature) for payload, signature in built]


def _state(ctx: BillingContext, engine: Engine) -> dict[str, object]:
    with ctx.uow() as uow:
        subscription = uow.plan_subscriptions.current(ORG_ID)
        wallet = uow.wallets.get(ORG_ID)
        payments = sorted((p.provider_payment_id or "", p.status.value)
                          for p in uow.payments.list(ORG_ID, limit=100).items)
    with engine.connect() as connection:
        entries = connection.execute(text("SELECT count(*) FROM ledger_transactions")).scalar_one()
    assert subscription is not None
    return {"subscription": subscription.status.value, "wallet": wallet.wallet_micros,
            "balance": wallet.balance_micros, "entries": entries, "payments": payments}


def test_webhook_processing_killed_mid_stream_replays_to_the_clean_state(kind: SqlKind, tmp_path: Path) -> None:
    provider = InMemoryPaymentProvider(auto_succeed=False)
    # Both databases are seeded by providers with one fixed id namespace: the same intents in each.
    with migrated_database(kind, tmp_path, "clean") as (url, schema):
        ctx, engine = _context(url, schema, NOW, InMemoryPaymentProvider(auto_succeed=False, id_namespace="seed"))
        try:
            intents, subscription_id = _seed_payments(ctx)
            events = _events(provider, intents, subscription_id)
            for payload, signature in events:
                services.provider_events.handle_event(ctx, payload.encode(), signature)
            clean = _state(ctx, engine)
        finally:
            engine.dispose()
    event_file = tmp_path / "events.json"
    event_file.write_text(json.dumps(events))
    with migrated_database(kind, tmp_path, "killed") as (url, schema):
        ctx, engine = _context(url, schema, NOW, InMemoryPaymentProvider(auto_succeed=False, id_namespace="seed"))
        try:
            assert _seed_payments(ctx) == (intents, subscription_id)
            with worker(main, "events", url, schema, NOW.isoformat(), "0.05", str(event_file)) as child:
                acknowledged = child.kill_after(6, within=20)
            with worker(main, "events", url, schema, NOW.isoformat(), "0", str(event_file)) as child:
                replay = child.finish()
            state = _state(ctx, engine)
        finally:
            engine.dispose()
    assert replay[-1] == "done"
    outcomes = {line.split()[1]: line.split()[2] for line in replay[:-1]}
    for line in acknowledged:
        assert outcomes[line.split()[1]] == "duplicate", (line, replay)
    assert len(replay) - 1 == len(events)
    assert state == clean
    assert clean["subscription"] == "past_due"
    assert dict(clean["payments"]).get(intents[0]) == "refunded"  # type: ignore[call-overload]

