"""The spend-control operations, each defined once, and the books they must keep (issue 21).

A registry (:data:`REGISTRY`) of operations an organization's traffic and the background worker
perform: top-ups, usage debits, usage refunds, grants (source, expiry, priority), holds placed,
settled (under the organization's over-hold rule, which an operation changes), released, the
project's and the API token's budgets set and removed (usage and holds name the project half the
time; every call names the platform's token), the worker's cycle (holds and grants expired, grants
caught up, last month closed) and time passing.
Every operation runs through the PUBLIC use cases (``billing_core.services``) on whatever storage
the :class:`World`'s context is built on: memory, SQLite or PostgreSQL.

Each operation is split in two so that a step can cross a process boundary: ``make`` draws a
:class:`Step` (plain data, JSON-able: every key, event id and hold id is in it) from the
:class:`Model` the driver keeps and a ``random.Random``; ``run`` applies it to a :class:`World` and
answers a JSON-able result; ``record`` folds the result into the model. Applying the same step
again (a duplicate delivery, or a redelivery after a crash) must answer the same result but for
``replayed`` flags and change nothing: :func:`apply_step` with ``step.dup`` checks that in place.

:func:`check_books` checks what must hold after any step: reconcile clean (ledger balanced,
stored balances the sums of postings, held credits the active holds, grants explaining the
balance, no overdraft, each scoped budget holding exactly its active holds), the balance less what
is held never below the credit line, today's and this month's spend plus held never past a budget
or cap, the organization's or a project's or a token's, but by the one call that crossed it, no hold
active past its expiry once a worker cycle ran after it, each settled hold charged once, grants
never negative nor above their amount.

A new operation is one more :class:`Operation` subclass added to :data:`REGISTRY`; the state
machine and the soak pick it up from there.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec

from adapters.fakes import FixedClock
from billing_core import Permission, Role, services
from billing_core.billing_settings import SpendManagement
from billing_core.errors import BillingError
from billing_core.grants import GrantSource
from billing_core.holds import HoldOverrun, HoldStatus
from billing_core.ledger import Account, check_balanced
from billing_core.permissions import Actor
from billing_core.ports import iterate_pages
from billing_core.services.background import run_cycle
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers
from billing_core.services.grants import catch_up
from billing_core.wallet import counters_at

T0 = datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
"""Where the clock starts: a few days before a month turns, so the worker closes a period early."""
DOLLAR = 1_000_000
PRODUCT = "compute"
PRICE = 40_000
"""compute's unit price (µ$ per vCPU-hour) in the default catalog."""
MAX_QUANTITY = 100
MAX_CALL_MICROS = 2 * MAX_QUANTITY * PRICE
"""The largest single charge a step makes (a settle above its hold asks for at most twice it)."""
WORKER = "spend-control-worker"
"""The worker's holder name in job leases: a restarted worker takes its own lease back."""

Result = dict[str, Any]


# --------------------------------------------------------------------------- organizations


class OrgHandle(msgspec.Struct, frozen=True, kw_only=True):
    """One organization under test and who acts on it: its owner, and the platform's API token
    (whose calls a token budget caps) reporting usage for the organization or its one project."""

    index: int
    id: uuid.UUID
    token_id: uuid.UUID

    @property
    def project_id(self) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"https://spend-control.test/{self.id}/project")

    @property
    def owner(self) -> Actor:
        return Actor(organization_id=self.id, subject=f"user:owner-{self.index}", role=Role.PRIMARY_OWNER)

    @property
    def platform(self) -> Actor:
        return Actor(organization_id=self.id, subject=f"token:{self.token_id}",
                     scopes=frozenset({Permission.USAGE_WRITE}), token_id=self.token_id)


PROFILES = ("no plan", "budgets", "pro plan", "pro plan and budget")
"""Organization ``i`` has profile ``i % 4``: no plan (no credit line, no budget); a daily budget and
a monthly cap; the pro plan after a trial checkout (a credit line, trial credits that expire); the
pro plan and a daily budget."""


