"""When to poll again: the ETA from progress samples, server hints, and the backoff that aims at the finish."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sora_nb.polling import FIRST_DELAY, MAX_DELAY, MAX_HINT, MIN_DELAY, STRETCH, ProgressTrend, next_delay


def trend(*samples: tuple[float, int | None]) -> ProgressTrend:
    result = ProgressTrend()
    for now, progress in samples:
        result.add(progress, now=now)
    return result


# ----- ProgressTrend ------------------------------------------------------------------------------------------
def test_eta_needs_two_samples() -> None:
    assert ProgressTrend().eta(now=0.0) is None
    assert trend((0.0, 10)).eta(now=1.0) is None
    assert trend((0.0, None), (1.0, None), (2.0, 10)).eta(now=2.0) is None  # None readings are ignored


def test_eta_from_a_steady_rise() -> None:
    rising = trend((0.0, 0), (10.0, 10), (20.0, 20))  # 1 % per second
    assert rising.eta(now=20.0) == pytest.approx(80.0)
    assert rising.eta(now=25.0) == pytest.approx(75.0)  # time since the last sample counts
    assert rising.eta(now=500.0) == 0.0  # overdue: never negative


def test_eta_uses_the_recent_rate() -> None:
    samples = [(float(t), t * 5) for t in range(6)] + [(float(t), 25 + (t - 5)) for t in range(6, 20)]
    slowed = trend(*samples)  # 5 %/s at first, then 1 %/s: only the last 8 samples count
    assert slowed.eta(now=19.0) == pytest.approx(100 - 39, rel=1e-6)


def test_eta_at_completion_is_zero() -> None:
    assert trend((0.0, 50), (5.0, 100)).eta(now=5.0) == 0.0


def test_flat_progress_has_no_eta() -> None:
    assert trend((0.0, 40), (5.0, 40), (10.0, 40)).eta(now=10.0) is None


def test_progress_that_has_not_moved_yet_counts_from_its_last_reading() -> None:
    waited = trend((0.0, 0), (5.0, 0), (10.0, 0), (12.0, 20))  # the rise began after t=10, not at t=0
    assert waited.eta(now=12.0) == pytest.approx(8.0)  # 10 %/s
    assert waited.span() == pytest.approx(2.0)
    assert ProgressTrend().span() == 0.0


def test_backwards_progress_resets() -> None:
    restarted = trend((0.0, 10), (10.0, 60), (20.0, 5))
    assert restarted.eta(now=20.0) is None  # one sample since the reset
    restarted.add(15, now=30.0)
    assert restarted.eta(now=30.0) == pytest.approx(85.0)  # 1 %/s from the new start, not 60 -> 15


def test_time_not_advancing_has_no_eta() -> None:
    assert trend((5.0, 10), (5.0, 20)).eta(now=5.0) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=1e6),
    steps=st.lists(st.tuples(st.floats(min_value=0.01, max_value=100), st.integers(0, 30)), min_size=1, max_size=20),
    wait=st.floats(min_value=0, max_value=1000),
)
def test_eta_is_never_negative(start: float, steps: list[tuple[float, int]], wait: float) -> None:
    progress, now = 0, start
    readings = ProgressTrend()
    readings.add(progress, now=now)
    for dt, dp in steps:
        now, progress = now + dt, min(100, progress + dp)
        readings.add(progress, now=now)
    eta = readings.eta(now=now + wait)
    assert eta is None or eta >= 0.0
    if progress < 100 and eta is not None:
        assert eta <= (100 - progress) * (now - start) + 1e-6  # no slower than the slowest possible rate


# ----- next_delay ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("hint", "expected"), [(2.5, 2.5), (0.0, 0.05), (-3.0, 0.05), (0.3, 0.3), (600.0, MAX_HINT)])
def test_hint_is_honoured_clamped(hint: float, expected: float) -> None:
    assert next_delay(hint=hint, eta=None, elapsed=0.0) == expected
    assert next_delay(hint=hint, eta=0.0, elapsed=5000.0) == expected  # a hint wins over ETA and backoff


@settings(max_examples=200, deadline=None)
@given(
    hint=st.floats(min_value=0.05, max_value=MAX_HINT),
    eta=st.none() | st.floats(min_value=0, max_value=1e4),
    elapsed=st.floats(min_value=0, max_value=1e5),
)
def test_a_hint_is_a_floor_and_the_eta_never_pushes_past_the_backoff(
    hint: float, eta: float | None, elapsed: float
) -> None:
    delay = next_delay(hint=hint, eta=eta, elapsed=elapsed)
    assert delay >= hint  # never sooner than the server asked
    assert delay <= max(hint, STRETCH * MAX_DELAY)
    if eta is None:
        assert delay == hint


def test_with_a_hint_the_poll_aims_at_the_predicted_finish() -> None:
    # a hint of 0.4 s, a finish predicted in 2 s: one request at the finish, not five on the way there
    assert next_delay(hint=0.4, eta=2.0, elapsed=20.0) == pytest.approx(2.0)
    assert next_delay(hint=0.4, eta=0.1, elapsed=1.0) == pytest.approx(0.4)  # the floor still holds
    assert next_delay(hint=0.4, eta=1e4, elapsed=1.0) == pytest.approx(FIRST_DELAY + 0.1)  # within the backoff


def test_a_far_prediction_is_checked_halfway() -> None:
    # a finish 2 s ahead drawn from readings 1 s apart: look again at 1 s, then aim with a longer baseline
    assert next_delay(hint=0.4, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.0)
    assert next_delay(hint=None, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.0)
    assert next_delay(hint=None, eta=2.0, elapsed=20.0, span=3.0) == pytest.approx(2.0)
    assert next_delay(hint=1.5, eta=2.0, elapsed=20.0, span=1.0) == pytest.approx(1.5)  # the hint is a floor


def test_a_finish_just_past_the_backoff_is_waited_for() -> None:
    backoff = FIRST_DELAY + 2.5 / 10
    assert next_delay(hint=None, eta=1.4, elapsed=2.5) == pytest.approx(1.4)  # one request at the finish
    assert next_delay(hint=None, eta=STRETCH * backoff + 0.1, elapsed=2.5) == pytest.approx(backoff)


def test_backoff_grows_from_one_second_to_ten() -> None:
    delays = [next_delay(hint=None, eta=None, elapsed=t) for t in (0, 5, 10, 30, 60, 90, 120, 3600)]
    assert delays[0] == pytest.approx(FIRST_DELAY)
    assert delays == sorted(delays)
    assert delays[2] == pytest.approx(2.0)
    assert delays[-2:] == [MAX_DELAY, MAX_DELAY]


def test_delay_aims_at_the_eta() -> None:
    assert next_delay(hint=None, eta=0.5, elapsed=300.0) == pytest.approx(0.5)
    assert next_delay(hint=None, eta=0.0, elapsed=300.0) == MIN_DELAY
    assert next_delay(hint=None, eta=1000.0, elapsed=300.0) == MAX_DELAY


@settings(max_examples=200, deadline=None)
@given(eta=st.none() | st.floats(min_value=0, max_value=1e5), elapsed=st.floats(min_value=0, max_value=1e6))
def test_backoff_bounds(eta: float | None, elapsed: float) -> None:
    delay = next_delay(hint=None, eta=eta, elapsed=elapsed)
    assert MIN_DELAY <= delay <= MAX_DELAY
    assert delay <= STRETCH * (FIRST_DELAY + elapsed / 10) + 1e-9
    if eta is not None:
        assert delay <= max(MIN_DELAY, eta) + 1e-9  # never sleeps past the predicted finish
    else:
        assert delay >= FIRST_DELAY


@settings(max_examples=100, deadline=None)
@given(eta=st.none() | st.floats(min_value=0, max_value=100), a=st.floats(0, 1e4), b=st.floats(0, 1e4))
def test_backoff_is_monotonic_in_elapsed(eta: float | None, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert next_delay(hint=None, eta=eta, elapsed=low) <= next_delay(hint=None, eta=eta, elapsed=high)
