"""Every error as ``application/problem+json``: the core's stable code, the status it maps to here.

The core knows no HTTP status; this module is the one place that maps its error types to statuses.
Nothing a client sends may produce a 500: anything unexpected is logged with its traceback and
answered with a bare 500 problem that reveals nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from billing_core.budgets import BudgetBreach
from billing_core.errors import (
    BadRequest,
    BillingError,
    Conflict,
    IdempotencyRequestInProgress,
    InvalidInput,
    NotFound,
    PaymentError,
    PaymentRequired,
    PermissionDenied,
    SpendDenied,
    Unauthenticated,
    Unavailable,
)
from entrypoints.http.schemas import BudgetProblem, FieldError, Problem

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:billing-core:problem:"
logger = logging.getLogger("entrypoints.http")

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "request_too_large", 415: "unsupported_media_type",
               422: "invalid_input", 429: "too_many_requests", 500: "internal_error", 503: "unavailable"}
_AT_PATH = re.compile(r"at `\$\.?([^`]*)`")
_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"Missing required (\w+) parameter '([^']+)'")


# Status by category, never by code: the first category in this order that the error is wins.
# ``BadRequest`` (unreadable body, unverifiable provider event) comes before its ``InvalidInput``.
_STATUS_BY_CATEGORY: tuple[tuple[type[BillingError], int], ...] = (
    (BadRequest, 400),
    (InvalidInput, 422),
    (NotFound, 404),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (Conflict, 409),
    (PaymentRequired, 402),
    (Unavailable, 503),
    (PaymentError, 402),
)


def status_for(exc: BillingError) -> int:
    """The HTTP status of a core error, by its category type."""
    for category, status in _STATUS_BY_CATEGORY:
        if isinstance(exc, category):
            return status
    return 400


def problem(status: int, code: str, detail: str, *, field: str | None = None, reason: str | None = None,
            retry_at: datetime | None = None, errors: list[FieldError] | None = None,
            headers: dict[str, str] | None = None, budget: BudgetProblem | None = None) -> Response[bytes]:
    body = Problem(type=TYPE_PREFIX + code, title=HTTPStatus(status).phrase, status=status, detail=detail, code=code,
                   field=field, reason=reason, retry_at=retry_at, errors=errors, budget=budget)
    return Response(msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def billing_error_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, BillingError)
    return billing_error_response(exc)


def billing_error_response(exc: BillingError) -> Response[bytes]:
    """The problem answer of a core error (status by category, ``WWW-Authenticate`` on a 401,
    ``Retry-After`` where a retry may succeed): the exception handler's answer, and the usage fast
    path's (``entrypoints.http.hot_route``)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="billing"'
    if status == 503:
        headers["Retry-After"] = "5"
    if isinstance(exc, IdempotencyRequestInProgress):
        headers["Retry-After"] = "1"
    reason = exc.reason if isinstance(exc, PaymentRequired) else None
    retry_at = exc.retry_at if isinstance(exc, SpendDenied) else None
    if retry_at is not None:
        headers["Retry-After"] = retry_at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    breach = exc.budget if isinstance(exc, SpendDenied) else None
    budget = BudgetProblem.of(breach) if isinstance(breach, BudgetBreach) else None
    return problem(status, exc.code, exc.message, field=exc.field, reason=reason, retry_at=retry_at,
                   headers=headers or None, budget=budget)


def _field_of(item: dict[str, Any]) -> str:
    message = str(item.get("message", ""))
    at = _AT_PATH.search(message)
    named = _NAMED_FIELD.search(message)
    key = str(item.get("key") or "")
    if at and at.group(1):
        path = at.group(1)
        return f"{path}.{named.group(1)}" if named and "missing required field" in message else path
    if named:
        return named.group(1)
    return "body" if key in ("", "data") else key


def _message_of(item: dict[str, Any]) -> str:
    message = str(item.get("message", "invalid value"))
    if item.get("key") == "data" and message == "'data'":
        # No body at all: Litestar reports the KeyError of the handler's missing ``data`` argument.
        return "a JSON request body is required"
    return message


def validation_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ValidationException)
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [FieldError(field=_field_of(item), message=_message_of(item),
                         source=str(item["source"]) if item.get("source") else None)
              for item in extra if isinstance(item, dict)]
    if not errors:
        detail = str(exc.detail) if exc.detail else "the request is not valid"
        missing = _MISSING_PARAMETER.search(detail)
        if missing:
            # "Missing required query parameter 'x' for path ..." names no field in ``extra``.
            field, source = missing.group(2), missing.group(1)
            detail = f"the {source} parameter {field} is required"
        else:
            field, source = "body", "body"
            if detail.startswith("Validation failed"):
                detail = "the request body is not valid"
        return problem(422, "invalid_input", detail, field=field,
                       errors=[FieldError(field=field, message=detail, source=source)])
    first = errors[0]
    return problem(422, "invalid_input", f"{first.field}: {first.message}", field=first.field, errors=errors)


def http_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return internal_error_handler(request, exc)
    detail = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    if status == 413:
        detail = "the request body is larger than 1 MiB"
    elif status == 404:
        detail = f"no route for {request.method} {request.url.path}"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    if status == 400 and detail.startswith("JSON is malformed"):
        return problem(400, "malformed_body", detail, field="body")
    return problem(status, _HTTP_CODES.get(status, "http_error"), detail, headers=headers or None)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal_error", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS = {
    BillingError: billing_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, description=description, media_type=PROBLEM_JSON)


# Each status is declared with the body it really has. The 400 also replaces the `{status_code, detail}`
# JSON body Litestar declares by itself on routes with parameters, which this app never sends.
ERRORS: dict[int, ResponseSpec] = {
    400: _spec("The request could not be read: malformed JSON, or JSON nested deeper than 64 levels "
               "(code malformed_body)"),
    401: _spec("Missing, unknown, expired or revoked bearer token"),
    403: _spec("The token's role or scopes do not grant this action"),
    404: _spec("Not found, or not in the token's organization"),
    422: _spec("Invalid input; `field` names the offending field"),
    503: _spec("The database is unreachable: retry after `Retry-After` seconds (code storage_unavailable)"),
}
MUTATION_ERRORS: dict[int, ResponseSpec] = {
    **ERRORS,
    402: _spec("Payment required or the payment provider refused"),
    409: _spec("Conflicts with the current state, or the Idempotency-Key was used with another body"),
    413: _spec("The request body is larger than 1 MiB"),
    503: _spec("The database or a remote service (payment provider, tax-id verifier, invoicing) is down: "
               "retry after `Retry-After` seconds (code storage_unavailable or provider_unavailable)"),
}
# A POST that changes nothing (the spend guard's question) still passes the Idempotency-Key and body checks.
QUERY_POST_ERRORS: dict[int, ResponseSpec] = {**ERRORS, 409: MUTATION_ERRORS[409], 413: MUTATION_ERRORS[413]}
WEBHOOK_ERRORS: dict[int, ResponseSpec] = {
    400: _spec("Missing or bad Stripe-Signature (code invalid_signature), or a payload nested deeper than 64 "
               "levels (code malformed_body); nothing was changed"),
    413: MUTATION_ERRORS[413],
    422: _spec("A signed event that lacks what its type needs (a completed checkout without its session id); "
               "nothing was changed"),
    409: _spec("The event clashes with the stored state (checkout_closed: a completed event for an expired "
               "checkout; already_subscribed: a second checkout of a workspace with a live subscription); "
               "nothing was changed, not even the event's id, so the provider's retry is applied again"),
    503: MUTATION_ERRORS[503],
}
