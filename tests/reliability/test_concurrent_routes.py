"""Every mutating route and every handled provider event, fired concurrently at ``billing serve``
(issue 14, "How it is proven"), on SQLite and PostgreSQL.

The scenario table is checked against the app's own route list (``mutating_routes``): a new POST,
PUT, PATCH or DELETE route without a scenario fails ``test_every_mutating_route_has_a_scenario``,
and a new provider event type without one fails ``test_every_handled_event_type_has_a_scenario``.

One server per database for the module (a child process: the requests cross a real socket from
client threads of this process); every scenario builds its own organizations through the use
cases, over the same database. For each route:

* **once** — the request alone, on a twin organization: the reference effects.
* **identical** — 16 copies at once with one ``Idempotency-Key``: exactly the effects of once,
  and every successful answer is the same answer.
* **unkeyed** — 16 copies at once without a key, where that means something: the effects of once
  (the use case recognises the repeat: same event id, same method, same preview) or of sixteen
  (each is a new operation: a top-up, a checkout), as the scenario says.
* **conflicting** — 16 at once on the same resource with different bodies or from different
  organizations: the scenario's own outcome check.

"Effects" are read from the stored rows (per organization: rows per table and status, ledger
transactions per kind and their sums per kind and account, outbox messages per topic,
payment-method defaults, wallet balance, provider customer), so
"exactly once" covers the ledger, payments, subscriptions, invoices and the outbox together. After
every burst no answer is a 5xx and ``reconcile`` is clean for every organization involved.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from adapters.fakes import InMemoryPaymentProvider, SystemClock
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.sqlalchemy import tables as t
from adapters.sqlalchemy.engine import make_engine
from adapters.stripe.events import HANDLED_EVENT_TYPES
from adapters.testing.storage import migrated_database
from billing_core import Permission, services
from billing_core.budgets import BudgetScope, ScopedBudget
from billing_core.catalog import load_catalog
from billing_core.ledger import Account, EntryKind
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from entrypoints.container import Container, settings_from_env
from entrypoints.http.app import create_app
from tests.reliability.served_support import Answer, Call, Server, billing_serve, fire, mutating_routes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N = 16
DOLLAR = 1_000_000
ORG = "/organizations/{organization_id:uuid}"
RETURN_URL = "https://app.example.com/billing"
IN_PROGRESS = "idempotency_request_in_progress"


# --------------------------------------------------------------------------- the served app


@dataclass
class Org:
    id: uuid.UUID
    token: str
    """The primary owner's (every money action is theirs)."""
    service: str
    """A platform token with ``usage:write``."""
    email: str
    actor: Actor

    @property
    def base(self) -> str:
        return f"/organizations/{self.id}"


@dataclass
class Harness:
    kind: str
    server: Server
    ctx: BillingContext
    """The test's own view of the served database (its provider is a fake of this process)."""
    engine: Engine
    signer: InMemoryPaymentProvider
    """Signs provider events with the served app's (offline) webhook secret."""
    requests: Counter[str] = field(default_factory=Counter)

    def fire(self, calls: list[Call], label: str) -> list[Answer]:
        answers = fire(self.server.url, calls)
        self.requests[label] += len(calls)
        failed = [f"{c.method} {c.path} -> {a.status} {a.text}" for c, a in zip(calls, answers, strict=True)
                  if a.status >= 500]
        assert not failed, "\n".join(failed[:5]) + "\n" + self.server.tail()
        return answers

    def org(self, *, card: bool = True, subscribed: bool = False, compute: bool = False,
            email: str | None = None) -> Org:
        ctx = self.ctx
        tag = uuid.uuid4().hex[:10]
        email = email or f"owner-{tag}@routes.example"
        org = services.organizations.create_organization(ctx, name=f"Routes {tag}", owner_user_id=f"owner-{tag}",
                                                         owner_email=email)
        _, token = services.organizations.issue_token(ctx, organization_id=org.id, name="owner",
                                                      user_id=f"owner-{tag}")
        _, service = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                        scopes=frozenset({Permission.USAGE_WRITE}))
        actor = services.organizations.authenticate(ctx, token)
        if card:
            services.payment_methods.attach(ctx, actor, organization_id=org.id,
                                            provider_payment_method_id="pm_card_visa")
        if subscribed:
            session = services.checkout.start_checkout(ctx, actor, organization_id=org.id, plan="pro",
                                                            return_url=RETURN_URL)
            assert session.provider_session_id is not None
            services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                                     provider_subscription_id=f"sub_{org.id.hex}")
        if compute:
            services.product_subscriptions.subscribe_product(ctx, actor, organization_id=org.id, product="compute",
                                                     project_id=None)
        return Org(org.id, token, service, email, actor)

    def effects(self, *orgs: Org) -> Counter[str]:
        """What the organizations' stored rows add up to (see the module docstring)."""
        found: Counter[str] = Counter()
        with self.engine.connect() as connection:
            for org in orgs:
                for table in t.metadata.sorted_tables:
                    if "organization_id" not in table.c or table.name == "idempotency_responses":
                        continue
                    group = next((table.c[name] for name in ("kind", "topic", "status", "is_default")
                                  if name in table.c), None)
                    columns = [group, func.count()] if group is not None else [func.count()]
                    query = select(*columns).select_from(table).where(table.c.organization_id == org.id)
                    if group is not None:
                        query = query.group_by(group)
                    for row in connection.execute(query):
                        name = table.name if group is None else f"{table.name}[{row[0]}]"
                        found[name] += row[-1]
                postings, transactions = t.ledger_postings.c, t.ledger_transactions.c
                sums = (select(transactions.kind, postings.account, func.sum(postings.amount_micros))
                        .select_from(t.ledger_postings.join(t.ledger_transactions,
                                                            postings.transaction_seq == transactions.seq))
                        .where(postings.organization_id == org.id)
                        .group_by(transactions.kind, postings.account))
                for kind, account, total in connection.execute(sums):
                    found[f"ledger {kind} {account} µ$"] += total
                wallet = connection.execute(select(t.wallets.c.wallet_micros, t.wallets.c.unbilled_micros)
                                            .where(t.wallets.c.organization_id == org.id)).one()
                found["wallet µ$"] += wallet.wallet_micros
                found["unbilled µ$"] += wallet.unbilled_micros
                customer = connection.execute(select(t.organizations.c.provider_customer_id)
                                              .where(t.organizations.c.id == org.id)).scalar()
                found["provider customer"] += customer is not None
                found["guest checkouts"] += connection.execute(
                    select(func.count()).select_from(t.checkout_sessions)
                    .where(t.checkout_sessions.c.guest_email == org.email)).scalar_one()
        return Counter({name: count for name, count in found.items() if count})

    def reconciles(self, *orgs: Org) -> None:
        for org in orgs:
            report = services.reconcile.reconcile(self.ctx, organization_id=org.id)
            assert report.clean, report

    def ledger(self, org: Org, kind: EntryKind) -> list[int]:
        with self.ctx.uow() as uow:
            page = uow.ledger.list(org.id, kinds=frozenset({kind}), limit=200)
        return [tx.delta(Account.WALLET) for tx in page.items]


def _diff(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in sorted(set(after) | set(before))
            if after[name] != before[name]}


