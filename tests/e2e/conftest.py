"""The HTTP API under test: ``create_app(container)`` with the container's adapters overridden by fakes.

``make_api()`` builds one app over in-memory storage (``BILLING_STORAGE=memory``), a settable clock
and the in-memory payment provider and delivery fakes. ``build_world(api)`` seeds an organization
through the public use cases: a primary owner, an owner and a member (one token each), a platform
service token with ``usage:write``, an outsider organization with its own token, two payment
methods, a paid credit top-up, a product subscription with usage, a closed period whose legal
invoice PDF exists, and a tax registration. Each world is a fresh organization, so tests that share
one app never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from adapters.fakes import (
    FixedClock,
    InMemoryLegalInvoicing,
    InMemoryMailer,
    InMemoryPaymentProvider,
    InMemoryTaxIdVerifier,
    InMemoryWebhookSender,
)
from billing_core import Permission, Role, services
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers
from entrypoints.container import Container, settings_from_env
from entrypoints.http.app import create_app
from tests.support.customers import give_invoice_address

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DOLLAR = 1_000_000
ROLES = ("primary-owner", "owner", "member")


@dataclass
class Api:
    client: TestClient[Litestar]
    container: Container
    clock: FixedClock
    payments: InMemoryPaymentProvider
    legal: InMemoryLegalInvoicing
    mailer: InMemoryMailer
    webhooks: InMemoryWebhookSender

    @property
    def ctx(self) -> BillingContext:
        context: BillingContext = self.container.billing_context()
        return context

    @property
    def deliverers(self) -> Deliverers:
        value: Deliverers = self.container.deliverers()
        return value


def make_container(clock: FixedClock, **fakes: object) -> Container:
    """A container with ``BILLING_STORAGE=memory`` and every outside-world adapter overridden."""
    container = Container()
    container.settings.override(providers.Object(settings_from_env({"BILLING_STORAGE": "memory",
                                                                    "BILLING_ENV": "test"})))
    container.clock.override(providers.Object(clock))
    for name, fake in fakes.items():
        getattr(container, name).override(providers.Object(fake))
    return container


@pytest.fixture
def api() -> Iterator[Api]:
    yield from _api()


@pytest.fixture(scope="module")
def shared_api() -> Iterator[Api]:
    yield from _api()


def _api() -> Iterator[Api]:
    clock = FixedClock(START)
    payments, legal, mailer, webhooks = (InMemoryPaymentProvider(), InMemoryLegalInvoicing(), InMemoryMailer(),
                                         InMemoryWebhookSender())
    container = make_container(clock, payments=payments, legal=legal, mailer=mailer, webhooks=webhooks,
                               tax_ids=InMemoryTaxIdVerifier())
    with TestClient(create_app(container)) as client:
        yield Api(client=client, container=container, clock=clock, payments=payments, legal=legal, mailer=mailer,
                  webhooks=webhooks)


@dataclass
class World:
    org: uuid.UUID
    outsider_org: uuid.UUID
    tokens: dict[str, str]
    """primary-owner, owner, member, service (usage:write), outsider (another org's primary owner)"""
    payment_method_id: uuid.UUID
    second_payment_method_id: uuid.UUID
    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    product_subscription_id: uuid.UUID
    tax_registration_id: uuid.UUID
    checkout_session_id: uuid.UUID | None
    event_id: str = "evt-world"
    provider_session_id: str | None = None
    """The payment provider's id of the checkout session (``cs_…``)."""
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str | None, **more: str) -> dict[str, str]:
        base = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        return {**base, **more}


