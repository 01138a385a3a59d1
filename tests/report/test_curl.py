"""Copy-as-curl: a shell parses the command back into exactly the stored request."""

from __future__ import annotations

import shlex
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.report.curl import curl_command

NASTY = "'; rm -rf / #$(id)`id`\"\\ \n<script>"


def test_request_line_headers_and_body() -> None:
    """Method, headers (minus hop-by-hop and Host), body and URL survive shell parsing."""
    command = curl_command(
        "POST",
        f"/v3/title?q={NASTY}",
        (("Host", "x"), ("Content-Length", "3"), ("x-note", NASTY), ("accept", "*/*")),
        NASTY.encode(),
        base_url="http://127.0.0.1:8080/",
    )
    assert [
        "curl",
        "--include",
        "--request",
        "POST",
        "--header",
        f"x-note: {NASTY}",
        "--header",
        "accept: */*",
        "--data-raw",
        NASTY,
        f"http://127.0.0.1:8080/v3/title?q={NASTY}",
    ] == shlex.split(command)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_binary_bodies_go_through_printf(body: bytes) -> None:
    """A non-text body is piped in by printf, and that printf prints exactly the body."""
    command = curl_command("PUT", "/x", (), body, base_url="http://h")
    if not command.startswith("printf "):
        assert "\x00" not in body.decode("utf-8")
        return
    printf = command.split(" | ", 1)[0]
    printed = subprocess.run(["sh", "-c", printf], capture_output=True, check=True).stdout
    assert body == printed