DATABASES = [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=DATABASES)
def h(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    kind: str = request.param
    directory = tmp_path_factory.mktemp(f"routes-{kind}")
    with migrated_database(kind, directory) as (url, schema):  # type: ignore[arg-type]
        env = {"BILLING_ENV": "test", "BILLING_STORAGE": "sqlalchemy", "BILLING_DATABASE_URL": url,
               "BILLING_DATABASE_SCHEMA": schema, "BILLING_DATA_DIR": str(directory / "var"),
               "BILLING_WORKER": "false", "BILLING_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
               "BILLING_STRIPE_API_KEY": "", "BILLING_STRIPE_WEBHOOK_SECRET": "", "BILLING_DEMO": "",
               "BILLING_TEST_CLOCK_FILE": "", "BILLING_EASYBILL_API_KEY": ""}
        engine = make_engine(url, schema=schema or None, pool_size=8)
        ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=SystemClock(), catalog=load_catalog(),
                             payments=InMemoryPaymentProvider())
        try:
            with billing_serve(env) as server:
                harness = Harness(kind, server, ctx, engine, InMemoryPaymentProvider(webhook_secret="whsec_offline"))
                yield harness
                events = {label: n for label, n in harness.requests.items() if label.startswith("event ")}
                print(f"\nconcurrent routes on {kind}: {sum(harness.requests.values())} requests, "
                      f"{len(harness.requests) - len(events)} routes and {len(events)} event types "
                      f"({sum(events.values())} of them webhook deliveries)")
                assert "Traceback" not in "".join(server.log), server.tail(200)
        finally:
            engine.dispose()


# --------------------------------------------------------------------------- scenarios


@dataclass
class Setup:
    """What a scenario built: the organization the requests act for, and whatever else it needs."""

    org: Org
    others: list[Org] = field(default_factory=list)
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def orgs(self) -> list[Org]:
        return [self.org, *self.others]


Check = Callable[[Harness, Setup, list[Answer]], None]


@dataclass(frozen=True)
class Scenario:
    setup: Callable[[Harness], Setup]
    call: Callable[[Setup], Call]
    conflicting: Callable[[Harness, Setup], list[Call]]
    check: Check
    """The outcome of the conflicting burst, beyond no 5xx and a clean reconcile."""
    keyed: bool = True
    """The route takes an Idempotency-Key (every authenticated route does)."""
    unkeyed: str = "once"
    """Sixteen without a key: "once" (the effects of one), "each" (of sixteen), or "custom"."""
    unkeyed_check: Check | None = None


SCENARIOS: dict[tuple[str, str], Scenario] = {}


def scenario(method: str, path: str) -> Callable[[Callable[[], Scenario]], None]:
    def register(build: Callable[[], Scenario]) -> None:
        SCENARIOS[(method, path)] = build()
    return register


def _ok(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.ok]


def _codes(answers: list[Answer]) -> Counter[str]:
    return Counter(f"{a.status} {a.code or ''}".strip() for a in answers)


def _only(answers: list[Answer], *allowed: str) -> None:
    """Every answer is a 2xx or one of the ``allowed`` "status code" pairs."""
    unexpected = [f"{a.status} {a.code}: {a.text}" for a in answers
                  if not a.ok and f"{a.status} {a.code or ''}".strip() not in allowed]
    assert not unexpected, unexpected[:5]


def _none(h: Harness, s: Setup, answers: list[Answer]) -> None:
    """Nothing beyond the universal checks."""


def _scalar(h: Harness, query: Any) -> Any:
    with h.engine.connect() as connection:
        return connection.execute(query).scalar()


def _now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------- usage


@scenario("POST", ORG + "/usage/events")
def _usage_event() -> Scenario:
    def conflicting(h: Harness, s: Setup) -> list[Call]:
        return [Call("POST", s.org.base + "/usage/events", s.org.service,
                     {"event_id": "ev-conflict", "product": "compute", "quantity": n + 1}) for n in range(N)]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "409 event_id_reused")
        assert len(h.ledger(s.org, EntryKind.USAGE)) == 1
        created = [a for a in answers if a.status == 201]
        assert len(created) == 1, _codes(answers)
        replays = [a for a in answers if a.status == 200]
        # A replay answers with what was debited, whatever quantity it carried (issue 14, item 7).
        assert all(a.body["amount_micros"] == created[0].body["amount_micros"] for a in replays), replays[:2]

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True, compute=True)),
                    call=lambda s: Call("POST", s.org.base + "/usage/events", s.org.service,
                                        {"event_id": "ev-1", "product": "compute", "quantity": 3}),
                    conflicting=conflicting, check=check)


@scenario("POST", ORG + "/usage/events/batch")
def _usage_batch() -> Scenario:
    def events(n: int) -> dict[str, Any]:
        return {"events": [{"event_id": "ev-a", "product": "compute", "quantity": n + 1},
                           {"event_id": "ev-b", "product": "compute", "quantity": 2 * n + 1}]}

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "409 event_id_reused")
        assert len(h.ledger(s.org, EntryKind.USAGE)) == 2

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True, compute=True)),
                    call=lambda s: Call("POST", s.org.base + "/usage/events/batch", s.org.service, events(0)),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/usage/events/batch", s.org.service,
                                                   events(n)) for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/usage/events/{event_id:str}/refund")
def _usage_refund() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org(subscribed=True, compute=True)
        platform = services.organizations.authenticate(h.ctx, org.service)
        outcome = services.usage.report_usage(h.ctx, platform, organization_id=org.id, event_id="ev-r",
                                                 product="compute", quantity=5)
        assert outcome.allowed
        return Setup(org)

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers)
        assert len(h.ledger(s.org, EntryKind.AUTOMATIC_REFUND)) == 1

    return Scenario(setup=setup,
                    call=lambda s: Call("POST", s.org.base + "/usage/events/ev-r/refund", s.org.service),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/usage/events/ev-r/refund", s.org.service,
                                                   {"reason": f"failed operation {n}"}) for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/usage/authorize")
def _authorize() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        assert len(_ok(answers)) == N

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True, compute=True)),
                    call=lambda s: Call("POST", s.org.base + "/usage/authorize", s.org.service,
                                        {"amount_micros": 1000}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/usage/authorize", s.org.service,
                                                   {"amount_micros": 1000 * (n + 1)}) for n in range(N)],
                    check=check)


# ----------------------------------------------------------------- holds (ADR 0011)


def _held(h: Harness, org: Org) -> tuple[int, Counter[str]]:
    """The wallet's held credits and the organization's holds by status."""
    with h.ctx.uow() as uow:
        held = uow.wallets.get(org.id).held_micros
    with h.engine.connect() as connection:
        statuses = Counter(row.status for row in connection.execute(
            select(t.holds.c.status).where(t.holds.c.organization_id == org.id)))
    return held, statuses


def _org_with_hold(h: Harness) -> Setup:
    org = h.org(subscribed=True, compute=True)
    platform = services.organizations.authenticate(h.ctx, org.service)
    placed = services.holds.place_hold(h.ctx, platform, organization_id=org.id, product="compute", max_quantity=5)
    assert placed.hold is not None
    return Setup(org, ids={"hold": placed.hold.id, "held": placed.hold.amount_micros})


def _hold_path(s: Setup, tail: str = "") -> str:
    return f"{s.org.base}/usage/holds/{s.ids['hold']}{tail}"


