"""Credentials: expired, revoked and wrong-scope tokens are refused; tokens are stored hashed; and no
secret (bearer token, webhook signing secret, SMTP password, Stripe key) ever reaches a log record."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from adapters.email.smtp import SmtpMailer
from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.sqlalchemy.tables import metadata
from adapters.stripe.provider import StripePaymentProvider
from adapters.testing.storage import migrated_engine
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.errors import BillingError
from billing_core.ports import EmailMessage
from billing_core.services.context import BillingContext
from tests.e2e.conftest import START, Api, World

SMTP_PASSWORD = "smtp-pa55word-never-logged"
STRIPE_KEY = "sk_test_reliability_never_logged_0123456789"
STRIPE_WEBHOOK_SECRET = "whsec_reliability_never_logged"


def _status(api: Api, world: World, secret: str, method: str = "GET", suffix: str = "/balance_history") -> int:
    response = api.client.request(method, f"/organizations/{world.org}{suffix}",
                                  json={} if method == "POST" else None, headers={"Authorization": f"Bearer {secret}"})
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code


def test_expired_revoked_and_wrong_scope_tokens(api: Api, world: World) -> None:
    ctx = api.ctx
    member = world.tokens["member"]
    _, expiring = services.organizations.issue_token(ctx, organization_id=world.org, name="short",
                                                     user_id=None, scopes=frozenset({Permission.USAGE_WRITE}),
                                                     expires_at=START + timedelta(minutes=5))
    _, revoked = services.organizations.issue_token(ctx, organization_id=world.org, name="revoked",
                                                    scopes=frozenset({Permission.USAGE_WRITE}))
    assert _status(api, world, member) == 200
    assert _status(api, world, expiring, "POST", "/usage/authorize") == 200
    services.organizations.revoke_token(ctx, secret=revoked)
    api.clock.advance(timedelta(minutes=6))
    assert _status(api, world, expiring, "POST", "/usage/authorize") == 401  # expired
    assert _status(api, world, revoked, "POST", "/usage/authorize") == 401  # revoked
    assert _status(api, world, member + "x") == 401  # unknown
    assert _status(api, world, world.tokens["service"]) == 403  # usage:write cannot read billing
    assert _status(api, world, world.tokens["member"], "POST", "/webhook_secret/rotate") == 403  # role too low
    assert _status(api, world, world.tokens["outsider"]) == 404  # another organization: not even its existence


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("sqlite", tmp_path)


def test_tokens_are_stored_hashed(engine: Engine) -> None:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@example.com")
    _, member_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    _, service_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="svc",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    assert services.organizations.authenticate(ctx, member_secret).organization_id == org.id
    dump: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            dump.extend(repr(tuple(row)) for row in connection.execute(select(table)))
    everything = "\n".join(dump)
    for secret in (member_secret, service_secret):
        assert len(secret) >= 20
        assert secret not in everything
        assert secret[-16:] not in everything  # not even a tail of it


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_no_secret_reaches_the_logs(api: Api, world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    org_secret = services.organizations.webhook_secret(api.ctx, services.organizations.authenticate(
        api.ctx, world.tokens["primary-owner"]), organization_id=world.org)
    for role in ("primary-owner", "member", "service", "outsider"):
        api.client.get(f"/organizations/{world.org}/balance_history", headers=world.headers(role))
    api.client.get(f"/organizations/{world.org}/webhook_secret", headers=world.headers("primary-owner"))
    api.client.get("/billing/overview", headers={"Authorization": f"Bearer {world.tokens['member']}junk"})
    payload, signature = api.payments.event("payment_intent.succeeded", {"id": "pi_unknown"})
    api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature + "0"})

    mailer = SmtpMailer("127.0.0.1", _closed_port(), username="billing", password=SMTP_PASSWORD, timeout=2)
    with pytest.raises(BillingError) as failed:
        mailer.send(EmailMessage(to="ada@example.com", subject="Invoice", text="Hello"))
    assert SMTP_PASSWORD not in str(failed.value) and SMTP_PASSWORD not in repr(mailer)

    stripe = StripePaymentProvider(STRIPE_KEY, STRIPE_WEBHOOK_SECRET, api_base=f"http://127.0.0.1:{_closed_port()}",
                                   max_network_retries=0)
    with pytest.raises(BillingError) as unreachable:
        stripe.refund(provider_payment_id="pi_reliability", amount_cents=500, idempotency_key="refund:reliability")
    assert STRIPE_KEY not in str(unreachable.value)
    with pytest.raises(BillingError):
        stripe.parse_event(payload, "t=1,v1=bad")

    secrets = [*world.tokens.values(), org_secret, api.payments.webhook_secret, SMTP_PASSWORD, STRIPE_KEY,
               STRIPE_WEBHOOK_SECRET]
    assert caplog.records, "expected some log records to inspect"
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + str(record.exc_text or "") + repr(record.__dict__)
        for secret in secrets:
            assert secret not in text, (record.name, record.levelname, record.getMessage())
