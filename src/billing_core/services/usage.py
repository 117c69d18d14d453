"""Usage ingestion and spend-guard authorization: the platform's hot path.

``report_usage`` prices an event, asks the spend guard and debits the wallet in one atomic storage
step, records the hourly bucket, and queues whatever the new balance triggers (daily threshold
email, budget reached, auto-recharge, low-balance alert), all in one unit of work.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime

import msgspec

from billing_core.billing_settings import BillingSettings
from billing_core.budgets import BudgetBreach, BudgetPeriod, BudgetScope, ScopedBudget, reached
from billing_core.catalog import Product
from billing_core.errors import DuplicateEventId, EventIdReused, InvalidInput, NotFound, ProductNotSubscribed
from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer
from billing_core.money import format_credits
from billing_core.outbox import OutboxTopic, new_message
from billing_core.permissions import Action, Actor, require
from billing_core.ports import DebitChunk, DebitOutcome, DebitRequest, UnitOfWork, UsageSnapshot
from billing_core.product_subscription import covered
from billing_core.services.context import BillingContext
from billing_core.services.notifications import enqueue_email, notify
from billing_core.spend_guard import (
    DebitSequence,
    Decision,
    DenialReason,
    SpendWarning,
    decide,
    decide_and_apply,
)
from billing_core.usage import UsageEvent, check_event_id, price_event
from billing_core.usage_report import UsageReport
from billing_core.usage_report import usage_report as build_report
from billing_core.wallet import WalletAccount, counters_at, give_back_spend


class UsageOutcome(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the platform's service learns from reporting one billable call."""

    event_id: str
    allowed: bool
    replayed: bool
    amount_micros: int
    balance_micros: int
    reason: DenialReason | None = None
    message: str | None = None
    retry_at: datetime | None = None
    warning: SpendWarning | None = None
    grace_ends_at: datetime | None = None
    budget: BudgetBreach | None = None
    """For a budget denial: the budget reached (scope, id, period, limit, spent, held)."""


def _product(ctx: BillingContext, product: str | uuid.UUID) -> Product:
    if isinstance(product, uuid.UUID):
        try:
            return ctx.catalog.product(product)
        except NotFound:
            raise InvalidInput("product", f"unknown product {product}", code="unknown_product") from None
    if len(product) < 32:  # shorter than any text uuid.UUID accepts: a code (no exception to raise and catch)
        return ctx.catalog.product_by_code(product)
    try:
        return ctx.catalog.product(uuid.UUID(product))
    except (ValueError, NotFound):
        return ctx.catalog.product_by_code(product)


def report_usage(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, event_id: str,
                 product: str | uuid.UUID, quantity: int, project_id: uuid.UUID | None = None,
                 occurred_at: datetime | None = None) -> UsageOutcome:
    """Debit one usage event if the spend guard allows it.

    A replayed ``event_id`` changes nothing and answers what the first call did: the stored event's
    amount and the balance right after its debit, ``replayed=True``. The same ``event_id`` with a
    different product, project, quantity or (when given) ``occurred_at`` raises
    :class:`~billing_core.errors.EventIdReused`: the id is the event's idempotency key.

    The event names the actor's API token (``actor.token_id``); when the organization has project
    or token budgets (ADR 0017), those of the event's project and token are read under the wallet
    lock and decided in the same step as the organization's."""
    require(actor, Action.REPORT_USAGE, organization_id)
    now = ctx.clock.now()
    metered = _product(ctx, product)
    token_id = actor.token_id
    priced = price_event(event_id=event_id, organization_id=organization_id, project_id=project_id,
                         product=metered, quantity=quantity, occurred_at=occurred_at or now, now=now,
                         token_id=token_id)
    tx = _usage_transaction(priced, metered, now)
    with ctx.uow() as uow:
        # One read under the wallet lock: the wallet, the settings, the subscription, a stored event id.
        seen = uow.usage.lock_for_event(organization_id, event_id, project_id, priced.product_id, priced.occurred_at)
        if seen.event_stored:
            # A retry (even after the subscription ended, or naming another time): the first call decides.
            replay = _replay(uow, priced, seen.wallet, time_given=occurred_at is not None, field="event_id")
            uow.rollback()
            return replay
        if not seen.subscribed:
            raise ProductNotSubscribed("the project has no active subscription to this product at occurred_at",
                                       field="product")
        wallet = seen.wallet
        # Only an organization with scoped budgets pays the read (the count is on the wallet row).
        budgets = uow.budgets.for_call(organization_id, project_id, token_id) \
            if wallet.scoped_budgets and (project_id is not None or token_id is not None) else []
        before = msgspec.structs.replace(wallet)
        decision, stored = decide_and_apply(wallet, priced.amount_micros, now, tx, budgets)
        if stored is not None and not uow.usage.record_debit(priced, stored, wallet, before.version):
            # The ledger key was used without the event being stored: answer as the first call did.
            replay = _replay(uow, priced, before, time_given=occurred_at is not None, field="event_id")
            uow.rollback()
            return replay
        if stored is not None and budgets:
            uow.budgets.save(budgets)
        _after_debit(ctx, uow, wallet, decision, now, seen.settings, budgets)
        uow.commit()
    return _outcome(priced, decision, wallet, replayed=False)


