"""What the fulfilment stage asks of the outside: the 3PL, the carrier's trackers and its own store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.upstream import UpstreamRejected


class ThreePL(Protocol):
    """One 3PL provider's API (chalicelib/integrations/threepl/client.py)."""

    def create_fulfillment_order(
        self, request: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]: ...

    def recall(self, fulfillment_order_id: str) -> list[str]: ...

    def inventory(self, skus: Sequence[str], warehouse: str | None = None) -> list[dict[str, Any]]: ...


class AlreadyShippedError(UpstreamRejected):
    """Raised by a ThreePL adapter's cancel when everything has shipped."""


class RecallRefused(UpstreamRejected):
    """Raised by a ThreePL adapter's recall when the parcels are with the carrier."""


class Trackers(Protocol):
    def register(self, tracking_number: str, carrier: str) -> None:
        """Ask the carrier (EasyPost) to track a parcel; idempotent."""
        ...


@dataclass(frozen=True)
class OpenShipment:
    order_id: str
    shipment_id: str
    promised_at: datetime


class FulfilmentStore(Protocol):
    """What the stage keeps beside the orders: task tokens, tracking links, open shipments, carrier stats."""

    def set_token(self, order_id: str, shipment_id: str, kind: str, token: str | None) -> None: ...

    def get_token(self, order_id: str, shipment_id: str, kind: str) -> str | None: ...

    def link_tracking(self, tracking_number: str, order_id: str, shipment_id: str) -> None: ...

    def shipment_for_tracking(self, tracking_number: str) -> tuple[str, str] | None: ...

    def open_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None: ...

    def close_shipment(self, order_id: str, shipment_id: str, promised_at: datetime) -> None: ...

    def open_shipments(self, limit: int = 500) -> list[OpenShipment]: ...

    def record_delivery(self, carrier: str, country: str, on_time: bool) -> None: ...

    def carrier_stats(self) -> list[dict[str, Any]]: ...

    def flag_shipment(self, order_id: str, shipment_id: str, flags: list[str], at: datetime) -> None:
        """Keep an open shipment on the operators' list of flagged ones (late, exception, ...)."""
        ...

    def flagged_shipments(self, limit: int = 50) -> list[dict[str, Any]]:
        """Open shipments with flags, for the status page: order_id, shipment_id, flags, flagged_at."""
        ...
