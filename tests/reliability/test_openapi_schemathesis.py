"""Schemathesis over the app's own OpenAPI document (``GET /openapi.json``), in process over ASGI.

Every operation the document lists is fuzzed: no answer is a 5xx, and every answer, success or
problem, matches what the document declares for that operation: status code, content type, headers
and body schema (so every error is the declared ``application/problem+json`` document).

- As the role allowed on the operation (the primary owner; the platform's service token on the usage
  routes; nobody on the public ones), with data that fits the document and data that does not.
- As a member, as another organization's primary owner and anonymously, with fitting data, so the
  401/403/404 answers are fuzzed too. The outsider never gets a 2xx answer that mentions one of the
  seeded organization's ids; the anonymous caller gets a 401 wherever the document asks for a token.

Path, query and body values whose names the seeded world knows (the organization's id, its invoice,
payment methods, plan codes, a time near the clock's, ...) are replaced by a known one three times in
four, so the fuzz gets past the id checks into the use cases. Generation is derandomized (the same
cases on every run) and bounded per operation. Every test builds its own app and world, so no test
sees another's writes; inside a test, operations run in the document's order, with the ones that
remove or end something last. The Stripe webhook receiver is fuzzed without a valid signature (every
answer must be the declared 400): signed events are tests/reliability/test_provider_event_replays.py's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import CheckContext, GenerationMode, HookContext, Response
from schemathesis.core.result import Err, Ok
from schemathesis.generation.case import Case as GenericCase
from schemathesis.schemas import APIOperation, BaseSchema

from adapters.fakes import InMemoryTaxIdVerifier
from billing_core.errors import ProviderUnavailable
from tests.e2e.conftest import DOLLAR, START, Api, World, build_world

Operation = APIOperation[Any, Any, Any, Any]
Case = GenericCase[Any]
Check = Callable[[CheckContext, Response, Case], bool | None]

CHECKS: list[Check] = [
    schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance, schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance]
# The world's clock stands at START. The last two have no UTC equivalent (years 1 and 9999 with an offset).
DATETIMES = ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", START.isoformat(), START.isoformat(),
             "2026-04-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
EVENT_IDS = st.from_regex(r"\Aevt-[a-z0-9]{1,12}\Z")


def _public(operation: Operation) -> bool:
    """The document says the operation takes no token."""
    return bool(operation.definition.raw.get("security") == [])


def _has_inputs(operation: Operation) -> bool:
    """The document declares parameters, a body or a token for the operation."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or "requestBody" in raw or not _public(operation))


def _allowed(world: World, operation: Operation) -> str | None:
    if _public(operation):
        return None
    return world.tokens["service" if "platform usage" in (operation.tags or []) else "primary-owner"]


@dataclass(frozen=True)
class Caller:
    name: str
    token: Callable[[World, Operation], str | None]
    modes: tuple[GenerationMode, ...]
    max_examples: int


ALLOWED = Caller("allowed role", _allowed, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), max_examples=25)
OUTAGE = Caller("allowed role", _allowed, (GenerationMode.POSITIVE,), max_examples=6)
INTRUDERS = [Caller("member", lambda world, _: world.tokens["member"], (GenerationMode.POSITIVE,), max_examples=6),
             Caller("outsider", lambda world, _: world.tokens["outsider"], (GenerationMode.POSITIVE,), max_examples=6),
             Caller("anonymous", lambda _world, _operation: None, (GenerationMode.POSITIVE,), max_examples=4)]


def _known_values(world: World) -> dict[tuple[str, str], st.SearchStrategy[Any]]:
    """Values the seeded world makes meaningful, by where they go and the parameter's name."""
    known: dict[tuple[str, str], st.SearchStrategy[Any]] = {}
    for name, value in {"organization_id": world.org, "subscription_id": world.product_subscription_id,
                        "invoice_id": world.invoice_id, "registration_id": world.tax_registration_id,
                        "session_id": world.checkout_session_id}.items():
        known["path_parameters", name] = known["query", name] = st.just(str(value))
    known["path_parameters", "payment_method_id"] = st.just(str(world.second_payment_method_id))
    known["path_parameters", "event_id"] = st.just(world.event_id)
    known["query", "from"] = known["query", "to"] = st.sampled_from(DATETIMES)
    event = st.fixed_dictionaries({"event_id": EVENT_IDS, "product": st.sampled_from(["compute", "storage"]),
                                   "quantity": st.integers(min_value=0, max_value=1_000)})
    body: dict[str, st.SearchStrategy[Any]] = {
        "payment_id": st.just(str(world.payment_id)),
        "payment_method_id": st.sampled_from([str(world.payment_method_id), "pm_card_mastercard"]),
        "plan": st.sampled_from(["starter", "pro", "scale", "enterprise"]),
        "product": st.sampled_from(["compute", "storage", "inference"]),
        "event_id": EVENT_IDS,
        "events": st.lists(event, min_size=1, max_size=3, unique_by=lambda e: str(e["event_id"])),
        "quantity": st.integers(min_value=0, max_value=1_000),
        "amount": st.sampled_from(["5", "25.00", "5000", "4.99"]),
        "amount_micros": st.integers(min_value=0, max_value=6_000 * DOLLAR),
        "pack_dollars": st.sampled_from([10, 25, 50, 100, 500, 1000, 7]),
        "email": st.sampled_from(["billing@example.com", "ada+billing@example.org"]),
        "return_url": st.sampled_from(["https://app.example.com/billing", "/billing/plans?tab=1"]),
        "webhook_url": st.sampled_from(["https://hooks.example.com/spend", "http://127.0.0.1/hook"]),
        "country": st.sampled_from(["DE", "FR", "US"]),
        "value": st.sampled_from(["DE136695976", "DE811907980", "FR40303265045", "not-a-number"]),
        "method": st.sampled_from(["crypto", "card"]),
        "company_name": st.just("Acme GmbH"), "address_1": st.just("Hauptstr. 1"), "city": st.just("Berlin"),
        "postal_code": st.just("10115"),
    }
    for name in ("threshold_micros", "daily_budget_micros", "daily_email_threshold_micros", "monthly_cap_micros"):
        body[name] = st.integers(min_value=0, max_value=1_000 * DOLLAR)
    for name in ("start_date", "end_date", "occurred_at", "at", "preview_at"):
        body[name] = st.sampled_from(DATETIMES)
    known.update({("body", name): strategy for name, strategy in body.items()})
    return known