class UsageEventInput(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event of a batch, as a platform service reports it."""

    event_id: str
    product: str | uuid.UUID
    quantity: int
    project_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    token_id: uuid.UUID | None = None
    """The API token that reported it, when it is not the batch actor's (group commit queues the
    calls of several tokens into one batch); None: the actor's token."""


MAX_BATCH = 1000


def report_usage_batch(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                       events: Sequence[UsageEventInput]) -> list[UsageOutcome]:
    """Report up to 1,000 events in one unit of work: every event is validated and priced before
    anything is written (a bad one rejects the batch, naming ``events[i].field``), then each is
    debited in order through the same atomic spend-guard step as :func:`report_usage`, so some may
    be denied while others pass. Replayed ids answer as :func:`report_usage` replays do (what the
    first call answered), and an id reused for another event rejects the whole batch
    (:class:`~billing_core.errors.EventIdReused` naming ``events[i].event_id``, nothing written);
    notices are queued once at the end.
    The debits are decided by :func:`~billing_core.spend_guard.decide_many` (the batch sequence
    ``WalletRepository.debit_many`` runs too, whose contract makes it the same as debiting one by
    one) on the wallet and used keys read under the lock, a part of :data:`WRITE_PART` events at
    a time, and storage writes each part while the next is decided
    (:meth:`~billing_core.ports.UsageRepository.record_debits`)."""
    require(actor, Action.REPORT_USAGE, organization_id)
    if not events or len(events) > MAX_BATCH:
        raise InvalidInput("events", f"send 1 to {MAX_BATCH} events", code="invalid_batch")
    now = ctx.clock.now()
    priced: list[tuple[UsageEvent, Product]] = []
    seen: set[str] = set()
    products: dict[str | uuid.UUID, Product] = {}  # a batch names a few products many times
    for index, item in enumerate(events):
        try:
            metered = products.get(item.product) or products.setdefault(item.product, _product(ctx, item.product))
            event = price_event(event_id=item.event_id, organization_id=organization_id,
                                project_id=item.project_id, product=metered, quantity=item.quantity,
                                occurred_at=item.occurred_at or now, now=now,
                                token_id=item.token_id if item.token_id is not None else actor.token_id)
        except InvalidInput as exc:
            raise InvalidInput(f"events[{index}].{exc.field or 'event'}", exc.message, code=exc.code) from None
        if event.event_id in seen:
            raise DuplicateEventId(f"events[{index}].event_id", "an event id appears twice in the batch")
        seen.add(event.event_id)
        priced.append((event, metered))
    outcomes: list[UsageOutcome] = []
    with ctx.uow() as uow:
        # The first event's read under the wallet lock (one round trip, as report_usage's) answers its
        # subscription check (every event's when all name its project, product and time), gives the
        # settings for the notices and tells which of the batch's ledger keys are used (its replays).
        first = priced[0][0]
        try:
            snapshot: UsageSnapshot | None = uow.usage.lock_for_event(
                organization_id, first.event_id, first.project_id, first.product_id, first.occurred_at,
                ledger_keys=[_usage_key(event.event_id) for event, _ in priced])
        except NotFound:
            snapshot = None  # no wallet: an unsubscribed product is still named first, as for one event
        for index, event in _uncovered(uow, organization_id, [event for event, _ in priced], snapshot):
            if uow.usage.get_event(organization_id, event.event_id) is None:
                raise ProductNotSubscribed("the project has no active subscription to this product at occurred_at",
                                           field=f"events[{index}].product")
        if snapshot is None:
            raise NotFound("wallet", organization_id)
        # Nothing was written since the snapshot's read under the lock: the batch decides on its
        # wallet and used keys (every ledger writer takes that lock), and storage writes each part of
        # the batch while the next is decided.
        sequence = DebitSequence(snapshot.wallet, now, used=snapshot.stored_keys,
                                 budgets=uow.budgets.list(organization_id) if snapshot.wallet.scoped_budgets else [])
        debited: list[DebitOutcome] = []
        answers: list[UsageOutcome | None] = []
        uow.usage.record_debits(_decided_parts(sequence, priced, now, debited, answers))
        uow.budgets.save(sequence.budgets)
        denial: Decision | None = None
        for index, ((event, _), outcome, answer) in enumerate(zip(priced, debited, answers, strict=True)):
            if answer is None:
                answer = _replay(uow, event, outcome.wallet, time_given=events[index].occurred_at is not None,
                                 field=f"events[{index}].event_id")
            elif not outcome.decision.allowed and (denial is None or denial.budget is None):
                denial = outcome.decision
            outcomes.append(answer)
        _after_debit(ctx, uow, debited[-1].wallet, denial or Decision(allowed=True), now,
                     None if snapshot is None else snapshot.settings,
                     budgets=_batch_budgets(uow, debited[-1].wallet, [event for event, _ in priced]))
        uow.commit()
    return outcomes


