"""HttpxWebhookSender against a local receiver that verifies signatures as docs/webhooks.md says."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from adapters.fakes import FixedClock
from adapters.webhooks.sender import HttpxWebhookSender, event_body
from adapters.webhooks.signature import header_value, sign, verify
from billing_core.errors import InvalidInput, ProviderUnavailable
from billing_core.ports import WebhookDelivery
from tests.support.delivery import WebhookReceiver, free_port

SECRET = "whsec_" + "a1" * 24
CREATED = datetime(2026, 3, 14, 9, 30, 15, 123456, tzinfo=UTC)


def event(event_id: str = "evt_01") -> WebhookDelivery:
    return WebhookDelivery(id=event_id, type="spend.daily_budget_reached", created=CREATED,
                           data={"organization_id": str(uuid.UUID(int=7)), "spent_micros": 12_480_000,
                                 "budget_micros": 12_000_000})


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secrets=[SECRET]) as running:
        yield running


@pytest.fixture
def sender() -> Iterator[HttpxWebhookSender]:
    webhook_sender = HttpxWebhookSender(timeout=5, allow_private=True)
    yield webhook_sender
    webhook_sender.close()


def test_a_delivery_is_signed_and_verifiable(receiver: WebhookReceiver, sender: HttpxWebhookSender) -> None:
    assert sender.send(url=receiver.url, secret=SECRET, event=event()) == 200

    [delivery] = receiver.received
    assert delivery.verified
    assert delivery.path == "/hooks/billing"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["billing-webhook-id"] == "evt_01"
    timestamp = int(delivery.headers["billing-webhook-timestamp"])
    assert delivery.headers["billing-webhook-signature"] == "v1=" + sign(SECRET, timestamp, delivery.body)
    assert json.loads(delivery.body) == {
        "id": "evt_01", "type": "spend.daily_budget_reached", "created": "2026-03-14T09:30:15.123456Z",
        "data": {"organization_id": str(uuid.UUID(int=7)), "spent_micros": 12_480_000, "budget_micros": 12_000_000},
    }


def test_the_timestamp_is_the_time_of_the_attempt() -> None:
    clock = FixedClock(datetime(2026, 3, 14, 12, 0, tzinfo=UTC))
    with WebhookReceiver(secrets=[SECRET]) as receiver:
        sender = HttpxWebhookSender(clock=clock, allow_private=True)
        with pytest.raises(ProviderUnavailable, match="answered 400"):  # the fixed clock is not the receiver's now
            sender.send(url=receiver.url, secret=SECRET, event=event())
        sender.close()
    [delivery] = receiver.received
    timestamp = int(clock.now().timestamp())
    assert delivery.headers["billing-webhook-timestamp"] == str(timestamp)
    assert not delivery.verified
    assert verify(SECRET, delivery.headers["billing-webhook-signature"], timestamp, delivery.body, now=timestamp)


def test_a_500_answer_is_provider_unavailable(receiver: WebhookReceiver, sender: HttpxWebhookSender) -> None:
    receiver.status = 500
    with pytest.raises(ProviderUnavailable, match="answered 500"):
        sender.send(url=receiver.url, secret=SECRET, event=event())


def test_a_redirect_is_not_followed(receiver: WebhookReceiver, sender: HttpxWebhookSender) -> None:
    receiver.status = 302
    with pytest.raises(ProviderUnavailable, match="answered 302"):
        sender.send(url=receiver.url, secret=SECRET, event=event())
    assert [r.path for r in receiver.received] == ["/hooks/billing"]


def test_a_wrong_secret_is_rejected_by_the_receiver(receiver: WebhookReceiver, sender: HttpxWebhookSender) -> None:
    with pytest.raises(ProviderUnavailable, match="answered 400"):
        sender.send(url=receiver.url, secret="whsec_other", event=event())
    assert receiver.received[0].verified is False


def test_during_a_rotation_the_receiver_accepts_old_and_new(sender: HttpxWebhookSender) -> None:
    with WebhookReceiver(secrets=["whsec_new", SECRET]) as receiver:
        sender.send(url=receiver.url, secret=SECRET, event=event("evt_old"))
        sender.send(url=receiver.url, secret="whsec_new", event=event("evt_new"))
    assert [r.verified for r in receiver.received] == [True, True]


def test_a_retried_event_keeps_its_id(receiver: WebhookReceiver, sender: HttpxWebhookSender) -> None:
    sender.send(url=receiver.url, secret=SECRET, event=event())
    sender.send(url=receiver.url, secret=SECRET, event=event())
    assert {r.headers["billing-webhook-id"] for r in receiver.received} == {"evt_01"}
    assert receiver.seen_ids == {"evt_01"}


def test_network_errors_are_provider_unavailable(sender: HttpxWebhookSender) -> None:
    with pytest.raises(ProviderUnavailable, match=r"127\.0\.0\.1"):
        sender.send(url=f"http://127.0.0.1:{free_port()}/hook?token=secret-in-url", secret=SECRET, event=event())


def test_bad_urls_and_missing_secrets_are_invalid_input(sender: HttpxWebhookSender) -> None:
    for url in ["http://[::1", "ftp://example.com/hook", "example.com/hook"]:
        with pytest.raises(InvalidInput):
            sender.send(url=url, secret=SECRET, event=event())
    with pytest.raises(InvalidInput):
        sender.send(url="https://example.com/hook", secret="", event=event())


def test_verify_rejects_tampering_staleness_and_garbage() -> None:
    body = event_body(event())
    now = 1_773_480_615
    good = header_value(SECRET, now, body)
    assert verify(SECRET, good, str(now), body, now=now)
    assert verify(SECRET, good, now, body, now=now + 300)
    assert not verify(SECRET, good, now, body, now=now + 301)
    assert not verify(SECRET, good, now, body, now=now - 301)
    assert not verify(SECRET, good, now, body + b" ", now=now)
    assert not verify(SECRET, good, now + 1, body, now=now)
    assert not verify("whsec_other", good, now, body, now=now)
    assert verify(SECRET, f"v1=deadbeef, {good}", now, body, now=now)
    assert not verify(SECRET, good.replace("v1=", "v0="), now, body, now=now)
    for header, timestamp in [(None, now), ("", now), (good, None), (good, "yesterday"), ("v1=", now)]:
        assert not verify(SECRET, header, timestamp, body, now=now)
    assert not verify("", good, now, body, now=now)


class _Recorder:
    """An httpx transport that answers 200 and keeps what would have gone on the wire."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


