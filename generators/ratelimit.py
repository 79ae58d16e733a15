"""Rate limits and retry timing for HTTP teachers: a token bucket and exponential backoff.

Both take their clock (and the bucket its sleep) as arguments, so tests drive them with a fake
clock instead of sleeping. Provider limits are per minute (requests and tokens); the bucket
refills continuously and holds at most `burst_s` seconds of budget, so a limit of 600 requests a
minute means 10 a second, not 600 in the first second.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass


class TokenBucket:
    """`rate_per_minute` units a minute; `acquire(n)` waits until `n` units are available.

    A request larger than the bucket waits for a full bucket and then takes it into debt, so
    one big request is never blocked forever. `refund` returns units that were estimated but not
    used (the token limit is charged on an estimate before the call, settled after it).
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be > 0, got {rate_per_minute}")
        if burst_s <= 0:
            raise ValueError(f"burst_s must be > 0, got {burst_s}")
        self.rate = rate_per_minute / 60.0  # units per second
        self.capacity = max(1.0, self.rate * burst_s)
        self._clock, self._sleep = clock, sleep
        self._level = self.capacity
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time callers spent waiting, for stats

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        need = min(amount, self.capacity)
        async with self._lock:  # first come, first served
            self._refill()
            while self._level < need:
                wait = (need - self._level) / self.rate
                self.waited_s += wait
                await self._sleep(wait)
                self._refill()
            self._level -= amount

    def refund(self, amount: float) -> None:
        if amount > 0:
            self._refill()
            self._level = min(self.capacity, self._level + amount)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt k waits in [d/2, d], d = min(max_s, base_s * 2**k).

    A server's `Retry-After` wins when given (capped at `max_retry_after_s`): it knows better.
    """

    base_s: float = 1.0
    max_s: float = 60.0
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_s, self.base_s * 2**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date), or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return float(lowered["retry-after-ms"]) / 1000.0
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # an unreadable header: fall back to our own backoff
        return max(0.0, parsed.timestamp() - now())