def _uncovered(uow: UnitOfWork, organization_id: uuid.UUID, events: Sequence[UsageEvent],
               snapshot: UsageSnapshot | None) -> Iterator[tuple[int, UsageEvent]]:
    """The events (with their index) that no product subscription covers at their own ``occurred_at``,
    as :func:`report_usage` decides one event. When every event names the first one's project,
    product and time (a group commit's calls, reported "now"), the snapshot's answer is theirs;
    otherwise the organization's subscriptions to the batch's products are read once and decide all."""
    first = events[0]
    if snapshot is not None and all((e.project_id, e.product_id, e.occurred_at)
                                    == (first.project_id, first.product_id, first.occurred_at) for e in events):
        if not snapshot.subscribed:
            yield from enumerate(events)
        return
    subscriptions = uow.product_subscriptions.of_products(organization_id, {e.product_id for e in events})
    for index, event in enumerate(events):
        if not covered(subscriptions, event.project_id, event.product_id, event.occurred_at):
            yield index, event


WRITE_PART = 250
"""Events per part of a batch's write: storage writes one part while the next is decided."""


def _decided_parts(sequence: DebitSequence, priced: Sequence[tuple[UsageEvent, Product]], now: datetime,
                   debited: list[DebitOutcome], answers: list[UsageOutcome | None]) -> Iterator[DebitChunk]:
    """The batch decided a part at a time, in order, as one :func:`~billing_core.spend_guard.decide_many`
    would, and each part's write. Each event's ledger transaction is built, and its outcome
    appended to ``debited`` and its answer to ``answers`` (None for a replay: storage has that
    one's), as its part is decided: that work overlaps the database's work on the part before."""
    for start in range(0, len(priced), WRITE_PART):
        part = [(event, _usage_transaction(event, metered, now)) for event, metered in priced[start:start + WRITE_PART]]
        old_version = sequence.wallet.version
        outcomes = sequence.decide([DebitRequest(event.amount_micros, tx, event.project_id, event.token_id)
                                    for event, tx in part])
        debited.extend(outcomes)
        decided = list(zip(part, outcomes, strict=True))
        answers.extend(None if outcome.replayed else _outcome(event, outcome.decision, outcome.wallet, replayed=False)
                       for (event, _), outcome in decided)
        yield DebitChunk(debits=[(event, outcome.transaction) for (event, _), outcome in decided
                                 if outcome.transaction is not None and not outcome.replayed],
                         wallet=copy.copy(sequence.wallet), old_version=old_version)


def _batch_budgets(uow: UnitOfWork, wallet: WalletAccount, events: Sequence[UsageEvent]) -> list[ScopedBudget]:
    """The project and token budgets the batch's events count in, as the batch left them: an
    allowed event that crossed one is noticed as a single event's is. No read without budgets."""
    if not wallet.scoped_budgets:
        return []
    found: dict[tuple[BudgetScope, uuid.UUID], ScopedBudget] = {}
    for project_id, token_id in dict.fromkeys((e.project_id, e.token_id) for e in events):
        if project_id is not None or token_id is not None:
            found.update((b.key, b) for b in uow.budgets.for_call(wallet.organization_id, project_id, token_id))
    return list(found.values())


