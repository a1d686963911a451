"""What GET /health reports: each component's state, and locally where the emulated AWS lives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chalicelib import resources
from chalicelib.composition import Services

HEARTBEAT = "heartbeat"
# The heartbeat schedule runs every minute; two missed runs make the scheduler "late".
HEARTBEAT_LATE_AFTER = timedelta(minutes=2, seconds=30)


def _check(probe: Callable[[], Any]) -> dict[str, Any]:
    try:
        probe()
    except Exception as exc:  # a health check reports every failure rather than raising it
        return {"status": "error", "error": type(exc).__name__}
    return {"status": "ok"}


def health_report(svc: Services) -> dict[str, Any]:
    settings = svc.settings
    plumbing = svc.plumbing()
    components: dict[str, Any] = {}
    last_beat: list[Any] = []
    components["table"] = _check(lambda: last_beat.append(svc.heartbeats.last(HEARTBEAT)))
    components["queues"] = _check(plumbing.check_queues)
    components["workflows"] = _check(plumbing.check_workflows)
    status = "ok" if all(c["status"] == "ok" for c in components.values()) else "degraded"
    # The scheduler is reported but does not gate readiness: it has not run yet right after start.
    beat = last_beat[0] if last_beat else None
    if beat is None:
        components["scheduler"] = {"status": "waiting", "last_run": None}
    else:
        late = svc.now() - beat > HEARTBEAT_LATE_AFTER
        components["scheduler"] = {"status": "late" if late else "ok", "last_run": beat.isoformat()}
    report: dict[str, Any] = {"status": status, "components": components}
    if settings.local:
        report["aws_endpoint"] = settings.aws_endpoint
        report["queues"] = {
            **{resources.queue(k).name: url for k, url in settings.queue_urls.items()},
            **{resources.queue(k).dlq_name: url for k, url in settings.dlq_urls.items()},
        }
    return report
