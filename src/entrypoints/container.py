"""The composition root: the one place that chooses adapters, from ``BILLING_*`` environment variables.

Nothing is built at import time. :class:`Container` holds providers only; the first call of a
provider builds its adapter (engines, SDK clients and API keys included). Tests swap adapters with
``container.<provider>.override(...)``; they never patch modules.

Defaults run offline: SQLite storage, the in-memory payment provider, local PDF invoices and
``.eml`` files instead of mail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from dependency_injector import containers, providers

from adapters.fakes import InMemoryPaymentProvider, InMemoryStore, OffsetFileClock, SystemClock
from adapters.fakes.storage import InMemoryTokenReader, in_memory_uow_factory
from billing_core.catalog import Catalog, load_catalog
from billing_core.einvoice import DEMO_SELLER, SellerConfig
from billing_core.ports import (
    Clock,
    EInvoiceRenderer,
    LegalInvoicing,
    Mailer,
    PaymentProvider,
    TaxIdVerifier,
    TokenReader,
    UnitOfWorkFactory,
)
from billing_core.services.context import BillingContext, BillingPolicy
from billing_core.services.dispatch import Deliverers
from billing_core.services.grants import MAX_SWEEP_BATCH, POSTGRES_SWEEP_BATCH, SWEEP_BATCH

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from billing_core.ports import WebhookSender

STORAGE_BACKENDS = ("sqlalchemy", "memory")
ENVIRONMENTS = ("development", "test", "production")
LOG_FORMATS = ("text", "json")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


DEFAULT_STRIPE_JS_URL = "https://js.stripe.com/v3/"


class ConfigurationError(ValueError):
    """A ``BILLING_*`` variable holds a value the service cannot run with."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads from its environment. Secrets stay out of ``repr``."""

    env: str = "development"
    database_url: str = "sqlite:///./billing.db"
    database_schema: str | None = None
    """PostgreSQL only: the schema the service's tables live in (first on the ``search_path``)."""
    storage: str = "sqlalchemy"
    data_dir: Path = Path("./var")
    public_base_url: str | None = None
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    stripe_publishable_key: str | None = None
    """``pk_…``: the console's Stripe.js (Embedded Checkout, PaymentElement). Not a secret."""
    stripe_js_url: str = DEFAULT_STRIPE_JS_URL
    """Where the console loads Stripe.js from (Stripe's own in production, a stand-in in tests);
    its origin is the only one the console's Content-Security-Policy adds."""
    easybill_api_key: str | None = None
    easybill_base_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str = "billing@localhost"
    allow_private_webhook_urls: bool = False
    demo: bool = False
    """Seed the demo organization when the HTTP app starts (never in production)."""
    worker: str = "process"
    """Where ``billing serve`` / ``billing run`` deliver the outbox and run scheduled jobs
    (``BILLING_WORKER``): ``process``, a child process the server supervises (``true``, the
    default); ``thread``, a thread of the server process; ``off`` (``false``), nowhere: a separate
    ``billing worker`` does it. An app built by ``served_app`` without ``billing serve`` around it
    runs a thread for ``process``."""
    worker_interval_seconds: float = 1.0
    """How often the background worker looks for due work: outbox messages wait at most about this long."""
    grant_catch_up_interval_seconds: float = 5.0
    """The worker catches up a busy organization's credit grants at most this often (ADR 0016);
    readers of grants catch up themselves. 0: at every cycle."""
    grant_sweep_step: int = SWEEP_BATCH
    """Ledger transactions per step of the worker's grant catch-up (``BILLING_GRANT_SWEEP_STEP``;
    by default 500 on PostgreSQL, 100 elsewhere: on SQLite each step's write queues every writer)."""
    http_fast_path: bool = True
    """``POST …/usage/events`` answered by the fast path in front of Litestar
    (``entrypoints.http.hot_route``, ADR 0018); false sends it through Litestar like every route."""
    log_format: str = "text"
    """``text`` or ``json`` (one JSON object per line, for log shippers)."""
    outbox_lease_seconds: float = 600.0
    """How long a dispatcher keeps the outbox messages it claimed: a worker that dies mid-batch leaves
    its batch to the others after this long (each message is then sent again: at-least-once)."""
    test_clock_file: Path | None = None
    """Tests only (``BILLING_ENV=test``): "now" is the real time plus the offset in seconds in this file."""
    seller: SellerConfig = DEMO_SELLER
    """Who issues the legal invoices (``BILLING_SELLER_*``): the seller terms of every e-invoice."""
    easybill_einvoice_template: str | None = None
    """EasyBill's ``pdf_template`` that makes its documents e-invoices (ZUGFeRD / XRechnung)."""

    def __repr__(self) -> str:
        return (f"Settings(env={self.env!r}, storage={self.storage!r}, "
                f"database_url={_redact_url(self.database_url)!r}, "
                f"stripe={'on' if self.stripe_api_key else 'offline'}, "
                f"easybill={'on' if self.easybill_api_key else 'local'}, smtp={self.smtp_host or 'console'!r})")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def offline_payments(self) -> bool:
        return not self.stripe_api_key

    @property
    def console_stripe_js(self) -> bool:
        """The console loads Stripe.js: the Stripe provider is configured with a publishable key."""
        return bool(self.stripe_api_key and self.stripe_publishable_key)


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


