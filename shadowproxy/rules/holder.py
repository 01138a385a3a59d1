"""The rules in force, swappable at run time (SIGHUP, file change, admin API).

A reload that fails keeps the old rules running: the error is logged, counted and kept in
``last_error`` for the API to show. A proxy never runs without rules because of a bad edit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from shadowproxy.rules.loader import RulesError, load_ruleset
from shadowproxy.rules.ruleset import Ruleset

log = logging.getLogger(__name__)


class RulesHolder:
    """Holds the current :class:`Ruleset`; :meth:`reload` swaps it only for a valid file."""

    def __init__(self, path: Path | None) -> None:
        """Load ``path`` (``None``: built-in defaults). Raises :class:`RulesError` when the first
        load fails: bad configuration stops start-up."""
        self.path = path
        self._current = load_ruleset(path)
        self.last_error: str | None = None
        """The message of the last failed reload; ``None`` after a successful one."""
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._seen = self._fingerprint()

    @property
    def current(self) -> Ruleset:
        """The ruleset in force."""
        return self._current

    def _fingerprint(self) -> tuple[float, str] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
        return (stat.st_mtime, digest)

    def reload(self) -> bool:
        """Re-read the rule file. True when the new rules are in force; on failure the old rules
        stay, ``last_error`` says why and the failure is logged."""
        self._seen = self._fingerprint()
        try:
            ruleset = load_ruleset(self.path)
        except RulesError as exc:
            self.reloads_failed += 1
            self.last_error = str(exc)
            log.error("rules reload failed, keeping version %s: %s", self._current.version, exc)
            return False
        self._current = ruleset
        self.reloads_ok += 1
        self.last_error = None
        log.info("rules reloaded: version %s from %s", ruleset.version, ruleset.source)
        return True

    def changed(self) -> bool:
        """True when the file's modification time or content differs from the last load."""
        if self.path is None:
            return False
        now = self._fingerprint()
        if now is None or self._seen is None:
            return now != self._seen
        # Content decides: an editor touching the file without changing it is not a reload.
        return now[1] != self._seen[1]

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the file every ``interval`` seconds and reload when its content changes. Runs until
        cancelled (an app-owned task)."""
        if self.path is None:
            return
        while True:
            await asyncio.sleep(interval)
            # The stat and read are small; a thread keeps a slow disk off the serving loop.
            if await asyncio.to_thread(self.changed):
                await asyncio.to_thread(self.reload)
