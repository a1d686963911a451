"""Use cases of the lifecycle's fulfilment stage: allocate lines to warehouses, ask the 3PL, follow parcels.

- `allocate` (allocation.py): configurable rules (policy.py) choose a warehouse per line (destination
  country, SKU patterns, priority, the 3PL's stock); lines nobody has in stock are back-ordered: held at the
  3PL until restocked, in their own shipment with a later promise. One shipment per warehouse (and
  back-order), each with its promise.
- `fulfil_order` (threepl_request.py): allocates, then one fulfilment order per shipment at its 3PL
  (idempotent on the shipment id); the lifecycle waits on one task token per order until the 3PL's signed
  confirmations say every shipment shipped, then (`await_order_delivery`) on one more until the carriers say
  every parcel arrived. `request_fulfilment` and `await_delivery` wait per shipment: they serve executions
  started before the lifecycle waited per order.
- `apply_threepl_event` (threepl_events.py): shipped lines and parcels (partial shipments, several parcels),
  duplicates and late confirmations harmless; each parcel's tracker registered with the carrier.
- `apply_tracking` (tracking.py): carrier events move each parcel (out-of-order events ignored), re-estimate
  delivery, flag failed attempts, exceptions and returns; delivery of every parcel completes the shipment,
  every shipment the order. Each delivery counts in the carrier's on-time share.
- `watch` (watching.py): shipments late against their promise, or silent too long, are flagged for operators.
- `FulfilmentCompensator` (compensation.py): a cancelled order's shipments are cancelled at the 3PL if not
  shipped, recalled if the 3PL still can, otherwise a return is expected.

The ports are in ports.py, what the steps share (finding a shipment, resuming a wait) in shipments.py; this
package answers every public name from one place.
"""

from chalicelib.domain.fulfilment.allocation import AllocationError, allocate
from chalicelib.domain.fulfilment.compensation import FulfilmentCompensator
from chalicelib.domain.fulfilment.policy import FulfilmentPolicy, Warehouse
from chalicelib.domain.fulfilment.ports import (
    AlreadyShippedError,
    FulfilmentStore,
    OpenShipment,
    RecallRefused,
    ThreePL,
    Trackers,
)
from chalicelib.domain.fulfilment.shipments import DELIVERED, RETURNED
from chalicelib.domain.fulfilment.threepl_events import ShippedParcel, ThreePLUpdate, apply_threepl_event
from chalicelib.domain.fulfilment.threepl_request import fulfil_order, request_fulfilment
from chalicelib.domain.fulfilment.tracking import (
    TrackingUpdate,
    apply_tracking,
    await_delivery,
    await_order_delivery,
    complete_order,
)
from chalicelib.domain.fulfilment.watching import watch

__all__ = [
    "DELIVERED",
    "RETURNED",
    "AllocationError",
    "AlreadyShippedError",
    "FulfilmentCompensator",
    "FulfilmentPolicy",
    "FulfilmentStore",
    "OpenShipment",
    "RecallRefused",
    "ShippedParcel",
    "ThreePL",
    "ThreePLUpdate",
    "Trackers",
    "TrackingUpdate",
    "Warehouse",
    "allocate",
    "apply_threepl_event",
    "apply_tracking",
    "await_delivery",
    "await_order_delivery",
    "complete_order",
    "fulfil_order",
    "request_fulfilment",
    "watch",
]
