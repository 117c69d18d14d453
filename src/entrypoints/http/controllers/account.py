"""Who am I, guest-checkout claims, the webhook signing secret, and the public guest checkout."""

from __future__ import annotations

import anyio.to_thread
from litestar import Controller, get, post
from litestar.params import JSONBody

from billing_core import services
from billing_core.services.context import BillingContext
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, OrganizationId, RuntimeDep


class AccountController(Controller):
    tags = ["account"]

    @get("/me", sync_to_thread=True, responses=ERRORS, summary="The token's organization, role and permissions")
    def me(self, actor: CurrentActor) -> s.MeOut:
        return s.MeOut(organization_id=actor.organization_id, subject=actor.subject,
                       role=actor.role.value if actor.role else None,
                       permissions=sorted(p.value for p in actor.permissions), email=actor.email,
                       actions=presenters.actions(actor))

    @post("/me/claim_guest_checkouts", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Move completed guest checkouts with this verified email into the token's organization")
    def claim(self, ctx: Ctx, actor: CurrentActor) -> s.ClaimsOut:
        claimed = services.checkout.claim_guest_checkouts(ctx, actor)
        return s.ClaimsOut(claimed=[presenters.checkout_session(c) for c in claimed])

    @get(ORG + "/webhook_secret", sync_to_thread=True, responses=ERRORS,
         summary="The secret outbound webhooks are signed with (spend_management:manage)")
    def webhook_secret(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.WebhookSecretOut:
        return s.WebhookSecretOut(secret=services.organizations.webhook_secret(
            ctx, actor, organization_id=organization_id))

    @post(ORG + "/webhook_secret/rotate", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Replace the webhook signing secret")
    def rotate(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.WebhookSecretOut:
        return s.WebhookSecretOut(secret=services.organizations.rotate_webhook_secret(
            ctx, actor, organization_id=organization_id))


def _guest(ctx: BillingContext, data: s.GuestCheckoutBody) -> s.CheckoutSessionOut:
    session = services.checkout.start_guest_checkout(ctx, email=data.email, plan=data.plan,
                                                     return_url=data.return_url)
    return presenters.checkout_session(session)


@post("/guest_checkout_sessions", status_code=201, security=[], tags=["account"], responses=MUTATION_ERRORS,
      summary="Checkout before signing in: claimed by the next verified login with the same email")
async def guest_checkout(runtime: RuntimeDep, data: JSONBody[s.GuestCheckoutBody]) -> s.CheckoutSessionOut:
    return await anyio.to_thread.run_sync(_guest, runtime.ctx, data)