def _pinned_sender(answers: dict[str, list[list[str]]]) -> tuple[HttpxWebhookSender, _Recorder]:
    """A sender whose resolver hands out, per host, the next of the given answers."""
    recorder = _Recorder()

    def resolve(host: str, port: int) -> list[str]:
        return answers[host].pop(0)
    return HttpxWebhookSender(client=httpx.Client(transport=httpx.MockTransport(recorder)), resolver=resolve), recorder


def test_the_request_goes_to_the_checked_address_under_the_host_name() -> None:
    sender, recorder = _pinned_sender({"hooks.acme.test": [["93.184.215.14", "2606:2800:21f:cb07::1"]]})
    assert sender.send(url="https://hooks.acme.test:8443/billing?x=1", secret=SECRET, event=event()) == 200
    [request] = recorder.requests
    assert (request.url.host, request.url.port, request.url.raw_path) == ("93.184.215.14", 8443, b"/billing?x=1")
    assert request.headers["host"] == "hooks.acme.test:8443"
    assert request.extensions["sni_hostname"] == "hooks.acme.test"  # TLS verifies the name, not the address
    assert verify(SECRET, request.headers["billing-webhook-signature"],
                  request.headers["billing-webhook-timestamp"], request.content,
                  now=int(request.headers["billing-webhook-timestamp"]))


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["10.0.0.7"], ["93.184.215.14", "169.254.169.254"],
                                       ["::1"], ["::ffff:127.0.0.1"], ["fd00::1"], []])
def test_a_name_resolving_to_a_private_address_is_refused(addresses: list[str]) -> None:
    sender, recorder = _pinned_sender({"127.0.0.1.nip.io": [addresses]})
    with pytest.raises(InvalidInput) as refused:
        sender.send(url="https://127.0.0.1.nip.io/hook", secret=SECRET, event=event())
    assert refused.value.code == "ssrf_blocked"
    assert recorder.requests == []


def test_dns_rebinding_after_the_url_was_accepted_is_refused_at_the_next_attempt() -> None:
    sender, recorder = _pinned_sender({"rebind.acme.test": [["93.184.215.14"], ["127.0.0.1"]]})
    sender.send(url="http://rebind.acme.test/hook", secret=SECRET, event=event())
    with pytest.raises(InvalidInput, match="private or loopback"):
        sender.send(url="http://rebind.acme.test/hook", secret=SECRET, event=event())
    assert [r.url.host for r in recorder.requests] == ["93.184.215.14"]
    assert "sni_hostname" not in recorder.requests[0].extensions


def test_an_unresolvable_host_is_retryable() -> None:
    sender = HttpxWebhookSender()
    with pytest.raises(ProviderUnavailable, match="does not resolve"):
        sender.send(url="https://does-not-exist.invalid/hook", secret=SECRET, event=event())
    sender.close()