def setup_org(ctx: BillingContext, index: int) -> OrgHandle:
    """Create organization ``index`` through the use cases, in its profile, with $20 of credit."""
    org = services.organizations.create_organization(ctx, name=f"Org {index}", owner_user_id=f"owner-{index}",
                                                     owner_email=f"owner-{index}@example.com")
    token, _ = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                  scopes=frozenset({Permission.USAGE_WRITE}))
    handle = OrgHandle(index=index, id=org.id, token_id=token.id)
    owner = handle.owner
    services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product=PRODUCT,
                                                     project_id=None, start_date=T0 - timedelta(days=30))
    services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=20 * DOLLAR,
                                  description="Welcome credits", idempotency_key="welcome")
    profile = index % len(PROFILES)
    if profile in (2, 3):
        session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                                   return_url="https://app.example.com/billing")
        assert session.provider_session_id is not None
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id=f"sub_{org.id.hex}")
    if profile in (1, 3):
        services.settings.update_spend_management(ctx, owner, organization_id=org.id, spend=SpendManagement(
            enabled=True, daily_budget_micros=(15 + 5 * (profile == 1)) * DOLLAR,
            monthly_cap_micros=200 * DOLLAR if profile == 1 else None))
    return handle


# --------------------------------------------------------------------------- steps, model, world


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """One operation on one organization at one time: everything needed to apply it again."""

    n: int
    op: str
    org: int
    at: datetime
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    dup: bool = False
    """Deliver it twice in a row: the second delivery must answer the same and change nothing."""


class HoldInfo(msgspec.Struct, kw_only=True):
    org: int
    expires_at: datetime
    max_quantity: int
    status: str = HoldStatus.ACTIVE.value
    settled: int = 0
    """How many settle deliveries charged it (not replays): never more than one."""


class Model(msgspec.Struct, kw_only=True):
    """What the driver knows: the time, what may be refunded, settled or released, and counts."""

    orgs: int
    now: datetime = T0
    n: int = 0
    last_cycle_at: datetime | None = None
    debits: dict[int, list[str]] = msgspec.field(default_factory=dict)
    """Allowed usage events per organization (refundable)."""
    holds: dict[str, HoldInfo] = msgspec.field(default_factory=dict)
    counts: dict[str, int] = msgspec.field(default_factory=dict)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def active_holds(self, org: int) -> list[str]:
        return sorted(k for k, h in self.holds.items() if h.org == org and h.status == HoldStatus.ACTIVE.value)

    def orgs_holding(self) -> list[int]:
        """The organizations with a hold active and not yet past its expiry."""
        return sorted({h.org for h in self.holds.values()
                       if h.status == HoldStatus.ACTIVE.value and h.expires_at > self.now})


@dataclass
class World:
    """The system under test: a context over some storage, its settable clock, the organizations."""

    ctx: BillingContext
    clock: FixedClock
    orgs: list[OrgHandle]
    deliverers: Deliverers

    def org(self, step: Step) -> OrgHandle:
        return self.orgs[step.org]


def _builtins(value: object) -> Any:
    return msgspec.to_builtins(value)


def _without_replayed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_replayed(v) for k, v in value.items() if k != "replayed"}
    if isinstance(value, list):
        return [_without_replayed(v) for v in value]
    return value


# --------------------------------------------------------------------------- the operations


class Operation:
    """One kind of step. Subclasses set ``name``, ``weight`` and ``errors`` (the error codes a
    correct system may answer), and implement ``make``, ``run`` and (if the model cares) ``record``."""

    name: ClassVar[str]
    weight: ClassVar[float]
    errors: ClassVar[frozenset[str]] = frozenset()

    def pick_org(self, model: Model, rng: random.Random) -> int:
        """The organization the step acts on: any, unless the operation needs something of it."""
        return rng.randrange(model.orgs)

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        """The step's arguments, or None when the operation does not apply now (nothing to settle)."""
        return {}

    def run(self, world: World, step: Step) -> Result:
        raise NotImplementedError

    def record(self, model: Model, step: Step, result: Result) -> None:
        """Fold a result into the model (a redelivered step's result too)."""

    def same_replay(self, first: Result, second: Result) -> bool:
        """Whether ``second`` is what a duplicate delivery of the step that answered ``first`` must answer."""
        return bool(_without_replayed(first) == _without_replayed(second))


