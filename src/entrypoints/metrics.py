"""Prometheus metrics of the service, served at ``GET /metrics`` in the text exposition format.

Counters and histograms live in the process that observes them. When ``billing serve`` runs several
processes (``--workers N``, or its background worker as a process of its own), the CLI points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before they start, and a scrape of any server
process adds up every process's values. The outbox gauges
are read from the database at scrape time, so every process reports the same, true figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from billing_core.outbox import OutboxDepth
from billing_core.services.background import CycleReport
from billing_core.services.usage import UsageOutcome
from entrypoints.supervisor import MULTIPROCESS_ENV

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUEST_SECONDS = Histogram(
    "billing_http_request_duration_seconds", "HTTP request latency by route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
DEBITS = Counter("billing_debits_total", "Usage debits decided by the spend guard, by outcome and denial reason.",
                 ["outcome", "reason"])
DELIVERIES = Counter("billing_outbox_deliveries_total", "Outbox delivery attempts by result.", ["result"])
PERIOD_CLOSES = Counter("billing_period_closes_total", "Scheduled period closes run by this service.")
INVOICES_CREATED = Counter("billing_invoices_created_total", "Invoices created by period closes.")
PERIOD_CLOSE_SECONDS = Histogram("billing_period_close_duration_seconds", "Duration of a whole period close.",
                                 buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600))


def observe_debits(outcomes: Sequence[UsageOutcome]) -> None:
    """Count each decided debit once (replays were counted when first decided)."""
    for outcome in outcomes:
        if outcome.replayed:
            continue
        if outcome.allowed:
            DEBITS.labels("allowed", "").inc()
        else:
            DEBITS.labels("denied", outcome.reason.value if outcome.reason else "unknown").inc()


def observe_cycle(report: CycleReport) -> None:
    """Record what one background cycle did."""
    for result, count in (("sent", report.dispatched.sent), ("retried", report.dispatched.retried),
                          ("dead", report.dispatched.dead)):
        if count:
            DELIVERIES.labels(result).inc(count)
    if report.closed is not None:
        PERIOD_CLOSES.inc()
        INVOICES_CREATED.inc(report.closed.invoices_created)
        if report.close_milliseconds is not None:
            PERIOD_CLOSE_SECONDS.observe(report.close_milliseconds / 1000)


class OutboxCollector(Collector):
    """The outbox as the database has it, read at scrape time."""

    def __init__(self, read: Callable[[], OutboxDepth], now: Callable[[], float] = time.time) -> None:
        self._read = read
        self._now = now

    def collect(self) -> Iterable[Metric]:
        depth = self._read()
        oldest = 0.0 if depth.oldest_pending_at is None else max(self._now() - depth.oldest_pending_at.timestamp(), 0.0)
        yield GaugeMetricFamily("billing_outbox_pending", "Outbox messages not delivered yet.", value=depth.pending)
        yield GaugeMetricFamily("billing_outbox_oldest_pending_age_seconds",
                                "Age of the oldest undelivered outbox message (0 when none).", value=oldest)
        yield GaugeMetricFamily("billing_outbox_dead_letters", "Outbox messages given up on (dead letters).",
                                value=depth.dead)


def exposition(outbox: Callable[[], OutboxDepth]) -> bytes:
    """The scrape body: this process's (or, in multiprocess mode, every process's) metrics and the
    outbox gauges."""
    registry: Any
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        for collector in _process_collectors():
            registry.register(collector)
    registry.register(OutboxCollector(outbox))
    body: bytes = generate_latest(registry)
    return body


def _process_collectors() -> list[Collector]:
    # The default registry holds this module's metrics plus the process and platform collectors.
    return [_Forward(REGISTRY)]


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()