@scenario("POST", ORG + "/usage/holds")
def _place_hold() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _same_key_other_bodies(answers)
        held, statuses = _held(h, s.org)
        assert statuses == Counter({"active": 1}), statuses
        assert held == _ok(answers)[0].body["held"]["micros"]

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True, compute=True)),
                    call=lambda s: Call("POST", s.org.base + "/usage/holds", s.org.service,
                                        {"product": "compute", "max_quantity": 5}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/usage/holds", s.org.service,
                                                   {"product": "compute", "max_quantity": n + 1}, key="one-hold")
                                              for n in range(N)],
                    check=check, unkeyed="each")


def _settle_or_release(h: Harness, s: Setup) -> list[Call]:
    """Settles with different quantities raced against releases of the same hold."""
    return [Call("DELETE", _hold_path(s), s.org.service) if n % 3 == 0 else
            Call("POST", _hold_path(s, "/settle"), s.org.service, {"event_id": f"held-{n}", "quantity": 1 + n % 5})
            for n in range(N)]


def _closed_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
    """The hold closed once, either way: nothing held, at most one usage charge, and every winning
    answer tells the same story."""
    _only(answers, "409 hold_settled", "409 hold_released")
    held, statuses = _held(h, s.org)
    assert held == 0 and sum(statuses.values()) == 1 and "active" not in statuses, statuses
    charges = h.ledger(s.org, EntryKind.USAGE)
    assert len(charges) == (1 if "settled" in statuses else 0), charges
    assert len({(a.body["status"], a.body["event_id"]) for a in _ok(answers)}) == 1, _ok(answers)[:2]


@scenario("POST", ORG + "/usage/holds/{hold_id:uuid}/settle")
def _settle_hold() -> Scenario:
    return Scenario(setup=_org_with_hold,
                    call=lambda s: Call("POST", _hold_path(s, "/settle"), s.org.service,
                                        {"event_id": "held-call", "quantity": 3}),
                    conflicting=_settle_or_release, check=_closed_once)


@scenario("DELETE", ORG + "/usage/holds/{hold_id:uuid}")
def _release_hold() -> Scenario:
    return Scenario(setup=_org_with_hold, call=lambda s: Call("DELETE", _hold_path(s), s.org.service),
                    conflicting=_settle_or_release, check=_closed_once)


# ----------------------------------------------------------------- credits and refunds


def _same_key_other_bodies(answers: list[Answer]) -> None:
    """One key, sixteen bodies: one is executed; the others are refused as a reused key (or told the
    first is still in progress), never executed."""
    assert len(_ok(answers)) >= 1
    assert len({json.dumps(a.body, sort_keys=True) for a in _ok(answers)}) == 1
    _only(answers, "409 " + IN_PROGRESS, "409 idempotency_key_reused", "422 idempotency_key_reused")


@scenario("POST", ORG + "/credits")
def _credits() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _same_key_other_bodies(answers)
        assert len(h.ledger(s.org, EntryKind.TOP_UP)) == 1
        assert _scalar(h, select(func.count()).select_from(t.payments)
                       .where(t.payments.c.organization_id == s.org.id)) == 1

    return Scenario(setup=lambda h: Setup(h.org()),
                    call=lambda s: Call("POST", s.org.base + "/credits", s.org.token, {"amount": "10.00"}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/credits", s.org.token,
                                                   {"amount": f"{10 + n}.00"}, key="one-top-up") for n in range(N)],
                    check=check, unkeyed="each")


@scenario("POST", ORG + "/credits/grants")
def _grants() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org(card=False)
        _, granter = services.organizations.issue_token(h.ctx, organization_id=org.id, name="back office",
                                                        scopes=frozenset({Permission.CREDITS_GRANT}))
        return Setup(org, ids={"granter": granter, "expires_at": _now_iso(timedelta(days=7))})

    def body(s: Setup, n: int) -> dict[str, Any]:
        return {"amount_micros": (5 + n) * DOLLAR, "description": "Launch promo", "expires_at": s.ids["expires_at"]}

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _same_key_other_bodies(answers)
        assert len(h.ledger(s.org, EntryKind.GRANT)) == 1

    def each(h: Harness, s: Setup, answers: list[Answer]) -> None:
        # Sixteen grants, each its own entry and grant; the organization keeps one cursor.
        assert len(_ok(answers)) == N, _codes(answers)
        assert len(h.ledger(s.org, EntryKind.GRANT)) == N
        assert len({a.body["grant"]["id"] for a in answers}) == N

    return Scenario(setup=setup,
                    call=lambda s: Call("POST", s.org.base + "/credits/grants", s.ids["granter"], body(s, 0)),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/credits/grants", s.ids["granter"], body(s, n),
                                                   key="one-grant") for n in range(N)],
                    check=check, unkeyed="custom", unkeyed_check=each)


@scenario("POST", ORG + "/credit_packs/purchase")
def _packs() -> Scenario:
    packs = [10, 25, 50, 100]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _same_key_other_bodies(answers)
        assert len(h.ledger(s.org, EntryKind.CREDIT_PACK)) == 1

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True)),
                    call=lambda s: Call("POST", s.org.base + "/credit_packs/purchase", s.org.token,
                                        {"pack_dollars": 25}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/credit_packs/purchase", s.org.token,
                                                   {"pack_dollars": packs[n % len(packs)]}, key="one-pack")
                                              for n in range(N)],
                    check=check, unkeyed="each")


@scenario("POST", ORG + "/refunds")
def _refunds() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org()
        first = services.payments.add_credits(h.ctx, org.actor, organization_id=org.id, amount_micros=50 * DOLLAR)
        second = services.payments.add_credits(h.ctx, org.actor, organization_id=org.id, amount_micros=20 * DOLLAR)
        outsider = h.org()
        return Setup(org, [outsider], {"payment": first.id, "second": second.id})

    def approved_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "404 not_found")
        with h.ctx.uow() as uow:
            requests = uow.refunds.list(s.org.id)
            for payment_id in (s.ids["payment"], s.ids["second"]):
                payment = uow.payments.get(s.org.id, payment_id)
                assert 0 <= payment.refunded_cents <= payment.amount_cents
                assert sum(r.status.value in ("pending", "succeeded") for r in requests
                           if r.payment_id == payment_id) <= 1
        approved = [r for r in requests if r.status.value == "succeeded"]
        assert len(approved) >= 1
        assert {a.body["outcome"] for a in answers if a.ok and "outcome" in a.body} <= {"processed", "duplicate"}
        assert len(h.ledger(s.org, EntryKind.CREDIT_REFUND)) == len(approved)

    def conflicting(h: Harness, s: Setup) -> list[Call]:
        """Refunds of two payments, some asked by another organization, racing the provider's
        dispute of the second (its reversal takes back only what the refunds have not)."""
        with h.ctx.uow() as uow:
            disputed = uow.payments.get(s.org.id, s.ids["second"]).provider_payment_id
        dispute = _webhook(_sign(h, "charge.dispute.created", {"id": "ch_dispute", "object": "charge",
                                                               "payment_intent": disputed}))
        calls = []
        for n in range(N):
            payment = s.ids["payment"] if n % 2 else s.ids["second"]
            token = s.others[0].token if n % 4 == 3 else s.org.token  # another organization asks for it
            calls.append(dispute if n % 8 == 2 else Call("POST", s.org.base + "/refunds", token,
                                                         {"payment_id": str(payment), "reason": f"reason {n}"}))
        return calls

    return Scenario(setup=setup,
                    call=lambda s: Call("POST", s.org.base + "/refunds", s.org.token,
                                        {"payment_id": str(s.ids["payment"])}),
                    conflicting=conflicting, check=approved_once, unkeyed="custom", unkeyed_check=approved_once)


