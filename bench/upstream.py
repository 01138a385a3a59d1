"""Benchmark upstreams: AniLibria-like bodies, a delayable shadow server, and the nginx configs.

Run by hand as a delayed shadow (the proxy benchmarks start it as a process of its own)::

    .venv/bin/python bench/upstream.py --port 0 --delay-ms 200

It answers ``GET /v3/title`` (≈ 2 KB), ``/v3/title/list`` (≈ 60 KB) and ``/v3/title/updates``
(≈ 330 KB) with the *shadow* variant of each body after the delay; ``GET /__bench/delay?ms=N``
changes the delay at run time (a large value makes the shadow hang). It is a bare asyncio protocol
rather than an aiohttp app so that it stays cheap at the thousand-plus requests per second a
shadowproxy in-flight cap of 256 over 200 ms allows: the benchmark measures the proxy, not this.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import os
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anilibria_corpus import mutate, title, title_list

NGINX = "/usr/sbin/nginx"
TEMPLATES = Path(__file__).resolve().parent / "nginx"


@dataclass(frozen=True, slots=True)
class Body:
    """One benchmark endpoint: its path, the primary's bytes and the (mismatching) shadow's."""

    name: str
    path: str
    file: str
    primary: bytes
    shadow: bytes


def _small_title(seed: int) -> dict[str, Any]:
    """A ``/v3/title?id=`` answer cut to about 2 KB (one episode, one torrent, short text)."""
    rng = random.Random(seed)
    doc = title(rng, 8500)
    doc["player"]["list"] = {k: v for k, v in doc["player"]["list"].items() if k == "1"}
    doc["torrents"]["list"] = doc["torrents"]["list"][:1]
    doc["description"] = " ".join(doc["description"].split()[:12])
    return doc


def _mutate_title(doc: dict[str, Any], seed: int) -> dict[str, Any]:
    """The rewrite's answer for one title: moved counters, reordered sets, one real finding."""
    rng = random.Random(seed)
    out = copy.deepcopy(doc)
    out["in_favorites"] += rng.randrange(1, 40)
    out["rating"] = round(out["rating"] + 0.003, 3)
    rng.shuffle(out["genres"])
    out["names"]["ru"] += "!"
    return out


def bench_bodies() -> list[Body]:
    """The three endpoints every benchmark serves, the primary and the shadow variant of each."""
    small = _small_title(11)
    medium = title_list(10, seed=3)
    large = title_list(52, seed=1)  # ≈ 330 KB, as issue 6 asks
    return [
        Body("small", "/v3/title", "small.json", _dump(small), _dump(_mutate_title(small, 12))),
        Body("medium", "/v3/title/list", "medium.json", _dump(medium), _dump(mutate(medium, 4))),
        Body("large", "/v3/title/updates", "large.json", _dump(large), _dump(mutate(large, 2))),
    ]


def _dump(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def write_bodies(directory: Path) -> list[Body]:
    """Write ``primary/<file>`` and ``shadow/<file>`` under ``directory`` (nginx serves them)."""
    bodies = bench_bodies()
    for side in ("primary", "shadow"):
        (directory / side).mkdir(parents=True, exist_ok=True)
    for body in bodies:
        (directory / "primary" / body.file).write_bytes(body.primary)
        (directory / "shadow" / body.file).write_bytes(body.shadow)
    return bodies


def free_port() -> int:
    """A port free on 127.0.0.1 right now (a small race with other users is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def render_nginx(template: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` placeholders (nginx's own ``$vars`` are left alone)."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    user = "user root;" if os.geteuid() == 0 else ""
    text = text.replace("{{user}}", user)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"{template}: unfilled placeholder near {text[text.index('{{') :][:40]!r}")
    return text


# --- the delayed shadow ---------------------------------------------------------------------------


class DelayedShadow:
    """State shared by the connections: the bodies by path and the current delay."""

    def __init__(self, bodies: list[Body], delay: float) -> None:
        self.responses = {b.path: _response(200, b.shadow) for b in bodies}
        self.not_found = _response(404, b'{"error":"not found"}')
        self.delay = delay
        self.served = 0


def _response(status: int, body: bytes) -> bytes:
    reason = "OK" if status == 200 else "Not Found"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests answered in order, each after the delay current on arrival."""

    def __init__(self, state: DelayedShadow) -> None:
        self.state = state
        self.buffer = bytearray()
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.queue.clear()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self._request(head.split(" ", 2)[1] if head.count(" ") >= 2 else "/")

    def _request(self, target: str) -> None:
        path, _, query = target.partition("?")
        loop = asyncio.get_running_loop()
        if path == "/__bench/delay":
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            self.state.delay = float(params.get("ms", "0")) / 1000
            self._send(_response(200, b'{"delay_ms":%d}' % int(self.state.delay * 1000)))
            return
        payload = self.state.responses.get(path, self.state.not_found)
        self.queue.append((loop.time() + self.state.delay, payload))
        if self.timer is None:
            self._flush()

    def _flush(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.queue and self.queue[0][0] <= now:
            self._send(self.queue.popleft()[1])
        if self.queue:
            self.timer = loop.call_at(self.queue[0][0], self._flush)

    def _send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)
            self.state.served += 1


async def serve_delayed(port: int, delay: float) -> None:
    """Serve the shadow bodies after ``delay`` seconds until killed; print the port when ready."""
    state = DelayedShadow(bench_bodies(), delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state), "127.0.0.1", port, reuse_address=True, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_delayed(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
