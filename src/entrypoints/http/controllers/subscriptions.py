"""Product subscriptions of the token's organization (seed: ``GET /subscriptions``, ``GET /subscriptions/{id}``).

A product subscription links a metered product to a project (or the whole organization); hourly
usage is recorded only against active ones. Not to be confused with the plan subscription
(``/organizations/{id}/subscription``).
"""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from billing_core import services
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import Ctx, CurrentActor, Cursor, Limit, utc


class ProductSubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["subscriptions"]

    @get(sync_to_thread=True, responses=ERRORS, summary="List product subscriptions (seed endpoint)")
    def list_subscriptions(self, ctx: Ctx, actor: CurrentActor, limit: Limit = 50,
                           cursor: Cursor = None) -> s.Page[s.ProductSubscriptionOut]:
        page = services.product_subscriptions.list_product_subscriptions(ctx, actor,
                                                                         organization_id=actor.organization_id,
                                                                         limit=limit, cursor=cursor)
        return s.Page(items=[presenters.product_subscription(sub) for sub in page.items], next_cursor=page.next_cursor)

    @get("/{subscription_id:uuid}", sync_to_thread=True, responses=ERRORS,
         summary="Show a product subscription (seed endpoint)")
    def show(self, ctx: Ctx, actor: CurrentActor, subscription_id: FromPath[uuid.UUID]) -> s.ProductSubscriptionOut:
        sub = services.product_subscriptions.get_product_subscription(ctx, actor, organization_id=actor.organization_id,
                                                                      subscription_id=subscription_id)
        return presenters.product_subscription(sub)

    @post(sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Subscribe a project (or, without project_id, the organization) to a metered product")
    def subscribe(self, ctx: Ctx, actor: CurrentActor,
                  data: JSONBody[s.ProductSubscriptionBody]) -> s.ProductSubscriptionOut:
        sub = services.product_subscriptions.subscribe_product(ctx, actor, organization_id=actor.organization_id,
                                                               product=data.product, project_id=data.project_id,
                                                               start_date=utc(data.start_date, "start_date"),
                                                               end_date=utc(data.end_date, "end_date"))
        return presenters.product_subscription(sub)

    @post("/{subscription_id:uuid}/end", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="End a product subscription (now, or at end_date)")
    def end(self, ctx: Ctx, actor: CurrentActor, subscription_id: FromPath[uuid.UUID],
            data: JSONBody[s.EndProductSubscriptionBody | None] = None) -> s.ProductSubscriptionOut:
        sub = services.product_subscriptions.end_product_subscription(
                    ctx, actor, organization_id=actor.organization_id, subscription_id=subscription_id,
                    end_date=utc(data.end_date, "end_date") if data is not None else None)
        return presenters.product_subscription(sub)
