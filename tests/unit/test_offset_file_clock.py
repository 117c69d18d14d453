"""The test clock of served processes: real time plus an offset another process writes to a file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.fakes import OffsetFileClock

TOLERANCE = timedelta(seconds=5)
"""Real seconds pass between writing the offset and reading the clock; far less than this."""


def test_without_a_file_it_is_the_system_clock(tmp_path: Path) -> None:
    clock = OffsetFileClock(tmp_path / "clock")
    assert clock.offset() == timedelta(0)
    assert abs(clock.now() - datetime.now(UTC)) < TOLERANCE
    assert clock.now().tzinfo is UTC


def test_a_written_offset_moves_now_and_real_time_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    clock = OffsetFileClock(path)
    target = datetime(2026, 3, 31, 23, 59, 50, tzinfo=UTC)
    OffsetFileClock.write_offset(path, target)
    first = clock.now()
    assert target <= first < target + TOLERANCE
    assert clock.now() >= first, "the clock never runs backwards between reads"
    # Another jump is seen by the next read, without restarting anything.
    OffsetFileClock.write_offset(path, datetime(2026, 5, 1, tzinfo=UTC))
    assert clock.now().month == 5


def test_an_empty_file_is_no_offset_and_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("", encoding="utf-8")
    assert OffsetFileClock(path).offset() == timedelta(0)
    path.write_text("-86400\n", encoding="utf-8")
    assert OffsetFileClock(path).offset() == timedelta(days=-1)
    for garbage in ("tomorrow", "nan", "inf"):
        path.write_text(garbage, encoding="utf-8")
        with pytest.raises(ValueError, match="clock"):
            OffsetFileClock(path).now()


def test_naive_targets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OffsetFileClock.write_offset(tmp_path / "clock", datetime(2026, 3, 31, 23, 59, 50))
