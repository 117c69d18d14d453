"""The Litestar application: ``create_app(container)``.

Run it with ``billing serve`` or ``uvicorn entrypoints.http.app:create_app --factory``.
"""

from __future__ import annotations

import logging
import os
import sys

import anyio.to_thread
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import ControllerRouterHandler

from billing_core.services.usage_group import UsageGroupCommit
from entrypoints.container import Container, Settings, pool_capacity
from entrypoints.http.bodies import BodyRequest
from entrypoints.http.controllers.account import AccountController, guest_checkout
from entrypoints.http.controllers.api_tokens import ApiTokensController
from entrypoints.http.controllers.billing import BillingController
from entrypoints.http.controllers.budgets import BudgetsController
from entrypoints.http.controllers.credits import CreditsController
from entrypoints.http.controllers.grants import GrantsController
from entrypoints.http.controllers.health import healthz, metrics, openapi_json, readyz
from entrypoints.http.controllers.holds import HoldsController, HoldSettingsController
from entrypoints.http.controllers.invoices import InvoiceController, LegalInvoiceController, PaymentsDueController
from entrypoints.http.controllers.payment_methods import PaymentMethodController
from entrypoints.http.controllers.plans_checkout import OfflineCheckoutController, PlansController
from entrypoints.http.controllers.refunds import RefundsController
from entrypoints.http.controllers.subscriptions import ProductSubscriptionController
from entrypoints.http.controllers.usage import PlatformUsageController, UsageExplainController, UsageReportController
from entrypoints.http.controllers.webhooks import stripe_webhook
from entrypoints.http.hot_route import DEFAULT_THREADS, UsageEventsFastPath
from entrypoints.http.middleware import authentication, idempotency
from entrypoints.http.openapi import ClosedStructSchemaPlugin, declare_middleware
from entrypoints.http.problems import EXCEPTION_HANDLERS
from entrypoints.http.request_metrics import request_metrics
from entrypoints.http.runtime import MAX_BODY_BYTES, Runtime, provide_actor, provide_ctx, provide_runtime
from entrypoints.supervisor import SUPERVISED_ENV
from entrypoints.worker import SECOND_SQLITE_INSTANCE, BackgroundWorker, SqliteInstanceLock

logger = logging.getLogger("entrypoints.http")

API_DESCRIPTION = """\
The billing API: usage, subscriptions, invoices, payment methods, credits, settings and refunds.

Authenticate with `Authorization: Bearer <token>`. Errors are `application/problem+json` with a
stable `code` (and `field` for invalid input). Send an `Idempotency-Key` header with any POST, PUT
or DELETE to make a retry safe: the first answer is replayed, and reusing a key with a different
request is a 409. Lists take `limit` (1-200) and `cursor` and answer `{items, next_cursor}`.
"""


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="billing-core", version="0.1.0", description=API_DESCRIPTION, path="/schema",
        components=Components(security_schemes={"BearerToken": SecurityScheme(
            type="http", scheme="bearer", description="An organization member's or a service's API token")}),
        security=[{"BearerToken": []}],
        tags=[Tag(name=name) for name in ("usage", "subscriptions", "invoices", "payment methods", "billing settings",
                                          "plans and checkout", "credits", "refunds", "platform usage", "webhooks",
                                          "health")],
        use_handler_docstrings=False,
    )


def api_router(*, offline_payments: bool) -> Router:
    """Every authenticated route, behind Bearer authentication and Idempotency-Key replay."""
    handlers: list[ControllerRouterHandler] = [
        UsageReportController, ProductSubscriptionController, InvoiceController, LegalInvoiceController,
        PaymentsDueController, PaymentMethodController, BillingController, PlansController, CreditsController,
        RefundsController, PlatformUsageController, UsageExplainController, HoldsController, HoldSettingsController,
        GrantsController, BudgetsController, ApiTokensController,
        AccountController,
    ]
    if offline_payments:
        handlers.append(OfflineCheckoutController)
    return Router("/", route_handlers=handlers, middleware=[authentication, idempotency])


