"""Return labels bought through EasyPost (`is_return` shipments): the domain's ReturnLabels port.

EasyPost has no idempotency header. The key goes into the shipment's `reference`; before creating
anything the account's recent shipments are searched for it: a bought one answers its label again, an
unbought one (a call that died between create and buy) is bought instead of a new one, and a buy that
EasyPost refuses as already bought (422 SHIPMENT.POSTAGE.EXISTS: a retry of a buy that went through)
answers the shipment as it is. So a retried call never buys a second label.

Addresses are sent as EasyPost documents for returns: the same as the outbound parcel (to = the
customer, from = the warehouse) with `is_return: true`, and EasyPost swaps them. Addresses are never logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.fulfilment import Warehouse
from chalicelib.domain.order import Address, Order
from chalicelib.domain.returns.model import OrderReturn, ReturnLabel
from chalicelib.integrations.easypost.client import CarrierError, CarrierRejected, EasyPostClient

logger = Logger(service="order-hub", child=True)

# The canonical order carries no weights: a return parcel is estimated at this many ounces per unit.
OUNCES_PER_UNIT = 16.0
# How far back a retried call looks for the shipment an earlier attempt created (EasyPost lists newest first).
LOOKBACK = timedelta(days=14)
MAX_PAGES = 10


class EasyPostReturnLabels:
    """Buys the label from the customer's shipping address to the warehouse the returned lines shipped
    from (`warehouses`: warehouse id → its address, from the fulfilment_policy setting), else to
    `default_address` (the EasyPost connection's `return_address`)."""

    def __init__(
        self,
        client: EasyPostClient,
        *,
        warehouses: Mapping[str, Address] | None = None,
        default_address: Address | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._warehouses = dict(warehouses or {})
        self._default = default_address
        self._now = now

    def return_label(
        self, order: Order, ret: OrderReturn, *, idempotency_key: str, paid_by: str = "merchant"
    ) -> ReturnLabel:
        if not idempotency_key:
            raise InvalidInput("buying a return label needs an idempotency key")
        shipment = self._find(idempotency_key)
        if shipment is None:
            shipment = self._client.create_shipment(
                {
                    "reference": idempotency_key,
                    "is_return": True,
                    "to_address": _easypost_address(self._customer(order), "the order's shipping address"),
                    "from_address": _easypost_address(self._warehouse(order, ret), "the return address"),
                    "parcel": {"weight": OUNCES_PER_UNIT * sum(line.quantity for line in ret.lines)},
                }
            )
        if not _bought(shipment):
            shipment = self._buy(shipment)
        label = _label(shipment, paid_by)
        logger.info(
            "return label bought",
            extra={"return_id": ret.return_id, "shipment_id": label.shipment_ref, "carrier": label.carrier},
        )
        return label

    def _find(self, reference: str) -> dict[str, Any] | None:
        """The newest return shipment with this reference (a bought one first) among recent shipments."""
        since = (self._now() - LOOKBACK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"page_size": "100", "start_datetime": since}
        found: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self._client.list_shipments(**params)
            shipments = [s for s in page.get("shipments") or () if isinstance(s, dict)]
            found += [s for s in shipments if s.get("reference") == reference and s.get("is_return") is True]
            last = shipments[-1].get("id") if shipments else None
            if page.get("has_more") is not True or not isinstance(last, str):
                break
            params["before_id"] = last
        bought = [s for s in found if _bought(s)]
        return next(iter(bought or found), None)

    def _buy(self, shipment: dict[str, Any]) -> dict[str, Any]:
        shipment_id = _text(shipment, "id")
        rate = _cheapest(shipment.get("rates"))
        try:
            return self._client.buy_shipment(shipment_id, rate)
        except CarrierRejected as exc:
            if exc.code != "SHIPMENT.POSTAGE.EXISTS":
                raise
            return self._client.retrieve_shipment(shipment_id)  # an earlier attempt bought it

    def _customer(self, order: Order) -> Address:
        if order.shipping_address is None:
            raise InvalidInput(f"order {order.order_id} has no shipping address to collect a return from")
        return order.shipping_address

    def _warehouse(self, order: Order, ret: OrderReturn) -> Address:
        """The address of the warehouse most of the returned units shipped from, else the default."""
        returned = {line.line_id for line in ret.lines}
        units: dict[str, int] = {}
        for shipment in order.shipments:
            if not shipment.warehouse:
                continue
            for line in shipment.shipped_lines or shipment.lines:
                if str(line.get("line_id")) in returned:
                    units[shipment.warehouse] = units.get(shipment.warehouse, 0) + _units(
                        line.get("quantity")
                    )
        for warehouse in sorted(units, key=lambda w: -units[w]):
            if warehouse in self._warehouses:
                return self._warehouses[warehouse]
        if self._default is None:
            raise InvalidInput(
                f"no return address for return {ret.return_id}: give the warehouse an address in "
                "the fulfilment_policy setting or the EasyPost connection a return_address"
            )
        return self._default


def _easypost_address(address: Address, what: str) -> dict[str, Any]:
    fields = {
        "name": address.name,
        "street1": address.line1,
        "street2": address.line2,
        "city": address.city,
        "state": address.region,
        "zip": address.postal_code,
        "country": address.country,
    }
    missing = [k for k in ("street1", "city", "zip", "country") if not fields[k]]
    if missing:  # named by field only: the address itself stays out of messages and logs
        raise InvalidInput(f"{what} lacks {', '.join(missing)}")
    return {k: v for k, v in fields.items() if v}


def _cheapest(rates: Any) -> str:
    priced: list[tuple[Decimal, int, str]] = []
    for rate in rates if isinstance(rates, list) else ():
        if not isinstance(rate, dict) or not isinstance(rate.get("id"), str):
            continue
        try:
            price = Decimal(str(rate.get("rate")))
        except InvalidOperation:
            continue
        days = rate.get("delivery_days")
        priced.append((price, days if isinstance(days, int) else 99, rate["id"]))
    if not priced:
        raise CarrierError(
            "createShipment: EasyPost offered no rate for the return", operation="createShipment"
        )
    return min(priced)[2]


def _label(shipment: Mapping[str, Any], paid_by: str) -> ReturnLabel:
    rate = _object(shipment.get("selected_rate"))
    postage = _object(shipment.get("postage_label"))
    try:
        cost = Decimal(str(rate.get("rate"))) if rate.get("rate") is not None else Decimal(0)
    except InvalidOperation:
        cost = Decimal(0)
    carrier = rate.get("carrier") or _object(shipment.get("tracker")).get("carrier")
    return ReturnLabel(
        carrier=str(carrier or "unknown"),
        tracking_number=_text(shipment, "tracking_code"),
        label_url=postage.get("label_url") if isinstance(postage.get("label_url"), str) else None,
        paid_by=paid_by,
        cost=cost,
        shipment_ref=_text(shipment, "id"),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bought(shipment: Mapping[str, Any]) -> bool:
    return bool(shipment.get("postage_label")) and bool(shipment.get("tracking_code"))


def _text(shipment: Mapping[str, Any], name: str) -> str:
    value = shipment.get(name)
    if not isinstance(value, str) or not value:
        raise CarrierError(f"EasyPost shipment without {name}", operation="buyShipment")
    return value


def _units(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def warehouse_addresses(warehouses: Iterable[Warehouse]) -> dict[str, Address]:
    """The policy's warehouses that have an address, by id."""
    return {w.id: w.address for w in warehouses if w.address is not None}


def connection_return_address(settings: Mapping[str, str]) -> Address | None:
    """The EasyPost connection's `return_address` setting (JSON text), None when absent or unreadable."""
    text = settings.get("return_address")
    if not text:
        return None
    try:
        return Address.model_validate_json(text)
    except ValueError:
        logger.warning("the EasyPost connection's return_address is not an address; ignored")
        return None
