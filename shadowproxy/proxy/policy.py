"""Whether a request is mirrored: method safety, the endpoint's rule, sampling, body size.

Decided on the serving loop for every request, so it is a handful of comparisons and one random
draw. A request that is not mirrored is still forwarded; the reason is returned for counting.
"""

from __future__ import annotations

import random

from shadowproxy.model import SkipReason

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class MirrorPolicy:
    """The mirroring decision for one request."""

    def __init__(self, *, sample: float, body_max: int, rng: random.Random | None = None) -> None:
        self.sample = sample
        self.body_max = body_max
        self._random = rng or random.Random()

    def decide(
        self,
        method: str,
        *,
        rule_mirror: bool | None,
        rule_sample: float | None,
        content_length: int | None,
    ) -> SkipReason | None:
        """``None`` to mirror, else the reason not to."""
        if rule_mirror is False:
            return SkipReason.RULE_OFF
        if rule_mirror is None and method not in SAFE_METHODS:
            return SkipReason.UNSAFE_METHOD
        if content_length is not None and content_length > self.body_max:
            return SkipReason.TOO_LARGE
        percent = self.sample if rule_sample is None else rule_sample
        if percent < 100.0 and self._random.random() * 100.0 >= percent:
            return SkipReason.SAMPLED_OUT
        return None
