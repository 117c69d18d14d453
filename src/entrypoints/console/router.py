"""The billing console: server-rendered HTML shells and static ES modules under ``/console``.

The pages hold no data and no secrets. Their scripts read the member's API token from
``sessionStorage`` and call the same JSON API as every other client, with ``Authorization: Bearer``;
the server refuses whatever the token's role may not do, whatever the page shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response, Router, get
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.console.pages import PAGES, REDIRECTS, Page, sections
from entrypoints.demo import DEMO_ORGANIZATION_ID

HERE = Path(__file__).parent
MOUNT = "/console"


@dataclass(frozen=True)
class StripeJs:
    """Stripe.js for the console: where it is loaded from and the publishable key it runs with."""

    url: str
    publishable_key: str

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(stripe_js: StripeJs | None = None) -> str:
    """No inline script or style anywhere: everything comes from /console/static, the API is
    same-origin. With Stripe.js, exactly its origin is added for scripts, frames and connections
    (Embedded Checkout and the PaymentElement are frames of it that talk back to it)."""
    extra = f" {stripe_js.origin}" if stripe_js is not None else ""
    frames = f"frame-src{extra}; " if stripe_js is not None else ""
    return (f"default-src 'self'; script-src 'self'{extra}; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{extra}; {frames}object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


CONTENT_SECURITY_POLICY = content_security_policy()
"""The console's policy without Stripe.js (offline provider)."""


def security_headers_for(stripe_js: StripeJs | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(stripe_js),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


SECURITY_HEADERS = security_headers_for()


def security_headers(stripe_js: StripeJs | None = None) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware: the security headers on every console response, static files included."""
    values = security_headers_for(stripe_js)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableScopeHeaders.from_message(message)
                    for name, value in values.items():
                        headers[name] = value
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return wrap


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_pages(stripe_js: StripeJs | None = None) -> dict[str, str]:
    """Every page's HTML, rendered once: the shells are the same for every viewer (the publishable
    key is public by design)."""
    env = _environment()
    nav = sections()
    return {page.slug: env.get_template(page.template).render(
        page=page, sections=nav, mount=MOUNT, demo_organization_id=str(DEMO_ORGANIZATION_ID),
        stripe_js=stripe_js) for page in PAGES}


def _page_handler(page: Page, html: str) -> HTTPRouteHandler:
    def show() -> Response[str]:
        return Response(html, media_type=MediaType.HTML, headers={"Cache-Control": "no-store"})

    show.__name__ = f"console_{page.slug.replace('-', '_')}"
    handler: Callable[[Callable[[], Response[str]]], HTTPRouteHandler] = get(
        page.path, name=f"console:{page.slug}", include_in_schema=False, sync_to_thread=False)
    return handler(show)


def _redirect_handler(old: str, new: str) -> HTTPRouteHandler:
    def moved(request: Request[Any, Any, Any]) -> Redirect:
        query = request.url.query
        return Redirect(f"{MOUNT}{new}" + (f"?{query}" if query else ""), status_code=301)

    moved.__name__ = f"console_redirect_{old.strip('/').replace('/', '_').replace('-', '_')}"
    handler: Callable[[Callable[[Request[Any, Any, Any]], Redirect]], HTTPRouteHandler] = get(
        old, name=f"console:redirect:{old}", include_in_schema=False, sync_to_thread=False)
    return handler(moved)


def console_router(stripe_js: StripeJs | None = None) -> Router:
    """The console, to be registered on the app: ``Litestar(route_handlers=[..., console_router()])``.
    With ``stripe_js`` the pages load Stripe.js and pay through it; without, the offline simulator."""
    html = render_pages(stripe_js)
    static = create_static_files_router(path="/static", directories=[HERE / "static"], name="console:static",
                                        include_in_schema=False)
    handlers = [_page_handler(page, html[page.slug]) for page in PAGES]
    handlers += [_redirect_handler(old, new) for old, new in REDIRECTS.items()]
    return Router(MOUNT, route_handlers=[*handlers, static], middleware=[security_headers(stripe_js)],
                  include_in_schema=False)
