"""The composition root: settings from ``BILLING_*`` variables, the adapters chosen from them, and
the app on real SQLite storage (migrated) instead of the in-memory store."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from adapters.fakes import FixedClock, InMemoryLegalInvoicing, InMemoryPaymentProvider
from billing_core.services.grants import POSTGRES_SWEEP_BATCH, SWEEP_BATCH
from entrypoints.container import ConfigurationError, Container, build_policy, migrate_database, settings_from_env
from entrypoints.http.app import create_app
from tests.e2e.conftest import START, Api, build_world


def test_settings_defaults_run_offline() -> None:
    settings = settings_from_env({})
    assert (settings.storage, settings.database_url, settings.env) == ("sqlalchemy", "sqlite:///./billing.db",
                                                                       "development")
    assert settings.offline_payments and settings.easybill_api_key is None and settings.smtp_host is None
    assert settings.data_dir == Path("./var") and not settings.allow_private_webhook_urls


def test_settings_read_every_variable_and_hide_secrets() -> None:
    settings = settings_from_env({
        "BILLING_STORAGE": "memory", "BILLING_ENV": "production", "BILLING_DATABASE_URL": "postgresql+psycopg://u:pw@db/b",
        "BILLING_STRIPE_API_KEY": "sk_test_123", "BILLING_STRIPE_WEBHOOK_SECRET": "whsec_1",
        "BILLING_STRIPE_API_BASE": "http://localhost:12111", "BILLING_EASYBILL_API_KEY": "eb-key",
        "BILLING_SMTP_HOST": "smtp.example.com", "BILLING_SMTP_PORT": "2525", "BILLING_SMTP_USERNAME": "u",
        "BILLING_SMTP_PASSWORD": "smtp-secret", "BILLING_SMTP_STARTTLS": "false", "BILLING_DATA_DIR": "/srv/billing",
        "BILLING_ALLOW_PRIVATE_WEBHOOK_URLS": "1", "BILLING_SELLER_NAME": "Seller GmbH",
        "BILLING_SELLER_STREET": "Hauptstr. 1", "BILLING_SELLER_POSTAL_CODE": "10115", "BILLING_SELLER_CITY": "Berlin",
        "BILLING_SELLER_COUNTRY": "DE", "BILLING_SELLER_VAT_ID": "DE123456789", "BILLING_EINVOICE_EUR_RATE": "0.9231",
        "BILLING_EASYBILL_EINVOICE_TEMPLATE": "XRECHNUNG"})
    assert settings.production and settings.storage == "memory" and not settings.offline_payments
    assert (settings.seller.name, settings.seller.vat_id, settings.seller.eur_rate_ppm) == (
        "Seller GmbH", "DE123456789", 923_100)
    assert settings.easybill_einvoice_template == "XRECHNUNG"
    assert settings.smtp_port == 2525 and settings.smtp_starttls is False
    text = repr(settings)
    for secret in ("sk_test_123", "whsec_1", "eb-key", "smtp-secret", "pw@"):
        assert secret not in text
    policy = build_policy(settings)
    assert policy.require_https_webhooks and policy.allow_private_webhook_urls
    assert not build_policy(settings_from_env({})).require_https_webhooks


@pytest.mark.parametrize(("environ", "message"), [
    ({"BILLING_STORAGE": "redis"}, "BILLING_STORAGE"),
    ({"BILLING_ENV": "staging"}, "BILLING_ENV"),
    ({"BILLING_SMTP_PORT": "smtp"}, "BILLING_SMTP_PORT"),
    ({"BILLING_STRIPE_API_KEY": "sk_test_1"}, "BILLING_STRIPE_WEBHOOK_SECRET"),
    ({"BILLING_SMTP_STARTTLS": "maybe"}, "BILLING_SMTP_STARTTLS"),
    ({"BILLING_DEMO": "1", "BILLING_ENV": "production"}, "BILLING_DEMO"),
    ({"BILLING_TEST_CLOCK_FILE": "/tmp/clock"}, "BILLING_TEST_CLOCK_FILE"),
    ({"BILLING_TEST_CLOCK_FILE": "/tmp/clock", "BILLING_ENV": "production"}, "BILLING_TEST_CLOCK_FILE"),
    ({"BILLING_DATABASE_SCHEMA": "billing"}, "BILLING_DATABASE_SCHEMA"),
    ({"BILLING_DATABASE_URL": "postgresql+psycopg://db/b", "BILLING_DATABASE_SCHEMA": "x; drop"},
     "BILLING_DATABASE_SCHEMA"),
    ({"BILLING_OUTBOX_LEASE_SECONDS": "0"}, "BILLING_OUTBOX_LEASE_SECONDS"),
    ({"BILLING_OUTBOX_LEASE_SECONDS": "soon"}, "BILLING_OUTBOX_LEASE_SECONDS"),
    ({"BILLING_GRANT_SWEEP_STEP": "0"}, "BILLING_GRANT_SWEEP_STEP"),
    ({"BILLING_GRANT_SWEEP_STEP": "10001"}, "BILLING_GRANT_SWEEP_STEP"),
    ({"BILLING_GRANT_SWEEP_STEP": "５"}, "BILLING_GRANT_SWEEP_STEP"),
    ({"BILLING_ENV": "production"}, "BILLING_SELLER_NAME"),
    ({"BILLING_SELLER_NAME": "Seller GmbH"}, "BILLING_SELLER_STREET"),
    ({"BILLING_EINVOICE_EUR_RATE": "0,92"}, "BILLING_EINVOICE_EUR_RATE"),
    ({"BILLING_STRIPE_PUBLISHABLE_KEY": "sk_live_secret"}, "BILLING_STRIPE_PUBLISHABLE_KEY"),
    ({"BILLING_STRIPE_PUBLISHABLE_KEY": "pk_test_a b"}, "BILLING_STRIPE_PUBLISHABLE_KEY"),
    ({"BILLING_STRIPE_JS_URL": "javascript:alert(1)"}, "BILLING_STRIPE_JS_URL"),
    ({"BILLING_STRIPE_JS_URL": "https://js.example/v3/?k=1"}, "BILLING_STRIPE_JS_URL"),
    ({"BILLING_STRIPE_JS_URL": "https://js.example/v3/'; script-src *"}, "BILLING_STRIPE_JS_URL"),
    ({"BILLING_STRIPE_JS_URL": "http://127.0.0.1:9/v3/", "BILLING_ENV": "production"}, "BILLING_STRIPE_JS_URL"),
])
def test_bad_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings_from_env(environ)


def test_stripe_js_settings_and_the_console_policy_both_ways() -> None:
    from entrypoints.console.router import CONTENT_SECURITY_POLICY

    offline = settings_from_env({"BILLING_STRIPE_PUBLISHABLE_KEY": "pk_test_abc"})
    assert offline.stripe_js_url == "https://js.stripe.com/v3/" and not offline.console_stripe_js
    live = settings_from_env({"BILLING_STORAGE": "memory", "BILLING_STRIPE_API_KEY": "sk_test_x",
                              "BILLING_STRIPE_WEBHOOK_SECRET": "whsec_x",
                              "BILLING_STRIPE_PUBLISHABLE_KEY": "pk_test_abc"})
    assert live.console_stripe_js and live.stripe_js_url == "https://js.stripe.com/v3/"

    def console(settings: object) -> tuple[str, str]:
        container = Container()
        container.settings.override(providers.Object(settings))
        container.clock.override(providers.Object(FixedClock(START)))
        with TestClient(create_app(container)) as client:
            page = client.get("/console/plans")
        return page.headers["content-security-policy"], page.text

    policy, html = console(settings_from_env({"BILLING_STORAGE": "memory"}))
    assert policy == CONTENT_SECURITY_POLICY and "frame-src" not in policy
    assert "js.stripe.com" not in html and "data-stripe-key" not in html
    policy, html = console(live)
    assert policy == CONTENT_SECURITY_POLICY.replace(
        "script-src 'self';", "script-src 'self' https://js.stripe.com;").replace(
        "connect-src 'self';", "connect-src 'self' https://js.stripe.com; frame-src https://js.stripe.com;")
    assert '<script src="https://js.stripe.com/v3/"></script>' in html and 'data-stripe-key="pk_test_abc"' in html
    assert "sk_test_x" not in html


def test_the_container_picks_the_test_clock_only_in_the_test_environment(tmp_path: Path) -> None:
    from adapters.fakes import OffsetFileClock, SystemClock
    from entrypoints.container import Settings, build_clock

    path = tmp_path / "clock"
    clock = _container({"BILLING_ENV": "test", "BILLING_TEST_CLOCK_FILE": str(path)}).clock()
    assert isinstance(clock, OffsetFileClock) and clock.path == path
    assert isinstance(_container({"BILLING_ENV": "test"}).clock(), SystemClock)
    with pytest.raises(ConfigurationError, match="BILLING_TEST_CLOCK_FILE"):
        build_clock(Settings(env="production", test_clock_file=path))


def test_the_grant_sweep_step_is_chosen_by_database_and_can_be_set() -> None:
    assert settings_from_env({}).grant_sweep_step == SWEEP_BATCH
    assert settings_from_env({"BILLING_DATABASE_URL": "postgresql+psycopg://db/b"}).grant_sweep_step \
        == POSTGRES_SWEEP_BATCH
    assert settings_from_env({"BILLING_GRANT_SWEEP_STEP": "250"}).grant_sweep_step == 250


def test_the_outbox_lease_reaches_the_policy() -> None:
    from datetime import timedelta

    settings = settings_from_env({"BILLING_OUTBOX_LEASE_SECONDS": "30"})
    assert build_policy(settings).outbox_lease == timedelta(seconds=30)
    assert build_policy(settings_from_env({})).outbox_lease == timedelta(minutes=10)


@pytest.mark.postgres
def test_the_database_schema_reaches_the_engine() -> None:
    from adapters.testing.storage import postgres_schema, require_postgres_url

    url = require_postgres_url()
    with postgres_schema(url) as schema:
        container = _container({"BILLING_DATABASE_URL": url, "BILLING_DATABASE_SCHEMA": schema})
        assert container.settings().database_schema == schema
        engine = container.engine()
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT current_schema()").scalar() == schema
        finally:
            engine.dispose()


def _container(environ: dict[str, str]) -> Container:
    container = Container()
    container.settings.override(providers.Object(settings_from_env(environ)))
    return container


def test_offline_defaults_choose_the_offline_adapters(tmp_path: Path) -> None:
    from adapters.email.console import ConsoleMailer
    from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
    from adapters.tax.stdnum_verifier import StdnumTaxIdVerifier
    from adapters.webhooks.sender import HttpxWebhookSender

    container = _container({"BILLING_STORAGE": "memory", "BILLING_DATA_DIR": str(tmp_path)})
    deliverers = container.deliverers()
    assert isinstance(container.payments(), InMemoryPaymentProvider) and container.offline_payments()
    assert isinstance(deliverers.legal, LocalPdfLegalInvoicing)
    assert deliverers.legal.storage_dir == tmp_path / "invoices"
    assert isinstance(deliverers.mailer, ConsoleMailer) and deliverers.mailer.directory == tmp_path / "mail"
    assert isinstance(deliverers.webhooks, HttpxWebhookSender)
    assert isinstance(container.tax_ids(), StdnumTaxIdVerifier)
    assert container.billing_context() is container.billing_context()


def test_configured_services_choose_the_real_adapters(tmp_path: Path) -> None:
    from adapters.easybill.legal_invoicing import EasyBillLegalInvoicing
    from adapters.email.smtp import SmtpMailer
    from adapters.stripe.provider import StripePaymentProvider

    container = _container({"BILLING_STORAGE": "memory", "BILLING_STRIPE_API_KEY": "sk_test_x",
                            "BILLING_STRIPE_WEBHOOK_SECRET": "whsec_x", "BILLING_EASYBILL_API_KEY": "eb",
                            "BILLING_SMTP_HOST": "smtp.example.com", "BILLING_DATA_DIR": str(tmp_path)})
    assert isinstance(container.payments(), StripePaymentProvider) and not container.offline_payments()
    assert isinstance(container.legal(), EasyBillLegalInvoicing)
    assert isinstance(container.mailer(), SmtpMailer)
    app = create_app(container)
    paths = {route.path for route in app.routes}
    assert "/organizations/{organization_id:uuid}/checkout_sessions/{session_id:uuid}/complete" not in paths
    assert "/organizations/{organization_id:uuid}/checkout_sessions" in paths


def test_memory_storage_needs_no_migration() -> None:
    assert migrate_database(_container({"BILLING_STORAGE": "memory"})).startswith("memory")


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    """The app over a migrated SQLite file (the storage selector's default branch)."""
    from adapters.fakes import InMemoryMailer, InMemoryTaxIdVerifier, InMemoryWebhookSender

    clock = FixedClock(START)
    container = _container({"BILLING_DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}",
                            "BILLING_DATA_DIR": str(tmp_path)})
    payments, legal, mailer, webhooks = (InMemoryPaymentProvider(), InMemoryLegalInvoicing(), InMemoryMailer(),
                                         InMemoryWebhookSender())
    for name, fake in (("clock", clock), ("payments", payments), ("legal", legal), ("mailer", mailer),
                       ("webhooks", webhooks), ("tax_ids", InMemoryTaxIdVerifier())):
        getattr(container, name).override(providers.Object(fake))
    assert migrate_database(container).endswith("billing.db")
    with TestClient(create_app(container)) as client:
        yield Api(client=client, container=container, clock=clock, payments=payments, legal=legal, mailer=mailer,
                  webhooks=webhooks)
    container.engine().dispose()


def test_the_api_on_sqlite_storage(sqlite_api: Api) -> None:
    world = build_world(sqlite_api)
    org = f"/organizations/{world.org}"
    client = sqlite_api.client
    member, owner = world.headers("member"), world.headers("primary-owner")
    assert client.get("/healthz").json()["storage"] == "sqlalchemy"
    overview = client.get(org + "/billing/overview", headers=member)
    assert overview.status_code == 200, overview.text
    assert client.get(org + "/invoices", headers=member).json()["items"][0]["pdf_available"] is True
    key = {"Idempotency-Key": "sqlite-1"}
    first = client.post(org + "/credits", json={"amount": "12.48"}, headers={**owner, **key})
    again = client.post(org + "/credits", json={"amount": "12.48"}, headers={**owner, **key})
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    clash = client.post(org + "/credits", json={"amount": "12.49"}, headers={**owner, **key})
    assert clash.status_code == 409 and clash.json()["code"] == "idempotency_key_reused"
    event = client.post(org + "/usage/events", headers=world.headers("service"),
                        json={"event_id": "sqlite-evt", "product": "compute", "quantity": 2})
    assert event.status_code == 201, event.text
    assert client.get(org + "/usage_feed?limit=1", headers=member).json()["items"][0]["amount_micros"] == -80_000
    assert client.get(org + "/billing/overview", headers=world.headers("outsider")).status_code == 404


def test_an_unreachable_database_is_a_503_problem_with_retry_after(tmp_path: Path) -> None:
    """Nothing listens on the database port: every route that needs storage answers 503
    ``storage_unavailable`` (not a 500), and the health check still answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    container = _container({"BILLING_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test",
                            "BILLING_DATA_DIR": str(tmp_path)})
    with TestClient(create_app(container)) as client:
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["code"] == "storage_unavailable"
        org = "/organizations/00000000-0000-4000-8000-00000000d3e0"
        for method, path in (("GET", org + "/billing/overview"), ("POST", org + "/usage/authorize")):
            response = client.request(method, path, json={} if method == "POST" else None,
                                      headers={"Authorization": "Bearer bc_some_token_of_enough_length_0"})
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "5"
            assert response.json()["code"] == "storage_unavailable"
    container.engine().dispose()