def _org_with_members(ctx: BillingContext, name: str) -> tuple[uuid.UUID, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    org = services.organizations.create_organization(ctx, name=name, owner_user_id=f"ada-{tag}",
                                                     owner_email=f"ada-{tag}@example.com")
    services.organizations.add_member(ctx, organization_id=org.id, user_id=f"bob-{tag}",
                                      email=f"bob-{tag}@example.com", role=Role.OWNER)
    services.organizations.add_member(ctx, organization_id=org.id, user_id=f"cy-{tag}",
                                      email=f"cy-{tag}@example.com", role=Role.MEMBER)
    tokens = {}
    for role, user in zip(ROLES, ("ada", "bob", "cy"), strict=True):
        _, tokens[role] = services.organizations.issue_token(ctx, organization_id=org.id, name=role,
                                                             user_id=f"{user}-{tag}")
    _, tokens["service"] = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                              scopes=frozenset({Permission.USAGE_WRITE}))
    # Legal invoices need the buyer's address (EN 16931 BR-10/BR-11): without it they are not issued.
    owner = services.organizations.authenticate(ctx, tokens["primary-owner"])
    give_invoice_address(ctx, owner, org.id)
    return org.id, tokens


def build_world(api: Api, *, subscribed: bool = True) -> World:
    """A fully furnished organization (see the module docstring), seeded through the use cases."""
    ctx = api.ctx
    org, tokens = _org_with_members(ctx, "Acme")
    outsider, outsider_tokens = _org_with_members(ctx, "Other")
    tokens["outsider"] = outsider_tokens["primary-owner"]
    tokens["outsider-service"] = outsider_tokens["service"]
    ada = services.organizations.authenticate(ctx, tokens["primary-owner"])
    bob = services.organizations.authenticate(ctx, tokens["owner"])
    platform = services.organizations.authenticate(ctx, tokens["service"])

    visa = services.payment_methods.attach(ctx, bob, organization_id=org, provider_payment_method_id="pm_card_visa")
    sepa = services.payment_methods.attach(ctx, bob, organization_id=org, provider_payment_method_id="pm_sepa_debit")
    session_id = None
    provider_session_id = None
    if subscribed:
        session = services.checkout.start_checkout(ctx, ada, organization_id=org, plan="pro",
                                                   return_url="https://app.example.com/billing/plans")
        assert session.provider_session_id is not None
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id=f"sub_{org.hex}")
        session_id, provider_session_id = session.id, session.provider_session_id
    payment = services.payments.add_credits(ctx, ada, organization_id=org, amount_micros=50 * DOLLAR)
    product_sub = services.product_subscriptions.subscribe_product(ctx, bob, organization_id=org, product="compute",
                                                                   project_id=None,
                                                                   start_date=datetime(2026, 2, 1, tzinfo=UTC))
    project = uuid.uuid4()
    services.usage.report_usage(ctx, platform, organization_id=org, event_id="evt-february", product="compute",
                                quantity=25, project_id=project, occurred_at=datetime(2026, 2, 15, 9, tzinfo=UTC))
    services.usage.report_usage(ctx, platform, organization_id=org, event_id="evt-world", product="compute",
                                quantity=10, project_id=project)
    held = services.holds.place_hold(ctx, platform, organization_id=org, product="compute", max_quantity=5)
    assert held.hold is not None
    # A generous project budget (ADR 0017): the budget routes have one to read and remove.
    services.budgets.put_budget(ctx, ada, organization_id=org, scope="project", scope_id=project,
                                monthly_micros=1_000 * DOLLAR)
    report = services.invoicing.close_period(ctx, period="2026-02", organization_id=org)
    services.dispatch.dispatch(ctx, api.deliverers)
    registration = services.settings.add_tax_registration(ctx, bob, organization_id=org, country="DE",
                                                          value="DE136695976")
    return World(org=org, outsider_org=outsider, tokens=tokens, payment_method_id=visa.id,
                 second_payment_method_id=sepa.id, payment_id=payment.id, invoice_id=report.invoice_ids[0],
                 product_subscription_id=product_sub.id, tax_registration_id=registration.id,
                 checkout_session_id=session_id, provider_session_id=provider_session_id,
                 extra={"hold": str(held.hold.id), "project": str(project)})


@pytest.fixture
def world(api: Api) -> World:
    return build_world(api)