class TopUp(Operation):
    name, weight = "top_up", 0.035

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        return {"amount": rng.choice([5, 5, 10, 25]) * DOLLAR, "payment_id": _fresh_id(model, rng)}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        payment = services.payments.add_credits(world.ctx, org.owner, organization_id=org.id,
                                                amount_micros=step.args["amount"],
                                                payment_id=uuid.UUID(step.args["payment_id"]))
        return {"status": str(payment.status), "amount_cents": payment.amount_cents}


class Usage(Operation):
    name, weight = "usage", 0.30

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        quantity = rng.randint(1, 10) if rng.random() < 0.5 else rng.randint(1, MAX_QUANTITY)
        return {"event_id": f"u{model.n}", "quantity": quantity, "in_project": rng.random() < 0.5}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        outcome = services.usage.report_usage(world.ctx, org.platform, organization_id=org.id,
                                              event_id=step.args["event_id"], product=PRODUCT,
                                              quantity=step.args["quantity"], project_id=_project(org, step))
        result: Result = _builtins(outcome)
        return result

    def record(self, model: Model, step: Step, result: Result) -> None:
        model.count("usage_allowed" if result.get("allowed") else "usage_denied")
        if result.get("allowed"):
            model.debits.setdefault(step.org, []).append(step.args["event_id"])


class Refund(Operation):
    name, weight = "refund", 0.05

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        debits = model.debits.get(org)
        return {"event_id": rng.choice(debits)} if debits else None

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        outcome = services.usage.refund_usage(world.ctx, org.platform, organization_id=org.id,
                                              event_id=step.args["event_id"])
        result: Result = _builtins(outcome)
        return result


class Grant(Operation):
    name, weight = "grant", 0.06

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        expires_in = rng.choice([None, 20 * 60, 2 * 3600, 26 * 3600])
        return {"key": f"g{model.n}", "amount": rng.randint(1, 3 * DOLLAR),
                "source": rng.choice([GrantSource.PROMOTION.value, GrantSource.TRIAL.value]),
                "expires_at": None if expires_in is None else (model.now + timedelta(seconds=expires_in)).isoformat(),
                "priority": rng.randint(0, 3)}

    def run(self, world: World, step: Step) -> Result:
        args = step.args
        posted = services.wallet.grant_credits(
            world.ctx, organization_id=world.org(step).id, amount_micros=args["amount"], description="Promotion",
            idempotency_key=args["key"], source=GrantSource(args["source"]), priority=args["priority"],
            expires_at=None if args["expires_at"] is None else datetime.fromisoformat(args["expires_at"]))
        return {"posted": posted}

    def same_replay(self, first: Result, second: Result) -> bool:
        return second == {"posted": False}


def _project(org: OrgHandle, step: Step) -> uuid.UUID | None:
    return org.project_id if step.args.get("in_project") else None


def _fresh_id(model: Model, rng: random.Random) -> str:
    """A random id no earlier step used: the step number fills the high bits, because a shrunk run
    draws all-zero bits and two steps would then reuse one id (reuse is the unit tests' subject)."""
    return str(uuid.UUID(int=(model.n + 1) << 64 | rng.getrandbits(64)))


class PlaceHold(Operation):
    name, weight = "place_hold", 0.14

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        return {"hold_id": _fresh_id(model, rng), "max_quantity": rng.randint(1, MAX_QUANTITY),
                "in_project": rng.random() < 0.5,
                "ttl": rng.choice([60, 30 * 60, 2 * 3600])}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        outcome = services.holds.place_hold(world.ctx, org.platform, organization_id=org.id, product=PRODUCT,
                                            max_quantity=step.args["max_quantity"], ttl_seconds=step.args["ttl"],
                                            project_id=_project(org, step),
                                            hold_id=uuid.UUID(step.args["hold_id"]))
        result: Result = _builtins(outcome)
        return result

    def record(self, model: Model, step: Step, result: Result) -> None:
        if result.get("hold") is not None:
            model.count("holds_placed")
            model.holds.setdefault(step.args["hold_id"], HoldInfo(
                org=step.org, expires_at=step.at + timedelta(seconds=step.args["ttl"]),
                max_quantity=step.args["max_quantity"]))
        else:
            model.count("holds_denied")


def _org_holding(model: Model, rng: random.Random) -> int:
    """Mostly an organization with a live hold: among many organizations a random one's holds have
    usually expired, and settles and releases would be rare."""
    holding = model.orgs_holding()
    return rng.choice(holding) if holding and rng.random() < 0.8 else rng.randrange(model.orgs)


