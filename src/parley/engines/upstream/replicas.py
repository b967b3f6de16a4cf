"""The replicas of one upstream: which may take a request now (healthy, circuit closed), chosen by weight;
a thread checks each one's health every `health_interval` seconds."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from parley.config import UpstreamReplica, UpstreamSpec
from parley.engines.upstream.breaker import CircuitBreaker

log = logging.getLogger(__name__)


@dataclass
class Replica:
    url: str
    weight: float
    breaker: CircuitBreaker
    healthy: bool = True  # until a health check says otherwise: a request may prove it before the first check
    checked: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)  # ok / error / overloaded / rejected / cancelled
    current: float = 0.0  # the round robin's running credit

    def available(self) -> bool:
        return self.healthy and self.breaker.available()

    def status(self) -> dict[str, object]:
        return {"url": self.url, "weight": self.weight, "healthy": self.healthy, "circuit": self.breaker.state,
                "retry_after_s": round(self.breaker.retry_after(), 1), "requests": dict(self.outcomes)}  # fmt: skip


class ReplicaSet:
    def __init__(self, spec: UpstreamSpec, headers: dict[str, str],
                 on_recovered: Callable[[Replica, httpx.Client], None] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.on_recovered = on_recovered
        self.replicas = [self._replica(r) for r in spec.replicas]
        self.headers = headers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _replica(self, r: UpstreamReplica) -> Replica:
        return Replica(r.url, r.weight, CircuitBreaker(self.spec.breaker_failures, self.spec.breaker_open_seconds))

    def pick(self, exclude: set[str]) -> Replica | None:
        """A replica that may take a request now, by weight (smooth weighted round robin, as nginx does: each
        replica's share is exact over any window of the weights' sum); None if none may. Takes the half-open
        trial of the one it returns."""
        with self._lock:
            candidates = [r for r in self.replicas if r.url not in exclude and r.available()]
            while candidates:
                total = sum(r.weight for r in candidates)
                for r in candidates:
                    r.current += r.weight
                replica = max(candidates, key=lambda r: r.current)
                replica.current -= total
                if replica.breaker.acquire():
                    return replica
                candidates.remove(replica)
            return None

    def retry_after(self) -> int:
        """Seconds a client should wait before the next try, when no replica may take a request."""
        waits = [r.breaker.retry_after() for r in self.replicas if r.healthy]
        wait = min(waits) if waits else self.spec.health_interval
        return max(1, round(wait))

    # -- health ------------------------------------------------------------------------------------------

    def check(self, client: httpx.Client) -> None:
        """One round of health checks: GET `health_path` on every replica."""
        for replica in self.replicas:
            try:
                ok = client.get(replica.url + self.spec.health_path, headers=self.headers).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok != replica.healthy or not replica.checked:
                log.log(logging.INFO if ok else logging.WARNING, "upstream %s %s %s", self.spec.name, replica.url,
                        "is healthy" if ok else "failed its health check")  # fmt: skip
            if ok and not replica.healthy and self.on_recovered is not None:
                self.on_recovered(replica, client)  # before it takes requests again
            replica.healthy, replica.checked = ok, True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"health-{self.spec.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        timeout = httpx.Timeout(self.spec.connect_timeout, read=max(self.spec.connect_timeout, 5.0))
        with httpx.Client(timeout=timeout) as client:
            while not self._stop.is_set():
                self.check(client)
                self._stop.wait(self.spec.health_interval)

    def close(self) -> None:
        self._stop.set()
