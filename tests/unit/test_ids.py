"""Time-ordered ids (ADR 0021): version 7 UUIDs, ordered by millisecond, unique."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from billing_core.ids import time_ordered_id
from billing_core.ledger import Account, EntryKind, transaction, transfer

ORG = uuid.UUID("0a000000-0000-4000-8000-00000000000a")


def test_an_id_is_a_version_7_uuid_stamped_with_the_system_time() -> None:
    before = time.time_ns() // 1_000_000
    new = time_ordered_id()
    after = time.time_ns() // 1_000_000
    assert new.version == 7 and new.variant == uuid.RFC_4122
    assert before <= new.int >> 80 <= after
    assert uuid.UUID(str(new)) == new


def test_ids_of_later_milliseconds_sort_after_earlier_ones_as_text_and_as_integers() -> None:
    ids = []
    for _ in range(20):
        ids.append(time_ordered_id())
        stamp = ids[-1].int >> 80
        while time.time_ns() // 1_000_000 == stamp:  # into the next millisecond
            time.sleep(0.0002)
    assert ids == sorted(ids, key=str) == sorted(ids, key=lambda i: i.int)


def test_ids_are_unique_and_their_random_bits_vary() -> None:
    ids = [time_ordered_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    low_bits = {i.int & 0xFFFF for i in ids}
    assert len(low_bits) > 15_000  # 20,000 draws of 16 random bits leave ~17,000 distinct values
    rand_a = {(i.int >> 64) & 0xFFF for i in ids}
    assert len(rand_a) > 3_000  # all 4,096 values of the 12 bits after the version, nearly
    # 74 random bits: the 12 after the version are drawn apart from the 62 after the variant, not
    # a copy of some of them.
    for shift in range(62 - 12 + 1):
        copies = sum(((i.int >> 64) & 0xFFF) == ((i.int >> shift) & 0xFFF) for i in ids)
        assert copies < 50, (shift, copies)  # chance alone: 20,000 / 4,096, about 5


def test_a_ledger_transaction_gets_a_time_ordered_id_unless_it_is_given_one() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    built = transfer(organization_id=ORG, idempotency_key="k", kind=EntryKind.USAGE, description="d", created_at=at,
                     source=Account.UNBILLED_USAGE, target=Account.REVENUE, amount_micros=5)
    assert built.id.version == 7
    given = uuid.uuid4()
    assert transaction(organization_id=ORG, idempotency_key="k", kind=EntryKind.USAGE, description="d",
                       created_at=at, postings=[(Account.REVENUE, 5), (Account.UNBILLED_USAGE, -5)],
                       transaction_id=given).id == given
