"""Scale-out proof (issue 17): three web processes and two workers on one PostgreSQL schema, under
a bounded random load across the turn of a month, with one web process and one worker SIGKILLed
mid-run and restarted. Afterwards the books reconcile, every organization has one invoice for the
month with gapless numbers, and every outbox message was delivered to a real SMTP server (aiosmtpd)
or a real webhook receiver: none lost, and any repeat recognisable as the same message.

Everything the test checks goes through real processes (``billing serve`` with
``BILLING_WORKER=false``, ``billing worker``), real sockets and the shipped migrations. The served
processes share a test clock (``BILLING_TEST_CLOCK_FILE``): the test puts "now" at noon on the last
day of March, then at 23:59:52, and lets real seconds turn the month.

The worker is killed in the middle of a burst of notices it claimed (the other worker paused for
that moment, the local relay slow to acknowledge), the web process while clients are using it;
clients retry on another web process with the same Idempotency-Key, and some top-ups are sent to
two web processes at once with one key: each key pays once.

Delivery is at-least-once: a message whose send the killed worker did not get to mark is sent
again after its claim lapses (``BILLING_OUTBOX_LEASE_SECONDS``). "Exactly once" is asserted the way
a receiver sees it: every outbox message arrived at least once, every arrival names an outbox
message (the email's Message-ID, the webhook's event id), and repeats are counted and reported.

Run with ``-s`` for a summary line.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from adapters.fakes import OffsetFileClock
from adapters.sqlalchemy import tables as t
from adapters.testing.storage import migrated_database, require_postgres_url
from billing_core import Permission, services
from billing_core.billing_settings import SpendManagement
from billing_core.services.context import BillingContext
from billing_core.services.notifications import enqueue_email
from entrypoints.container import Container
from tests.support.customers import give_invoice_address
from tests.support.delivery import SmtpSink, WebhookReceiver, free_port
from tests.support.processes import ROOT, child_environment

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(420)]

CLI = "from entrypoints.cli.main import app; app()"
SEED = 20261204
DOLLAR = 1_000_000
ORGANIZATIONS = 4
CLIENT_THREADS = 6
WEB_PROCESSES = 3
WORKER_PROCESSES = 2
MARCH_NOON = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
BEFORE_MIDNIGHT = datetime(2026, 3, 31, 23, 59, 52, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
LOAD_BEFORE_KILL_S = 6.0
RUN_INTO_APRIL_S = 6.0
"""Real seconds of load after the turn of the month."""
OUTBOX_LEASE_S = 8
DRAIN_S = 120.0
SMTP_DELAY_S = 0.05
BURST = "Burst notice"
BURST_SIZE = 30
"""The local relay acknowledges each mail after this long, so a worker spends its time mid-send."""
START_S = 60.0


# --------------------------------------------------------------------------- the served processes


@dataclass
class Served:
    """One ``billing`` child process; its stderr is pumped into ``lines`` so it never blocks."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None = None
    process: subprocess.Popen[str] | None = None
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.lines = queue.Queue()
        self.process = subprocess.Popen([sys.executable, "-c", CLI, *self.args], env=self.env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        process, lines, log = self.process, self.lines, self.log

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.put(line)
                log.append(f"[{self.name} pid {process.pid}] {line}")

        threading.Thread(target=pump, name=f"pump-{self.name}", daemon=True).start()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_S
        assert self.process is not None
        if self.port is None:
            while time.monotonic() < deadline:
                try:
                    if "billing worker" in self.lines.get(timeout=0.2):
                        return
                except queue.Empty:
                    assert self.process.poll() is None, "".join(self.log)
            pytest.fail(f"{self.name} did not start:\n" + "".join(self.log))
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "".join(self.log)
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} did not get ready:\n" + "".join(self.log))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sigkill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if it hangs
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- organizations


@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    owner: str
    platform: str
    webhook_secret: str