# ----------------------------------------------------------------- plans and checkout


@scenario("POST", ORG + "/subscription/change/preview")
def _preview() -> Scenario:
    plans = ["starter", "scale", "enterprise"]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        assert len(_ok(answers)) == N

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True)),
                    call=lambda s: Call("POST", s.org.base + "/subscription/change/preview", s.org.token,
                                        {"plan": "scale"}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/subscription/change/preview", s.org.token,
                                                   {"plan": plans[n % len(plans)]}) for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/subscription/change")
def _change() -> Scenario:
    plans = ["scale", "enterprise"]

    def setup(h: Harness) -> Setup:
        return Setup(h.org(subscribed=True), ids={"at": _now_iso(timedelta(seconds=-1))})

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "409 plan_changed", "409 plan_change_exists", "409 concurrent_update")
        with h.ctx.uow() as uow:
            sub = uow.plan_subscriptions.current(s.org.id)
            assert sub is not None
            (change,) = uow.plan_changes.list(s.org.id)
        assert sub.plan == change.to_plan
        assert {a.body["preview"]["to_plan"] for a in _ok(answers)} == {change.to_plan}
        assert change.status.value == "invoiced"

    return Scenario(setup=setup,
                    call=lambda s: Call("POST", s.org.base + "/subscription/change", s.org.token,
                                        {"plan": "scale", "preview_at": s.ids["at"]}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/subscription/change", s.org.token,
                                                   {"plan": plans[n % 2], "preview_at": s.ids["at"]})
                                              for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/checkout_sessions")
def _checkout_sessions() -> Scenario:
    plans = ["starter", "pro", "scale"]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        assert len(_ok(answers)) == N
        assert h.effects(s.org)["checkout_sessions[open]"] == N
        with h.ctx.uow() as uow:
            assert uow.plan_subscriptions.current(s.org.id) is None

    return Scenario(setup=lambda h: Setup(h.org()),
                    call=lambda s: Call("POST", s.org.base + "/checkout_sessions", s.org.token,
                                        {"plan": "pro", "return_url": RETURN_URL}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/checkout_sessions", s.org.token,
                                                   {"plan": plans[n % 3], "return_url": RETURN_URL})
                                              for n in range(N)],
                    check=check, unkeyed="each")


def _open_session(h: Harness, org: Org) -> uuid.UUID:
    session = services.checkout.start_checkout(h.ctx, org.actor, organization_id=org.id, plan="pro",
                                                    return_url=RETURN_URL)
    return session.id


@scenario("POST", ORG + "/checkout_sessions/{session_id:uuid}/complete")
def _complete() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org()
        return Setup(org, ids={"session": _open_session(h, org), "second": _open_session(h, org)})

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "409 already_subscribed")
        effects = h.effects(s.org)
        assert effects["plan_subscriptions[trialing]"] == 1 and effects["checkout_sessions[complete]"] == 1
        assert len(h.ledger(s.org, EntryKind.GRANT)) == 1

    def path(s: Setup, name: str) -> str:
        return f"{s.org.base}/checkout_sessions/{s.ids[name]}/complete"

    return Scenario(setup=setup, call=lambda s: Call("POST", path(s, "session"), s.org.token),
                    conflicting=lambda h, s: [Call("POST", path(s, "session" if n % 2 else "second"), s.org.token)
                                              for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/billing_portal")
def _portal() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        assert len(_ok(answers)) == N

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True)),
                    call=lambda s: Call("POST", s.org.base + "/billing_portal", s.org.token,
                                        {"return_url": RETURN_URL}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/billing_portal", s.org.token,
                                                   {"return_url": f"{RETURN_URL}/{n}"}) for n in range(N)],
                    check=check)


def _guest(h: Harness, email: str) -> str:
    """A completed guest checkout for ``email``; its provider subscription id."""
    session = services.checkout.start_guest_checkout(h.ctx, email=email, plan="pro", return_url=RETURN_URL)
    assert session.provider_session_id is not None
    provider_subscription_id = f"sub_guest_{session.id.hex}"
    services.checkout.complete_checkout(h.ctx, provider_session_id=session.provider_session_id,
                                             provider_subscription_id=provider_subscription_id)
    return provider_subscription_id


@scenario("POST", "/me/claim_guest_checkouts")
def _claims() -> Scenario:
    def setup(h: Harness) -> Setup:
        email = f"guest-{uuid.uuid4().hex[:10]}@routes.example"
        _guest(h, email)
        return Setup(h.org(card=False, email=email), [h.org(card=False, email=email)])

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers)
        claimed = sum(len(a.body["claimed"]) for a in answers)
        effects = h.effects(*s.orgs)
        assert claimed == 1 and effects["plan_subscriptions[active]"] == 1, (claimed, effects)

    return Scenario(setup=setup, call=lambda s: Call("POST", "/me/claim_guest_checkouts", s.org.token),
                    conflicting=lambda h, s: [Call("POST", "/me/claim_guest_checkouts", s.orgs[n % 2].token)
                                              for n in range(N)],
                    check=check)


@scenario("POST", "/guest_checkout_sessions")
def _guest_sessions() -> Scenario:
    plans = ["starter", "pro", "scale"]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        assert len(_ok(answers)) == N and h.effects(s.org)["guest checkouts"] == N

    return Scenario(setup=lambda h: Setup(h.org(card=False)),
                    call=lambda s: Call("POST", "/guest_checkout_sessions", None,
                                        {"email": s.org.email, "plan": "pro", "return_url": RETURN_URL}),
                    conflicting=lambda h, s: [Call("POST", "/guest_checkout_sessions", None,
                                                   {"email": s.org.email, "plan": plans[n % 3],
                                                    "return_url": RETURN_URL}) for n in range(N)],
                    check=check, keyed=False, unkeyed="each")


# ----------------------------------------------------------------- payment methods


def _methods(h: Harness, org: Org) -> list[Any]:
    with h.ctx.uow() as uow:
        return uow.payment_methods.list(org.id)


def _one_default(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers, "404 not_found")
    methods = _methods(h, s.org)
    assert [m.default for m in methods].count(True) == (1 if methods else 0), methods


@scenario("POST", ORG + "/payment_methods/create_and_attach")
def _attach() -> Scenario:
    cards = ["pm_card_visa", "pm_card_mastercard", "pm_sepa_debit", "pm_card_amex"]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _one_default(h, s, answers)
        assert {m.provider_payment_method_id for m in _methods(h, s.org)} == set(cards)

    return Scenario(setup=lambda h: Setup(h.org(card=False)),
                    call=lambda s: Call("POST", s.org.base + "/payment_methods/create_and_attach", s.org.token,
                                        {"payment_method_id": "pm_card_visa"}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/payment_methods/create_and_attach",
                                                   s.org.token, {"payment_method_id": cards[n % len(cards)]})
                                              for n in range(N)],
                    check=check)


@scenario("POST", ORG + "/payment_methods/payment_intent")
def _setup_intent() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        """A fresh organization's first requests race to create its provider customer: one is stored,
        and a concurrent webhook-secret rotation (a save of the same row) does not lose it."""
        _only(answers)
        assert h.effects(s.org)["provider customer"] == 1
        with h.ctx.uow() as uow:
            secret = uow.organizations.get(s.org.id).webhook_secret
        assert secret in {a.body.get("secret") for a in answers}

    def conflicting(h: Harness, s: Setup) -> list[Call]:
        return [Call("POST", s.org.base + "/payment_methods/payment_intent", s.org.token) if n % 2 else
                Call("POST", s.org.base + "/webhook_secret/rotate", s.org.token) for n in range(N)]

    return Scenario(setup=lambda h: Setup(h.org(card=False)),
                    call=lambda s: Call("POST", s.org.base + "/payment_methods/payment_intent", s.org.token),
                    conflicting=conflicting, check=check)


