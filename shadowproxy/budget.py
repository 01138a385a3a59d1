"""What a buffer of exchanges may hold: how many, and how many bytes of bodies.

The comparator queue and the Redis publisher's buffer are each bounded twice (a thousand small
exchanges are nothing, a thousand large ones 330 MB), and each is asked for room before a shadow
call starts, counting the calls already in flight, so a backlog costs neither a call nor memory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    """Bounds on a buffer (``bytes_max`` 0: by count only) and what it holds now."""

    count_max: int
    bytes_max: int = 0
    count: int = 0
    held_bytes: int = 0

    def has_room(self, pending: int = 0, pending_bytes: int = 0) -> bool:
        """Whether ``pending`` more exchanges holding ``pending_bytes`` (shadow calls already
        started) would still fit: asked before a new shadow call is started."""
        if self.count + pending >= self.count_max:
            return False
        return not self.bytes_max or self.held_bytes + pending_bytes < self.bytes_max

    def take(self, size: int) -> bool:
        """Hold one exchange whose bodies are ``size`` bytes; ``False`` when it does not fit."""
        if self.count >= self.count_max:
            return False
        if self.bytes_max and self.held_bytes + size > self.bytes_max:
            return False
        self.count += 1
        self.held_bytes += size
        return True

    def release(self, size: int) -> None:
        """Let go of one exchange taken with ``size``."""
        self.count -= 1
        self.held_bytes -= size

    def clear(self) -> None:
        self.count = 0
        self.held_bytes = 0
