"""Fires the app's `schedule` handlers on their cadence (rate or cron) and on demand."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalice.app import Cron, Rate

from local.lambda_runtime import InvocationResult, LambdaRuntime

log = logging.getLogger("local.scheduler")

# The deployed schedule group is order-hub-<stage>; locally the stage is "local".
APP_GROUP = "order-hub-local"

_RATE_UNITS = {
    "MINUTES": 60,
    "HOURS": 3600,
    "DAYS": 86400,
    "MINUTE": 60,
    "HOUR": 3600,
    "DAY": 86400,
}


def rate_seconds(expression: Any) -> int | None:
    """Seconds between runs of a rate schedule, or None when it is a cron schedule."""
    if isinstance(expression, Rate):
        return int(expression.value) * _RATE_UNITS[expression.unit.upper()]
    text = str(expression)
    if text.startswith("rate(") and text.endswith(")"):
        value, unit = text[5:-1].split()
        return int(value) * _RATE_UNITS[unit.upper()]
    return None


def _field_matches(spec: str, value: int, low: int) -> bool:
    if spec in ("*", "?"):
        return True
    for item in spec.split(","):
        part, step = item, 1
        if "/" in item:
            part, step_text = item.split("/")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, 10**6
        elif "-" in part:
            start_text, end_text = part.split("-")
            start, end = int(start_text), int(end_text)
        else:
            start = int(part)
            end = start if step == 1 else 10**6
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


_DAYS = {"SUN": "1", "MON": "2", "TUE": "3", "WED": "4", "THU": "5", "FRI": "6", "SAT": "7"}


def cron_matches(expression: Cron | str, at: datetime) -> bool:
    """EventBridge cron (minutes hours day-of-month month day-of-week year), numeric forms and names."""
    fields: list[Any]
    if isinstance(expression, Cron):
        fields = [
            expression.minutes,
            expression.hours,
            expression.day_of_month,
            expression.month,
            expression.day_of_week,
            expression.year,
        ]
    else:
        text = str(expression)
        fields = text[len("cron(") : -1].split() if text.startswith("cron(") else text.split()
    minute, hour, dom, month, dow, year = (str(f).upper() for f in fields)
    for name, number in _DAYS.items():
        dow = dow.replace(name, number)
    weekday = (at.isoweekday() % 7) + 1  # EventBridge: 1 = Sunday
    return (
        _field_matches(minute, at.minute, 0)
        and _field_matches(hour, at.hour, 0)
        and _field_matches(dom, at.day, 1)
        and _field_matches(month, at.month, 1)
        and _field_matches(dow, weekday, 1)
        and _field_matches(year, at.year, 1970)
    )


def next_run(expression: Any, after: datetime) -> datetime:
    seconds = rate_seconds(expression)
    if seconds is not None:
        return after + timedelta(seconds=seconds)
    candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(366 * 24 * 60):
        if cron_matches(expression, candidate):
            return candidate
        candidate += timedelta(minutes=1)
    raise ValueError(f"schedule {expression} never fires")


def _describe(expression: Any) -> str:
    to_string = getattr(expression, "to_string", None)
    return str(to_string() if to_string else expression)


@dataclass
class Schedule:
    function: str
    expression: Any
    next_at: datetime
    runs: int = 0
    last_result: Any = None
    paused: bool = False  # its cadence is off (as a disabled EventBridge schedule); fire() still runs it
    # Seconds between runs instead of the expression's (the demo compresses hours-long cadences to seconds).
    every_s: float | None = None

    def after(self, at: datetime) -> datetime:
        """Its next run after `at`."""
        if self.every_s is not None:
            return at + timedelta(seconds=self.every_s)
        return next_run(self.expression, at)


def scheduled_event(function: str, region: str, account: str, at: datetime) -> dict[str, Any]:
    """The input the deployed EventBridge Scheduler schedule sends (infra: HubStack._scheduled_event)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": account,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:scheduler:{region}:{account}:schedule/{APP_GROUP}/{function}"],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        runtime: LambdaRuntime,
        schedules: dict[str, Any],
        *,
        region: str,
        account: str,
        stop: threading.Event,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        every_s: Mapping[str, float] | None = None,
    ) -> None:
        self._runtime = runtime
        self._region = region
        self._account = account
        self._stop = stop
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        every_s = every_s or {}
        unknown = set(every_s) - set(schedules)
        if unknown:
            raise ValueError(f"cadence given for unknown schedules {sorted(unknown)}")
        self.schedules = {
            name: Schedule(name, expression, now, every_s=every_s.get(name))
            for name, expression in schedules.items()
        }
        for schedule in self.schedules.values():
            schedule.next_at = schedule.after(now)
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def fire(self, name: str) -> InvocationResult:
        """Run one schedule now (on demand); its cadence is unchanged."""
        schedule = self.schedules[name]
        at = self._clock()
        result = self._runtime.invoke(name, scheduled_event(name, self._region, self._account, at))
        with self._lock:
            schedule.runs += 1
            schedule.last_result = result.payload
        if result.function_error:
            log.warning("schedule %s failed: %s", name, result.payload.get("errorMessage"))
        return result

    def pause(self, name: str) -> None:
        """Turn one schedule's cadence off, as disabling its EventBridge schedule would; on demand
        (`fire`) it still runs. Tests that arrange what a run will meet use it to be the only run."""
        with self._lock:
            self.schedules[name].paused = True

    def resume(self, name: str) -> None:
        with self._lock:
            schedule = self.schedules[name]
            schedule.paused = False
            schedule.next_at = schedule.after(self._clock())

    def due(self, now: datetime) -> list[str]:
        """Schedules whose time has come; each is moved to its next time (a paused one is skipped)."""
        names = []
        with self._lock:
            for schedule in self.schedules.values():
                if schedule.next_at <= now:
                    if not schedule.paused:
                        names.append(schedule.function)
                    schedule.next_at = schedule.after(now)
        return names

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name in self.due(self._clock()):
                try:
                    self.fire(name)
                except Exception:
                    log.exception("schedule %s crashed", name)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                s.function: {
                    "expression": _describe(s.expression),
                    **({"every_s": s.every_s} if s.every_s is not None else {}),
                    "next_at": s.next_at.isoformat(),
                    "runs": s.runs,
                    "paused": s.paused,
                }
                for s in self.schedules.values()
            }