def _text(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _worker_mode(environ: Mapping[str, str]) -> str:
    raw = environ.get("BILLING_WORKER")
    value = "true" if raw is None else raw.strip().lower()
    if value in ("process", "thread"):
        return value
    if value in _TRUE:
        return "process"
    if value in _FALSE:
        return "off"
    raise ConfigurationError(f"BILLING_WORKER must be true, false, process or thread, not {raw!r}")


def _seconds(environ: Mapping[str, str], name: str, default: str, low: float, high: float) -> float:
    """A duration in seconds within [low, high]; anything else (text, nan, inf) is refused by name."""
    text = _text(environ, name) or default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be seconds between {low:g} and {high:g}, not {text!r}")
    return value


def _count(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number within [low, high]; anything else is refused by name."""
    text = _text(environ, name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise ConfigurationError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    return int(text)


_SELLER_VARIABLES = {
    "name": "BILLING_SELLER_NAME", "street": "BILLING_SELLER_STREET", "postal_code": "BILLING_SELLER_POSTAL_CODE",
    "city": "BILLING_SELLER_CITY", "country": "BILLING_SELLER_COUNTRY", "vat_id": "BILLING_SELLER_VAT_ID",
    "tax_number": "BILLING_SELLER_TAX_NUMBER", "legal_registration_id": "BILLING_SELLER_REGISTRATION_ID",
    "contact_name": "BILLING_SELLER_CONTACT_NAME", "contact_phone": "BILLING_SELLER_PHONE",
    "contact_email": "BILLING_SELLER_EMAIL", "electronic_address": "BILLING_SELLER_ELECTRONIC_ADDRESS",
    "iban": "BILLING_SELLER_IBAN", "bic": "BILLING_SELLER_BIC", "bank_account_name": "BILLING_SELLER_ACCOUNT_NAME",
}
_SELLER_REQUIRED = ("name", "street", "postal_code", "city", "country")
_RATE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?", re.ASCII)


def _eur_rate_ppm(environ: Mapping[str, str]) -> int:
    """``BILLING_EINVOICE_EUR_RATE``: EUR per unit of the invoice currency (``0.92``), as millionths."""
    text = _text(environ, "BILLING_EINVOICE_EUR_RATE")
    if text is None:
        return DEMO_SELLER.eur_rate_ppm
    if not _RATE.fullmatch(text):
        raise ConfigurationError(f"BILLING_EINVOICE_EUR_RATE must be a decimal such as 0.92, not {text!r}")
    whole, _, fraction = text.partition(".")
    ppm = int(whole) * 1_000_000 + int(fraction.ljust(6, "0") or "0")
    if ppm <= 0:
        raise ConfigurationError("BILLING_EINVOICE_EUR_RATE must be positive")
    return ppm


def _seller(environ: Mapping[str, str], production: bool) -> SellerConfig:
    """The seller from ``BILLING_SELLER_*``; the demo seller when none is set outside production.
    Production needs at least the name and the postal address (the e-invoice's BR-06, BR-08, BR-09)."""
    given = {field: _text(environ, name) for field, name in _SELLER_VARIABLES.items()}
    rate = _eur_rate_ppm(environ)
    if not any(given.values()):
        if production:
            raise ConfigurationError("BILLING_SELLER_NAME, _STREET, _POSTAL_CODE, _CITY and _COUNTRY are required "
                                     "with BILLING_ENV=production: they are the seller on every legal invoice")
        return msgspec.structs.replace(DEMO_SELLER, eur_rate_ppm=rate)
    missing = [_SELLER_VARIABLES[field] for field in _SELLER_REQUIRED if not given[field]]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} required with the other BILLING_SELLER_* variables")
    country = given["country"] or ""
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise ConfigurationError(f"BILLING_SELLER_COUNTRY must be an ISO 3166-1 alpha-2 code, not {country!r}")
    return SellerConfig(
        name=given["name"] or "", street=given["street"] or "", postal_code=given["postal_code"] or "",
        city=given["city"] or "", country=country, vat_id=given["vat_id"], tax_number=given["tax_number"],
        legal_registration_id=given["legal_registration_id"], contact_name=given["contact_name"],
        contact_phone=given["contact_phone"], contact_email=given["contact_email"],
        electronic_address=given["electronic_address"], iban=given["iban"], bic=given["bic"],
        bank_account_name=given["bank_account_name"], eur_rate_ppm=rate)
_PUBLISHABLE_KEY = re.compile(r"^pk_(test|live)_[A-Za-z0-9_]{1,255}$")


def _stripe_js_url(url: str, environment: str) -> str:
    """An absolute https URL (plain http only outside production, for a local stand-in), without
    credentials, query or fragment: its origin goes into the console's Content-Security-Policy."""
    parts = urlsplit(url)
    allowed = ("https",) if environment == "production" else ("https", "http")
    if (parts.scheme not in allowed or not parts.hostname or parts.username or parts.password
            or parts.query or parts.fragment or any(c in url for c in " ;,'\"")):
        raise ConfigurationError(f"BILLING_STRIPE_JS_URL must be an absolute {' or '.join(allowed)} URL "
                                 f"without query or credentials, not {url!r}")
    return url


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the ``BILLING_*`` variables (``os.environ`` unless given)."""
    env = os.environ if environ is None else environ
    storage = (_text(env, "BILLING_STORAGE") or "sqlalchemy").lower()
    if storage not in STORAGE_BACKENDS:
        raise ConfigurationError(f"BILLING_STORAGE must be one of {', '.join(STORAGE_BACKENDS)}, not {storage!r}")
    environment = (_text(env, "BILLING_ENV") or "development").lower()
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(f"BILLING_ENV must be one of {', '.join(ENVIRONMENTS)}, not {environment!r}")
    port_text = _text(env, "BILLING_SMTP_PORT") or "587"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"BILLING_SMTP_PORT must be a TCP port, not {port_text!r}")
    stripe_key = _text(env, "BILLING_STRIPE_API_KEY")
    stripe_secret = _text(env, "BILLING_STRIPE_WEBHOOK_SECRET")
    if stripe_key and not stripe_secret:
        raise ConfigurationError("BILLING_STRIPE_WEBHOOK_SECRET is required with BILLING_STRIPE_API_KEY")
    publishable_key = _text(env, "BILLING_STRIPE_PUBLISHABLE_KEY")
    if publishable_key is not None and not _PUBLISHABLE_KEY.match(publishable_key):
        raise ConfigurationError("BILLING_STRIPE_PUBLISHABLE_KEY must be a Stripe publishable key (pk_test_… or "
                                 "pk_live_…); never put the secret key there")
    stripe_js_url = _stripe_js_url(_text(env, "BILLING_STRIPE_JS_URL") or DEFAULT_STRIPE_JS_URL, environment)
    interval = _seconds(env, "BILLING_WORKER_INTERVAL", "1", 0.05, 3600)
    grant_interval = _seconds(env, "BILLING_GRANT_CATCH_UP_INTERVAL", "1", 0, 3600)
    log_format = (_text(env, "BILLING_LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"BILLING_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    demo = _flag(env, "BILLING_DEMO", False)
    if demo and environment == "production":
        raise ConfigurationError("BILLING_DEMO cannot be used with BILLING_ENV=production")
    database_url = _text(env, "BILLING_DATABASE_URL") or "sqlite:///./billing.db"
    schema = _text(env, "BILLING_DATABASE_SCHEMA")
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigurationError("BILLING_DATABASE_SCHEMA must be a lower-case identifier "
                                     f"(letters, digits, _), not {schema!r}")
        if not database_url.startswith("postgresql"):
            raise ConfigurationError("BILLING_DATABASE_SCHEMA is a PostgreSQL setting (BILLING_DATABASE_URL is not)")
    lease = _seconds(env, "BILLING_OUTBOX_LEASE_SECONDS", "600", 1, 86_400)
    sweep_step = _count(env, "BILLING_GRANT_SWEEP_STEP",
                        POSTGRES_SWEEP_BATCH if database_url.startswith("postgresql") else SWEEP_BATCH,
                        1, MAX_SWEEP_BATCH)
    clock_file = _text(env, "BILLING_TEST_CLOCK_FILE")
    if clock_file is not None and environment != "test":
        # A clock that anyone who can write a file may move would let them close months early,
        # expire grace windows or reset daily budgets: never outside the test environment.
        raise ConfigurationError("BILLING_TEST_CLOCK_FILE is allowed only with BILLING_ENV=test")
    return Settings(
        env=environment,
        database_url=database_url,
        database_schema=schema,
        storage=storage,
        data_dir=Path(_text(env, "BILLING_DATA_DIR") or "./var"),
        public_base_url=_text(env, "BILLING_PUBLIC_BASE_URL"),
        stripe_api_key=stripe_key,
        stripe_webhook_secret=stripe_secret,
        stripe_api_base=_text(env, "BILLING_STRIPE_API_BASE"),
        stripe_publishable_key=publishable_key,
        stripe_js_url=stripe_js_url,
        easybill_api_key=_text(env, "BILLING_EASYBILL_API_KEY"),
        easybill_base_url=_text(env, "BILLING_EASYBILL_BASE_URL"),
        smtp_host=_text(env, "BILLING_SMTP_HOST"),
        smtp_port=int(port_text),
        smtp_username=_text(env, "BILLING_SMTP_USERNAME"),
        smtp_password=_text(env, "BILLING_SMTP_PASSWORD"),
        smtp_starttls=_flag(env, "BILLING_SMTP_STARTTLS", True),
        mail_from=_text(env, "BILLING_MAIL_FROM") or "billing@localhost",
        allow_private_webhook_urls=_flag(env, "BILLING_ALLOW_PRIVATE_WEBHOOK_URLS", False),
        demo=demo,
        worker=_worker_mode(env),
        http_fast_path=_flag(env, "BILLING_HTTP_FAST_PATH", True),
        worker_interval_seconds=interval,
        grant_catch_up_interval_seconds=grant_interval,
        grant_sweep_step=sweep_step,
        log_format=log_format,
        outbox_lease_seconds=lease,
        test_clock_file=Path(clock_file) if clock_file is not None else None,
        seller=_seller(env, environment == "production"),
        easybill_einvoice_template=_text(env, "BILLING_EASYBILL_EINVOICE_TEMPLATE"),
    )


# --------------------------------------------------------------------------- builders (called by providers)


def build_policy(settings: Settings) -> BillingPolicy:
    """Production requires https webhook targets; private targets only when explicitly allowed."""
    return BillingPolicy(
        allow_private_webhook_urls=settings.allow_private_webhook_urls,
        require_https_webhooks=settings.production,
        outbox_lease=timedelta(seconds=settings.outbox_lease_seconds),
    )


def storage_backend(settings: Settings) -> str:
    return settings.storage


def build_engine(settings: Settings) -> Engine:
    from adapters.sqlalchemy.engine import make_engine

    return make_engine(settings.database_url, schema=settings.database_schema)


def pool_capacity(engine: Engine) -> int | None:
    """How many connections ``engine``'s pool hands out at once (size plus overflow); None when it
    does not bound them."""
    from sqlalchemy.pool import QueuePool

    pool = engine.pool
    if isinstance(pool, QueuePool):
        return pool.size() + max(0, pool._max_overflow)
    return None


def build_clock(settings: Settings) -> Clock:
    """The system clock; in tests (``BILLING_TEST_CLOCK_FILE``) the system clock moved by the offset in a file."""
    if settings.test_clock_file is not None:
        if settings.env != "test":  # settings_from_env refuses it too; Settings may be built by hand
            raise ConfigurationError("BILLING_TEST_CLOCK_FILE is allowed only with BILLING_ENV=test")
        return OffsetFileClock(settings.test_clock_file)
    return SystemClock()


def build_sqlalchemy_uow_factory(engine: Engine) -> UnitOfWorkFactory:
    from adapters.sqlalchemy.uow import sqlalchemy_uow_factory

    return sqlalchemy_uow_factory(engine)


def build_sqlalchemy_snapshot_factory(engine: Engine) -> UnitOfWorkFactory:
    from adapters.sqlalchemy.uow import sqlalchemy_snapshot_factory

    return sqlalchemy_snapshot_factory(engine)


def build_memory_uow_factory(store: InMemoryStore) -> UnitOfWorkFactory:
    return in_memory_uow_factory(store)


def build_sqlalchemy_token_reader(engine: Engine) -> TokenReader:
    from adapters.sqlalchemy.tokens import SqlAlchemyTokenReader

    return SqlAlchemyTokenReader(engine)


def build_payment_provider(settings: Settings, catalog: Catalog) -> PaymentProvider:
    """Stripe with an API key; the offline in-memory provider without one."""
    if settings.offline_payments:
        return InMemoryPaymentProvider(webhook_secret=settings.stripe_webhook_secret or "whsec_offline")
    from adapters.stripe.provider import StripePaymentProvider

    assert settings.stripe_api_key is not None and settings.stripe_webhook_secret is not None
    return StripePaymentProvider(settings.stripe_api_key, settings.stripe_webhook_secret,
                                 api_base=settings.stripe_api_base, currency=catalog.currency.lower(),
                                 return_base_url=settings.public_base_url)


def build_legal_invoicing(settings: Settings, policy: BillingPolicy, clock: Clock) -> LegalInvoicing:
    """EasyBill with an API key; locally rendered PDFs under ``BILLING_DATA_DIR/invoices`` without."""
    if settings.easybill_api_key:
        from adapters.easybill.legal_invoicing import EasyBillLegalInvoicing

        if settings.easybill_base_url:
            return EasyBillLegalInvoicing(settings.easybill_api_key, base_url=settings.easybill_base_url,
                                          einvoice_template=settings.easybill_einvoice_template)
        return EasyBillLegalInvoicing(settings.easybill_api_key, einvoice_template=settings.easybill_einvoice_template)
    from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
    from adapters.pdf.rendering import SellerDetails

    config = settings.seller
    bank = " · ".join(part for part in (f"IBAN {config.iban}" if config.iban else "",
                                         f"BIC {config.bic}" if config.bic else "") if part)
    seller = SellerDetails(name=config.name, address_1=config.street, postal_code=config.postal_code,
                           city=config.city, country=config.country, vat_id=config.vat_id,
                           email=config.contact_email or settings.mail_from, bank_details=bank or None)
    return LocalPdfLegalInvoicing(settings.data_dir / "invoices", seller=seller, clock=clock)


def seller_of(settings: Settings) -> SellerConfig:
    return settings.seller


def build_einvoice_renderer() -> EInvoiceRenderer:
    from adapters.einvoice import XmlEInvoiceRenderer

    return XmlEInvoiceRenderer()


def build_mailer(settings: Settings) -> Mailer:
    """SMTP with a host; ``.eml`` files under ``BILLING_DATA_DIR/mail`` without."""
    if settings.smtp_host:
        from adapters.email.smtp import SmtpMailer

        return SmtpMailer(settings.smtp_host, settings.smtp_port, username=settings.smtp_username,
                          password=settings.smtp_password, starttls=settings.smtp_starttls,
                          sender=settings.mail_from)
    from adapters.email.console import ConsoleMailer

    return ConsoleMailer(directory=settings.data_dir / "mail", sender=settings.mail_from)


def build_webhook_sender(settings: Settings) -> WebhookSender:
    from adapters.webhooks.sender import HttpxWebhookSender

    return HttpxWebhookSender(allow_private=settings.allow_private_webhook_urls)


def build_tax_id_verifier() -> TaxIdVerifier:
    from adapters.tax.stdnum_verifier import StdnumTaxIdVerifier

    return StdnumTaxIdVerifier()


def is_offline(payments: PaymentProvider) -> bool:
    """True when payments go to the in-memory provider (offline checkout simulation is allowed)."""
    return isinstance(payments, InMemoryPaymentProvider)


class Container(containers.DeclarativeContainer):
    """Providers for every port, the :class:`BillingContext` and the outbox :class:`Deliverers`."""

    settings: providers.Provider[Settings] = providers.Singleton(settings_from_env)
    clock: providers.Provider[Clock] = providers.Singleton(build_clock, settings)
    catalog: providers.Provider[Catalog] = providers.Singleton(load_catalog)
    policy: providers.Provider[BillingPolicy] = providers.Singleton(build_policy, settings)

    memory_store: providers.Provider[InMemoryStore] = providers.Singleton(InMemoryStore)
    engine: providers.Provider[Engine] = providers.Singleton(build_engine, settings)
    uow_factory: providers.Provider[UnitOfWorkFactory] = providers.Selector(
        providers.Callable(storage_backend, settings),
        sqlalchemy=providers.Singleton(build_sqlalchemy_uow_factory, engine),
        memory=providers.Singleton(build_memory_uow_factory, memory_store),
    )
    # The worker's grant sweep reads outside the SQLite writer's queue (ADR 0016).
    snapshot_factory: providers.Provider[UnitOfWorkFactory | None] = providers.Selector(
        providers.Callable(storage_backend, settings),
        sqlalchemy=providers.Singleton(build_sqlalchemy_snapshot_factory, engine),
        memory=providers.Object(None),  # in memory, reads take the store's lock anyway: ``uow`` serves
    )
    # Authentication reads tokens outside a unit of work, from the same storage (one round trip).
    token_reader: providers.Provider[TokenReader] = providers.Selector(
        providers.Callable(storage_backend, settings),
        sqlalchemy=providers.Singleton(build_sqlalchemy_token_reader, engine),
        memory=providers.Singleton(InMemoryTokenReader, memory_store),
    )

    payments: providers.Provider[PaymentProvider] = providers.Singleton(build_payment_provider, settings, catalog)
    tax_ids: providers.Provider[TaxIdVerifier] = providers.Singleton(build_tax_id_verifier)
    legal: providers.Provider[LegalInvoicing] = providers.Singleton(build_legal_invoicing, settings, policy, clock)
    mailer: providers.Provider[Mailer] = providers.Singleton(build_mailer, settings)
    webhooks: providers.Provider[WebhookSender] = providers.Singleton(build_webhook_sender, settings)
    einvoice: providers.Provider[EInvoiceRenderer] = providers.Singleton(build_einvoice_renderer)
    seller: providers.Provider[SellerConfig] = providers.Callable(seller_of, settings)

    billing_context: providers.Provider[BillingContext] = providers.Singleton(
        BillingContext, uow=uow_factory, clock=clock, catalog=catalog, payments=payments, tax_ids=tax_ids,
        policy=policy, seller=seller, tokens=token_reader,
        snapshot=snapshot_factory)
    deliverers: providers.Provider[Deliverers] = providers.Singleton(
        Deliverers, mailer=mailer, webhooks=webhooks, legal=legal, einvoice=einvoice)
    offline_payments: providers.Provider[bool] = providers.Callable(is_offline, payments)


def migrate_database(container: Any = None) -> str:
    """Bring the configured database to the newest schema; returns what was migrated (URL redacted).

    In-memory storage needs no migration.
    """
    box = container if container is not None else Container()
    settings: Settings = box.settings()
    if settings.storage == "memory":
        return "memory (in-memory storage needs no migration)"
    from adapters.sqlalchemy.schema import migrate

    migrate(box.engine())
    return _redact_url(settings.database_url)
