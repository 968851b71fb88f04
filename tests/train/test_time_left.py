"""The time left comes from the rate measured on this machine, after the first (warm-up) steps."""

from __future__ import annotations

import logging

import pytest

import vjepa_edge.train.loop as loop
from vjepa_edge.train.loop import TimeLeft, fmt_time


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(loop.time, "perf_counter", c)
    return c


def test_warm_up_steps_are_not_timed_and_the_rate_gives_the_time_left(clock):
    left = TimeLeft("job", start=0, end=100, skip=2, after=3)
    assert left.seconds(1) is None  # the first step pays for allocations: never timed
    clock.now += 50.0
    assert left.seconds(2) is None  # timing starts here
    for step in range(3, 13):
        clock.now += 2.0  # two seconds a step from now on
        assert left.seconds(step) == pytest.approx(2.0 * (100 - step))


def test_a_resumed_run_times_only_its_own_steps(clock):
    left = TimeLeft("job", start=40, end=50, skip=1, after=1)
    left.seconds(41)
    clock.now += 3.0
    assert left.seconds(42) == pytest.approx(3.0 * 8)


def test_the_note_is_logged_once_with_the_measured_time(clock, caplog):
    logger = logging.getLogger("vjepa_edge.test")
    left = TimeLeft("pretraining physics", start=0, end=200, skip=1, after=2)
    with caplog.at_level(logging.WARNING, logger="vjepa_edge.test"):
        for step in range(1, 10):
            clock.now += 6.0
            left.note(step, logger)
    assert len(caplog.records) == 1
    # timed from step 1: at step 3, 2 steps took 12 s -> 197 steps left at 6 s
    assert "pretraining physics: 20 min left, measured on this machine" in caplog.text


def test_fmt_time():
    assert fmt_time(42) == "42 s" and fmt_time(600) == "10 min" and fmt_time(2 * 3600) == "2.0 h"