def _set_up(ctx: BillingContext, hooks_url: str, index: int) -> Org:
    """Subscribed to Pro and to compute, a saved card, funded, low spend-management thresholds (an
    email and a webhook once $1 is used in a day) and a low-balance alert: alerts fire under load;
    every other organization recharges automatically."""
    org = services.organizations.create_organization(ctx, name=f"Scale Org {index}", owner_user_id=f"owner-{index}",
                                                     owner_email=f"owner-{index}@scale.example")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="owner",
                                                         user_id=f"owner-{index}")
    _, platform_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                            scopes=frozenset({Permission.USAGE_WRITE}))
    owner = services.organizations.authenticate(ctx, owner_secret)
    give_invoice_address(ctx, owner, org.id)  # legal invoices need the buyer's address (EN 16931 BR-10/11)
    services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                               return_url="https://app.example.com/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_{org.id.hex}")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                     project_id=None)
    services.payments.add_credits(ctx, owner, organization_id=org.id, amount_micros=40 * DOLLAR)
    services.settings.update_spend_management(ctx, owner, organization_id=org.id, spend=SpendManagement(
        enabled=True, daily_email_threshold_micros=1 * DOLLAR, webhook_url=hooks_url))
    services.settings.update_low_balance_alert(ctx, owner, organization_id=org.id, enabled=True,
                                               threshold_micros=30 * DOLLAR)
    if index % 2 == 0:
        # The workers charge these (outbox AUTO_RECHARGE): money moved by a worker that may be killed.
        services.settings.update_auto_recharge(ctx, owner, organization_id=org.id, enabled=True,
                                               threshold_micros=10 * DOLLAR, amount_micros=25 * DOLLAR)
    secret = services.organizations.webhook_secret(ctx, owner, organization_id=org.id)
    return Org(org.id, owner_secret, platform_secret, secret)


# --------------------------------------------------------------------------- the load


