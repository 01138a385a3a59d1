"""Requests the HTTP parser refuses (bad framing, oversized headers, invalid methods): counted and
logged in one line, without their bytes.

aiohttp logs each refusal at ERROR with a traceback that quotes the raw request, so a token in a
bad request line, or an ``Authorization`` header on a malformed request, would reach the log, and
any client could flood it. The traffic server gets this logger instead.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("shadowproxy.traffic")


class RefusalLog(logging.LoggerAdapter[logging.Logger]):
    """The traffic server's logger: parser refusals become a count and a one-line debug entry."""

    def __init__(self) -> None:
        super().__init__(log, {})
        self.refused = 0
        """Requests refused by the HTTP parser (a counter for metrics)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            self.refused += 1
            self.logger.debug("refused a malformed request (%s)", type(error).__name__)
            return
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs
