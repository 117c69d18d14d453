"""The console's pages: one entry per page, in navigation order.

A page is a server-rendered HTML shell (``templates/<template>``) whose data the page's ES module
(``static/js/pages/<slug>.js``) fetches from the JSON API with the signed-in member's token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Page:
    slug: str
    """The page's id: its module name and its ``data-page`` attribute."""
    path: str
    """Path under ``/console``."""
    title: str
    section: str
    template: str


def _page(slug: str, path: str, title: str, section: str) -> Page:
    return Page(slug=slug, path=path, title=title, section=section, template=f"{slug}.html")


PAGES: tuple[Page, ...] = (
    _page("sign-in", "/", "Sign in", "Account"),
    # The seed's one page: the Team plan module (plan selector, or the summary and Billing details) on
    # the left, the credit balance and the packs permanently on the right.
    _page("plans", "/plans", "Team plan", "Team plan"),
    _page("overview", "/billing/overview", "Overview", "Billing"),
    _page("invoices", "/billing/invoices", "Invoices", "Billing"),
    _page("payment-methods", "/billing/payment-methods", "Payment Methods", "Billing"),
    _page("spend-management", "/billing/spend-management", "Spend Management", "Billing"),
    _page("add-credits", "/billing/add-credits", "Add Usage Credits", "Billing"),
    _page("auto-recharge", "/billing/auto-recharge", "Auto Recharge", "Billing"),
    _page("invoice-address", "/billing/invoice-address", "Invoice Address", "Billing"),
    _page("invoice-notifications", "/billing/invoice-notifications", "Invoice Notifications", "Billing"),
    _page("tax-settings", "/billing/tax-settings", "Tax Settings", "Billing"),
    _page("balance-history", "/billing/balance-history", "Balance History", "Billing"),
    _page("usage", "/billing/usage", "Usage", "Billing"),
)

PAGES_BY_SLUG = {page.slug: page for page in PAGES}

# Paths of pages that were merged into another: bookmarks keep working (permanent redirect, query kept).
REDIRECTS: dict[str, str] = {
    "/subscription": "/plans",
    "/credits": "/plans",
}


def sections() -> list[tuple[str, list[Page]]]:
    """The navigation: sections in first-appearance order, each with its pages."""
    grouped: dict[str, list[Page]] = {}
    for page in PAGES:
        grouped.setdefault(page.section, []).append(page)
    return list(grouped.items())
