"""The primary forward: the only code that writes to the client.

The primary's status, headers and body go to the client as they arrive (chunked and SSE responses
stream; nothing waits for the whole body), with hop-by-hop fields dropped and Content-Encoding
untouched. A copy of the body is kept, up to a cap, for the comparator. When the primary cannot be
reached the client gets 502, when it does not answer in time 504, each with a short plain body; if
it fails after the response has started, the client connection is aborted, as any reverse proxy
must (a truncated body must not look complete). Nothing is added to the primary's header fields
but the framing (the listener writes them as given: no Date, Server or Content-Type of its own).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from multidict import CIMultiDict

from shadowproxy.model import BackendError, CapturedResponse, ErrorKind, Outcome
from shadowproxy.proxy.backend import Backend, classify_failure
from shadowproxy.proxy.client import ExchangeError, Response
from shadowproxy.proxy.client_body import ClientBody
from shadowproxy.proxy.headers import end_to_end
from shadowproxy.proxy.listener import Request

log = logging.getLogger(__name__)


class Forwarder:
    """Sends a request to the primary and streams the answer to the client."""

    def __init__(self, backend: Backend, *, capture_max: int) -> None:
        self.backend = backend
        self.capture_max = capture_max

    async def forward(
        self,
        request: Request,
        *,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterator[bytes] | None,
        on_captured: Callable[[Outcome], None] | None = None,
        upload: ClientBody | None = None,
    ) -> Outcome:
        """Forward ``request``, stream the primary's response, and return what the client got.

        ``on_captured`` is called once with the primary's outcome as soon as it is known: when the
        body is complete, when the capture cap is passed (a truncated response: no need to wait
        for a long stream to end), or when the primary failed. When the client's ``upload``
        failed (the backend client reports that as its own failure), the client gets the
        answer for its failure instead of a 502.
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
                request.method, request.target, headers, body
            )
        except ExchangeError as exc:
            failure = classify_failure(exc, time.perf_counter() - started)
            notify(failure)
            # The path only: a query string can carry tokens, and logs are not redacted.
            log.debug("primary %s %s failed: %s", request.method, request.path, failure.detail)
            if upload is not None and upload.failure is not None:
                answer = upload.failure.status, upload.failure.text
            elif failure.kind is ErrorKind.TIMEOUT:
                answer = 504, "504 Gateway Timeout"
            else:
                answer = 502, "502 Bad Gateway"
            with contextlib.suppress(ConnectionError):  # the client may have left meanwhile
                await request.reply(*answer)
            return failure

        async with upstream:
            request.start(
                upstream.status,
                upstream.reason,
                end_to_end(upstream.fields),
                whole=upstream.whole(),
            )
            captured = bytearray()
            # Without a listener there is nothing to compare: keep no copy (a capture that
            # starts "truncated" never grows), not even of the headers.
            keep = on_captured is not None
            truncated = not keep
            try:
                async for chunk in upstream.chunks():
                    if not truncated:
                        if len(captured) + len(chunk) <= self.capture_max:
                            captured += chunk
                        else:
                            truncated = True
                            notify(self._response(upstream, captured, started, truncated=True))
                    if upstream.at_eof():
                        await request.end(chunk)  # the last chunk and the end, one write
                    else:
                        await request.write(chunk)
                if not request.finished:
                    await request.end()  # nothing left to send unless the body was empty
            except ExchangeError as exc:
                # The primary failed mid-body: the client must see a broken response, not a
                # short one that looks whole.
                failure = classify_failure(exc, time.perf_counter() - started)
                notify(failure)
                request.abort()
                return failure
            except ConnectionError:
                # The client went away. Not notified: a half-read body is not worth comparing
                # (the ingress tells the mirror the client is gone).
                upstream.close()
                return self._response(upstream, captured, started, truncated=truncated, keep=keep)
            outcome = self._response(upstream, captured, started, truncated=truncated, keep=keep)
            notify(outcome)
            return outcome

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


__all__ = ["BackendError", "Forwarder"]
