"""The shadow call: sent alongside the primary's, never awaited by the client's handler.

:meth:`Mirror.start` is synchronous: it hands the call to an app-owned task and returns, so a
slow, hung or dead shadow cannot delay the client, and a client that goes away cannot cancel the
shadow call. When both outcomes are known the task builds the :class:`Exchange` and delivers it to
the pipeline (which never blocks either).

A shadow call is only started when the pipeline has room for its exchange, counting the calls
already in flight and the bodies they hold: when the comparators fall behind, requests are shed
before they cost a shadow call, and a hung shadow cannot pile up more bodies than the queue's
byte budget.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from multidict import CIMultiDict

from shadowproxy.control import ShadowRateCap
from shadowproxy.metrics import Metrics
from shadowproxy.model import (
    BackendError,
    CapturedRequest,
    CapturedResponse,
    Exchange,
    Outcome,
    SkipReason,
)
from shadowproxy.proxy.backend import Backend, classify_failure
from shadowproxy.proxy.breaker import CircuitBreaker
from shadowproxy.proxy.client import ExchangeError
from shadowproxy.proxy.governor import Governor
from shadowproxy.rules import EndpointRules
from shadowproxy.tasks import TaskSet

PrimaryResult = Outcome | SkipReason
"""What the primary side reports: its outcome, or why this exchange is not worth comparing."""


@dataclass(frozen=True, slots=True)
class MirrorJob:
    """One request to replay on the shadow."""

    request: CapturedRequest
    endpoint: str
    headers: CIMultiDict[str]
    """Upstream request headers (hop-by-hop dropped, X-Forwarded-* and the marker added)."""
    rules: EndpointRules
    """The endpoint's rules, fixed when the request arrived (a reload mid-call changes nothing)."""
    ruleset_version: str


class Mirror:
    """Calls the shadow with its own pool, timeout and in-flight cap."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_in_flight: int,
        capture_max: int,
        deliver: Callable[[Exchange, EndpointRules, str], object],
        metrics: Metrics,
        has_room: Callable[[int, int], bool] | None = None,
        governor: Governor | None = None,
        breaker: CircuitBreaker | None = None,
        rate_cap: ShadowRateCap | None = None,
    ) -> None:
        self.backend = backend
        self.max_in_flight = max_in_flight
        self.capture_max = capture_max
        self._deliver = deliver
        self._has_room = has_room
        self.governor = governor
        self.held_bytes = 0
        """Body bytes held by in-flight calls: the request's, and the primary's once known."""
        self._metrics = metrics
        self.breaker = breaker or CircuitBreaker(failures=20, cooldown=30.0)
        self.rate_cap = rate_cap
        self._tasks = TaskSet("shadow-call")

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def refusal(self) -> SkipReason | None:
        """Why a shadow call may not start now (``None``: it may). Asked before anything is
        copied for the call, so a refused request costs no more than an unmirrored one."""
        if len(self._tasks) >= self.max_in_flight:
            return SkipReason.SHADOW_BUSY
        if self.governor is not None and not self.governor.admit():
            return SkipReason.SERVING_BUSY
        if self._has_room is not None and not self._has_room(len(self._tasks), self.held_bytes):
            return SkipReason.QUEUE_FULL
        return None

    def start(self, job: MirrorJob, primary: asyncio.Future[PrimaryResult]) -> SkipReason | None:
        """Start the shadow call (after :meth:`refusal` said it may); ``None`` when started,
        else why not. The breaker is asked here, as the call is certain: a half-open breaker
        lets one probe through and waits for its outcome."""
        if not self.breaker.allow():
            return SkipReason.CIRCUIT_OPEN
        self._tasks.spawn(self._run(job, primary))
        return None

    async def _run(self, job: MirrorJob, primary: asyncio.Future[PrimaryResult]) -> None:
        held = len(job.request.body)
        self.held_bytes += held
        running = True

        def hold_primary(done: asyncio.Future[PrimaryResult]) -> None:
            nonlocal held
            outcome = done.result() if running and not done.cancelled() else None
            if isinstance(outcome, CapturedResponse):
                held += len(outcome.body)
                self.held_bytes += len(outcome.body)

        primary.add_done_callback(hold_primary)
        try:
            await self._exchange(job, primary)
        finally:
            running = False
            self.held_bytes -= held

    async def _exchange(self, job: MirrorJob, primary: asyncio.Future[PrimaryResult]) -> None:
        # The fleet-wide rate cap may need Redis: asked here, in the shadow's task, never on the
        # client's path.
        if self.rate_cap is not None and not await self.rate_cap.take():
            self.breaker.release()
            self._metrics.skip(job.endpoint, SkipReason.RATE_LIMITED)
            return
        shadow = await self.call(job)
        self.breaker.record(not isinstance(shadow, BackendError))
        self._metrics.backend_outcome("shadow", job.endpoint, shadow)
        result = await primary
        if isinstance(result, SkipReason):
            self._metrics.skip(job.endpoint, result)
            return
        exchange = Exchange(
            id=os.urandom(16).hex(),  # uuid4's randomness, a fifth of its cost
            endpoint=job.endpoint,
            request=job.request,
            primary=result,
            shadow=shadow,
        )
        self._deliver(exchange, job.rules, job.ruleset_version)

    async def call(self, job: MirrorJob) -> Outcome:
        """Send the request to the shadow and read its response up to the capture cap."""
        started = time.perf_counter()
        request = job.request
        try:
            async with asyncio.timeout(self.backend.config.total_timeout):
                response = await self.backend.client.request(
                    request.method, request.target, job.headers, request.body or None
                )
                async with response:
                    # Past the cap the rest is not read: the connection is closed instead.
                    body, truncated = await response.read(self.capture_max)
                return CapturedResponse(
                    status=response.status,
                    headers=tuple(response.fields),
                    body=body,
                    elapsed=time.perf_counter() - started,
                    truncated=truncated,
                )
        except (TimeoutError, ExchangeError) as exc:  # TimeoutError: the whole exchange's
            return classify_failure(exc, time.perf_counter() - started)

    async def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` for in-flight shadow calls; return how many still run."""
        return await self._tasks.wait(timeout)

    async def aclose(self, timeout: float) -> int:
        """Let in-flight shadow calls finish for ``timeout`` seconds; return how many were cut."""
        return await self._tasks.aclose(timeout)