@dataclass
class Load:
    """What the client threads did. ``answers`` counts (operation, status); ``paid`` maps an
    Idempotency-Key of a top-up to every payment id its 2xx answers named."""

    webs: list[Served]
    orgs: list[Org]
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    unreachable: int = 0
    busy: int = 0
    abandoned: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    payments: dict[uuid.UUID, list[str]] = field(default_factory=dict)
    paid: dict[str, set[str]] = field(default_factory=dict)
    events: dict[uuid.UUID, dict[str, int]] = field(default_factory=dict)
    hooks_url: str = ""

    def request(self, rng: random.Random, client: httpx.Client, op: str, method: str, path: str, token: str,
                body: dict[str, Any] | None, *, key: str) -> httpx.Response | None:
        """Send to a random web process; on a dead socket, or while another attempt with the key
        is still in progress (409 ``idempotency_request_in_progress``), retry the same
        Idempotency-Key on another (what a client behind a load balancer does). None when the
        client gave up: a key whose attempt died with a killed process stays claimed until the
        claim is stale (a minute), and this client does not wait that long (counted, not a failure)."""
        dead_sockets = busy = 0
        while dead_sockets < 40:
            web = rng.choice(self.webs)
            try:
                response = client.request(method, web.url + path, json=body,
                                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
            except httpx.TransportError:
                dead_sockets += 1
                with self.lock:
                    self.unreachable += 1
                time.sleep(0.2)
                continue
            in_progress = (response.status_code == 409
                           and response.json().get("code") == "idempotency_request_in_progress")
            with self.lock:
                self.answers[(op, response.status_code)] += 1
                self.busy += in_progress
                if response.status_code >= 500:
                    self.failures.append(f"{op} {method} {path} -> {response.status_code} {response.text[:300]}")
            if not in_progress:
                return response
            busy += 1
            if busy >= 50:
                with self.lock:
                    self.abandoned.append(key)
                return None
            time.sleep(0.1)
        with self.lock:
            self.failures.append(f"{op}: no web process answered")
        return None

    def run(self, index: int) -> None:
        rng = random.Random(SEED + index)
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    self.one(rng, client, f"t{index}-{n}")
                except Exception as exc:  # reported as a failure of the run, not swallowed
                    with self.lock:
                        self.failures.append(f"client {index}: {type(exc).__name__}: {exc}")

    def one(self, rng: random.Random, client: httpx.Client, op_id: str) -> None:
        org = rng.choice(self.orgs)
        base = f"/organizations/{org.id}"
        roll = rng.random()
        if roll < 0.55:
            with self.lock:
                earlier = self.events.setdefault(org.id, {})
                replay = rng.random() < 0.1 and bool(earlier)
                # A replay is the same event again (same quantity): it must not debit twice.
                event_id = rng.choice(sorted(earlier)) if replay else f"ev-{op_id}"
                quantity = earlier[event_id] if replay else rng.randint(1, 200)
            response = self.request(rng, client, "usage", "POST", base + "/usage/events", org.platform,
                                    {"event_id": event_id, "product": "compute", "quantity": quantity},
                                    key=f"usage-{op_id}")
            if response is not None and response.is_success and not replay:
                with self.lock:
                    earlier[event_id] = quantity
        elif roll < 0.67:
            key = f"credits-{op_id}"
            body = {"amount": rng.choice(["5.00", "10.00", "20.00"])}
            if rng.random() < 0.3:
                # A client retry racing the first attempt on another web process: one top-up.
                answers = self._twice(rng, "credits", "POST", base + "/credits", org.owner, body, key)
            else:
                answers = [self.request(rng, client, "credits", "POST", base + "/credits", org.owner, body, key=key)]
            for response in answers:
                if response is not None and response.is_success:
                    payment_id = response.json()["id"]
                    with self.lock:
                        self.paid.setdefault(key, set()).add(payment_id)
                        self.payments.setdefault(org.id, []).append(payment_id)
        elif roll < 0.73:
            with self.lock:
                choices = list(self.payments.get(org.id, []))
            if choices:
                self.request(rng, client, "refund", "POST", base + "/refunds", org.owner,
                             {"payment_id": rng.choice(choices), "reason": "scale-out test"}, key=f"refund-{op_id}")
        elif roll < 0.82:
            with self.lock:
                choices = sorted(self.events.get(org.id, {}))
            if choices:
                self.request(rng, client, "usage_refund", "POST", f"{base}/usage/events/{rng.choice(choices)}/refund",
                             org.platform, None, key=f"usage-refund-{op_id}")
        elif roll < 0.91:
            self.request(rng, client, "spend_settings", "PUT", base + "/spend_management", org.owner,
                         {"enabled": True, "daily_email_threshold_micros": rng.choice([1, 2, 3]) * DOLLAR,
                          "webhook_url": self.hooks_url}, key=f"spend-{op_id}")
        else:
            self.request(rng, client, "alert_settings", "PUT", base + "/low_balance_alert", org.owner,
                         {"enabled": True, "threshold_micros": rng.choice([20, 30, 40]) * DOLLAR},
                         key=f"alert-{op_id}")

    def _twice(self, rng: random.Random, op: str, method: str, path: str, token: str, body: dict[str, Any],
               key: str) -> list[httpx.Response | None]:
        results: list[httpx.Response | None] = [None, None]
        barrier = threading.Barrier(2)

        def send(slot: int) -> None:
            local = random.Random(rng.random())
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                results[slot] = self.request(local, client, op, method, path, token, body, key=key)

        threads = [threading.Thread(target=send, args=(slot,)) for slot in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results


# --------------------------------------------------------------------------- the test


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, str]]:
    require_postgres_url()
    with migrated_database("postgresql", tmp_path) as database:
        yield database


def _rows(engine: Any, query: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(query) if isinstance(query, str) else query))


