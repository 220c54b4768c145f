"""Failed authentications are limited per client over a sliding minute (injected clock)."""

from __future__ import annotations

import pytest

from segue.auth.ratelimit import FailureLimiter
from segue.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_eleventh_attempt_within_a_minute_is_refused_until_the_minute_passes():
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(10):
        limiter.check("10.0.0.7")
        limiter.failed("10.0.0.7")
        clock.now += 1
    with pytest.raises(TooManyRequests, match="10 in the last 60 s") as refused:
        limiter.check("10.0.0.7")
    assert 1 <= refused.value.retry_after <= 60
    limiter.check("10.0.0.8")  # another client is not affected
    clock.now += 60
    limiter.check("10.0.0.7")  # the oldest failures have left the window


def test_failures_spread_over_more_than_a_minute_are_not_limited():
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(30):
        limiter.check("10.0.0.7")
        limiter.failed("10.0.0.7")
        clock.now += 7