class SettleHold(Operation):
    name, weight = "settle_hold", 0.12
    errors = frozenset({"hold_expired", "hold_released", "settle_exceeds_hold"})
    pick_org = staticmethod(_org_holding)

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        active = model.active_holds(org)
        if not active:
            return None
        hold_id = rng.choice(active)
        most = model.holds[hold_id].max_quantity
        return {"hold_id": hold_id, "event_id": f"s{model.n}", "quantity": rng.randint(1, 2 * most)}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        outcome = services.holds.settle_hold(world.ctx, org.platform, organization_id=org.id,
                                             hold_id=uuid.UUID(step.args["hold_id"]),
                                             event_id=step.args["event_id"], quantity=step.args["quantity"])
        result: Result = _builtins(outcome)
        return result

    def record(self, model: Model, step: Step, result: Result) -> None:
        info = model.holds[step.args["hold_id"]]
        error = result.get("error")
        if error in ("hold_expired", "hold_released"):
            info.status = error.removeprefix("hold_")
        elif error is None:
            info.status = HoldStatus.SETTLED.value
            if not result["replayed"]:
                info.settled += 1
                model.count("holds_settled")
            assert info.settled <= 1, f"hold {step.args['hold_id']} settled {info.settled} times"


class ReleaseHold(Operation):
    name, weight = "release_hold", 0.05
    errors = frozenset({"hold_settled"})
    pick_org = staticmethod(_org_holding)

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        active = model.active_holds(org)
        return {"hold_id": rng.choice(active)} if active else None

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        outcome = services.holds.release_hold(world.ctx, org.platform, organization_id=org.id,
                                              hold_id=uuid.UUID(step.args["hold_id"]))
        result: Result = _builtins(outcome)
        return result

    def record(self, model: Model, step: Step, result: Result) -> None:
        if result.get("error") is None:
            model.holds[step.args["hold_id"]].status = result["hold"]["status"]
            model.count("holds_released")


class SetOverrun(Operation):
    name, weight = "set_overrun", 0.02

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        return {"rule": rng.choice(list(HoldOverrun)).value}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        rule = services.holds.set_hold_overrun(world.ctx, org.owner, organization_id=org.id, rule=step.args["rule"])
        return {"rule": rule.value}


BUDGET_CAPS = ((2, 30), (5, None), (12, 80), (None, 40))
"""(daily, monthly) dollars of a scope's budget, by organization index and scope. Fixed per scope so
that what it spent plus held can be checked against one cap (a lowered cap leaves earlier spend
above it: the unit tests cover changing caps)."""


class SetBudget(Operation):
    """The primary owner sets the project's or the token's budget (again: the same caps)."""

    name, weight = "set_budget", 0.01

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        scope = rng.choice(["project", "token"])
        daily, monthly = BUDGET_CAPS[(org + (scope == "token")) % len(BUDGET_CAPS)]
        return {"scope": scope, "daily": daily and daily * DOLLAR, "monthly": monthly and monthly * DOLLAR}

    def run(self, world: World, step: Step) -> Result:
        org, args = world.org(step), step.args
        usage, created = services.budgets.put_budget(
            world.ctx, org.owner, organization_id=org.id, scope=args["scope"], scope_id=_scope_id(org, args["scope"]),
            daily_micros=args["daily"], monthly_micros=args["monthly"])
        return {"daily": usage.budget.daily_micros, "monthly": usage.budget.monthly_micros, "created": created}

    def same_replay(self, first: Result, second: Result) -> bool:
        """Setting the same caps again changes nothing and creates nothing."""
        return second == {**first, "created": False}


class RemoveBudget(Operation):
    """The primary owner removes the project's or the token's budget (404 when it has none)."""

    name, weight = "remove_budget", 0.01
    errors = frozenset({"not_found"})

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        return {"scope": rng.choice(["project", "token"])}

    def run(self, world: World, step: Step) -> Result:
        org = world.org(step)
        services.budgets.remove_budget(world.ctx, org.owner, organization_id=org.id, scope=step.args["scope"],
                                       scope_id=_scope_id(org, step.args["scope"]))
        return {"removed": True}

    def same_replay(self, first: Result, second: Result) -> bool:
        """A repeated removal finds nothing to remove."""
        return second == {"error": "not_found"}