def _replay(uow: UnitOfWork, event: UsageEvent, wallet: WalletAccount, *, time_given: bool,
            field: str) -> UsageOutcome:
    """The answer to an ``event_id`` already debited: the first call's, read back from storage (the
    stored event's amount, the balance its ledger transaction left), never this request's pricing.
    Raises EventIdReused if the request describes another event than the stored one."""
    stored = uow.usage.get_event(event.organization_id, event.event_id)
    if stored is not None and (
            (stored.product_id, stored.project_id, stored.quantity) != (event.product_id, event.project_id,
                                                                        event.quantity)
            or (time_given and stored.occurred_at != event.occurred_at)):
        raise EventIdReused(event.event_id, field=field)
    first = uow.ledger.get_by_key(event.organization_id, _usage_key(event.event_id))
    amount = stored.amount_micros if stored is not None else event.amount_micros
    balance = first.wallet_balance_after if first is not None and first.wallet_balance_after is not None \
        else wallet.balance_micros
    return UsageOutcome(event_id=event.event_id, allowed=True, replayed=True, amount_micros=amount,
                        balance_micros=balance)


def _usage_key(event_id: str) -> str:
    return f"usage:{event_id}"


def _usage_transaction(event: UsageEvent, metered: Product, now: datetime) -> LedgerTransaction:
    return transfer(organization_id=event.organization_id, idempotency_key=_usage_key(event.event_id),
                    kind=EntryKind.USAGE, description=f"{metered.name}: {event.quantity} {metered.unit}",
                    created_at=now, source=Account.UNBILLED_USAGE, target=Account.REVENUE,
                    amount_micros=event.amount_micros, reference=event.event_id)


def _outcome(event: UsageEvent, decision: Decision, wallet: WalletAccount, *, replayed: bool) -> UsageOutcome:
    return UsageOutcome(event_id=event.event_id, allowed=decision.allowed, replayed=replayed,
                        amount_micros=event.amount_micros, balance_micros=wallet.balance_micros,
                        reason=decision.reason, message=decision.message, retry_at=decision.retry_at,
                        warning=decision.warning, grace_ends_at=decision.grace_ends_at, budget=decision.budget)


def _after_debit(ctx: BillingContext, uow: UnitOfWork, wallet: WalletAccount, decision: Decision,
                 now: datetime, settings: BillingSettings | None = None,
                 budgets: Sequence[ScopedBudget] = ()) -> None:
    """Queue what this debit (or denial) crossed. Dedupe keys make each notice once per crossing.
    ``settings`` as read under the wallet lock, if the caller has them; ``budgets``: the call's
    project and token budgets as the debit left them (a reached one is noticed, naming it)."""
    if settings is None:
        settings = uow.settings.get(wallet.organization_id)
    org_id = wallet.organization_id
    day = now.date().isoformat()
    spend = settings.spend_management
    counters = counters_at(wallet, now)
    if spend.enabled:
        threshold = spend.daily_email_threshold_micros
        if threshold is not None and counters.today >= threshold:
            notify(uow, organization_id=org_id, email=settings.billing_email, webhook_url=spend.webhook_url,
                   event_type="spend.daily_threshold_reached",
                   subject="Daily credit usage passed your notification threshold",
                   text=(f"Credits consumed today (UTC {day}): {format_credits(counters.today)}; "
                         f"your notification threshold is {format_credits(threshold)}."),
                   data={"organization_id": str(org_id), "day": day, "consumed_micros": counters.today,
                         "threshold_micros": threshold},
                   now=now, dedupe_key=f"{org_id}:daily-threshold:{day}")
        budget = spend.daily_budget_micros
        if budget is not None and (counters.today >= budget or decision.reason == DenialReason.DAILY_BUDGET_REACHED):
            notify(uow, organization_id=org_id, email=settings.billing_email, webhook_url=spend.webhook_url,
                   event_type="spend.daily_budget_reached", subject="Daily credit budget reached",
                   text=(f"Your daily budget of {format_credits(budget)} is reached; new calls are rejected "
                         "until the end of the UTC day."),
                   data={"organization_id": str(org_id), "day": day, "budget_micros": budget,
                         "resets_at": decision.retry_at.isoformat() if decision.retry_at else None,
                         "budget": {"scope": BudgetScope.ORGANIZATION.value, "scope_id": str(org_id),
                                    "period": "day", "limit_micros": budget}},
                   now=now, dedupe_key=f"{org_id}:daily-budget:{day}")
        cap = spend.monthly_cap_micros
        if cap is not None and decision.reason == DenialReason.MONTHLY_BUDGET_REACHED:
            month = day[:7]
            notify(uow, organization_id=org_id, email=settings.billing_email, webhook_url=spend.webhook_url,
                   event_type="spend.monthly_budget_reached", subject="Monthly budget cap reached",
                   text=f"Your monthly cap of {format_credits(cap)} is reached; usage resumes next month.",
                   data={"organization_id": str(org_id), "month": month, "cap_micros": cap,
                         "budget": {"scope": BudgetScope.ORGANIZATION.value, "scope_id": str(org_id),
                                    "period": "month", "limit_micros": cap}},
                   now=now, dedupe_key=f"{org_id}:monthly-cap:{month}")
    breaches = [b for b in (reached(budget, now) for budget in budgets) if b is not None]
    if decision.budget is not None and decision.budget.scope != BudgetScope.ORGANIZATION:
        breaches.append(decision.budget)
    for breach in breaches:
        _budget_notice(uow, settings, org_id, breach, now)
    _maybe_auto_recharge(uow, settings, wallet, now)
    _maybe_low_balance(uow, settings, wallet, now)


