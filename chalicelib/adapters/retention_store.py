"""Retention on the single table: closed orders read from the by-status index, and one cursor per lane."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.models import OrderModel, ReconciliationModel
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.retention import ClosedOrderRef

# Where each lane's reading stopped: a by-status index position (`<entered at>#<order id>`).
_PARTITION = "RETENTION#CURSOR"
# Sorts after "#" (0x23): "<time>$" is past every "<time>#<order id>" of that instant.
_AFTER_INSTANT = "$"


class DynamoClosedOrders:
    def closed(
        self, status: OrderStatus, *, after: str | None, until: datetime, limit: int
    ) -> list[ClosedOrderRef]:
        """The by-status index (gsi2) is ordered by when the order entered its status: a range read, no
        scan, and only what the index projects that the run needs."""
        high = f"{until.isoformat()}{_AFTER_INSTANT}"
        if after is not None and after >= high:
            return []
        # DynamoDB refuses an empty key value: the first read is bounded above only.
        within = OrderModel.gsi2sk.between(after, high) if after else OrderModel.gsi2sk <= high
        refs = []
        for model in OrderModel.by_status.query(
            f"STATUS#{status.value}",
            within,
            scan_index_forward=True,
            limit=limit + 1,  # `after` itself comes back first: between is inclusive
            attributes_to_get=["pk", "sk", "gsi2pk", "gsi2sk", "channel"],
        ):
            if model.gsi2sk == after:
                continue
            refs.append(ClosedOrderRef(model.gsi2sk, model.pk.removeprefix("ORDER#"), model.channel))
            if len(refs) == limit:
                break
        return refs


class DynamoRetentionCursor:
    def position(self, lane: str) -> str | None:
        try:
            report = ReconciliationModel.get(_PARTITION, lane, consistent_read=True).report
        except ReconciliationModel.DoesNotExist:
            return None
        return str(report["after"]) if report and report.get("after") else None

    def move(self, lane: str, position: str) -> None:
        ReconciliationModel(_PARTITION, lane, report={"after": position}).save()