def _three_cards(h: Harness) -> Setup:
    org = h.org()
    for card in ("pm_card_mastercard", "pm_sepa_debit"):
        services.payment_methods.attach(h.ctx, org.actor, organization_id=org.id, provider_payment_method_id=card)
    methods = _methods(h, org)
    return Setup(org, ids={"methods": [m.id for m in methods], "other": next(m.id for m in methods
                                                                             if not m.default)})


@scenario("PUT", ORG + "/payment_methods/{payment_method_id:uuid}/set_default")
def _set_default() -> Scenario:
    def path(s: Setup, method: uuid.UUID) -> str:
        return f"{s.org.base}/payment_methods/{method}/set_default"

    return Scenario(setup=_three_cards, call=lambda s: Call("PUT", path(s, s.ids["other"]), s.org.token),
                    conflicting=lambda h, s: [Call("PUT", path(s, s.ids["methods"][n % 3]), s.org.token)
                                              for n in range(N)],
                    check=_one_default)


@scenario("DELETE", ORG + "/payment_methods/{payment_method_id:uuid}")
def _remove_method() -> Scenario:
    def path(s: Setup, method: uuid.UUID) -> str:
        return f"{s.org.base}/payment_methods/{method}"

    def unkeyed(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _one_default(h, s, answers)
        assert sum(a.ok for a in answers) == 1 and len(_methods(h, s.org)) == 2

    def conflicting(h: Harness, s: Setup) -> list[Call]:
        # Removals of every method, racing set-defaults of them.
        return [Call("DELETE", path(s, s.ids["methods"][n % 3]), s.org.token) if n % 2 == 0 else
                Call("PUT", path(s, s.ids["methods"][n % 3]) + "/set_default", s.org.token) for n in range(N)]

    def check_mixed(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _one_default(h, s, answers)
        assert _methods(h, s.org) == []

    return Scenario(setup=_three_cards, call=lambda s: Call("DELETE", path(s, s.ids["other"]), s.org.token),
                    conflicting=conflicting, check=check_mixed, unkeyed="custom", unkeyed_check=unkeyed)


# ----------------------------------------------------------------- billing settings


def _registration(h: Harness) -> Setup:
    org = h.org()
    registration = services.settings.add_tax_registration(h.ctx, org.actor, organization_id=org.id, country="DE",
                                                          value="DE136695976")
    return Setup(org, ids={"registration": registration.id})


@scenario("POST", ORG + "/tax_registrations")
def _add_registration() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "409 duplicate_tax_registration")
        assert len(_ok(answers)) == 1 and h.effects(s.org)["tax_registrations[verified]"] == 1

    def unkeyed(h: Harness, s: Setup, answers: list[Answer]) -> None:
        check(h, s, answers)

    return Scenario(setup=lambda h: Setup(h.org()),
                    call=lambda s: Call("POST", s.org.base + "/tax_registrations", s.org.token,
                                        {"country": "DE", "value": "DE136695976"}),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/tax_registrations", s.org.token,
                                                   {"country": "DE", "value": "DE136695976",
                                                    "description": f"office {n}"}) for n in range(N)],
                    check=check, unkeyed="custom", unkeyed_check=unkeyed)


def _registration_race(h: Harness, s: Setup) -> list[Call]:
    path = f"{s.org.base}/tax_registrations/{s.ids['registration']}"
    return [Call("DELETE", path, s.org.token) if n % 2 else Call("POST", path + "/verify", s.org.token)
            for n in range(N)]


def _registration_gone(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers, "404 not_found")
    assert h.effects(s.org)["tax_registrations[verified]"] == 0


@scenario("DELETE", ORG + "/tax_registrations/{registration_id:uuid}")
def _remove_registration() -> Scenario:
    def unkeyed(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _registration_gone(h, s, answers)
        assert len(_ok(answers)) == 1

    return Scenario(setup=_registration,
                    call=lambda s: Call("DELETE", f"{s.org.base}/tax_registrations/{s.ids['registration']}",
                                        s.org.token),
                    conflicting=_registration_race, check=_registration_gone, unkeyed="custom",
                    unkeyed_check=unkeyed)


@scenario("POST", ORG + "/tax_registrations/{registration_id:uuid}/verify")
def _verify_registration() -> Scenario:
    return Scenario(setup=_registration,
                    call=lambda s: Call("POST", f"{s.org.base}/tax_registrations/{s.ids['registration']}/verify",
                                        s.org.token),
                    conflicting=_registration_race, check=_registration_gone)


def _settings_scenario(path: str, body: Callable[[int], dict[str, Any]],
                       stored: Callable[[Harness, Org], Any], answered: Callable[[dict[str, Any]], Any]) -> Scenario:
    """A PUT of settings: the last write wins whole — what is stored is one of the bodies sent, and
    the answer of that request; nothing else of the organization changes."""
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers)
        sent = [answered(body(n)) for n in range(N)]
        assert stored(h, s.org) in sent

    return Scenario(setup=lambda h: Setup(h.org(subscribed=True)),
                    call=lambda s: Call("PUT", s.org.base + path, s.org.token, body(0)),
                    conflicting=lambda h, s: [Call("PUT", s.org.base + path, s.org.token, body(n)) for n in range(N)],
                    check=check)


def _settings(h: Harness, org: Org) -> Any:
    with h.ctx.uow() as uow:
        return uow.settings.get(org.id)


def _address(settings: Any) -> tuple[str | None, str | None]:
    assert settings.address is not None
    return settings.address.company_name, settings.address.address_1


@scenario("PUT", ORG + "/auto_recharge")
def _auto_recharge() -> Scenario:
    def body(n: int, method: uuid.UUID | None = None) -> dict[str, Any]:
        sent: dict[str, Any] = {"enabled": True, "threshold_micros": (5 + n) * DOLLAR,
                                "amount_micros": (25 + n) * DOLLAR}
        return sent if method is None else {**sent, "payment_method_id": str(method)}

    def conflicting(h: Harness, s: Setup) -> list[Call]:
        """Auto-recharge pointed at a card while the card is removed: never left naming a removed card."""
        card = s.ids["other"]
        return [Call("PUT", s.org.base + "/auto_recharge", s.org.token, body(n, card)) if n % 4 else
                Call("DELETE", f"{s.org.base}/payment_methods/{card}", s.org.token) for n in range(N)]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "404 not_found")
        settings = _settings(h, s.org).auto_recharge
        assert settings.threshold_micros in {body(n)["threshold_micros"] for n in range(N)}
        assert settings.payment_method_id is None or settings.payment_method_id in {m.id for m in _methods(h, s.org)}
        assert s.ids["other"] not in {m.id for m in _methods(h, s.org)}

    return Scenario(setup=_three_cards, call=lambda s: Call("PUT", s.org.base + "/auto_recharge", s.org.token,
                                                            body(0)),
                    conflicting=conflicting, check=check)


SCENARIOS[("PUT", ORG + "/hold_overrun")] = _settings_scenario(
    "/hold_overrun",
    lambda n: {"hold_overrun": ["reject", "cap_at_hold", "allow_within_credit_line"][n % 3]},
    lambda h, org: _settings(h, org).hold_overrun,
    lambda body: body["hold_overrun"])