def _steer(schema: BaseSchema, world: World) -> None:
    """Replace a generated value by a known one three times in four (and when shrinking)."""
    known = _known_values(world)

    @schema.hook
    def flatmap_case(_context: HookContext, case: Case) -> st.SearchStrategy[Case]:
        slots = [(where, name) for where in ("path_parameters", "query", "body")
                 if isinstance(container := getattr(case, where), dict) for name in container
                 if (where, name) in known]
        draws = st.tuples(*(st.tuples(st.integers(min_value=0, max_value=3), known[slot]) for slot in slots))

        def apply(values: tuple[tuple[int, Any], ...]) -> Case:
            for (where, name), (dice, value) in zip(slots, values, strict=True):
                if dice != 3:
                    getattr(case, where)[name] = value
            return case

        return draws.map(apply)


def _outsider_sees_nothing(world: World) -> Check:
    seeded = [str(value) for value in (world.org, world.invoice_id, world.payment_id, world.payment_method_id,
                                       world.second_payment_method_id, world.product_subscription_id,
                                       world.tax_registration_id, world.checkout_session_id)]

    def outsider_sees_nothing(_ctx: CheckContext, response: Response, case: Case) -> bool | None:
        if response.status_code < 300:
            leaked = [value for value in seeded if value in response.text]
            assert not leaked, f"{case.operation.label} showed another organization's {leaked}"
        return None

    return outsider_sees_nothing


def _anonymous_is_refused(_ctx: CheckContext, response: Response, case: Case) -> bool | None:
    if not _public(case.operation):
        assert response.status_code == 401, f"{case.operation.label} answered {response.status_code} with no token"
    return None


def _fuzz_operation(operation: Operation, mode: GenerationMode, headers: dict[str, str], checks: list[Check],
                    max_examples: int) -> None:
    # ``too_slow``: drawing one case builds a whole request from the operation's JSON schema (a batch
    # body holds up to 1,000 events); on a shared two-core machine that can exceed the health check's
    # budget, and the strategies are the document's, not ours to make cheaper.
    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], print_blob=False,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    fuzz()


def _fuzz(api: Api, caller: Caller, *, outage: bool = False) -> dict[str, Counter[int]]:
    """Fuzz every operation as ``caller`` (with every remote service down if ``outage``); return the
    statuses each operation answered."""
    world = build_world(api)
    if outage:
        api.payments.fail_with = ProviderUnavailable("the payment provider is down")
        verifier = api.container.tax_ids()
        assert isinstance(verifier, InMemoryTaxIdVerifier)
        api.legal.fail_next = verifier.fail_next = 10**9
    # During an outage a 503 problem is the expected answer; any other 5xx still fails the run.
    config = schemathesis.Config.from_dict(
        {"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}} if outage else {})
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app, config=config)
    _steer(schema, world)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def count_statuses(_ctx: CheckContext, response: Response, case: Case) -> bool | None:
        statuses[case.operation.label][response.status_code] += 1
        return None

    checks = [*CHECKS, count_statuses]
    if caller.name == "outsider":
        checks.append(_outsider_sees_nothing(world))
    if caller.name == "anonymous":
        checks.append(_anonymous_is_refused)
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = sorted((result.ok() for result in results if isinstance(result, Ok)),
                        key=lambda operation: operation.method.upper() == "DELETE" or operation.path.endswith("/end"))
    assert len(operations) >= 55, [operation.label for operation in operations]
    failures: list[str] = []
    for operation in operations:
        token = caller.token(world, operation)
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        for mode in caller.modes:
            if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue  # nothing to send that the document forbids (GET /healthz, the raw webhook body)
            try:
                _fuzz_operation(operation, mode, headers, checks, caller.max_examples)
            except (Exception, BaseExceptionGroup) as failure:  # report every operation's failure, not the first
                failures.append(f"--- {operation.label} as {caller.name}, {mode.value} data:\n{failure}")
    assert not failures, "\n\n".join(failures)
    return statuses


def test_every_operation_as_the_role_allowed_on_it(api: Api) -> None:
    statuses = _fuzz(api, ALLOWED)
    # The steering works: most operations got past the id and input checks at least once.
    succeeded = [label for label, counter in statuses.items() if any(status < 300 for status in counter)]
    assert len(succeeded) >= 0.8 * len(statuses), statuses


def test_every_operation_while_the_remote_services_are_down(api: Api) -> None:
    """The payment provider, the legal-invoicing service and the tax-id verifier all fail: whatever
    calls them answers the declared 503 problem, and the rest goes on answering as declared."""
    statuses = _fuzz(api, OUTAGE, outage=True)
    assert sum(1 for counter in statuses.values() if counter[503]) >= 5, statuses


@pytest.mark.parametrize("caller", INTRUDERS, ids=lambda caller: caller.name)
def test_every_operation_as_an_intruder(api: Api, caller: Caller) -> None:
    _fuzz(api, caller)
