"""``shadowproxy control``: change the fleet's switches in Redis through the real command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import pytest

from shadowproxy.cli import main
from shadowproxy.control import ControlPlane
from tests.control.helpers import wait_for
from tests.servers import RedisServer


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any SHADOWPROXY_* setting of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWPROXY_")}
    return env | extra


async def shadowproxy(*args: str, **env: str) -> tuple[int, str, str]:
    """Run ``python -m shadowproxy control ARGS``; return (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shadowproxy",
        "control",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(**env),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command run in this process (in a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(main, ["control", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def proxy_plane(redis_server: RedisServer) -> AsyncIterator[ControlPlane]:
    """A running proxy's plane; re-reads only once a minute, so pub/sub must deliver."""
    plane = ControlPlane(redis_server.url, resync_interval=60, timeout=1.0)
    await plane.start()
    yield plane
    await plane.aclose()


async def test_kill_reaches_a_running_proxy_within_a_second(
    redis_server: RedisServer, proxy_plane: ControlPlane
) -> None:
    """`control kill` with no proxy of its own: the running proxy stops mirroring at once;
    `resume` turns it back on."""
    code, out, err = await shadowproxy("--control", redis_server.url, "kill")
    assert 0 == code, err
    await wait_for(lambda: proxy_plane.current.killed, timeout=1.5)
    assert "mirroring:   OFF (kill switch on)" in out
    assert "(1 proxy listening)" in out

    code, _, err = await shadowproxy("--control", redis_server.url, "resume")
    assert 0 == code, err
    await wait_for(lambda: not proxy_plane.current.killed, timeout=1.5)


async def test_sample_rate_and_endpoint_commands(
    redis_server: RedisServer, proxy_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command changes its switch in Redis; `default` and `clear` remove the override."""
    url = redis_server.url
    for args in (["sample", "25"], ["rate", "50"], ["endpoint", "GET /titles/{id}", "off"]):
        code, _, err = await in_process(capsys, "--control", url, *args)
        assert 0 == code, err
    await wait_for(lambda: proxy_plane.current.version == 3)
    state = proxy_plane.current
    assert (25.0, 50.0, {"GET /titles/{id}": False}) == (
        state.sample,
        state.shadow_rps,
        dict(state.endpoints),
    )

    code, out, err = await shadowproxy("--json", "sample", "default", SHADOWPROXY_CONTROL=url)
    assert 0 == code, err
    body = json.loads(out)
    assert (None, 4, 1) == (
        body["switches"]["sample"],
        body["switches"]["version"],
        body["proxies_listening"],
    )

    code, out, err = await in_process(
        capsys, "--control", url, "endpoint", "GET /titles/{id}", "clear"
    )
    assert 0 == code, err
    assert "endpoints:   no overrides" in out
    await wait_for(lambda: proxy_plane.current.version == 5)
    assert {} == dict(proxy_plane.current.endpoints)


async def test_status_shows_the_state_without_changing_it(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` reads; a fresh Redis shows no overrides and version 0."""
    code, out, err = await in_process(capsys, "--control", redis_server.url, "status")

    assert 0 == code, err
    assert [
        f"control:     {redis_server.url} (0 proxies listening)",
        "mirroring:   on",
        "sample:      each proxy's --sample",
        "shadow rate: each proxy's --shadow-rps",
        "endpoints:   no overrides",
        "version:     0 (never changed)",
    ] == out.splitlines()


async def test_redis_unreachable_exits_1(tmp_path: object) -> None:
    """No Redis: exit 1 and say nothing was changed."""
    url = RedisServer(tmp_path).url  # type: ignore[arg-type]  # a free port, not started
    code, out, err = await shadowproxy("--control", url, "kill")

    assert (1, "") == (code, out)
    assert "nothing changed: redis" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--control", "redis://127.0.0.1:1/0", "sample", "150"], "percentage 0-100"),
        (["--control", "redis://127.0.0.1:1/0", "rate", "fast"], "RPS must be a number"),
        (["--control", "http://x", "status"], "--control: expected a redis://"),
        (["status"], "--control is required"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad values are refused before Redis is contacted, with a message saying why."""
    monkeypatch.delenv("SHADOWPROXY_CONTROL", raising=False)
    monkeypatch.delenv("SHADOWPROXY_CONFIG", raising=False)
    code = main(["control", *args])
    out, err = capsys.readouterr()

    assert (2, "") == (code, out)
    assert fragment in err
