"""The settings of the Ray engine (params ``ray``), used when ``benchmark.engine`` or
``embed.engine`` is ``ray``.

Part of :mod:`scrm.config` (which imports it, uses it in ``Params`` and re-exports it), kept in a
module of its own only so that config.py stays under 500 lines; the same rules hold: every field
required, checked, named in errors. The environment variable ``RAY_ADDRESS``, when set, replaces
``ray.address`` (Ray's own convention; :func:`scrm.cluster.resolve_address`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .configbase import Section, between, req

# auto | ray://host:port (Ray Client) | host:port (the head's GCS address, as `ray start` prints)
ADDRESS = re.compile(r"^(auto|ray://[A-Za-z0-9_.\-\[\]:]+:\d+|[A-Za-z0-9_.\-\[\]:]+:\d+)$")


def ray_address(v: Any) -> str | None:
    """None (a local Ray), ``auto``, ``ray://host:port`` or ``host:port``."""
    if v is None or ADDRESS.match(str(v)):
        return None
    return "must be null (a local Ray on this machine), auto, ray://host:10001 or host:6379"


@dataclass(frozen=True)
class RaySettings(Section):
    address: str | None = req(ray_address)
    num_cpus: int | None = req(between(1))
    max_retries: int = req(between(0, 10))
    include_dashboard: bool = req()
    dashboard_host: str = req()
