"""Whether a request is mirrored: runtime switches, method safety, the endpoint's rule, sampling,
body size.

Decided on the serving loop for every request, so it is a handful of comparisons and one random
draw. A request that is not mirrored is still forwarded; the reason is returned for counting.
"""

from __future__ import annotations

import random

from shadowproxy.control import ControlPlane, Switches
from shadowproxy.model import SkipReason

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_SWITCHES = Switches()


class MirrorPolicy:
    """The mirroring decision for one request."""

    def __init__(
        self,
        *,
        sample: float,
        body_max: int,
        control: ControlPlane | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sample = sample
        self.body_max = body_max
        self.control = control
        self._random = rng or random.Random()

    def decide(
        self,
        method: str,
        *,
        endpoint: str,
        rule_mirror: bool | None,
        rule_sample: float | None,
        content_length: int | None,
    ) -> SkipReason | None:
        """``None`` to mirror, else the reason not to."""
        switches = self.control.current if self.control is not None else _NO_SWITCHES
        if (reason := switches.skip_reason(endpoint)) is not None:
            return reason
        rule_mirror = switches.rule_mirror(endpoint, rule_mirror)
        if rule_mirror is False:
            return SkipReason.RULE_OFF
        if rule_mirror is None and method not in SAFE_METHODS:
            return SkipReason.UNSAFE_METHOD
        if content_length is not None and content_length > self.body_max:
            return SkipReason.TOO_LARGE
        percent = switches.sample_percent(self.sample, rule_sample)
        if percent < 100.0 and self._random.random() * 100.0 >= percent:
            return SkipReason.SAMPLED_OUT
        return None