SCENARIOS[("PUT", ORG + "/spend_management")] = _settings_scenario(
    "/spend_management",
    lambda n: {"enabled": True, "daily_email_threshold_micros": (1 + n) * DOLLAR,
               "monthly_cap_micros": (100 + n) * DOLLAR},
    lambda h, org: (_settings(h, org).spend_management.daily_email_threshold_micros,
                    _settings(h, org).spend_management.monthly_cap_micros),
    lambda body: (body["daily_email_threshold_micros"], body["monthly_cap_micros"]))
SCENARIOS[("PUT", ORG + "/invoice_address")] = _settings_scenario(
    "/invoice_address",
    lambda n: {"company_name": f"Acme {n}", "address_1": f"Main Street {n}", "city": "Berlin",
               "postal_code": "10115", "country": "DE"},
    lambda h, org: _address(_settings(h, org)),
    lambda body: (body["company_name"], body["address_1"]))
SCENARIOS[("PUT", ORG + "/billing_email")] = _settings_scenario(
    "/billing_email", lambda n: {"email": f"billing-{n}@routes.example"},
    lambda h, org: _settings(h, org).billing_email, lambda body: body["email"])
SCENARIOS[("PUT", ORG + "/low_balance_alert")] = _settings_scenario(
    "/low_balance_alert", lambda n: {"enabled": True, "threshold_micros": (5 + n) * DOLLAR},
    lambda h, org: _settings(h, org).low_balance_alert.threshold_micros, lambda body: body["threshold_micros"])


@scenario("POST", ORG + "/webhook_secret/rotate")
def _rotate() -> Scenario:
    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers)
        with h.ctx.uow() as uow:
            org = uow.organizations.get(s.org.id)
        assert org.webhook_secret in {a.body["secret"] for a in answers}
        assert org.provider_customer_id is not None  # another save of the row did not lose it

    return Scenario(setup=lambda h: Setup(h.org()),
                    call=lambda s: Call("POST", s.org.base + "/webhook_secret/rotate", s.org.token),
                    conflicting=lambda h, s: [Call("POST", s.org.base + "/webhook_secret/rotate", s.org.token)
                                              for _ in range(N)],
                    check=check, unkeyed="custom", unkeyed_check=check)


# ----------------------------------------------------------------- product subscriptions


@scenario("POST", "/subscriptions")
def _subscribe() -> Scenario:
    projects = [str(uuid.UUID(int=n + 1)) for n in range(3)]

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers)
        assert h.effects(s.org)["product_subscriptions"] == 3
        assert len({a.body["id"] for a in answers}) == 3

    return Scenario(setup=lambda h: Setup(h.org()),
                    call=lambda s: Call("POST", "/subscriptions", s.org.token, {"product": "compute"}),
                    conflicting=lambda h, s: [Call("POST", "/subscriptions", s.org.token,
                                                   {"product": "compute", "project_id": projects[n % 3]})
                                              for n in range(N)],
                    check=check)


@scenario("POST", "/subscriptions/{subscription_id:uuid}/end")
def _end() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org()
        link = services.product_subscriptions.subscribe_product(h.ctx, org.actor, organization_id=org.id,
                                                        product="compute", project_id=None)
        return Setup(org, ids={"link": link.id, "ends": [_now_iso(timedelta(hours=n + 1)) for n in range(N)]})

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        """Ending is at the earliest date asked for, whatever order the requests land in."""
        _only(answers)
        with h.ctx.uow() as uow:
            link = uow.product_subscriptions.get(s.org.id, s.ids["link"])
        assert link.end_date == min(datetime.fromisoformat(end) for end in s.ids["ends"])

    return Scenario(setup=setup,
                    call=lambda s: Call("POST", f"/subscriptions/{s.ids['link']}/end", s.org.token,
                                        {"end_date": s.ids["ends"][0]}),
                    conflicting=lambda h, s: [Call("POST", f"/subscriptions/{s.ids['link']}/end", s.org.token,
                                                   {"end_date": s.ids["ends"][n]}) for n in range(N)],
                    check=check)


WEBHOOK = ("POST", "/webhooks/stripe")
"""Covered by :data:`EVENT_SCENARIOS`: one scenario per handled provider event type."""


# --------------------------------------------------------------------------- the route tests


def test_every_mutating_route_has_a_scenario() -> None:
    """The table covers exactly the app's mutating routes (the offline checkout completion
    included): a new route without a scenario, or a scenario for a route that is gone, fails."""
    container = Container()
    from dependency_injector import providers

    container.settings.override(providers.Object(settings_from_env({"BILLING_STORAGE": "memory",
                                                                    "BILLING_ENV": "test"})))
    routes = mutating_routes(create_app(container))
    assert routes == set(SCENARIOS) | {WEBHOOK}


def _run_identical(h: Harness, sc: Scenario, label: str) -> None:
    twin = sc.setup(h)
    before = h.effects(*twin.orgs)
    (alone,) = h.fire([replace(sc.call(twin), key=f"once-{uuid.uuid4()}")], label)
    assert alone.ok, alone
    once = _diff(h.effects(*twin.orgs), before)
    h.reconciles(*twin.orgs)

    setup = sc.setup(h)
    before = h.effects(*setup.orgs)
    if sc.keyed:
        key = f"same-{uuid.uuid4()}"
        answers = h.fire([replace(sc.call(setup), key=key) for _ in range(N)], label)
        assert _ok(answers), _codes(answers)
        assert len({json.dumps(a.body, sort_keys=True) for a in _ok(answers)}) == 1, "replays differ"
        _only(answers, "409 " + IN_PROGRESS)
        assert _diff(h.effects(*setup.orgs), before) == once, "16 identical keyed requests ≠ one"
        h.reconciles(*setup.orgs)

    setup = sc.setup(h)
    before = h.effects(*setup.orgs)
    answers = h.fire([sc.call(setup) for _ in range(N)], label)
    effects = _diff(h.effects(*setup.orgs), before)
    if sc.unkeyed == "once":
        assert effects == once, f"16 identical requests without a key ≠ one: {_codes(answers)}"
    elif sc.unkeyed == "each":
        assert len(_ok(answers)) == N, _codes(answers)
        assert effects == {name: count * N for name, count in once.items()}
    else:
        assert sc.unkeyed_check is not None
        sc.unkeyed_check(h, setup, answers)
    h.reconciles(*setup.orgs)


_BUDGET_PROJECT = uuid.UUID("5e0a3f1c-2b4d-4c6e-8f7a-9b0c1d2e3f4a")
SCENARIOS[("PUT", ORG + "/spend/budgets/{budget_scope:str}/{scope_id:uuid}")] = _settings_scenario(
    f"/spend/budgets/project/{_BUDGET_PROJECT}",
    lambda n: {"daily_micros": (n + 1) * DOLLAR},
    lambda h, org: _budget_daily(h, org),
    lambda body: body["daily_micros"])


def _budget_daily(h: Harness, org: Org) -> Any:
    with h.ctx.uow() as uow:
        found = uow.budgets.list(org.id)
        assert len(found) == 1 and uow.wallets.get(org.id).scoped_budgets == 1, "one budget, counted once"
        return found[0].daily_micros


