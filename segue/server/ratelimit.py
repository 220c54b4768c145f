"""Failed-authentication limits, shared with ``segue serve``: see :mod:`segue.auth.ratelimit`."""

from segue.auth.ratelimit import MAX_FAILURES, WINDOW, FailureLimiter

__all__ = ["MAX_FAILURES", "WINDOW", "FailureLimiter"]
