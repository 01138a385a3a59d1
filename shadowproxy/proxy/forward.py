"""The primary forward: the only code that writes to the client.

The primary's status, headers and body go to the client as they arrive (chunked and SSE responses
stream; nothing waits for the whole body), with hop-by-hop fields dropped and Content-Encoding
untouched. A copy of the body is kept, up to a cap, for the comparator. When the primary cannot be
reached the client gets 502, when it does not answer in time 504, each with a short plain body; if
it fails after the response has started, the client connection is aborted, as any reverse proxy
must (a truncated body must not look complete).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from shadowproxy.model import BackendError, CapturedResponse, ErrorKind, Outcome
from shadowproxy.proxy.backend import Backend, classify_failure
from shadowproxy.proxy.client import ExchangeError, Response
from shadowproxy.proxy.headers import end_to_end

log = logging.getLogger(__name__)

# aiohttp's server adds these when a response lacks them. A transparent proxy must not invent
# them, so they are removed again after aiohttp prepared the headers (see PassThroughResponse).
_INVENTED = ("Content-Type", "Date", "Server")


class PassThroughResponse(web.StreamResponse):
    """A StreamResponse that sends the upstream's header set, adding nothing of its own."""

    def __init__(
        self,
        *,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        whole: bool = False,
    ) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._absent = tuple(name for name in _INVENTED if name not in self.headers)
        # With the whole body already here (the usual small JSON answer), the headers wait for it
        # and leave in the same write: one send per response instead of two. A body still on its
        # way (a stream, SSE) must not hold them back: the client sees the status at once.
        self._send_headers_immediately = not whole

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in self._absent:
            self.headers.popall(name, None)


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """What the client got and what the comparator may see."""

    response: web.StreamResponse
    outcome: Outcome


def _error_response(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


class Forwarder:
    """Sends a request to the primary and streams the answer to the client."""

    def __init__(self, backend: Backend, *, capture_max: int) -> None:
        self.backend = backend
        self.capture_max = capture_max

    async def forward(
        self,
        request: web.BaseRequest,
        *,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterator[bytes] | None,
        on_captured: Callable[[Outcome], None] | None = None,
    ) -> ForwardResult:
        """Forward ``request`` and stream the primary's response.

        ``on_captured`` is called once with the primary's outcome as soon as it is known: when the
        body is complete, when the capture cap is passed (a truncated response: no need to wait
        for a long stream to end), or when the primary failed.
        """
        started = time.perf_counter()
        notified = False

        def notify(outcome: Outcome) -> None:
            nonlocal notified
            if on_captured is not None and not notified:
                notified = True
                on_captured(outcome)

        try:
            upstream = await self.backend.client.request(
                request.method, request.raw_path, headers, body
            )
        except ExchangeError as exc:
            failure = classify_failure(exc, time.perf_counter() - started)
            notify(failure)
            # The path only: a query string can carry tokens, and logs are not redacted.
            log.debug("primary %s %s failed: %s", request.method, request.path, failure.detail)
            if failure.kind is ErrorKind.TIMEOUT:
                return ForwardResult(_error_response(504, "504 Gateway Timeout"), failure)
            return ForwardResult(_error_response(502, "502 Bad Gateway"), failure)

        async with upstream:
            response = PassThroughResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=end_to_end(upstream.fields),
                whole=upstream.whole(),
            )
            captured = bytearray()
            # Without a listener there is nothing to compare: keep no copy (a capture that
            # starts "truncated" never grows), not even of the headers.
            keep = on_captured is not None
            truncated = not keep
            try:
                await response.prepare(request)
                async for chunk in upstream.chunks():
                    if not truncated:
                        if len(captured) + len(chunk) <= self.capture_max:
                            captured += chunk
                        else:
                            truncated = True
                            notify(self._response(upstream, captured, started, truncated=True))
                    if upstream.at_eof():
                        await response.write_eof(chunk)  # the last chunk and the end, one write
                    else:
                        await response.write(chunk)
                await response.write_eof()  # nothing left to send unless the body was empty
            except ExchangeError as exc:
                # The primary failed mid-body: the client must see a broken response, not a
                # short one that looks whole.
                failure = classify_failure(exc, time.perf_counter() - started)
                notify(failure)
                _abort(request)
                return ForwardResult(response, failure)
            except (ConnectionError, RuntimeError):
                # The client went away (aiohttp raises these on writing to a closed transport).
                # Not notified: a half-read body is not worth comparing (the ingress tells the
                # mirror the client is gone).
                outcome = self._response(
                    upstream, captured, started, truncated=truncated, keep=keep
                )
                upstream.close()
                return ForwardResult(response, outcome)
            outcome = self._response(upstream, captured, started, truncated=truncated, keep=keep)
            notify(outcome)
            return ForwardResult(response, outcome)

    @staticmethod
    def _response(
        upstream: Response,
        body: bytearray,
        started: float,
        *,
        truncated: bool,
        keep: bool = True,
    ) -> CapturedResponse:
        return CapturedResponse(
            status=upstream.status,
            headers=tuple(upstream.fields) if keep else (),
            body=bytes(body),
            elapsed=time.perf_counter() - started,
            truncated=truncated,
        )


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


__all__ = ["BackendError", "ForwardResult", "Forwarder", "PassThroughResponse"]