@scenario("DELETE", ORG + "/spend/budgets/{budget_scope:str}/{scope_id:uuid}")
def _remove_budget() -> Scenario:
    def setup(h: Harness) -> Setup:
        org = h.org(subscribed=True)
        with h.ctx.uow() as uow:
            uow.wallets.lock(org.id)
            uow.budgets.add(ScopedBudget(organization_id=org.id, scope=BudgetScope.PROJECT,
                                         scope_id=_BUDGET_PROJECT, daily_micros=DOLLAR))
            uow.commit()
        return Setup(org)

    def call(s: Setup) -> Call:
        return Call("DELETE", f"{s.org.base}/spend/budgets/project/{_BUDGET_PROJECT}", s.org.token)

    def check(h: Harness, s: Setup, answers: list[Answer]) -> None:
        _only(answers, "404 not_found")
        with h.ctx.uow() as uow:
            assert uow.budgets.list(s.org.id) == [] and uow.wallets.get(s.org.id).scoped_budgets == 0

    return Scenario(setup=setup, call=call, conflicting=lambda h, s: [call(s) for _ in range(N)], check=check,
                    unkeyed="custom", unkeyed_check=check)


@pytest.mark.parametrize("route", sorted(SCENARIOS), ids=lambda r: f"{r[0]} {r[1]}")
def test_identical_requests_have_the_effects_of_one(h: Harness, route: tuple[str, str]) -> None:
    _run_identical(h, SCENARIOS[route], f"{route[0]} {route[1]}")


@pytest.mark.parametrize("route", sorted(SCENARIOS), ids=lambda r: f"{r[0]} {r[1]}")
def test_conflicting_requests_have_one_consistent_outcome(h: Harness, route: tuple[str, str]) -> None:
    sc = SCENARIOS[route]
    setup = sc.setup(h)
    answers = h.fire(sc.conflicting(h, setup), f"{route[0]} {route[1]}")
    sc.check(h, setup, answers)
    h.reconciles(*setup.orgs)


# --------------------------------------------------------------------------- provider events


Event = tuple[bytes, str]


@dataclass(frozen=True)
class EventScenario:
    setup: Callable[[Harness], Setup]
    event: Callable[[Harness, Setup], Event]
    """The one event delivered sixteen times at once (and once, alone, to a twin)."""
    conflicting: Callable[[Harness, Setup], list[Event]]
    check: Check


def _sign(h: Harness, event_type: str, obj: dict[str, Any], *, created: int | None = None) -> Event:
    return h.signer.event(event_type, obj, event_id=f"evt_{uuid.uuid4().hex}", created=created)


def _pending_payment(h: Harness) -> Setup:
    org = h.org()
    h.ctx.payments.auto_succeed = False  # type: ignore[attr-defined]
    try:
        payment = services.payments.add_credits(h.ctx, org.actor, organization_id=org.id, amount_micros=20 * DOLLAR)
    finally:
        h.ctx.payments.auto_succeed = True  # type: ignore[attr-defined]
    assert payment.provider_payment_id is not None
    return Setup(org, ids={"intent": payment.provider_payment_id, "payment": payment.id})


def _paid(h: Harness) -> Setup:
    org = h.org()
    payment = services.payments.add_credits(h.ctx, org.actor, organization_id=org.id, amount_micros=20 * DOLLAR)
    assert payment.provider_payment_id is not None and payment.status.value == "succeeded"
    return Setup(org, ids={"intent": payment.provider_payment_id, "payment": payment.id})


def _intent_event(event_type: str) -> Callable[[Harness, Setup], Event]:
    def event(h: Harness, s: Setup) -> Event:
        if event_type.startswith("charge."):
            return _sign(h, event_type, {"id": f"ch_{uuid.uuid4().hex[:12]}", "object": "charge",
                                         "payment_intent": s.ids["intent"], "refunded": True})
        obj: dict[str, Any] = {"id": s.ids["intent"], "object": "payment_intent"}
        if event_type == "payment_intent.payment_failed":
            obj["last_payment_error"] = {"message": "Your card was declined."}
        return _sign(h, event_type, obj)
    return event


def _settled_or_failed(h: Harness, s: Setup, answers: list[Answer]) -> None:
    """Succeeded and failed for one payment at once: one outcome, with its money (or none)."""
    _only(answers)
    with h.ctx.uow() as uow:
        payment = uow.payments.get(s.org.id, s.ids["payment"])
    credited = h.ledger(s.org, EntryKind.TOP_UP)
    assert (payment.status.value, len(credited)) in {("succeeded", 1), ("failed", 0)}, (payment.status, credited)


def _reversed_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
    """Refunded and disputed at once: one reversal of the credits."""
    _only(answers)
    with h.ctx.uow() as uow:
        payment = uow.payments.get(s.org.id, s.ids["payment"])
    assert payment.status.value in ("refunded", "disputed")
    assert len(h.ledger(s.org, EntryKind.PAYMENT_REVERSAL)) == 1


def _mixed(*types: str) -> Callable[[Harness, Setup], list[Event]]:
    return lambda h, s: [_intent_event(types[n % len(types)])(h, s) for n in range(N)]


def _checkout_setup(h: Harness) -> Setup:
    org = h.org()
    with h.ctx.uow() as uow:
        session = uow.checkouts.get(_open_session(h, org))
    return Setup(org, ids={"session": session.provider_session_id})


def _checkout_event(event_type: str) -> Callable[[Harness, Setup], Event]:
    return lambda h, s: _sign(h, event_type, {"id": s.ids["session"], "object": "checkout.session",
                                              "mode": "subscription", "subscription": f"sub_{s.org.id.hex}"})


def _completed_or_expired(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers, "409 checkout_closed")
    effects = h.effects(s.org)
    assert (effects["checkout_sessions[complete]"], effects["plan_subscriptions[trialing]"],
            len(h.ledger(s.org, EntryKind.GRANT))) in {(1, 1, 1), (0, 0, 0)}, effects


def _crypto(h: Harness) -> Setup:
    org = h.org()
    payment = services.payments.add_credits(h.ctx, org.actor, organization_id=org.id, amount_micros=20 * DOLLAR,
                                          crypto=True, return_url=RETURN_URL)
    return Setup(org, ids={"session": payment.provider_payment_id, "payment": payment.id})


def _crypto_event(h: Harness, s: Setup) -> Event:
    return _sign(h, "checkout.session.async_payment_succeeded",
                 {"id": s.ids["session"], "object": "checkout.session", "mode": "payment",
                  "payment_status": "paid", "metadata": {"reference": str(s.ids["payment"])}})


def _credited_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers)
    assert len(h.ledger(s.org, EntryKind.TOP_UP)) == 1


def _subscribed(h: Harness) -> Setup:
    org = h.org(subscribed=True)
    return Setup(org, ids={"subscription": f"sub_{org.id.hex}"})


STATUSES = ["active", "past_due", "active", "canceled", "paused", "active", "unpaid", "active"]


def _status_event(event_type: str, status: str) -> Callable[[Harness, Setup], Event]:
    return lambda h, s: _sign(h, event_type, {"id": s.ids["subscription"], "object": "subscription",
                                              "status": status})


def _statuses(event_type: str) -> Callable[[Harness, Setup], list[Event]]:
    """Sixteen states of one subscription, each sent a second after the one before, delivered at
    once in scrambled order: the newest state wins."""
    def events(h: Harness, s: Setup) -> list[Event]:
        sent = int(datetime.now(UTC).timestamp()) - 100
        order = [(n * 7) % N for n in range(N)]
        return [_sign(h, event_type, {"id": s.ids["subscription"], "object": "subscription",
                                      "status": STATUSES[n % len(STATUSES)]}, created=sent + n) for n in order]
    return events


