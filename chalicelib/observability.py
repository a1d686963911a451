"""The hub's structured logger and metrics (Powertools: JSON log lines, CloudWatch EMF metrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

NAMESPACE = "OrderHub"
# Every metric carries its stage: several stages share an account's namespace, and each stage's alarms
# select their own (infra's webhook-rejections alarm filters on it).
STAGE_DIMENSION = "stage"


class _FirstUseLogger:
    """Powertools' Logger, made on its first use: importing this module (every handler's module does)
    loads no Powertools, and a function that logs nothing never pays for it."""

    def __init__(self) -> None:
        self._logger: Logger | None = None

    def __getattr__(self, name: str) -> Any:
        if self._logger is None:
            from aws_lambda_powertools import Logger

            self._logger = Logger(service="order-hub")
        return getattr(self._logger, name)


logger = cast("Logger", _FirstUseLogger())

# Also told of every count (the status page's aggregates): (name, channel, store, value). Installed by the
# composition root with the services it installs (`composition.services`, `composition.override`).
CountSink = Callable[[str, str, "str | None", float], None]
_sink: CountSink | None = None


def use_count_sink(sink: CountSink | None) -> None:
    global _sink
    _sink = sink


def count(
    name: str,
    *,
    channel: str,
    store: str | None = None,
    reason: str | None = None,
    value: float = 1,
    aggregate: bool = True,
) -> None:
    """One EMF metric line, flushed at once (works the same in a route, a queue handler or a task), and the
    count sink told. `aggregate=False`: the metric only; whoever calls `tally` later keeps the aggregate
    (off a webhook's answer path)."""
    if aggregate:
        tally(name, channel=channel, store=store, value=value)
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():  # single_metric itself prints regardless of POWERTOOLS_METRICS_DISABLED
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name=STAGE_DIMENSION, value=get_settings().stage)
        metric.add_dimension(name="channel", value=channel)
        if store:
            metric.add_dimension(name="store", value=store[:250])
        if reason:
            metric.add_dimension(name="reason", value=reason)


def tally(name: str, *, channel: str, store: str | None = None, value: float = 1) -> None:
    """The count sink only (the status page's aggregates), for a count whose metric line went out with
    `count(..., aggregate=False)`."""
    if _sink is not None:
        try:
            _sink(name, channel, store, value)
        except Exception:  # an aggregate that cannot be kept never fails what was counted
            logger.exception("count sink failed", extra={"metric": name, "channel": channel})


def seconds(name: str, value: float, *, channel: str, store: str | None = None) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        return
    with single_metric(name=name, unit=MetricUnit.Seconds, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name=STAGE_DIMENSION, value=get_settings().stage)
        metric.add_dimension(name="channel", value=channel)
        if store:
            metric.add_dimension(name="store", value=store[:250])
