"""RulesHolder: swapping rules at run time, keeping the old ones when a new file is invalid."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shadowproxy.rules import BUILTIN_VERSION, RulesError
from shadowproxy.rules.holder import RulesHolder

GOOD = "version: 1\nendpoints:\n  - name: titles\n    match: {method: GET, path: /v3/title}\n"
OTHER = "version: 1\nendpoints:\n  - name: genres\n    match: {method: GET, path: /v3/genres}\n"


def test_no_file_gives_builtin_defaults() -> None:
    """Without a path the holder serves the built-in rules, and reloading is harmless."""
    holder = RulesHolder(None)
    assert (BUILTIN_VERSION, ()) == (holder.current.version, holder.current.endpoint_names())
    assert holder.reload()


def test_invalid_first_load_raises(tmp_path: Path) -> None:
    """A bad file at start-up stops start-up (bad configuration fails fast)."""
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nendpoints: [{match: {path: /x}, ignroe: []}]\n")
    with pytest.raises(RulesError, match="ignroe"):
        RulesHolder(path)


def test_reload_swaps_valid_rules(tmp_path: Path) -> None:
    """A valid new file replaces the rules and counts a successful reload."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    holder = RulesHolder(path)
    path.write_text(OTHER)
    assert holder.reload()
    assert (("genres",), 1, 0, None) == (
        holder.current.endpoint_names(),
        holder.reloads_ok,
        holder.reloads_failed,
        holder.last_error,
    )


def test_invalid_reload_keeps_old_rules(tmp_path: Path) -> None:
    """An invalid new file keeps the old rules running and reports why."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    holder = RulesHolder(path)
    old = holder.current
    path.write_text("version: 1\nendpoints:\n  - match: {path: /x}\n    tolerence: {}\n")
    assert not holder.reload()
    assert holder.current is old
    assert holder.last_error is not None
    assert 'did you mean "tolerance"' in holder.last_error
    assert (0, 1) == (holder.reloads_ok, holder.reloads_failed)
    path.write_text(OTHER)
    assert holder.reload()
    assert holder.last_error is None


async def test_watch_reloads_on_change(tmp_path: Path) -> None:
    """The watcher notices a changed file and reloads it without being asked."""
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    holder = RulesHolder(path)
    task = asyncio.get_running_loop().create_task(holder.watch(interval=0.02))
    try:
        path.write_text(OTHER)
        for _ in range(250):
            if holder.current.endpoint_names() == ("genres",):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ("genres",) == holder.current.endpoint_names()
    assert 1 == holder.reloads_ok