def _newest_state(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers)
    with h.ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(s.org.id)
    assert sub is not None
    # The newest (n = 15) is "active" — unless a move the status table forbids made it stale, in
    # which case the newest legal one stands; either way exactly one subscription and its grants.
    assert h.effects(s.org)["plan_subscriptions[" + sub.status.value + "]"] == 1


def _invoiced(h: Harness) -> Setup:
    """An organization whose last month's invoice is open (usage beyond its credits)."""
    org = h.org(subscribed=True)
    platform = services.organizations.authenticate(h.ctx, org.service)
    now = datetime.now(UTC)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=15, hour=12, minute=0, second=0,
                                                                   microsecond=0)
    services.product_subscriptions.subscribe_product(h.ctx, org.actor, organization_id=org.id, product="compute",
                                             project_id=None, start_date=last_month.replace(day=1, hour=0))
    with h.ctx.uow() as uow:
        spendable = uow.wallets.get(org.id).balance_micros
    outcome = services.usage.report_usage(h.ctx, platform, organization_id=org.id, event_id="last-month",
                                             product="compute", quantity=spendable // 40_000 + 200,
                                             occurred_at=last_month)
    assert outcome.allowed, outcome
    report = services.invoicing.close_period(h.ctx, period=last_month.strftime("%Y-%m"), organization_id=org.id)
    (invoice_id,) = report.invoice_ids
    with h.ctx.uow() as uow:
        customer = uow.organizations.get(org.id).provider_customer_id
        assert uow.invoices.get(org.id, invoice_id).status.value == "open"
    return Setup(org, ids={"invoice": invoice_id, "customer": customer})


def _invoice_paid(h: Harness, s: Setup) -> Event:
    return _sign(h, "invoice.paid", {"id": f"in_{uuid.uuid4().hex[:12]}", "object": "invoice",
                                     "customer": s.ids["customer"], "metadata": {"reference": str(s.ids["invoice"])}})


def _paid_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _only(answers)
    with h.ctx.uow() as uow:
        assert uow.invoices.get(s.org.id, s.ids["invoice"]).status.value == "paid"
    assert len(h.ledger(s.org, EntryKind.INVOICE_PAYMENT)) == 1


def _with_customer(h: Harness) -> Setup:
    org = h.org()
    with h.ctx.uow() as uow:
        return Setup(org, ids={"customer": uow.organizations.get(org.id).provider_customer_id})


def _setup_succeeded(method: str) -> Callable[[Harness, Setup], Event]:
    return lambda h, s: _sign(h, "setup_intent.succeeded", {"id": f"seti_{uuid.uuid4().hex[:12]}",
                                                            "object": "setup_intent", "customer": s.ids["customer"],
                                                            "payment_method": method})


def _methods_once(h: Harness, s: Setup, answers: list[Answer]) -> None:
    _one_default(h, s, answers)
    assert len(_methods(h, s.org)) == 1 + 4  # the card it had and the four collected


EVENT_SCENARIOS: dict[str, EventScenario] = {
    "checkout.session.completed": EventScenario(
        _checkout_setup, _checkout_event("checkout.session.completed"),
        lambda h, s: [_checkout_event("checkout.session.completed" if n % 2 else "checkout.session.expired")(h, s)
                      for n in range(N)], _completed_or_expired),
    "checkout.session.async_payment_succeeded": EventScenario(
        _crypto, _crypto_event, lambda h, s: [_crypto_event(h, s) for _ in range(N)], _credited_once),
    "checkout.session.expired": EventScenario(
        _checkout_setup, _checkout_event("checkout.session.expired"),
        lambda h, s: [_checkout_event("checkout.session.expired" if n % 2 else
                                      "checkout.session.async_payment_succeeded")(h, s) for n in range(N)],
        _completed_or_expired),
    **{event_type: EventScenario(_subscribed, _status_event(event_type, status), _statuses(event_type),
                                 _newest_state)
       for event_type, status in (("customer.subscription.created", "active"),
                                  ("customer.subscription.updated", "past_due"),
                                  ("customer.subscription.deleted", "canceled"),
                                  ("customer.subscription.paused", "paused"),
                                  ("customer.subscription.resumed", "active"))},
    "invoice.paid": EventScenario(_invoiced, _invoice_paid, lambda h, s: [_invoice_paid(h, s) for _ in range(N)],
                                  _paid_once),
    "payment_intent.succeeded": EventScenario(
        _pending_payment, _intent_event("payment_intent.succeeded"),
        _mixed("payment_intent.succeeded", "payment_intent.payment_failed"), _settled_or_failed),
    "payment_intent.payment_failed": EventScenario(
        _pending_payment, _intent_event("payment_intent.payment_failed"),
        _mixed("payment_intent.payment_failed", "payment_intent.succeeded"), _settled_or_failed),
    "charge.refunded": EventScenario(_paid, _intent_event("charge.refunded"),
                                     _mixed("charge.refunded", "charge.dispute.created"), _reversed_once),
    "charge.dispute.created": EventScenario(_paid, _intent_event("charge.dispute.created"),
                                            _mixed("charge.dispute.created", "charge.refunded"), _reversed_once),
    "setup_intent.succeeded": EventScenario(
        _with_customer, _setup_succeeded("pm_card_mastercard"),
        lambda h, s: [_setup_succeeded(["pm_card_mastercard", "pm_sepa_debit", "pm_card_amex",
                                        "pm_card_discover"][n % 4])(h, s) for n in range(N)], _methods_once),
}


def test_every_handled_event_type_has_a_scenario() -> None:
    assert set(EVENT_SCENARIOS) == set(HANDLED_EVENT_TYPES)


def _webhook(event: Event) -> Call:
    payload, signature = event
    return Call("POST", "/webhooks/stripe", content=payload,
                headers=(("Stripe-Signature", signature), ("Content-Type", "application/json")))


@pytest.mark.parametrize("event_type", sorted(EVENT_SCENARIOS))
def test_one_event_delivered_sixteen_times_at_once_is_processed_once(h: Harness, event_type: str) -> None:
    sc = EVENT_SCENARIOS[event_type]
    label = f"event {event_type}"
    twin = sc.setup(h)
    before = h.effects(*twin.orgs)
    (alone,) = h.fire([_webhook(sc.event(h, twin))], label)
    assert alone.ok and alone.body["outcome"] == "processed", alone
    once = _diff(h.effects(*twin.orgs), before)
    h.reconciles(*twin.orgs)

    setup = sc.setup(h)
    before = h.effects(*setup.orgs)
    event = _webhook(sc.event(h, setup))
    answers = h.fire([event] * N, label)
    _only(answers, "409 event_in_progress")
    assert Counter(a.body["outcome"] for a in _ok(answers))["processed"] == 1, _codes(answers)
    assert _diff(h.effects(*setup.orgs), before) == once
    h.reconciles(*setup.orgs)


@pytest.mark.parametrize("event_type", sorted(EVENT_SCENARIOS))
def test_conflicting_events_at_once_leave_one_consistent_outcome(h: Harness, event_type: str) -> None:
    sc = EVENT_SCENARIOS[event_type]
    setup = sc.setup(h)
    answers = h.fire([_webhook(event) for event in sc.conflicting(h, setup)], f"event {event_type}")
    sc.check(h, setup, answers)
    h.reconciles(*setup.orgs)