def test_three_web_processes_and_two_workers_survive_kills_and_a_month_turn(
        database: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, schema = database
    clock_file = tmp_path / "clock"
    OffsetFileClock.write_offset(clock_file, MARCH_NOON)
    with SmtpSink(delay_s=SMTP_DELAY_S) as smtp, WebhookReceiver(secrets=[]) as hooks:
        env = {"BILLING_ENV": "test", "BILLING_STORAGE": "sqlalchemy", "BILLING_DATABASE_URL": url,
               "BILLING_DATABASE_SCHEMA": schema, "BILLING_DATA_DIR": str(tmp_path / "var"),
               "BILLING_SMTP_HOST": "127.0.0.1", "BILLING_SMTP_PORT": str(smtp.port),
               "BILLING_SMTP_STARTTLS": "false", "BILLING_MAIL_FROM": "billing@scale.example",
               "BILLING_ALLOW_PRIVATE_WEBHOOK_URLS": "true", "BILLING_TEST_CLOCK_FILE": str(clock_file),
               "BILLING_WORKER_INTERVAL": "0.2", "BILLING_OUTBOX_LEASE_SECONDS": str(OUTBOX_LEASE_S)}
        for name in ("BILLING_STRIPE_API_KEY", "BILLING_STRIPE_WEBHOOK_SECRET", "BILLING_EASYBILL_API_KEY",
                     "BILLING_DEMO", "BILLING_WORKER", "BILLING_SMTP_USERNAME", "BILLING_SMTP_PASSWORD"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        child_env = {**child_environment(), **env}
        container = Container()  # the test's own view: same database, schema and clock
        ctx = container.billing_context()
        engine = container.engine()
        orgs = [_set_up(ctx, hooks.url, n) for n in range(ORGANIZATIONS)]
        hooks.secrets.extend(org.webhook_secret for org in orgs)

        webs = [Served(f"web{n}", ["serve", "--port", str(port)], {**child_env, "BILLING_WORKER": "false"}, port)
                for n, port in enumerate(free_port() for _ in range(WEB_PROCESSES))]
        workers = [Served(f"worker{n}", ["worker"], child_env) for n in range(WORKER_PROCESSES)]
        everyone = webs + workers
        load = Load(webs=webs, orgs=orgs, hooks_url=hooks.url)
        started = time.monotonic()
        try:
            for served in everyone:
                served.start()
            for served in everyone:
                served.wait_ready()
            clients = [threading.Thread(target=load.run, args=(n,), name=f"client-{n}")
                       for n in range(CLIENT_THREADS)]
            for thread in clients:
                thread.start()
            time.sleep(LOAD_BEFORE_KILL_S)
            # Land the worker's kill mid-batch: pause the other worker, queue a burst of notices,
            # and kill the one left once the (slow) relay has taken some of them.
            in_flight = _claimed(engine, ctx)
            workers[1].pause()
            in_flight += _claimed(engine, ctx)
            _queue_burst(ctx, orgs[0].id)
            _wait_for(lambda: sum(m.message["Subject"].startswith(BURST) for m in smtp.received) >= BURST_SIZE // 3)
            in_flight += _claimed(engine, ctx)
            webs[0].sigkill()
            workers[0].sigkill()
            workers[1].resume()
            webs[0].start()
            workers[0].start()
            webs[0].wait_ready()
            workers[0].wait_ready()
            # The jump to month end lapses every claim at once (claims are in clock time): what is
            # claimed at that moment may be delivered again, as after a kill.
            in_flight += _claimed(engine, ctx)
            OffsetFileClock.write_offset(clock_file, BEFORE_MIDNIGHT)
            while ctx.clock.now() < datetime(2026, 4, 1, tzinfo=UTC):
                time.sleep(0.2)
            time.sleep(RUN_INTO_APRIL_S)
            load.stop.set()
            for thread in clients:
                thread.join(timeout=60)
            load_seconds = time.monotonic() - started
            _drain(engine, len(orgs))
        finally:
            load.stop.set()
            for served in everyone:
                if served.process is not None and served.process.poll() is None:
                    served.resume()
                served.stop()
        logs = "".join(line for served in everyone for line in served.log)
        assert not load.failures, "\n".join(load.failures[:20]) + "\n" + logs[-5000:]
        assert "Traceback" not in logs, logs[-8000:]

        # ------------------------------------------------------------------ money
        for org in orgs:
            report = services.reconcile.reconcile(ctx, organization_id=org.id)
            assert report.clean, report
        doubled = {key: ids for key, ids in load.paid.items() if len(ids) > 1}
        assert not doubled, f"one Idempotency-Key, several top-ups: {doubled}"

        # ------------------------------------------------------------------ invoices
        invoices = _rows(engine, select(t.invoices.c.organization_id, t.invoices.c.period_start,
                                        t.invoices.c.number).order_by(t.invoices.c.number))
        per_period = Counter((row.organization_id, row.period_start) for row in invoices)
        assert all(count == 1 for count in per_period.values()), per_period
        assert {row.organization_id for row in invoices if row.period_start == MARCH} == {o.id for o in orgs}
        numbers = [row.number for row in invoices]
        assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)], numbers

        # ------------------------------------------------------------------ delivery
        outbox = _rows(engine, select(t.outbox_messages.c.id, t.outbox_messages.c.topic, t.outbox_messages.c.status,
                                      t.outbox_messages.c.payload, t.outbox_messages.c.last_error))
        statuses = Counter(row.status for row in outbox)
        assert set(statuses) == {"sent"}, (statuses, Counter(row.last_error for row in outbox if row.status != "sent"),
                                           "".join(line for w in workers for line in w.log[-20:]))
        emails = {f"outbox-{row.id}" for row in outbox if row.topic == "email"}
        webhooks = {json.loads(row.payload)["event_id"] for row in outbox if row.topic == "webhook"}
        mail_ids = Counter(str(m.message["Message-ID"]).strip("<>").split("@")[0] for m in smtp.received)
        hook_ids = Counter(json.loads(h.body)["id"] for h in hooks.received if h.verified)
        assert all(h.verified for h in hooks.received), "a webhook arrived that its receiver cannot verify"
        assert emails <= set(mail_ids), f"lost emails: {sorted(emails - set(mail_ids))[:5]}"
        assert set(mail_ids) <= emails, f"mail that no outbox message sent: {sorted(set(mail_ids) - emails)[:5]}"
        assert webhooks <= set(hook_ids), f"lost webhooks: {sorted(webhooks - set(hook_ids))[:5]}"
        assert set(hook_ids) <= webhooks
        repeated = {i for i, n in mail_ids.items() if n > 1} | {i for i, n in hook_ids.items() if n > 1}
        duplicates = sum(n - 1 for n in mail_ids.values()) + sum(n - 1 for n in hook_ids.values())
        # A repeat can only be a message a worker had claimed around the kill.
        claimed_then = {f"outbox-{row.id}" for row in in_flight if row.topic == "email"} | {
            json.loads(row.payload)["event_id"] for row in in_flight if row.topic == "webhook"}
        assert repeated <= claimed_then, (repeated, claimed_then)
        assert emails and webhooks and len(invoices) >= len(orgs)

        requests = sum(load.answers.values())
        print(f"\nscale-out: {requests} requests in {load_seconds:.0f}s "
              f"({dict(sorted(Counter(op for op, _ in load.answers.elements()).items()))}), "
              f"statuses {dict(sorted(Counter(s for _, s in load.answers.elements()).items()))}, "
              f"{load.unreachable} retried after a dead socket, {load.busy} while the key was in progress, "
              f"{len(load.abandoned)} keys abandoned; outbox {len(outbox)} messages ({len(emails)} emails, "
              f"{len(webhooks)} webhooks, {len(outbox) - len(emails) - len(webhooks)} other), "
              f"{len(in_flight)} claimed when the worker was killed, {duplicates} duplicate deliveries; "
              f"{len(invoices)} invoices {numbers[0]}..{numbers[-1]}")
        container.engine().dispose()


def _claimed(engine: Any, ctx: BillingContext) -> list[Any]:
    """Outbox messages some dispatcher has claimed and not yet marked sent (their next attempt is
    pushed a lease ahead)."""
    m = t.outbox_messages.c
    return _rows(engine, select(m.id, m.topic, m.payload).where(m.status == "pending",
                                                               m.next_attempt_at > ctx.clock.now()))


def _queue_burst(ctx: BillingContext, organization_id: uuid.UUID) -> None:
    """Notices queued in one commit, as a close or an incident would: one worker claims them all."""
    with ctx.uow() as uow:
        for n in range(BURST_SIZE):
            assert enqueue_email(uow, organization_id=organization_id, to="ops@scale.example",
                                 subject=f"{BURST} {n}", text="Queued in a burst.", now=ctx.clock.now(),
                                 dedupe_key=f"scale-out-burst-{n}")
        uow.commit()


def _wait_for(condition: Callable[[], bool], within: float = 90.0) -> None:
    # Generous: on a loaded 2-core machine five served processes and the load share the CPU with
    # whatever else runs; the wait bounds a hang, it measures nothing.
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the worker did not start on the burst"
        time.sleep(0.01)


def _drain(engine: Any, organizations: int) -> None:
    """Wait until March is invoiced for every organization and nothing is pending in the outbox
    (the checks after it say what is missing when that never happens)."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        [pending] = _rows(engine, "SELECT count(*) AS n FROM outbox_messages WHERE status = 'pending'")
        [closed] = _rows(engine, "SELECT count(*) AS n FROM invoices WHERE period_start = '2026-03-01T00:00:00Z'")
        if pending.n == 0 and closed.n == organizations:
            return
        time.sleep(0.5)
