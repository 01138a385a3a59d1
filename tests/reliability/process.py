"""``shadowproxy run`` as a real subprocess, for tests that signal it or read its log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.servers import free_port


@dataclass
class ProxyProcess:
    """A running ``shadowproxy run``; its stderr goes to ``log`` (read it with :meth:`log_text`)."""

    process: subprocess.Popen[bytes]
    traffic_url: str
    admin_url: str
    log: Path

    def log_bytes(self) -> bytes:
        return self.log.read_bytes()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        """The exit status, waiting up to ``timeout`` seconds (TimeoutError past it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (code := self.process.poll()) is None:
            if loop.time() > deadline:
                raise TimeoutError(f"shadowproxy still running after {timeout} s")
            await asyncio.sleep(0.05)
        return code


@asynccontextmanager
async def proxy_process(
    tmp_path: Path, primary: str, shadow: str, *args: str
) -> AsyncIterator[ProxyProcess]:
    """Start ``python -m shadowproxy run`` on free loopback ports; wait until /healthz answers.

    On exit a process still running is killed (by its own PID).
    """
    listen, admin = free_port(), free_port()
    log = tmp_path / f"proxy-{listen}.log"
    command = [
        sys.executable, "-m", "shadowproxy", "run",
        "--primary", primary, "--shadow", shadow,
        "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}",
        # These tests count comparisons: the governor must not shed any for a busy test machine.
        "--mirror-lag-max", "0",
        *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWPROXY_")}
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=tmp_path, env=env
        )
    running = ProxyProcess(process, f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}", log)
    try:
        await _ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def _ready(running: ProxyProcess, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if running.process.poll() is not None:
                raise RuntimeError(f"shadowproxy exited early:\n{running.log_bytes().decode()}")
            try:
                async with session.get(running.admin_url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"shadowproxy not ready:\n{running.log_bytes().decode()}")
