"""ReturnsBoard on the single table: the returns closed per day, for the status page's "resolved today".

One partition (`STATS#RETURNS`), one item per day, final status and shard
(`DAY#<yyyy-mm-dd>#<status>#SHARD#<n>`), holding the day's return ids as a string set. Adding an id to a
set is idempotent, so a retried resolution (the workflow retries its tasks) is counted once, in any order.
A return lands on its order's shard (crc32, as the status counters): eight shards keep each item far below
DynamoDB's 400 KB (about 9,000 ids each). The page reads one day as one query of at most 16 items; items
expire three days after their day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from chalicelib.adapters.models import ReturnsDayModel
from chalicelib.adapters.stats import status_shard
from chalicelib.domain.returns.model import OrderReturn, ReturnStatus

PARTITION = "STATS#RETURNS"
RECORDED = (ReturnStatus.RESOLVED, ReturnStatus.EXPIRED)
KEPT = timedelta(days=3)


def day_prefix(day: date) -> str:
    return f"DAY#{day.isoformat()}#"


class DynamoReturnsBoard:
    def closed(self, ret: OrderReturn) -> None:
        if ret.status not in RECORDED:
            return
        day = ret.updated_at.astimezone(UTC).date()
        item = ReturnsDayModel(PARTITION, f"{day_prefix(day)}{ret.status.value}#{status_shard(ret.order_id)}")
        item.update(
            actions=[
                ReturnsDayModel.return_ids.add({ret.return_id}),
                ReturnsDayModel.expires_at.set(datetime.combine(day, time(), UTC) + KEPT),
            ]
        )

    def closed_on(self, day: date, limit: int) -> dict[str, tuple[int, list[str]]]:
        found: dict[str, set[str]] = {}
        for item in ReturnsDayModel.query(PARTITION, ReturnsDayModel.sk.startswith(day_prefix(day))):
            status = item.sk.removeprefix(day_prefix(day)).partition("#")[0]
            found.setdefault(status, set()).update(item.return_ids or set())
        return {status: (len(ids), sorted(ids)[:limit]) for status, ids in found.items()}
