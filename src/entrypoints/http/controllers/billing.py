"""The Billing section's overview and settings pages: each a GET and its mutation.

Reads need ``billing:read`` (every member); changes need ``billing:update`` (primary owner and
owners), except low-balance alerts, which the seed gives to the primary owner alone.
"""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody

from billing_core import services
from billing_core.billing_settings import InvoiceAddress, SpendManagement
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from billing_core.wallet import SpendCounters
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId, paginate


def _spend_view(ctx: BillingContext, actor: Actor, organization_id: uuid.UUID) -> s.SpendManagementOut:
    overview = services.overview.overview(ctx, actor, organization_id=organization_id)
    counters = SpendCounters(today=overview.wallet.consumed_today, yesterday=overview.wallet.consumed_yesterday,
                             month=0)
    return presenters.spend_management(overview.spend_management, counters)


class BillingController(Controller):
    path = ORG
    tags = ["billing settings"]

    @get("/billing/overview", sync_to_thread=True, responses=ERRORS,
         summary="Wallet figures, address, email, auto-recharge, spend management, banners, production health")
    def overview(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.OverviewOut:
        return presenters.overview(services.overview.overview(ctx, actor, organization_id=organization_id))

    # ------------------------------------------------------------------ auto recharge

    @get("/auto_recharge", sync_to_thread=True, responses=ERRORS, summary="Auto-recharge setting")
    def get_auto_recharge(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.AutoRechargeOut:
        settings = services.settings.get_settings(ctx, actor, organization_id=organization_id)
        return presenters.auto_recharge(settings.auto_recharge)

    @put("/auto_recharge", sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Turn auto-recharge on or off (turning it on lifts a pause after failed charges)")
    def put_auto_recharge(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                          data: JSONBody[s.AutoRechargeBody]) -> s.AutoRechargeOut:
        updated = services.settings.update_auto_recharge(
            ctx, actor, organization_id=organization_id, enabled=data.enabled, threshold_micros=data.threshold_micros,
            amount_micros=data.amount_micros, payment_method_id=data.payment_method_id)
        return presenters.auto_recharge(updated)

    # ------------------------------------------------------------------ spend management

    @get("/spend_management", sync_to_thread=True, responses=ERRORS,
         summary="Spend management settings and credits consumed today and yesterday (UTC)")
    def get_spend_management(self, ctx: Ctx, actor: CurrentActor,
                             organization_id: OrganizationId) -> s.SpendManagementOut:
        return _spend_view(ctx, actor, organization_id)

    @put("/spend_management", sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Daily budget, daily email threshold, monthly cap and webhook URL")
    def put_spend_management(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                             data: JSONBody[s.SpendManagementBody]) -> s.SpendManagementOut:
        services.settings.update_spend_management(ctx, actor, organization_id=organization_id, spend=SpendManagement(
            enabled=data.enabled, daily_budget_micros=data.daily_budget_micros,
            daily_email_threshold_micros=data.daily_email_threshold_micros,
            monthly_cap_micros=data.monthly_cap_micros, webhook_url=data.webhook_url))
        return _spend_view(ctx, actor, organization_id)

    # ------------------------------------------------------------------ invoice address and email

    @get("/invoice_address", sync_to_thread=True, responses=ERRORS,
         summary="Invoice address (every field null until one is saved)")
    def get_invoice_address(self, ctx: Ctx, actor: CurrentActor,
                            organization_id: OrganizationId) -> s.InvoiceAddressOut:
        settings = services.settings.get_settings(ctx, actor, organization_id=organization_id)
        return presenters.address(settings.address)

    @put("/invoice_address", sync_to_thread=True, responses=MUTATION_ERRORS, summary="Save the invoice address")
    def put_invoice_address(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                            data: JSONBody[s.InvoiceAddressBody]) -> s.InvoiceAddressOut:
        saved = services.settings.update_address(ctx, actor, organization_id=organization_id, address=InvoiceAddress(
            company_name=data.company_name or "", address_1=data.address_1 or "", address_2=data.address_2,
            city=data.city or "", postal_code=data.postal_code or "", region=data.region,
            country=data.country or "", po_number=data.po_number))
        return presenters.address(saved)

    @get("/billing_email", sync_to_thread=True, responses=ERRORS,
         summary="Where invoices and billing notifications are sent")
    def get_billing_email(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.BillingEmailOut:
        settings = services.settings.get_settings(ctx, actor, organization_id=organization_id)
        return s.BillingEmailOut(email=settings.billing_email)

    @put("/billing_email", sync_to_thread=True, responses=MUTATION_ERRORS, summary="Change the billing email")
    def put_billing_email(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                          data: JSONBody[s.BillingEmailBody]) -> s.BillingEmailOut:
        email = services.settings.update_billing_email(ctx, actor, organization_id=organization_id, email=data.email)
        return s.BillingEmailOut(email=email)

    # ------------------------------------------------------------------ tax registrations

    @get("/tax_registrations", sync_to_thread=True, responses=ERRORS, summary="Tax registrations, oldest first")
    def list_tax_registrations(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                               limit: Limit = 50, cursor: Cursor = None) -> s.Page[s.TaxRegistrationOut]:
        registrations = services.settings.tax_registrations(ctx, actor, organization_id=organization_id)
        page = paginate(registrations, limit, cursor)
        return s.Page(items=[presenters.tax_registration(r) for r in page.items], next_cursor=page.next_cursor)

    @post("/tax_registrations", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Add a tax registration (format-checked, then verified when a verifier is configured)")
    def add_tax_registration(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                             data: JSONBody[s.TaxRegistrationBody]) -> s.TaxRegistrationOut:
        registration = services.settings.add_tax_registration(ctx, actor, organization_id=organization_id,
                                                              country=data.country, value=data.value,
                                                              description=data.description)
        return presenters.tax_registration(registration)

    @delete("/tax_registrations/{registration_id:uuid}", sync_to_thread=True, responses=MUTATION_ERRORS,
            summary="Remove a tax registration")
    def remove_tax_registration(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                                registration_id: FromPath[uuid.UUID]) -> None:
        services.settings.remove_tax_registration(ctx, actor, organization_id=organization_id,
                                                  registration_id=registration_id)

    @post("/tax_registrations/{registration_id:uuid}/verify", status_code=200, sync_to_thread=True,
          responses=MUTATION_ERRORS, summary="Verify a tax registration again")
    def verify_tax_registration(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                                registration_id: FromPath[uuid.UUID]) -> s.TaxRegistrationOut:
        registration = services.settings.verify_tax_registration(ctx, actor, organization_id=organization_id,
                                                                 registration_id=registration_id)
        return presenters.tax_registration(registration)

    # ------------------------------------------------------------------ low-balance alert

    @get("/low_balance_alert", sync_to_thread=True, responses=ERRORS, summary="Low-balance alert setting")
    def get_low_balance_alert(self, ctx: Ctx, actor: CurrentActor,
                              organization_id: OrganizationId) -> s.LowBalanceAlertOut:
        settings = services.settings.get_settings(ctx, actor, organization_id=organization_id)
        return presenters.low_balance_alert(settings.low_balance_alert)

    @put("/low_balance_alert", sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Manage the low-balance alert (primary owner only)")
    def put_low_balance_alert(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                              data: JSONBody[s.LowBalanceAlertBody]) -> s.LowBalanceAlertOut:
        alert = services.settings.update_low_balance_alert(ctx, actor, organization_id=organization_id,
                                                           enabled=data.enabled, threshold_micros=data.threshold_micros)
        return presenters.low_balance_alert(alert)

    # ------------------------------------------------------------------ ledger views

    @get("/balance_history", sync_to_thread=True, responses=ERRORS,
         summary="Balance transactions, newest first: credits positive, debits negative")
    def balance_history(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                        cursor: Cursor = None) -> s.Page[s.FeedEntryOut]:
        page = services.overview.balance_history(ctx, actor, organization_id=organization_id, limit=limit,
                                                 cursor=cursor)
        return s.Page(items=[presenters.feed_entry(e) for e in page.items], next_cursor=page.next_cursor)

    @get("/usage_feed", sync_to_thread=True, responses=ERRORS,
         summary="Every credit movement with the balance after it; refunds are green + entries with a reason")
    def usage_feed(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                   cursor: Cursor = None) -> s.Page[s.FeedEntryOut]:
        page = services.overview.usage_feed(ctx, actor, organization_id=organization_id, limit=limit, cursor=cursor)
        return s.Page(items=[presenters.feed_entry(e) for e in page.items], next_cursor=page.next_cursor)
