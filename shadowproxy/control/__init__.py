"""Fleet-wide runtime switches: sampling, kill switch, per-endpoint mirroring, shadow rate cap.

::

    admin API / `shadowproxy control`  ──► Redis (state key + pub/sub channel + token bucket)
                                                │ published whole on every change
    ControlPlane (one per process)  ◄───────────┘ subscribe loop + periodic full re-read
    ├─ current: Switches            read by MirrorPolicy on the serving loop (no I/O)
    └─ rate_cap: ShadowRateCap      awaited in the shadow-call task (leases tokens in batches)

Only :mod:`shadowproxy.control.link` imports redis-py.
"""

from shadowproxy.control.api import CONTROL_PLANE, control_view, setup_control_api
from shadowproxy.control.bucket import ShadowRateCap
from shadowproxy.control.openapi import control_openapi
from shadowproxy.control.plane import ControlPlane, ControlUnavailableError, open_control_plane
from shadowproxy.control.probes import watch_control
from shadowproxy.control.switches import KEEP, Change, Switches, SwitchesError

__all__ = [
    "CONTROL_PLANE",
    "KEEP",
    "Change",
    "ControlPlane",
    "ControlUnavailableError",
    "ShadowRateCap",
    "Switches",
    "SwitchesError",
    "control_openapi",
    "control_view",
    "open_control_plane",
    "setup_control_api",
    "watch_control",
]