def create_app(container: Container | None = None, *, background: bool = False,
               fast_path: bool | None = None, worker_process: bool = False) -> Litestar:
    """The HTTP service over ``container`` (one is built from ``BILLING_*`` variables if omitted).

    ``background`` runs the background worker (outbox delivery, scheduled period close) in a thread
    of this process from startup to shutdown: what ``billing serve`` does unless
    ``BILLING_WORKER=thread``. Embedded or test apps leave it off and dispatch themselves.
    ``worker_process``: a worker process supervised by ``billing serve`` does that work instead
    (what ``/readyz`` reports as ``background_worker``).
    ``fast_path`` puts :class:`~entrypoints.http.hot_route.UsageEventsFastPath` in front of the
    routing (default: the ``BILLING_HTTP_FAST_PATH`` setting, on)."""
    box = container if container is not None else Container()
    settings = box.settings()
    ctx = box.billing_context()
    runtime = Runtime(ctx=ctx, deliverers=box.deliverers(),
                      offline_payments=bool(box.offline_payments()), storage=settings.storage,
                      background_worker=background or worker_process, usage_group=UsageGroupCommit(ctx))
    worker = BackgroundWorker(runtime.ctx, runtime.deliverers, interval=settings.worker_interval_seconds,
                              grant_catch_up_interval=settings.grant_catch_up_interval_seconds,
                              grant_sweep_step=settings.grant_sweep_step)
    instance = SqliteInstanceLock(settings.database_url if settings.storage == "sqlalchemy" else "sqlite://")

    async def seed_demo_organization() -> None:
        if settings.demo:
            await anyio.to_thread.run_sync(_seed_demo, runtime)

    async def start_background_worker() -> None:
        if not background:
            return
        if not instance.acquire():
            logger.warning(SECOND_SQLITE_INSTANCE.format(path=instance.path))
        worker.start()

    async def stop_background_worker() -> None:
        if background:
            await anyio.to_thread.run_sync(worker.stop)
            instance.release()

    handlers: list[ControllerRouterHandler] = [api_router(offline_payments=runtime.offline_payments), healthz,
                                               readyz, metrics, openapi_json, stripe_webhook, guest_checkout,
                                               *_console(settings, runtime.offline_payments)]
    app = Litestar(
        route_handlers=handlers,
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False),
                      "ctx": Provide(provide_ctx, sync_to_thread=False),
                      "actor": Provide(provide_actor, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        state=State({"runtime": runtime}),
        request_max_body_size=MAX_BODY_BYTES,
        request_class=BodyRequest,
        openapi_config=_openapi(),
        plugins=[ClosedStructSchemaPlugin()],
        on_startup=[seed_demo_organization, start_background_worker],
        on_shutdown=[stop_background_worker],
        middleware=[request_metrics],
    )
    declare_middleware(app)
    if settings.http_fast_path if fast_path is None else fast_path:
        # Behind Litestar's own entry (which puts the app in the scope), in front of its routing; with
        # as many threads as the database pool has connections.
        threads = pool_capacity(box.engine()) if settings.storage == "sqlalchemy" else None
        fast = UsageEventsFastPath(app.asgi_handler, runtime, threads=threads or DEFAULT_THREADS)
        app.asgi_handler = fast
        app.on_shutdown.append(fast.close)
    return app


def served_app() -> Litestar:
    """The app as ``billing serve`` runs it (uvicorn's factory, one per server process): built from
    ``BILLING_*`` variables. The background worker runs in a thread of this process unless
    ``BILLING_WORKER=false``, or unless ``billing serve`` supervises a worker process for it."""
    container = Container()
    supervised = os.environ.get(SUPERVISED_ENV) == "1"
    return create_app(container, background=container.settings().worker != "off" and not supervised,
                      worker_process=supervised)


def _console(settings: Settings, offline_payments: bool) -> list[ControllerRouterHandler]:
    """The billing console (HTML shells over this API) at ``/console``, when it is installed; with
    Stripe.js when the Stripe provider runs with a publishable key."""
    try:
        from entrypoints.console.router import StripeJs, console_router
    except ImportError:  # pragma: no cover - the console is an optional part of the package
        return []
    stripe_js = None
    if not offline_payments and settings.console_stripe_js:
        assert settings.stripe_publishable_key is not None
        stripe_js = StripeJs(url=settings.stripe_js_url, publishable_key=settings.stripe_publishable_key)
    return [console_router(stripe_js)]


def _seed_demo(runtime: Runtime) -> None:
    """``BILLING_DEMO=1``: seed the demo organization and print one token per role to stderr."""
    from entrypoints.demo import seed_demo

    credentials = seed_demo(runtime.ctx, runtime.deliverers)
    print(f"demo organization: {credentials.organization_id}", file=sys.stderr, flush=True)
    for role, secret in credentials.tokens.items():
        print(f"demo token {role}: {secret}", file=sys.stderr, flush=True)
