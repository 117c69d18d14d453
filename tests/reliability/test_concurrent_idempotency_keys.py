"""One ``Idempotency-Key`` sent at once to two web processes over one database is one mutation.

Found by the scale-out proof: a client retry that a load balancer sends to another web process
while the first attempt still runs. The per-process lock of the idempotency middleware did not
see the other process, so both attempts ran: two top-ups (two charges, twice the credits) for one
key. Here two apps (two containers, as two ``billing serve`` processes have) share one SQLite file
or PostgreSQL schema; 16 requests with one key start together, half on each app.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import tables as t
from adapters.testing.storage import SqlKind, migrated_database
from billing_core import services
from entrypoints.container import Container, migrate_database, settings_from_env
from entrypoints.http.app import create_app
from tests.e2e.conftest import START

REQUESTS = 16
TwoApps = tuple[TestClient[Litestar], TestClient[Litestar], Container]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoApps]:
    kind: SqlKind = request.param
    with migrated_database(kind, tmp_path) as (url, schema):
        environ = {"BILLING_DATABASE_URL": url, "BILLING_DATA_DIR": str(tmp_path), "BILLING_ENV": "test"}
        if schema:
            environ["BILLING_DATABASE_SCHEMA"] = schema
        containers = []
        for _ in range(2):
            container = Container()
            container.settings.override(providers.Object(settings_from_env(environ)))
            container.clock.override(providers.Object(FixedClock(START)))
            container.payments.override(providers.Object(InMemoryPaymentProvider()))
            containers.append(container)
        migrate_database(containers[0])
        try:
            with TestClient(create_app(containers[0])) as first, TestClient(create_app(containers[1])) as second:
                yield first, second, containers[0]
        finally:
            for container in containers:
                container.engine().dispose()


def test_one_key_at_once_on_two_processes_is_one_top_up(
        two_apps: TwoApps) -> None:
    first, second, container = two_apps
    ctx = container.billing_context()
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.example")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    owner = services.organizations.authenticate(ctx, secret)
    services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")

    barrier = threading.Barrier(REQUESTS)
    answers: list[tuple[int, dict[str, object]]] = []
    lock = threading.Lock()

    def top_up(n: int) -> None:
        client = first if n % 2 else second
        barrier.wait()
        response = client.post(f"/organizations/{org.id}/credits", json={"amount": "25.00"},
                               headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "retry-me"})
        with lock:
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=top_up, args=(n,)) for n in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {201, 409}, answers
    paid = {body["id"] for status, body in answers if status == 201}
    assert len(paid) == 1, answers
    busy = [body for status, body in answers if status == 409]
    assert all(body["code"] == "idempotency_request_in_progress" for body in busy), busy
    engine = container.engine()
    with engine.connect() as connection:
        payments = connection.execute(select(func.count()).select_from(t.payments)
                                      .where(t.payments.c.organization_id == org.id)).scalar_one()
    assert payments == 1
    with ctx.uow() as uow:
        assert uow.wallets.get(org.id).wallet_micros == 25_000_000
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean
    # A retry after the first finished replays it, on either process.
    for client in (first, second):
        again = client.post(f"/organizations/{org.id}/credits", json={"amount": "25.00"},
                            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "retry-me"})
        assert again.status_code == 201 and again.json()["id"] in paid
        assert again.headers["Idempotent-Replayed"] == "true"
    assert uuid.UUID(str(next(iter(paid))))


def test_a_claim_left_by_a_dead_process_blocks_the_key_for_a_minute_only(two_apps: TwoApps) -> None:
    from datetime import timedelta

    from billing_core.ports import IDEMPOTENCY_IN_PROGRESS, StoredResponse
    from entrypoints.http.middleware import STALE_CLAIM, request_hash

    first, _, container = two_apps
    ctx = container.billing_context()
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.example")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    owner = services.organizations.authenticate(ctx, secret)
    services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    path = f"/organizations/{org.id}/credits"
    body = b'{"amount":"25.00"}'
    scope = f"{org.id}:POST {path}:{owner.subject}"

    def killed_mid_request(key: str, age: timedelta) -> None:
        # What a SIGKILLed web process leaves behind: its claim, never completed nor released.
        with ctx.uow() as uow:
            assert uow.idempotency.put(StoredResponse(
                scope=scope, key=key, request_hash=request_hash("POST", path, b"", body),
                status_code=IDEMPOTENCY_IN_PROGRESS, body=b"", content_type="", created_at=START - age))
            uow.commit()

    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    killed_mid_request("fresh", timedelta(seconds=5))
    busy = first.post(path, content=body, headers={**headers, "Idempotency-Key": "fresh"})
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_request_in_progress", busy.text
    assert busy.headers["Retry-After"] == "1"
    killed_mid_request("stale", STALE_CLAIM + timedelta(seconds=1))
    freed = first.post(path, content=body, headers={**headers, "Idempotency-Key": "stale"})
    assert freed.status_code == 201, freed.text
    again = first.post(path, content=body, headers={**headers, "Idempotency-Key": "stale"})
    assert again.json() == freed.json() and again.headers["Idempotent-Replayed"] == "true"