def _scope_id(org: OrgHandle, scope: str) -> uuid.UUID:
    return org.project_id if scope == "project" else org.token_id


class Advance(Operation):
    """Time passes: minutes, hours, or a day and more (grants and holds expire, days and months turn)."""

    name, weight = "advance", 0.13

    def make(self, model: Model, rng: random.Random, org: int) -> dict[str, Any] | None:
        return {"seconds": rng.choice([30, 60, 5 * 60, 10 * 60, 20 * 60, 90 * 60, 5 * 3600, 25 * 3600])}

    def run(self, world: World, step: Step) -> Result:
        return {}

    def record(self, model: Model, step: Step, result: Result) -> None:
        model.now = step.at + timedelta(seconds=step.args["seconds"])


class Cycle(Operation):
    """One cycle of the background worker: expire holds, catch up and expire grants, close a month."""

    name, weight = "cycle", 0.08

    def run(self, world: World, step: Step) -> Result:
        report = run_cycle(world.ctx, world.deliverers, holder=WORKER)
        return {"holds_expired": report.holds_expired, "grants_expired": report.grants_expired,
                "closed": report.closed is not None and report.closed.invoices_created > 0}

    def record(self, model: Model, step: Step, result: Result) -> None:
        model.last_cycle_at = step.at
        for info in model.holds.values():
            if info.status == HoldStatus.ACTIVE.value and info.expires_at <= step.at:
                info.status = HoldStatus.EXPIRED.value
        model.counts["holds_expired"] = model.counts.get("holds_expired", 0) + result["holds_expired"]
        model.counts["grant_expiries"] = model.counts.get("grant_expiries", 0) + result["grants_expired"]
        model.counts["periods_closed"] = model.counts.get("periods_closed", 0) + int(result["closed"])

    def same_replay(self, first: Result, second: Result) -> bool:
        """A second worker right after the first finds nothing left to do."""
        return second["holds_expired"] == 0 and second["grants_expired"] == 0 and not second["closed"]


REGISTRY: dict[str, Operation] = {op.name: op for op in (
    TopUp(), Usage(), Refund(), Grant(), PlaceHold(), SettleHold(), ReleaseHold(), SetOverrun(), SetBudget(),
    RemoveBudget(), Advance(), Cycle())}
"""Every operation by name: add an operation here and the state machine and the soak run it."""
NO_DUPLICATE = frozenset({"advance"})


def make_step(model: Model, rng: random.Random, *, op: str | None = None, dup_rate: float = 0.15) -> Step | None:
    """Draw the next step (of ``op``, or of an operation chosen by weight) for a random
    organization; None when the drawn operation does not apply. Advances ``model.n``."""
    if op is None:
        ops = list(REGISTRY.values())
        op = rng.choices([o.name for o in ops], weights=[o.weight for o in ops])[0]
    org = REGISTRY[op].pick_org(model, rng)
    args = REGISTRY[op].make(model, rng, org)
    model.n += 1
    if args is None:
        return None
    return Step(n=model.n, op=op, org=org, at=model.now, args=args,
                dup=op not in NO_DUPLICATE and rng.random() < dup_rate)


def run_step(world: World, step: Step) -> Result:
    """Apply ``step`` once at its time; a known error answers ``{"error": code}``."""
    world.clock.set(step.at)
    operation = REGISTRY[step.op]
    try:
        return operation.run(world, step)
    except BillingError as exc:
        if exc.code not in operation.errors:
            raise AssertionError(f"{step}: unexpected {type(exc).__name__} {exc.code}: {exc}") from exc
        return {"error": exc.code}


def apply_step(world: World, step: Step) -> Result:
    """Apply ``step`` (twice when ``step.dup``: the second answer must be the first's replay)."""
    result = run_step(world, step)
    if step.dup:
        again = run_step(world, step)
        assert REGISTRY[step.op].same_replay(result, again), f"{step}: a duplicate answered {again}, not {result}"
    return result


def record(model: Model, step: Step, result: Result) -> None:
    model.count(step.op)
    REGISTRY[step.op].record(model, step, result)


# --------------------------------------------------------------------------- the books


