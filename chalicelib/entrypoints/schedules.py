"""Scheduled jobs."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from chalicelib.composition import services
from chalicelib.entrypoints.health import HEARTBEAT

bp = Blueprint(__name__)


@bp.schedule(Rate(1, unit=Rate.MINUTES), name=HEARTBEAT, description="Proves the scheduler runs.")
def heartbeat(event: Any) -> dict[str, str]:
    svc = services()
    at = svc.now()
    svc.heartbeats.beat(HEARTBEAT, at)
    return {"heartbeat": at.isoformat()}