def _budget_notice(uow: UnitOfWork, settings: BillingSettings, org_id: uuid.UUID, breach: BudgetBreach,
                   now: datetime) -> None:
    """A project's or a token's budget reached: the email and the webhook name it (scope, id,
    period), once per budget and period. Sent whether or not the organization's own spend
    management is on: the budget was set on purpose."""
    daily = breach.period == BudgetPeriod.DAY
    period_key = now.date().isoformat() if daily else now.date().isoformat()[:7]
    whose = "project" if breach.scope == BudgetScope.PROJECT else "API token"
    which = "daily" if daily else "monthly"
    notify(uow, organization_id=org_id, email=settings.billing_email,
           webhook_url=settings.spend_management.webhook_url, event_type="spend.budget_reached",
           subject=f"The {which} budget of {whose} {breach.scope_id} is reached",
           text=(f"The {whose} {breach.scope_id} has reached its {which} "
                 f"budget of {format_credits(breach.limit_micros)}; its calls are rejected until "
                 f"{breach.retry_at.isoformat()}."),
           data={"organization_id": str(org_id),
                 "budget": {"scope": breach.scope.value, "scope_id": str(breach.scope_id),
                            "period": breach.period.value, "limit_micros": breach.limit_micros,
                            "spent_micros": breach.spent_micros, "held_micros": breach.held_micros},
                 "resets_at": breach.retry_at.isoformat()},
           now=now, dedupe_key=f"{org_id}:budget:{breach.scope.value}:{breach.scope_id}:{period_key}")


def crossing_key(wallet: WalletAccount) -> str:
    """Identifies one fall below a threshold: usage never changes the settled wallet, so every debit
    between the crossing and the next top-up shares this key; the top-up changes it."""
    return f"{wallet.spend_month}:{wallet.wallet_micros}"


def _maybe_auto_recharge(uow: UnitOfWork, settings: BillingSettings, wallet: WalletAccount, now: datetime) -> None:
    recharge = settings.auto_recharge
    if not recharge.enabled or recharge.paused or wallet.balance_micros > recharge.threshold_micros:
        return
    uow.outbox.add(new_message(
        organization_id=wallet.organization_id, topic=OutboxTopic.AUTO_RECHARGE,
        payload={"amount_micros": recharge.amount_micros,
                 "payment_method_id": str(recharge.payment_method_id) if recharge.payment_method_id else None},
        created_at=now, dedupe_key=f"auto-recharge:{wallet.organization_id}:{crossing_key(wallet)}"))


def _maybe_low_balance(uow: UnitOfWork, settings: BillingSettings, wallet: WalletAccount, now: datetime) -> None:
    alert = settings.low_balance_alert
    if not alert.enabled or wallet.balance_micros > alert.threshold_micros:
        return
    enqueue_email(uow, organization_id=wallet.organization_id, to=settings.billing_email,
                  subject="Your credit balance is low",
                  text=(f"Your credit balance is {format_credits(wallet.balance_micros)}, at or below your alert "
                        f"threshold of {format_credits(alert.threshold_micros)}."),
                  now=now, dedupe_key=f"{wallet.organization_id}:low-balance:{crossing_key(wallet)}")


