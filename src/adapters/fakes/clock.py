"""Clocks: the system clock, a settable one for tests and demos, and one moved through a file."""

from __future__ import annotations

import math
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to. ``advance`` walks days and months in tests."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs timezone-aware datetimes")
        with self._lock:
            self._now = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


class OffsetFileClock:
    """The system clock moved by an offset that another process controls: "now" is the real time
    plus the number of seconds written in ``path`` (a decimal number; a missing or empty file is 0).

    For tests that drive real server processes across the turn of a month: the test writes the
    offset that puts "now" at 23:59:50 on the last day of a month and lets the real seconds turn
    it. The file is read on every call (it is small, and the processes must see a jump at once).
    Only the composition root picks it, and only with ``BILLING_ENV=test``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> timedelta:
        """The offset in the file now. Raises ValueError when the file holds something else."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return timedelta(0)
        try:
            seconds = float(text) if text else 0.0
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise ValueError(f"{self.path} must hold a finite number of seconds, not {text!r}")
        return timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    @staticmethod
    def write_offset(path: Path, at: datetime) -> None:
        """Write the offset that makes "now" read ``at`` (atomically: readers never see half a number)."""
        if at.tzinfo is None:
            raise ValueError("OffsetFileClock needs timezone-aware datetimes")
        seconds = (at - datetime.now(UTC)).total_seconds()
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(f"{seconds:.6f}\n", encoding="utf-8")
        os.replace(temporary, path)
