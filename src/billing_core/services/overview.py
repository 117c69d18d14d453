"""The billing overview: wallet figures, production health, recovery banners; the balance history
and the usage feed."""

from __future__ import annotations

import uuid
from enum import StrEnum

import msgspec

from billing_core.billing_settings import AutoRecharge, InvoiceAddress, SpendManagement
from billing_core.feed import BALANCE_HISTORY_KINDS, FEED_KINDS, REFUND_KINDS, FeedEntry, entry, feed_row
from billing_core.grace_window import GraceWindow
from billing_core.ledger import Account
from billing_core.money import format_credits
from billing_core.overview import WalletOverview, gross_credits, wallet_overview
from billing_core.permissions import Action, Actor, require
from billing_core.plan_subscription import PAYMENT_FAILED
from billing_core.ports import Page, UnitOfWork, check_page_limit, iterate_pages
from billing_core.services.context import BillingContext
from billing_core.services.usage import _usage_key as usage_key  # the charge a refund reverses
from billing_core.spend_guard import ProductionHealth, production_health


class RecoveryBanner(StrEnum):
    PAST_DUE = "past_due"
    COLLECTIBLE_INVOICES = "collectible_invoices"


BANNER_MESSAGES = {
    RecoveryBanner.PAST_DUE: "Your last payment failed. Update your payment method to keep production running.",
    RecoveryBanner.COLLECTIBLE_INVOICES: "You have open invoices. Pay them to keep your account in good standing.",
}


class Banner(msgspec.Struct, frozen=True):
    kind: RecoveryBanner
    message: str


class BillingOverview(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: uuid.UUID
    credit_balance_micros: int
    credit_balance_display: str
    wallet: WalletOverview
    address: InvoiceAddress | None
    billing_email: str | None
    auto_recharge: AutoRecharge
    spend_management: SpendManagement
    production_health: ProductionHealth
    grace_window: GraceWindow
    banners: tuple[Banner, ...]


def recovery_banners(uow: UnitOfWork, organization_id: uuid.UUID) -> tuple[Banner, ...]:
    banners = []
    subscription = uow.plan_subscriptions.current(organization_id)
    if subscription is not None and subscription.status in PAYMENT_FAILED:
        banners.append(Banner(RecoveryBanner.PAST_DUE, BANNER_MESSAGES[RecoveryBanner.PAST_DUE]))
    # Every page if need be (one invoice a month rarely fills the first), stopping at the first found.
    invoices = iterate_pages(lambda cursor: uow.invoices.list(organization_id, limit=200, cursor=cursor))
    if any(i.is_collectible for i in invoices):
        kind = RecoveryBanner.COLLECTIBLE_INVOICES
        banners.append(Banner(kind, BANNER_MESSAGES[kind]))
    return tuple(banners)


def overview(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> BillingOverview:
    require(actor, Action.VIEW_BILLING, organization_id)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        wallet = uow.wallets.get(organization_id)
        settings = uow.settings.get(organization_id)
        banners = recovery_banners(uow, organization_id)
        total = gross_credits(uow.ledger.account_sums_by_kind(organization_id, Account.WALLET))
    health, window = production_health(wallet, now)
    return BillingOverview(
        organization_id=organization_id, credit_balance_micros=wallet.balance_micros,
        credit_balance_display=format_credits(wallet.balance_micros),
        wallet=wallet_overview(wallet, now, total_credits=total),
        address=settings.address, billing_email=settings.billing_email, auto_recharge=settings.auto_recharge,
        spend_management=settings.spend_management, production_health=health, grace_window=window,
        banners=banners)


def balance_history(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                    cursor: str | None = None) -> Page[FeedEntry]:
    """Movements of the settled wallet, newest first: credits positive, debits negative."""
    require(actor, Action.VIEW_BILLING, organization_id)
    check_page_limit(limit)
    with ctx.uow() as uow:
        page = uow.ledger.list(organization_id, kinds=BALANCE_HISTORY_KINDS, limit=limit, cursor=cursor)
    rows = [entry(tx, settled=True) for tx in page.items]
    return Page(items=[row for row in rows if row.amount_micros != 0], next_cursor=page.next_cursor)


def usage_feed(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
               cursor: str | None = None) -> Page[FeedEntry]:
    """Every movement of the credit balance, newest first, each with the balance after it."""
    require(actor, Action.VIEW_BILLING, organization_id)
    check_page_limit(limit)
    with ctx.uow() as uow:
        page = uow.ledger.list(organization_id, kinds=FEED_KINDS, limit=limit, cursor=cursor)
        # A refund names the charge it reverses: the usage transaction of the same event.
        reversed_charges = {tx.id: uow.ledger.get_by_key(organization_id, usage_key(tx.reference))
                            for tx in page.items if tx.kind in REFUND_KINDS and tx.reference}
    rows = [feed_row(tx, reversed_charge=reversed_charges.get(tx.id)) for tx in page.items]
    return Page(items=[row for row in rows if row.amount_micros != 0], next_cursor=page.next_cursor)