def authorize(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, amount_micros: int = 0,
              project_id: uuid.UUID | None = None) -> Decision:
    """May a call costing about ``amount_micros`` start now? Reads only (reserves nothing); the
    debit decides again. The budgets of ``project_id`` and of the actor's token are asked too."""
    require(actor, Action.REPORT_USAGE, organization_id)
    if type(amount_micros) is not int or amount_micros < 0:
        raise InvalidInput("amount_micros", "amount_micros must be a non-negative integer")
    with ctx.uow() as uow:
        wallet = uow.wallets.get(organization_id)
        budgets = uow.budgets.for_call(organization_id, project_id, actor.token_id) \
            if wallet.scoped_budgets and (project_id is not None or actor.token_id is not None) else []
    return decide(wallet, amount_micros, ctx.clock.now(), budgets=budgets)


REFUND_REASON = "failed generation reimbursed"


def refund_usage(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, event_id: str,
                 reason: str = REFUND_REASON) -> UsageOutcome:
    """Reverse a failed billable operation's charge, once. The credit shows in the usage feed as a
    green + entry with ``reason``; the negative usage lowers the hourly bucket (or the next invoice);
    the spend counters give the amount back for the day and month it was debited in, while they are
    current (:func:`~billing_core.wallet.give_back_spend`), so a refund can lift a reached budget.
    Under the organization's wallet lock, taken first (ADR 0009)."""
    require(actor, Action.REPORT_USAGE, organization_id)
    check_event_id(event_id)
    reason = (reason or REFUND_REASON).strip()[:200]
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        event = uow.usage.get_event(organization_id, event_id)
        if event is None:
            raise NotFound("usage event", event_id)
        charge = uow.ledger.get_by_key(organization_id, _usage_key(event_id))
        tx = transfer(organization_id=organization_id, idempotency_key=f"usage-refund:{event_id}",
                      kind=EntryKind.AUTOMATIC_REFUND, description="Automatic refund", reason=reason,
                      created_at=now, source=Account.REVENUE, target=Account.UNBILLED_USAGE,
                      amount_micros=event.amount_micros, reference=event_id)
        # The counters booked the charge at its debit's time (the usage transaction's).
        posted = uow.wallets.post(tx, gives_back_spend_of=charge.created_at if charge is not None else None)
        if not posted.replayed:
            uow.usage.record(msgspec.structs.replace(
                event, event_id=f"{event_id}:refund", quantity=-event.quantity, amount_micros=-event.amount_micros))
        wallet = uow.wallets.get(organization_id)
        if not posted.replayed and charge is not None and wallet.scoped_budgets:
            # The event's project and token budgets give the refund back as the wallet's counters do.
            budgets = uow.budgets.for_call(organization_id, event.project_id, event.token_id)
            for budget in budgets:
                give_back_spend(budget, event.amount_micros, charge.created_at, now)
                budget.version += 1
            uow.budgets.save(budgets)
        uow.commit()
    return UsageOutcome(event_id=event_id, allowed=True, replayed=posted.replayed,
                        amount_micros=-event.amount_micros, balance_micros=wallet.balance_micros)


def usage_report(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, start: datetime,
                 end: datetime) -> UsageReport:
    """Usage by project and product per hour for ``start <= hour < end``, with its totals (see
    :mod:`billing_core.usage_report`: ``invoice_total`` is what the window's invoice totals)."""
    require(actor, Action.VIEW_BILLING, organization_id)
    for field, value in (("from", start), ("to", end)):
        if value.tzinfo is None:
            raise InvalidInput(field, f"{field} must be an ISO 8601 datetime with a UTC offset",
                               code="invalid_datetime")
    if end <= start:
        raise InvalidInput("to", "to must be after from", code="invalid_range")
    if (end - start).days > 400:
        raise InvalidInput("to", "the window may span at most 400 days", code="invalid_range")
    with ctx.uow() as uow:
        buckets = uow.usage.buckets(organization_id, start, end)
    return build_report(organization_id, start, end, buckets, ctx.catalog, ctx.catalog.currency)
