"""Rate limits and call timing for HTTP teachers: a token bucket, backoff, and call timeouts.

The bucket and the backoff take their clock (and the bucket its sleep) as arguments, so tests
drive them with a fake clock instead of sleeping; `CallTimeout` runs on the event loop's clock. Provider limits are per minute (requests and tokens); the bucket
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
from types import TracebackType


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


class CallTimedOut(Exception):
    """A call passed one of its `CallTimeout` limits; `reason` names which one."""

    def __init__(self, reason: str, limit_s: float):
        super().__init__(f"{reason} after {limit_s:g} s")
        self.reason, self.limit_s = reason, limit_s


class CallTimeout:
    """Limits on one HTTP call: a total deadline, the wait for a first byte, the gaps after it.

    `async with CallTimeout(600, first_byte_s=60, idle_s=30) as limits:` cancels the code inside
    when a limit passes and raises `CallTimedOut` with reason `timeout` (the total),
    `first_byte_timeout` (nothing read within `first_byte_s`) or `idle_timeout` (nothing read
    for `idle_s` since the last read); None turns a limit off. The code inside calls
    `limits.progress()` after each read. That only stores the time: the one timer, armed for
    the earliest moment a limit could pass, re-arms itself when it finds reads since, so a busy
    stream costs no timer per chunk, and a stream that keeps sending is cut only by the total.
    """

    def __init__(
        self, total_s: float, first_byte_s: float | None = None, idle_s: float | None = None
    ) -> None:
        self.total_s, self.first_byte_s, self.idle_s = total_s, first_byte_s, idle_s
        self.last: float | None = None  # loop time of the last read; None before the first
        self._fired: tuple[str, float] | None = None

    async def __aenter__(self) -> CallTimeout:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "CallTimeout runs inside a task"
        self._task, self._cancelling = task, task.cancelling()
        self._start = self._loop.time()
        self._handle = self._loop.call_at(self._next()[0], self._check)
        return self

    def progress(self) -> None:
        now = self._loop.time()
        if self.last is None:  # the first byte: the idle limit may pass before the armed one
            self.last = now
            self._handle.cancel()
            self._handle = self._loop.call_at(self._next()[0], self._check)
        self.last = now

    def relax(self) -> None:
        """Only the total from now on (e.g. a whole JSON body that arrives at the end)."""
        self.first_byte_s = self.idle_s = None

    def _next(self) -> tuple[float, str, float]:
        """When the nearest limit passes if nothing more is read, its reason and its length."""
        when, reason, limit = self._start + self.total_s, "timeout", self.total_s
        if self.last is None:
            if self.first_byte_s is not None and self._start + self.first_byte_s < when:
                when, reason, limit = (
                    self._start + self.first_byte_s,
                    "first_byte_timeout",
                    self.first_byte_s,
                )
        elif self.idle_s is not None and self.last + self.idle_s < when:
            when, reason, limit = self.last + self.idle_s, "idle_timeout", self.idle_s
        return when, reason, limit

    def _check(self) -> None:
        when, reason, limit = self._next()
        if self._loop.time() < when:  # read something since the timer was armed
            self._handle = self._loop.call_at(when, self._check)
            return
        self._fired = (reason, limit)
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        # As asyncio.timeout does: our cancel becomes CallTimedOut unless someone else's is also
        # pending (then the task is really being cancelled and CancelledError goes on).
        fired = self._fired is not None and exc_type is not None
        if fired and self._task.uncancel() <= self._cancelling:
            raise CallTimedOut(*self._fired) from None  # type: ignore[misc]
