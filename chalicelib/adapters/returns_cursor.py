"""ReturnsCursor on the single table: one item per store, the time its returns report was read up to."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.models import ReconciliationModel

# The same shape as a reconciliation watermark (a time per store), under a partition of its own.
_PARTITION = "RETURNS#CURSOR"


class DynamoReturnsCursor:
    def read_until(self, channel: str, store: str) -> datetime | None:
        try:
            return ReconciliationModel.get(_PARTITION, f"{channel}#{store}", consistent_read=True).at
        except ReconciliationModel.DoesNotExist:
            return None

    def set_read_until(self, channel: str, store: str, at: datetime) -> None:
        ReconciliationModel(_PARTITION, f"{channel}#{store}", at=at).save()
