"""The traffic listener's one handler: every client request comes through here.

For each request: resolve the endpoint and its rules, decide whether to mirror, start the shadow
call (never awaited here), forward to the primary and stream its answer back. Nothing the shadow,
the comparator or the store does can change what or when the client receives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from shadowproxy.metrics import Metrics
from shadowproxy.model import CapturedRequest, SkipReason
from shadowproxy.proxy.client_body import BodyError, BodyFailure, ClientBody
from shadowproxy.proxy.endpoint import EndpointNamer
from shadowproxy.proxy.forward import Forwarder
from shadowproxy.proxy.headers import upstream_request_headers
from shadowproxy.proxy.listener import Request
from shadowproxy.proxy.mirror import Mirror, MirrorJob, PrimaryResult
from shadowproxy.proxy.policy import MirrorPolicy
from shadowproxy.proxy.websocket import is_websocket_upgrade, relay_websocket
from shadowproxy.rules.holder import RulesHolder


@dataclass(slots=True)
class Ingress:
    """Everything the handler consults; built once per serving process."""

    forwarder: Forwarder
    mirror: Mirror
    policy: MirrorPolicy
    namer: EndpointNamer
    rules: RulesHolder
    metrics: Metrics
    shadow_header: str
    body_max: int = 0
    """Largest request body accepted (413 past it); 0 for no limit."""
    body_timeout: float = 60.0
    """Seconds to wait for each chunk of a request body (408 past it)."""

    async def handle(self, request: Request) -> None:
        received_at = time.time()
        refusal = self._refuse(request)
        if refusal is None and "Expect" in request.headers and request.version == "1.1":
            refusal = _expect(request)
        if refusal is not None:
            await request.reply(*refusal)
            return
        method = request.method
        path = request.path
        ruleset = self.rules.current
        rules = ruleset.resolve(method, path, request.query, request.headers)
        endpoint = self.namer.name(method, path, rules.name)
        headers = upstream_request_headers(
            request.fields, client_ip=request.remote, scheme=request.scheme, host=request.host
        )
        skip = self.policy.decide(
            method,
            endpoint=endpoint,
            rule_mirror=rules.mirror,
            rule_sample=rules.sample,
            content_length=request.content_length,
        )
        if skip is None:
            skip = self.mirror.refusal()
        body: bytes | AsyncIterator[bytes] | None = None
        buffered = b""
        upload: ClientBody | None = None
        if request.body_exists:
            upload = ClientBody(request.read, limit=self.body_max, timeout=self.body_timeout)
            if skip is None:
                try:
                    buffered, rest = await upload.buffer(self.policy.body_max)
                except BodyError as exc:
                    await self._body_failed(request, endpoint, exc.failure)
                    return
                if rest is None:
                    body = buffered
                    headers.popall("Content-Length", None)  # re-framed from the buffer
                else:
                    skip = SkipReason.TOO_LARGE
                    body = rest
            else:
                body = upload.chunks()

        primary: asyncio.Future[PrimaryResult] | None = None
        if skip is None:
            raw_path, _, raw_query = request.target.partition("?")
            primary = asyncio.get_running_loop().create_future()
            shadow_headers = headers.copy()
            shadow_headers[self.shadow_header] = "1"
            job = MirrorJob(
                request=CapturedRequest(
                    method=method,
                    path=raw_path,
                    query=raw_query,  # as sent
                    headers=tuple(request.fields),
                    body=buffered,
                    received_at=received_at,
                ),
                endpoint=endpoint,
                headers=shadow_headers,
                rules=rules,
                ruleset_version=ruleset.version,
            )
            skip = self.mirror.start(job, primary)
            if skip is not None:
                primary = None
        if skip is not None:
            self.metrics.skip(endpoint, skip)

        def captured(outcome: PrimaryResult) -> None:
            if primary is not None and not primary.done():
                primary.set_result(outcome)

        try:
            outcome = await self.forwarder.forward(
                request,
                headers=headers,
                body=body,
                # Nothing to compare when not mirrored: no copy of the body is kept.
                on_captured=captured if primary is not None else None,
                upload=upload,
            )
        finally:
            # Whatever happened (client gone, handler cancelled), the shadow side must learn it.
            captured(SkipReason.CLIENT_GONE)
        if upload is not None and upload.failure is not None:
            # The backend client reports the body's failure as its own: the primary is not to blame.
            self.metrics.client_body_failed(endpoint, upload.failure.value)
            return
        self.metrics.backend_outcome("primary", endpoint, outcome)

    async def relay(self, request: web.BaseRequest) -> web.StreamResponse:
        """A WebSocket upgrade, which the listener hands to aiohttp's server: relayed to the
        primary only."""
        if not is_websocket_upgrade(request):  # nothing else reaches aiohttp's server
            response = web.Response(status=400, text="400 Bad Request\n")
            response.force_close()
            return response
        rules = self.rules.current.resolve(
            request.method, request.path, request.query, request.headers
        )
        endpoint = self.namer.name(request.method, request.path, rules.name)
        self.metrics.skip(endpoint, SkipReason.UPGRADE)
        headers = upstream_request_headers(
            request.headers.items(),
            client_ip=request.remote,
            scheme=request.scheme,
            host=request.host,
        )
        return await relay_websocket(request, self.forwarder.backend, headers)

    async def _body_failed(self, request: Request, endpoint: str, failure: BodyFailure) -> None:
        """Counted as the client's doing, and answered in case the client is still there."""
        self.metrics.client_body_failed(endpoint, failure.value)
        await request.reply(failure.status, failure.text)

    def _refuse(self, request: Request) -> tuple[int, str] | None:
        """Requests a reverse proxy must not forward as they are."""
        if request.method == "CONNECT":
            return 405, "405 Method Not Allowed"  # a reverse proxy is no tunnel
        if not request.target.startswith("/"):
            # Absolute-form (`GET http://other.host/`) or `*`: forwarding would make this an
            # open proxy or send the primary a target it never asked for.
            return 400, "400 Bad Request: origin-form request target expected"
        length = request.content_length
        if self.body_max and length is not None and length > self.body_max:
            return BodyFailure.TOO_LARGE.status, BodyFailure.TOO_LARGE.text
        return None


def _expect(request: Request) -> tuple[int, str] | None:
    """``Expect: 100-continue``: tell the client to send its body (only once the request passed
    :meth:`Ingress._refuse`: a body over the limit is refused before it is sent). Any other
    expectation is one no server here can meet."""
    if request.headers["Expect"].lower() != "100-continue":
        return 417, "417 Expectation Failed"
    request.send_continue()
    return None
