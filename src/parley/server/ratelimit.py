"""Per-key token buckets for requests/min and tokens/min: in-process, or shared through Redis.

A bucket holds up to one minute's allowance and refills continuously. Requests are charged on arrival;
tokens are charged after the answer (its real usage), may drive the bucket into debt, and a key whose
token bucket is empty is refused until it refills, as OpenAI's limits behave.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: float
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until `need` is available (0 when allowed)


def _decide(tokens: float, capacity: int, rate: float, allowed: bool, need: float) -> Decision:
    reset = max(capacity - tokens, 0) / rate
    retry = 0.0 if allowed else max(need - tokens, 0) / rate
    return Decision(allowed, capacity, tokens, reset, retry)


class Buckets(Protocol):
    async def take(self, name: str, per_minute: int, cost: float, need: float) -> Decision:
        """Refill, then if at least `need` is available subtract `cost` (which may exceed it)."""
        ...

    async def close(self) -> None: ...


class LocalBuckets:
    """One process's buckets (the event loop is single-threaded, so no lock is needed)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    async def take(self, name: str, per_minute: int, cost: float, need: float) -> Decision:
        rate = per_minute / 60.0
        now = time.monotonic()
        tokens, ts = self._state.get(name, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - ts) * rate)
        allowed = tokens >= need
        if allowed:
            tokens -= cost
        self._state[name] = (tokens, now)
        return _decide(tokens, per_minute, rate, allowed, need)

    async def close(self) -> None:
        self._state.clear()


# Atomic refill-and-take on Redis' own clock, so replicas on different hosts agree.
TAKE_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * rate)
local allowed = 0
if tokens >= need then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 120)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets shared by every replica. While Redis cannot be reached (an answer takes longer than `timeout`, or
    the connection fails), each replica falls back to its own buckets: limits hold per replica instead of across
    them, no request waits on Redis or fails for it, and the outage is logged and counted (`errors`,
    `/parley/status`). The shared buckets take over again as soon as Redis answers."""

    def __init__(self, url: str, prefix: str = "parley:rl:", timeout: float = 0.25) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self.prefix = prefix
        self._take = self.redis.register_script(TAKE_LUA)
        self.local = LocalBuckets()
        self.errors = 0
        self.failing_since: float | None = None
        self.retry_at = 0.0  # while failing, Redis is tried again after this (monotonic seconds)

    async def take(self, name: str, per_minute: int, cost: float, need: float) -> Decision:
        from redis.exceptions import RedisError

        rate = per_minute / 60.0
        now = time.monotonic()
        if self.failing_since is None or now >= self.retry_at:
            try:
                allowed, tokens = await self._take(keys=[self.prefix + name], args=[per_minute, rate, cost, need])
            except (RedisError, OSError, TimeoutError) as exc:
                self.errors += 1
                self.retry_at = now + 1.0  # one probe a second while it is away, not one per request
                if self.failing_since is None:
                    self.failing_since = now
                    log.warning("Redis unreachable (%s): rate limits are per replica until it is back", exc)
            else:
                if self.failing_since is not None:
                    log.warning("Redis is back after %.1f s: rate limits are shared again", now - self.failing_since)
                    self.failing_since = None
                return _decide(float(tokens), per_minute, rate, bool(allowed), need)
        return await self.local.take(name, per_minute, cost, need)

    def status(self) -> dict[str, object]:
        return {"store": "redis", "errors": self.errors, "failing": self.failing_since is not None}

    async def close(self) -> None:
        await self.redis.aclose()


def duration(seconds: float) -> str:
    """OpenAI's reset format: '1s', '6m0s', '120ms'."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    minutes, secs = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
