"""A circuit breaker per upstream replica: after `failures` failures in a row it opens and refuses requests
for `open_seconds`; then it lets one trial request through (half-open), whose outcome closes or reopens it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.open_seconds, self.clock = failures, open_seconds, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False  # half-open: the one trial request is out
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.open_seconds else "open"

    def retry_after(self) -> float:
        """Seconds until the circuit lets a request through again (0: it does now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.open_seconds - (self.clock() - self.opened_at))

    def available(self) -> bool:
        """Whether a request may be sent now (without taking the half-open trial)."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self.trial)

    def acquire(self) -> bool:
        """Take permission to send one request; in half-open, only one at a time gets it."""
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half_open" and not self.trial:
                self.trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self.trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.opened_at is not None or self.failures >= self.threshold:
                self.opened_at, self.trial = self.clock(), False  # (re)open: a failed trial waits a full period

    def release(self) -> None:
        """The request ended with neither verdict (the client left): let another trial through."""
        with self._lock:
            self.trial = False
