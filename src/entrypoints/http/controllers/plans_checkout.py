"""Plans, embedded checkout, the plan subscription's summary, plan changes and the billing portal.

Only the primary owner subscribes, changes plans and opens the portal; everyone sees the plans
(with ``enabled``/``disabled_reason`` saying why a button is off) and the summary.
"""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from billing_core import services
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId, paginate, utc


class PlansController(Controller):
    path = ORG
    tags = ["plans and checkout"]

    @get("/plans", sync_to_thread=True, responses=ERRORS,
         summary="Plan choices with their action (start_trial / proceed_to_payment) and whether it is enabled")
    def plans(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
              cursor: Cursor = None) -> s.Page[s.PlanChoiceOut]:
        choices = services.plan_subscriptions.plans(ctx, actor, organization_id=organization_id)
        page = paginate(choices, limit, cursor)
        return s.Page(items=[presenters.plan_choice(c) for c in page.items], next_cursor=page.next_cursor)

    @get("/subscription", sync_to_thread=True, responses=ERRORS,
         summary="The plan subscription: tier, status with color and message, price, features")
    def subscription(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.SubscriptionView:
        return presenters.plan_subscription(services.plan_subscriptions.summary(ctx, actor,
                                                                                organization_id=organization_id))

    @post("/checkout_sessions", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Open an embedded checkout for a plan (a trial when the workspace has no billing history)")
    def start_checkout(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                       data: JSONBody[s.CheckoutBody]) -> s.CheckoutSessionOut:
        session = services.checkout.start_checkout(ctx, actor, organization_id=organization_id, plan=data.plan,
                                                   return_url=data.return_url)
        return presenters.checkout_session(session)

    @get("/checkout_sessions/{session_id:uuid}", sync_to_thread=True, responses=ERRORS,
         summary="A checkout session's status and the return URL carrying it")
    def checkout_status(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                        session_id: FromPath[uuid.UUID]) -> s.CheckoutSessionOut:
        session, url = services.checkout.checkout_status(ctx, actor, organization_id=organization_id,
                                                         session_id=session_id)
        return presenters.checkout_session(session, url)

    @post("/subscription/change/preview", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Preview an immediate plan change; pass its `at` to the change to be charged exactly this")
    def preview_change(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                       data: JSONBody[s.PlanChangePreviewBody]) -> s.PlanChangePreviewOut:
        preview = services.plan_changes.preview_plan_change(ctx, actor, organization_id=organization_id,
                                                            plan=data.plan, at=utc(data.at, "at"))
        return presenters.plan_change_preview(preview)

    @post("/subscription/change", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Change the plan now, charging what the preview made at preview_at showed")
    def change(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
               data: JSONBody[s.PlanChangeBody]) -> s.PlanChangeOut:
        result = services.plan_changes.change_plan(ctx, actor, organization_id=organization_id, plan=data.plan,
                                                   preview_at=utc(data.preview_at, "preview_at"))
        return presenters.plan_change(result)

    @post("/billing_portal", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="A billing portal session URL (primary owner, once a billing record exists)")
    def billing_portal(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                       data: JSONBody[s.PortalBody]) -> s.PortalOut:
        url = services.plan_subscriptions.portal_session(ctx, actor, organization_id=organization_id,
                                                         return_url=data.return_url)
        return s.PortalOut(url=url)


class OfflineCheckoutController(Controller):
    """Registered only while the offline payment provider is active: completes a checkout the way
    the provider's webhook would, since no provider UI exists offline."""

    path = ORG
    tags = ["plans and checkout"]

    @post("/checkout_sessions/{session_id:uuid}/complete", status_code=200, sync_to_thread=True,
          responses=MUTATION_ERRORS, summary="Complete a checkout (offline payment provider only)")
    def complete(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                 session_id: FromPath[uuid.UUID]) -> s.CheckoutSessionOut:
        services.checkout.complete_offline_checkout(ctx, actor, organization_id=organization_id,
                                                    session_id=session_id)
        session, url = services.checkout.checkout_status(ctx, actor, organization_id=organization_id,
                                                         session_id=session_id)
        return presenters.checkout_session(session, url)