@dataclass
class BookKeeping:
    """What :func:`check_books` has checked already (closed holds are checked once)."""

    checked_holds: set[str] = field(default_factory=set)
    checks: int = 0


def check_books(ctx: BillingContext, orgs: Iterable[OrgHandle], model: Model, *,
                kept: BookKeeping | None = None, every_transaction: bool = False,
                now: datetime | None = None) -> None:
    """Assert the books of ``orgs`` are right (see the module docstring). ``every_transaction``
    also checks each ledger transaction balances (reconcile checks the sum of all postings)."""
    kept = kept or BookKeeping()
    kept.checks += 1
    now = now or model.now
    for org in orgs:
        report = services.reconcile.reconcile(ctx, organization_id=org.id)
        assert report.clean, (org.index, report)
        with ctx.uow() as uow:
            wallet = uow.wallets.lock(org.id)
            limits = wallet.limits
            # Balance: every debit and hold was decided with the held credits counted as spent,
            # and a settle within its hold or an expiry never takes more than that left free.
            assert wallet.balance_micros - wallet.held_micros >= -limits.credit_line_micros, (org.index, wallet)
            spent = counters_at(wallet, now)
            if limits.daily_budget_micros is not None:
                assert spent.today + wallet.held_micros < limits.daily_budget_micros + MAX_CALL_MICROS, wallet
            if limits.monthly_cap_micros is not None:
                assert spent.month + wallet.held_micros < limits.monthly_cap_micros + MAX_CALL_MICROS, wallet
            active = uow.holds.active(org.id)
            assert wallet.held_micros == sum(h.amount_micros for h in active)
            for budget in uow.budgets.list(org.id):
                # Nested caps: what the scope spent plus what its holds reserve stays under each cap
                # but for the one call that crossed it (reconcile proves held is its holds' sum).
                used = counters_at(budget, now)
                if budget.daily_micros is not None:
                    assert used.today + budget.held_micros < budget.daily_micros + MAX_CALL_MICROS, budget
                if budget.monthly_micros is not None:
                    assert used.month + budget.held_micros < budget.monthly_micros + MAX_CALL_MICROS, budget
            if model.last_cycle_at is not None:
                late = [h for h in active if h.expires_at <= model.last_cycle_at]
                assert not late, f"org {org.index}: holds active past their expiry after a worker cycle: {late}"
            for hold_id, info in model.holds.items():
                if info.org != org.index or info.status == HoldStatus.ACTIVE.value or hold_id in kept.checked_holds:
                    continue
                hold = uow.holds.get(org.id, uuid.UUID(hold_id))
                assert hold.status.value == info.status or info.status == HoldStatus.EXPIRED.value, (hold, info)
                if hold.status == HoldStatus.SETTLED and hold.event_id is not None:
                    charge = uow.ledger.get_by_key(org.id, f"usage:{hold.event_id}")
                    assert (charge.balance_delta if charge else 0) == -hold.charged_micros, (hold, charge)
                else:
                    assert hold.charged_micros == 0, hold
                kept.checked_holds.add(hold_id)
            state = catch_up(uow, org.id)  # not committed: the reader's view of the grants
            grants = uow.grants.list(org.id)
            for g in grants:
                assert 0 <= g.remaining_micros <= g.amount_micros, g
            explained = sum(g.remaining_micros for g in grants if g.expired_by is None) - state.uncovered_micros
            assert explained == wallet.balance_micros, (org.index, explained, wallet.balance_micros)
            if every_transaction:
                def page(cursor: str | None, org_id: uuid.UUID = org.id) -> Any:
                    return uow.ledger.list(org_id, limit=500, cursor=cursor)
                for tx in iterate_pages(page):
                    check_balanced(tx)
                    assert tx.delta(Account.WALLET) + tx.delta(Account.UNBILLED_USAGE) == tx.balance_delta


def run_steps(world: World, model: Model, rng: random.Random, steps: int, *,
              after_step: Callable[[Step, Result], None] | None = None) -> None:
    """Draw and apply ``steps`` steps in this process (the state machine's and examples' loop)."""
    done = 0
    while done < steps:
        step = make_step(model, rng)
        if step is None:
            continue
        result = apply_step(world, step)
        record(model, step, result)
        done += 1
        if after_step is not None:
            after_step(step, result)
