"""Benchmark: the operators' status page and order list cost the same with 1,000 and 100,000 orders stored.

Run: .venv/bin/python bench/status_page.py [--orders 1000 100000] [--repeat N] [--json FILE]
(record the printout in bench/RESULTS.md; about 5 minutes and 1 GB on 2 cores with the defaults, most of
it moto's)

One in-process moto (`moto.mock_aws`) with the queues and one table per size; the real composition
(`composition.build`: PynamoDB models, boto3 SQS client, the Dynamo status board; only its clock is pinned
to the seeding time) and Chalice's test client sending `Authorization: Bearer <token>`. Per size:
1. a table (`local.provision.create_table`), and what does not grow with orders (the same at every size):
   six connected stores, each with every ten-minute traffic bucket of the last two days, a reconciliation
   report per store and hour for 30 hours, carrier counters, eight flagged shipments; each page rendered
   once (warm-up: clients, connections);
2. N orders, each the item `OrderModel.batch_write()` would send for the repository's own model
   (`to_model(order, 1).serialize()`), put straight into moto's table, and the per-status counter shards
   set to match (checked through `status_counts()`). A fixed 240 of them (30 in review, 30 failed, 60 just
   paid, 12 stuck in each status that can get stuck) fill the page's lists at every size; the rest are placed
   over 90 days with a status that follows their age (recent ones in flight, old ones mostly completed, a
   few stuck).
Then `GET /status`, `GET /status/orders`, its next page (the cursor its "Older orders" link carries) and
`GET /status/orders?status=PAID`, `--repeat` times each per size, the sizes taking turns (the models are
pointed at one table, then the other): the first render on moto as it is, the others with `MotoIndex`
(below), each checked to ask the same requests, read as many items and show the same orders.

Every AWS call is timed where moto answers it (`BotocoreStubber.process_request`: after botocore has
built and signed the request, before it parses the answer). Per page and size:
- DynamoDB work, from the first render: requests by operation, items read, read request units and
  kilobytes. Units follow DynamoDB's rule: a Query's items are summed and rounded up to 4 KB, halved for an
  eventually consistent read; a GetItem per item. Items are sized whole (`local.counters.item_size`): a
  projection does not make a read cheaper, so a query that asked for a few attributes is replayed without
  them (outside the timing) to size what DynamoDB reads;
- the hub's own time: wall time minus the time inside moto (routing, rendering, PynamoDB and botocore
  (de)serialisation, the test client's API Gateway emulation), min, p50 and p95 over the renders;
- the raw wall time on moto (the first render). Moto answers every Query by walking and sorting every item
  of the table (moto/dynamodb/models/table.py `Table.query`: `for item in self.all_items()`, and
  `all_items()` sorts them), so its time grows with the table even when the page asks for bounded, indexed
  pages. DynamoDB reads only the items a Query returns: its cost and latency follow the items read;
- a modelled AWS time: the hub's p50 plus each (sequential) request at 10 ms, the top of DynamoDB's
  "single-digit millisecond" claim; the four SQS calls at the same 10 ms (an assumption: AWS documents no
  latency figure for GetQueueAttributes).

Garbage collection: the seeded objects (moto's items live in this process, never in a Lambda's) are frozen
out of the collector (`gc.freeze()`), and the collector is paused during each render and run between
renders, so moto's garbage is not collected on the hub's clock.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import html
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "bench-status-token"
REGION = "us-east-1"
# Before anything reads settings or builds a client: the mock's region and credentials, no endpoint.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
    HUB_OPERATOR_TOKEN=TOKEN,
    HUB_STAGE="bench",
    HUB_LOG_LEVEL="WARNING",
    POWERTOOLS_LOG_LEVEL="WARNING",
)
for _name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_PROFILE", "HUB_LOCAL", "HUB_STUCK_AFTER"):
    os.environ.pop(_name, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core.botocore_stubber import BotocoreStubber  # noqa: E402

from chalicelib import composition, resources  # noqa: E402
from chalicelib.adapters import aws, models, order_repository  # noqa: E402
from chalicelib.adapters.connections import DynamoConnectionRepository  # noqa: E402
from chalicelib.adapters.fulfilment_store import DynamoFulfilmentStore  # noqa: E402
from chalicelib.adapters.models import OrderModel, StatusCountModel, TrafficModel  # noqa: E402
from chalicelib.adapters.order_repository import to_model  # noqa: E402
from chalicelib.adapters.reconciliation_store import DynamoReconciliationStore  # noqa: E402
from chalicelib.adapters.stats import (  # noqa: E402
    BUCKET,
    STATUS_PARTITION,
    TRAFFIC_KEPT,
    DynamoTrafficStats,
    bucket_start,
    status_counts,
    status_shard,
    traffic_pk,
)
from chalicelib.domain.connections import Connection  # noqa: E402
from chalicelib.domain.order import (  # noqa: E402
    Address,
    Customer,
    HistoryEntry,
    Line,
    Order,
    OrderStatus,
    Parcel,
    Payment,
    Shipment,
    Totals,
    derive_order_id,
)
from chalicelib.domain.reconciliation import ReconciliationReport  # noqa: E402
from chalicelib.domain.status import from_on  # noqa: E402
from chalicelib.domain.status_views import STUCK_AFTER  # noqa: E402
from chalicelib.settings import get_settings  # noqa: E402
from local.counters import classify, item_size, read_units  # noqa: E402
from local.provision import create_queue, create_table  # noqa: E402

S = OrderStatus
# The top of "single-digit millisecond" (DynamoDB Developer Guide, "What is Amazon DynamoDB?").
DYNAMODB_MS = 10.0
SQS_MS = 10.0  # assumed; see the module docstring

STORES: list[tuple[str, str, str]] = [  # channel, store, currency
    ("shopify", "north-shop.myshopify.com", "USD"),
    ("shopify", "south-shop.myshopify.com", "USD"),
    ("shopify", "outlet-eu.myshopify.com", "EUR"),
    ("woocommerce", "https://tea.example.com", "EUR"),
    ("woocommerce", "https://mugs.example.co.uk", "GBP"),
    ("amazon", "A1PA6795UKMFR9", "EUR"),
]
MANUAL = ("manual", "default", "EUR")
STORE_WEIGHTS = [22, 18, 15, 15, 10, 15, 5]  # the six stores, then manual orders

# Status by the order's age (weights): recent orders are in flight, old ones mostly done. The few
# in-flight statuses among old orders are the stuck ones.
AGE_BUCKETS: list[tuple[timedelta, dict[S, float]]] = [
    (
        timedelta(minutes=15),
        {
            S.RECEIVED: 15,
            S.APPROVED: 10,
            S.PAID: 25,
            S.FULFILMENT_REQUESTED: 35,
            S.FRAUD_REVIEW: 5,
            S.PAYMENT_PENDING: 5,
            S.CANCELLED: 3,
            S.FAILED: 1,
            S.ON_HOLD: 1,
        },
    ),
    (
        timedelta(days=2),
        {
            S.FULFILMENT_REQUESTED: 40,
            S.SHIPPED: 30,
            S.PARTIALLY_SHIPPED: 4,
            S.PAYMENT_PENDING: 4,
            S.FRAUD_REVIEW: 3,
            S.ON_HOLD: 2,
            S.CANCELLED: 5,
            S.FAILED: 1,
            S.PAID: 1,
            S.RECEIVED: 0.5,
        },
    ),
    (
        timedelta(days=14),
        {
            S.SHIPPED: 25,
            S.DELIVERED: 10,
            S.COMPLETED: 45,
            S.RETURN_REQUESTED: 3,
            S.CANCELLED: 6,
            S.REFUNDED: 3,
            S.PARTIALLY_REFUNDED: 2,
            S.FAILED: 0.5,
            S.FULFILMENT_REQUESTED: 1,
            S.PAYMENT_PENDING: 0.5,
            S.ON_HOLD: 0.3,
        },
    ),
    (
        timedelta(days=90),
        {
            S.COMPLETED: 85,
            S.CANCELLED: 6,
            S.REFUNDED: 3,
            S.RETURNED: 2,
            S.PARTIALLY_REFUNDED: 2,
            S.FAILED: 0.3,
            S.SHIPPED: 0.5,
            S.RETURN_REQUESTED: 0.3,
            S.ON_HOLD: 0.1,
        },
    ),
]
SPAN = timedelta(days=90)

# The path of events that leads to each status, and how long after placement its last event came.
_PAID_PATH = ["received", "validated", "fraud_checked", "payment_captured"]
_SHIPPED_PATH = [*_PAID_PATH, "fulfilment_requested", "shipment_shipped", "tracking_in_transit"]
_DONE_PATH = [*_SHIPPED_PATH, "shipment_delivered", "completed"]
PATHS: dict[S, tuple[list[str], timedelta]] = {
    S.RECEIVED: (["received"], timedelta(seconds=30)),
    S.FRAUD_REVIEW: (["received", "validated", "review_requested"], timedelta(minutes=1)),
    S.APPROVED: (["received", "validated", "fraud_checked"], timedelta(minutes=1)),
    S.PAYMENT_PENDING: (
        ["received", "validated", "fraud_checked", "payment_recovery_requested"],
        timedelta(minutes=2),
    ),
    S.PAID: (_PAID_PATH, timedelta(minutes=2)),
    S.FULFILMENT_REQUESTED: ([*_PAID_PATH, "fulfilment_requested"], timedelta(minutes=5)),
    S.PARTIALLY_SHIPPED: ([*_PAID_PATH, "fulfilment_requested", "shipment_shipped"], timedelta(days=1)),
    S.SHIPPED: (_SHIPPED_PATH, timedelta(days=1, hours=12)),
    S.DELIVERED: ([*_SHIPPED_PATH, "shipment_delivered"], timedelta(days=4)),
    S.COMPLETED: (_DONE_PATH, timedelta(days=4, hours=1)),
    S.ON_HOLD: (["received", "validated", "channel_state"], timedelta(hours=1)),
    S.CANCELLED: (["received", "validated", "cancelled"], timedelta(hours=2)),
    S.RETURN_REQUESTED: ([*_DONE_PATH, "return_requested"], timedelta(days=10)),
    S.RETURNED: ([*_DONE_PATH, "return_requested", "returned"], timedelta(days=20)),
    S.PARTIALLY_REFUNDED: ([*_DONE_PATH, "refunded_partially"], timedelta(days=12)),
    S.REFUNDED: ([*_DONE_PATH, "refunded"], timedelta(days=15)),
    S.FAILED: (["received", "validated", "failed"], timedelta(minutes=3)),
}
# Orders in these have been paid / handed to the 3PL: they carry a payment / a shipment.
_PAID = from_on(S.PAID)
_SHIPPING = from_on(S.FULFILMENT_REQUESTED)

# Orders every size gets, so the lists the page shows are as full with 1,000 orders as with 100,000:
# the review queue (25 shown), the failed list (25), the stuck list (10 per status), a page of PAID (50).
FIXED_REVIEW, FIXED_FAILED, FIXED_PAID, FIXED_STUCK_PER_STATUS = 30, 30, 60, 12

PRODUCTS = [
    ("MUG-BLU", "Blue mug", "12.50"),
    ("MUG-RED", "Red mug", "12.50"),
    ("TEA-EB", "English breakfast, 250 g", "8.90"),
    ("TEA-GRN", "Sencha green tea, 100 g", "11.00"),
    ("POT-1L", "Teapot 1 l", "34.00"),
    ("CUP-SET", "Cup and saucer, set of 4", "42.00"),
    ("STR-01", "Tea strainer", "6.50"),
    ("GFT-25", "Gift card 25", "25.00"),
]
CITIES = [
    ("Lyon", "69002", "FR"),
    ("Leeds", "LS1 4AP", "GB"),
    ("Austin", "78701", "US"),
    ("Köln", "50667", "DE"),
    ("Porto", "4000-322", "PT"),
    ("Denver", "80202", "US"),
]
CARRIERS = ["ups", "dhl", "colissimo", "royal_mail"]
COUNTRIES = ["FR", "GB", "US", "DE", "PT", "ES"]


# ---------------------------------------------------------------------------------------------- orders


class OrderFactory:
    """Canonical orders of realistic shape and size, fast: validated templates copied with new fields."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.customers = [self._customer(i) for i in range(400)]
        self._templates: dict[tuple[str, int, str, str], Order] = {}

    @staticmethod
    def _customer(i: int) -> tuple[Customer, Address]:
        city, postal, country = CITIES[i % len(CITIES)]
        name = f"Customer {i:04d}"
        address = Address(name=name, city=city, postal_code=postal, country=country)
        return Customer(email=f"customer{i:04d}@example.com", name=name), address

    def _template(self, currency: str, lines: int, paid: str, shipping: str) -> Order:
        key = (currency, lines, paid, shipping)
        if key not in self._templates:
            chosen = [PRODUCTS[(lines * 3 + k) % len(PRODUCTS)] for k in range(lines)]
            order_lines = [
                Line(
                    line_id=str(k + 1),
                    sku=sku,
                    title=title,
                    quantity=1 + k % 2,
                    unit_price=Decimal(price),
                    total=Decimal(price) * (1 + k % 2),
                )
                for k, (sku, title, price) in enumerate(chosen)
            ]
            subtotal = sum((line.total for line in order_lines), Decimal(0))
            total = subtotal + Decimal("4.90")
            payment = Payment()
            if paid != "unpaid":
                payment = Payment(
                    source="channel",
                    status="captured" if paid == "captured" else "refunded",
                    reference=f"pay_{lines}_{currency}",
                    amount_authorized=total,
                    amount_captured=total,
                    amount_refunded=total if paid == "refunded" else Decimal(0),
                )
            shipments = []
            to_ship = [{"line_id": x.line_id, "sku": x.sku, "quantity": x.quantity} for x in order_lines]
            if shipping != "none":
                delivered = shipping == "delivered"
                shipments = [
                    Shipment(
                        shipment_id="s1",
                        lines=to_ship,
                        carrier="ups",
                        tracking_number="1Z999AA10123456784",
                        status=shipping,
                        warehouse="main",
                        provider="threepl",
                        fulfilment_order_id="FO-000000",
                        parcels=[]
                        if shipping == "requested"
                        else [
                            Parcel(
                                tracking_number="1Z999AA10123456784",
                                carrier="ups",
                                status="delivered" if delivered else "in_transit",
                            )
                        ],
                    )
                ]
            self._templates[key] = Order(
                order_id="template",
                channel="manual",
                store="default",
                external_id="0",
                currency=currency,
                placed_at=self.now,
                updated_at=self.now,
                lines=order_lines,
                totals=Totals(subtotal=subtotal, shipping=Decimal("4.90"), total=total),
                payment=payment,
                shipments=shipments,
            )
        return self._templates[key]

    def order(self, n: int, status: S, placed_at: datetime, progress_at: datetime) -> Order:
        rng = self.rng
        channel, store, currency = rng.choices([*STORES, MANUAL], weights=STORE_WEIGHTS)[0]
        paid = "unpaid"
        if status in _PAID:
            paid = "refunded" if status in (S.REFUNDED, S.RETURNED) else "captured"
        shipping = "none"
        if status in _SHIPPING:
            shipping = {
                S.FULFILMENT_REQUESTED: "requested",
                S.PARTIALLY_SHIPPED: "partially_shipped",
                S.SHIPPED: "shipped",
            }.get(status, "delivered")
        template = self._template(currency, 1 + n % 4, paid, shipping)
        external_id = str(5_000_000_000 + n)
        customer, address = self.customers[n % len(self.customers)]
        events, _ = PATHS[status]
        step = (progress_at - placed_at) / max(1, len(events) - 1)
        failure = {"error": "States.Timeout", "cause": "fraud_check timed out"}
        history = [
            HistoryEntry.model_construct(
                at=progress_at if i == len(events) - 1 else placed_at + step * i,
                event=event,
                detail=failure if event == "failed" else {},
            )
            for i, event in enumerate(events)
        ]
        return template.model_copy(
            update={
                "order_id": derive_order_id(channel, store, external_id),
                "channel": channel,
                "store": store,
                "external_id": external_id,
                "external_number": f"#{100_000 + n}",
                "status": status,
                "placed_at": placed_at,
                "updated_at": progress_at,
                "customer": customer,
                "shipping_address": address,
                "billing_address": address,
                "history": history,
            }
        )


def _timing(rng: random.Random, status: S, age: timedelta, now: datetime) -> tuple[datetime, datetime]:
    placed = now - age
    delay = PATHS[status][1] * rng.uniform(0.5, 1.5)
    progress = min(placed + delay, now - timedelta(seconds=1))
    return placed, max(progress, placed)


def order_plan(n: int, rng: random.Random, now: datetime) -> Iterator[tuple[S, datetime, datetime]]:
    """(status, placed at, last progress at) for n orders: a fixed set first, then placed over 90 days."""
    fixed: list[tuple[S, datetime, datetime]] = []
    for i in range(FIXED_REVIEW):
        fixed.append((S.FRAUD_REVIEW, *_timing(rng, S.FRAUD_REVIEW, timedelta(minutes=5 + 70 * i), now)))
    for i in range(FIXED_FAILED):
        fixed.append((S.FAILED, *_timing(rng, S.FAILED, timedelta(hours=1 + 16 * i), now)))
    for i in range(FIXED_PAID):
        fixed.append((S.PAID, *_timing(rng, S.PAID, timedelta(minutes=3 + 0.7 * i), now)))
    for status, after in STUCK_AFTER.items():
        for _ in range(FIXED_STUCK_PER_STATUS):
            progress = now - after * rng.uniform(1.2, 3.0)
            placed = progress - PATHS[status][1]
            fixed.append((status, placed, progress))
    if n < len(fixed):
        raise SystemExit(f"--orders must be at least {len(fixed)}")
    yield from fixed
    buckets = [(limit, list(w), list(w.values())) for limit, w in AGE_BUCKETS]
    for _ in range(n - len(fixed)):
        age = SPAN * rng.random()
        for limit, statuses, weights in buckets:
            if age <= limit:
                status = rng.choices(statuses, weights=weights)[0]
                break
        yield (status, *_timing(rng, status, age, now))


@contextlib.contextmanager
def quick_item_writes() -> Iterator[None]:
    """While seeding only: moto re-sums an item's size on every attribute it sets (its 400 KB check, our
    items are a few KB), which is most of a put's time. The stored items are the same."""
    from moto.dynamodb.models import dynamo_type

    limited = getattr(dynamo_type, "LimitedSizeDict", None)
    if limited is None:
        yield
        return
    original = limited.__setitem__
    limited.__setitem__ = dict.__setitem__
    try:
        yield
    finally:
        limited.__setitem__ = original


class MotoIndex:
    """Gives moto an index while a page is rendered again (bench only; never for the raw figure).

    Moto answers each Query by sorting every item of the table (`Table.all_items`), keeping those of the
    asked partition, then sorting those by the index's keys (`Table.sorted_items`): seconds per Query at
    100,000 orders. The pages only read, so between renders the table's items and their order stay the
    same. When `enabled`: the whole-table sort is kept while the table holds the very same item objects
    (compared by identity), items are grouped by partition once, and a Query runs moto's own code over its
    partition's items only (in the same order, still checked against the key condition), with the partition's
    sort kept the same way. Moto's key conditions, limits, cursors, projections and answers are its own; the
    first render of each page runs without this (the raw figure), and `measure` checks that later renders
    asked the same requests, read the same number of items and showed the same orders.
    """

    def __init__(self) -> None:
        from moto.dynamodb.models.table import Table

        self.enabled = False
        self._all: dict[int, tuple[tuple[int, ...], list[Any]]] = {}
        self._partitions: dict[tuple[int, str | None, tuple[str, ...]], dict[Any, list[Any]]] = {}
        self._sorted: dict[tuple[Any, ...], list[Any]] = {}
        query, all_items, sorted_items = Table.query, Table.all_items, Table.sorted_items
        memo = self

        def every_item(table: Any) -> list[Any]:
            if table.range_key_attr:
                ids = tuple(id(i) for by_range in table.items.values() for i in by_range.values())
            else:
                ids = tuple(id(i) for i in table.items.values())
            found = memo._all.get(id(table))
            if found is None or found[0] != ids:  # new, or written to: forget what was derived from it
                memo.forget(id(table))
                found = (ids, all_items_fast(table))
                memo._all[id(table)] = found
            return found[1]

        def all_items_fast(table: Any) -> list[Any]:
            """`all_items`, sorted on the keys' strings when every key is a string: the order moto's
            DynamoType comparisons give (for "S" they compare the strings), 20 times faster."""
            if not table.range_key_attr:
                return all_items(table)
            items = [i for by_range in table.items.values() for i in by_range.values()]
            if not all(i.hash_key.type == "S" and i.range_key and i.range_key.type == "S" for i in items):
                return all_items(table)
            return sorted(items, key=lambda x: (x.hash_key.value, x.range_key.value))

        def partition(table: Any, index: str | None, names: tuple[str, ...], value: Any) -> list[Any]:
            everything = every_item(table)
            key = (id(table), index, names)
            if key not in memo._partitions:
                groups: dict[Any, list[Any]] = {}
                for item in everything:
                    found = [item.hash_key] if index is None else [item.attrs.get(n) for n in names]
                    if all(v is not None and v.type == "S" for v in found):
                        groups.setdefault(tuple(v.value for v in found), []).append(item)
                memo._partitions[key] = groups
            return memo._partitions[key].get(value, [])

        def memo_query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index = args[6] if len(args) > 6 else kwargs.get("index_name")
            conditions = kwargs.get("hash_key_conditions") or []
            if not memo.enabled:
                return query(table, hash_key, *args, **kwargs)
            if index is None and hash_key is not None and hash_key.type == "S":
                subset = partition(table, None, (), (hash_key.value,))
            elif index is not None and conditions and all(v.type == "S" for _, v in conditions):
                names = tuple(n for n, _ in conditions)
                subset = partition(table, index, names, tuple(v.value for _, v in conditions))
            else:
                return query(table, hash_key, *args, **kwargs)
            table.all_items = lambda: list(subset)  # this Query's items: its partition, in moto's order
            try:
                return query(table, hash_key, *args, **kwargs)
            finally:
                del table.all_items

        def memo_sorted_items(
            table: Any, hash_attrs: list[str], range_attrs: list[Any], items: list[Any]
        ) -> Any:
            if not memo.enabled:
                return sorted_items(table, hash_attrs, range_attrs, items)
            key = (id(table), tuple(hash_attrs), tuple(range_attrs), tuple(id(i) for i in items))
            if key not in memo._sorted:
                names = table._generate_attr_to_sort_by(hash_attrs, range_attrs)
                if all(n in i.attrs and i.attrs[n].type == "S" for i in items for n in names):
                    # moto's sort key, on the strings (see `all_items_fast`)
                    ordered = sorted(items, key=lambda x: tuple(x.attrs[n].value for n in names))
                else:
                    ordered = list(sorted_items(table, hash_attrs, range_attrs, list(items)))
                memo._sorted[key] = ordered
            items[:] = memo._sorted[key]
            return items

        Table.query = memo_query  # type: ignore[method-assign]
        Table.sorted_items = memo_sorted_items  # type: ignore[method-assign]

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        self.enabled = True
        try:
            yield
        finally:
            self.enabled = False

    def forget(self, table: int) -> None:
        self._all.pop(table, None)
        for derived in (self._partitions, self._sorted):
            for key in [k for k in derived if k[0] == table]:
                del derived[key]

    def clear(self) -> None:
        self._all.clear()
        self._partitions.clear()
        self._sorted.clear()


def seed_orders(n: int, now: datetime, seed: int) -> Counter[str]:
    """N orders, each the item `OrderModel.batch_write()` would send for the repository's own model
    (`to_model(order, 1).serialize()`: as its first save leaves it), put straight into moto's table
    (`put_item` of its DynamoDB backend, what moto's BatchWriteItem calls per item) without the HTTP round
    trip, which costs moto 0.4 ms an item (40 s of the 100,000). Then the per-status counters to match."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    table = OrderModel.Meta.table_name
    rng = random.Random(seed)
    factory = OrderFactory(rng, now)
    shards: dict[str, Counter[str]] = {}
    statuses: Counter[str] = Counter()
    with quick_item_writes():
        for number, (status, placed, progress) in enumerate(order_plan(n, rng, now)):
            order = factory.order(number, status, placed, progress)
            backend.put_item(table, to_model(order, 1).serialize())
            shards.setdefault(status_shard(order.order_id), Counter())[status.value] += 1
            statuses[status.value] += 1
    stored = sum(1 for pk in backend.get_table(table).items if str(pk.value).startswith("ORDER#"))
    if stored != n:
        raise SystemExit(f"{stored} orders in the table, not {n}")
    # The counters the repository would have moved with each write, set in one update per shard.
    for shard, counts in shards.items():
        StatusCountModel(STATUS_PARTITION, shard).update(
            actions=[getattr(StatusCountModel, s.lower()).set(c) for s, c in counts.items()]
        )
    return statuses


def seed_fixtures(now: datetime, seed: int) -> None:
    """What does not grow with orders: stores, their traffic, reconciliation, carriers, flagged shipments."""
    rng = random.Random(seed)
    connections = DynamoConnectionRepository()
    for i, (channel, store, _) in enumerate(STORES):
        connections.put(
            Connection(
                connection_id=f"conn-{i}",
                channel=channel,
                store=store,
                secret_ref=f"order-hub/bench/connections/conn-{i}",
                created_at=now - timedelta(days=120),
            )
        )
    # Every ten-minute bucket of the last two days (items live two days): the most a store's day query
    # reads (144 buckets), whatever the number of orders. Written in batches, as `record` would leave them
    # (checked below through `traffic()`); one `record` per bucket would cost moto 5 ms each.
    expected: dict[tuple[str, str], int] = {}
    start = bucket_start(now)
    with TrafficModel.batch_write() as batch:
        for channel, store, _ in STORES:
            for k in range(2 * 144):
                bucket = start - BUCKET * k
                received = rng.randint(1, 12)
                if k < 144:
                    expected[(channel, store)] = expected.get((channel, store), 0) + received
                batch.save(
                    TrafficModel(
                        traffic_pk(channel, store),
                        f"B#{bucket.isoformat()}",
                        received=received,
                        duplicates=1 if k % 7 == 0 else None,
                        rejected=1 if k % 31 == 0 else None,
                        throttled=1 if channel == "amazon" and k % 50 == 0 else None,
                        last_event_at=min(now, bucket + timedelta(minutes=rng.uniform(0, 9))),
                        expires_at=bucket + TRAFFIC_KEPT,
                    )
                )
    for (channel, store), received in expected.items():
        day = DynamoTrafficStats().traffic(channel, store, now).day["received"]
        if day != received:
            raise SystemExit(f"traffic seeded for {store} reads back as {day}, not {received}")
    # A reconciliation run per store every hour for the last 30 hours (the page reads the newest 100).
    recon = DynamoReconciliationStore()
    for hour in range(30):
        started = now - timedelta(hours=hour, minutes=5)
        for channel, store, _ in STORES:
            recon.save_report(
                ReconciliationReport(
                    channel=channel,
                    store=store,
                    started_at=started,
                    window_from=started - timedelta(hours=2),
                    finished_at=started + timedelta(seconds=40),
                    seen=rng.randint(5, 60),
                    in_sync=rng.randint(5, 60),
                )
            )
    fulfilment = DynamoFulfilmentStore()
    for carrier in CARRIERS:
        for country in COUNTRIES:
            for _ in range(3):
                fulfilment.record_delivery(carrier, country, rng.random() < 0.9)
    for i in range(8):
        fulfilment.flag_shipment(f"ord_flagged_{i}", "s1", ["late"], now - timedelta(hours=i))


# ---------------------------------------------------------------------------------------------- recording


@dataclass
class Call:
    service: str
    operation: str
    request: bytes
    status: int
    response: bytes
    seconds: float


class Recorder:
    """Times every AWS call where moto answers it; records request and answer for the work figures."""

    def __init__(self) -> None:
        self.active = False
        self.calls: list[Call] = []
        original = BotocoreStubber.process_request
        recorder = self

        def process_request(stubber: Any, request: Any) -> Any:
            if not recorder.active:
                return original(stubber, request)
            started = time.perf_counter()
            answer = original(stubber, request)
            elapsed = time.perf_counter() - started
            body = request.body or b""
            body = body.encode() if isinstance(body, str) else bytes(body)
            status, raw = (answer[0], answer[2]) if answer is not None else (0, b"")
            raw = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
            path, _, query = request.url.partition("?")
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
            service, operation = classify(request.method, headers, path, query, body)
            recorder.calls.append(Call(service, operation, body, status, raw, elapsed))
            return answer

        BotocoreStubber.process_request = process_request  # type: ignore[method-assign]

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Call]]:
        self.calls = []
        self.active = True
        try:
            yield self.calls
        finally:
            self.active = False


@dataclass
class QueryWork:
    label: str
    items_read: int
    items_returned: int
    bytes_read: int
    units: float


@dataclass
class Work:
    requests: Counter[str] = field(default_factory=Counter)  # "dynamodb Query", "sqs GetQueueAttributes"
    items_read: int = 0
    items_returned: int = 0
    bytes_read: int = 0  # DynamoDB item sizes of what was read
    wire_bytes: int = 0  # answers' bodies, as sent back
    units: float = 0.0
    queries: list[QueryWork] = field(default_factory=list)

    def dynamodb_requests(self) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith("dynamodb "))

    def sqs_requests(self) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith("sqs "))

    def key(self) -> tuple[Any, ...]:
        """What must not change with the table's size (item sizes may: other orders are read)."""
        return (
            tuple(sorted(self.requests.items())),
            tuple((q.label, q.items_read, q.items_returned) for q in self.queries),
        )


_NAME = re.compile(r"#[A-Za-z0-9_]+")


def _unprojected(body: dict[str, Any]) -> dict[str, Any]:
    """The same read without a projection: what DynamoDB reads (and bills) for it."""
    params = {k: v for k, v in body.items() if k not in ("ProjectionExpression", "AttributesToGet", "Select")}
    names = params.get("ExpressionAttributeNames")
    if names:
        used = set()
        for expression in ("KeyConditionExpression", "FilterExpression", "ConditionExpression"):
            used |= set(_NAME.findall(params.get(expression) or ""))
        kept = {k: v for k, v in names.items() if k in used}
        if kept:
            params["ExpressionAttributeNames"] = kept
        else:
            params.pop("ExpressionAttributeNames")
    return params


def _label(body: dict[str, Any]) -> str:
    values = [v.get("S") for v in (body.get("ExpressionAttributeValues") or {}).values() if "S" in v]
    where = body.get("IndexName") or "table"
    condition = body.get("KeyConditionExpression") or ""
    partition = values[0] if values else "?"
    extra = " + sort-key range" if " AND " in condition.upper() else ""
    limit = f", limit {body['Limit']}" if "Limit" in body else ""
    page = ", from a cursor" if "ExclusiveStartKey" in body else ""
    return f"{where} {partition}{extra}{limit}{page}"


def work_of(calls: list[Call], ddb: Any) -> Work:
    work = Work()
    for call in calls:
        work.requests[f"{call.service} {call.operation}"] += 1
        work.wire_bytes += len(call.response)
        if call.service != "dynamodb" or call.operation not in ("Query", "GetItem", "Scan"):
            continue
        body = json.loads(call.request or b"{}")
        answer = json.loads(call.response or b"{}") if call.status == 200 else {}
        if call.operation == "GetItem":
            items = [answer["Item"]] if answer.get("Item") else []
        else:
            items = answer.get("Items", [])
        returned = len(items)
        scanned = int(answer.get("ScannedCount", returned))
        if _unprojected(body) != body:  # size what DynamoDB read, not the attributes it sent back
            full = getattr(ddb, "get_item" if call.operation == "GetItem" else call.operation.lower())(
                **_unprojected(body)
            )
            items = full.get("Items", [])
            if call.operation == "GetItem":
                items = [full["Item"]] if full.get("Item") else []
        size = sum(item_size(i) for i in items)
        if items and scanned > len(items):  # filtered out: read but not returned, sized like the rest
            size = size * scanned // len(items)
        consistent = bool(body.get("ConsistentRead")) and "IndexName" not in body
        units = read_units(size, consistent=consistent)
        work.items_read += scanned
        work.items_returned += returned
        work.bytes_read += size
        work.units += units
        work.queries.append(QueryWork(_label(body), scanned, returned, size, units))
    return work


# ---------------------------------------------------------------------------------------------- pages


@dataclass
class PageFigures:
    name: str
    path: str
    work: Work
    html_bytes: int
    rows: int
    raw_wall: float  # the first render, moto as it is
    raw_moto: float
    wall: list[float] = field(default_factory=list)  # every render (the first, then with MotoIndex)
    moto: list[float] = field(default_factory=list)
    work_changed: bool = False

    @property
    def hub(self) -> list[float]:
        return [w - m for w, m in zip(self.wall, self.moto, strict=True)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    at = q * (len(ordered) - 1)
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def p95(values: list[float]) -> float:
    return percentile(values, 0.95)


def signature(calls: list[Call]) -> list[tuple[str, str, str, int]]:
    """Each call's operation, target and items read: equal across repeats when the page asks the same."""
    found = []
    for call in calls:
        label, read = "", 0
        if call.service == "dynamodb":
            label = _label(json.loads(call.request or b"{}"))
            read = int(json.loads(call.response or b"{}").get("ScannedCount", 0))
        found.append((call.service, call.operation, label, read))
    return found


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def render(client: Any, recorder: Recorder, path: str) -> tuple[str, float, list[Call]]:
    """One GET of `path`, timed. The collector is paused during it and run after it: moto's garbage
    (it shares this process) is then not collected on the hub's clock."""
    gc.collect()
    gc.disable()
    try:
        with recorder.recording() as calls:
            started = time.perf_counter()
            response = client.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            wall = time.perf_counter() - started
    finally:
        gc.enable()
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code}: {response.body[:300]!r}")
    written = [c.operation for c in calls if c.service == "dynamodb" and c.operation in _WRITES]
    if written:
        raise SystemExit(f"{path} wrote to DynamoDB ({written}): the bench assumes pages only read")
    body = response.body.decode() if isinstance(response.body, bytes) else str(response.body)
    return body, wall, calls


def shown(body: str) -> list[str]:
    return re.findall(r'data-order-id="([^"]+)"', body)


def measure(
    client: Any,
    recorder: Recorder,
    index: MotoIndex,
    ddb: Any,
    tables: TableSwitch,
    *,
    name: str,
    paths: dict[int, str],
    repeat: int,
) -> dict[int, PageFigures]:
    """One page at every size, `repeat` renders each, the sizes taking turns in alternating order (so they
    see the same machine and process). The first render on moto as it is (the work figures and the raw
    time), the others with `MotoIndex` on, each checked to ask the same requests, read as many items and
    show the same orders. The hub's own time (wall time minus the time inside moto) is taken from all."""
    figures: dict[int, PageFigures] = {}
    expected: dict[int, tuple[Any, list[str]]] = {}
    for n, path in paths.items():
        tables.use(n)
        body, wall, calls = render(client, recorder, path)
        expected[n] = (signature(calls), shown(body))
        moto = sum(c.seconds for c in calls)
        with index.on():  # the replays that size projected reads need not walk the table again
            work = work_of(calls, ddb)
        figures[n] = PageFigures(
            name,
            path,
            work,
            len(body.encode()),
            len(expected[n][1]),
            raw_wall=wall,
            raw_moto=moto,
            wall=[wall],
            moto=[moto],
        )
    with index.on():
        for turn in range(repeat - 1):
            order = list(paths.items())
            for n, path in order if turn % 2 else reversed(order):  # each size as often first as second
                tables.use(n)
                body, wall, calls = render(client, recorder, path)
                if (signature(calls), shown(body)) != expected[n]:
                    figures[n].work_changed = True
                figures[n].wall.append(wall)
                figures[n].moto.append(sum(c.seconds for c in calls))
    return figures


def next_page(client: Any, path: str) -> str:
    body = client.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).body.decode()
    found = re.search(r'rel="next" href="([^"]+)"', body)
    if not found:
        raise SystemExit(f"{path}: no next page link")
    return html.unescape(found.group(1))


# ---------------------------------------------------------------------------------------------- one size


@dataclass
class SizeFigures:
    orders: int
    seed_seconds: float
    pages: list[PageFigures]
    statuses: dict[str, int]


def reset_process_caches() -> None:
    get_settings.cache_clear()
    aws.client.cache_clear()
    order_repository.transaction_connection.cache_clear()
    composition.override(None)


class TableSwitch:
    """One table per size in the same moto; the models point at one of them at a time. Each table keeps its
    PynamoDB connections (a new one builds a botocore client: not the page's cost)."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, type], Any] = {}
        self.current: str | None = None

    @staticmethod
    def name(n: int) -> str:
        return f"{resources.TABLE.name}-{n}"

    def use(self, n: int) -> None:
        name = self.name(n)
        if name == self.current:
            return
        for model in models.MODELS:
            if self.current is not None and model._connection is not None:
                self._connections[(self.current, model)] = model._connection
            model.Meta.table_name = name
            model._connection = self._connections.get((name, model))
        self.current = name


def run(sizes: list[int], repeat: int, recorder: Recorder, index: MotoIndex, seed: int) -> list[SizeFigures]:
    from chalice.test import Client

    from app import app

    with mock_aws():
        reset_process_caches()
        ddb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        for spec in resources.QUEUES:
            url, dlq_url = create_queue(sqs, spec, None)
            os.environ[spec.env_var], os.environ[spec.dlq_env_var] = url, dlq_url
        get_settings.cache_clear()
        services = composition.build(get_settings())
        # The page's clock stays at the seeding time: the day of traffic buckets and the stuck cut-offs it
        # reads then do not move while the bench runs (a ten-minute bucket would leave the window).
        now = datetime.now(UTC)
        services.now = lambda: now
        composition.override(services)
        tables = TableSwitch()
        seeded: dict[int, tuple[float, dict[str, int]]] = {}
        second_pages: dict[int, str] = {}
        with Client(app) as client:
            for n in sizes:
                started = time.perf_counter()
                create_table(ddb, dataclasses.replace(resources.TABLE, name=tables.name(n)))
                tables.use(n)
                seed_fixtures(now, seed)
                fixtures_seconds = time.perf_counter() - started
                for path in ("/status", "/status/orders", "/status/orders?status=PAID"):
                    render(client, recorder, path)  # first use: clients, connections (not measured)
                started = time.perf_counter()
                gc.disable()  # seeding allocates millions of objects and frees almost none
                try:
                    statuses = seed_orders(n, now, seed)
                finally:
                    gc.enable()
                seed_seconds = fixtures_seconds + time.perf_counter() - started
                counted = {k: v for k, v in status_counts().items() if v}
                if counted != dict(statuses):
                    raise SystemExit(f"{n}: the status counters disagree with the orders: {counted}")
                second_pages[n] = next_page(client, "/status/orders")
                seeded[n] = (seed_seconds, dict(statuses))
                print(f"{n:,} orders seeded in {seed_seconds:.0f} s", file=sys.stderr)
            gc.collect()
            gc.freeze()

            started = time.perf_counter()
            pages: dict[int, list[PageFigures]] = {n: [] for n in sizes}
            for name, paths in (
                ("overview `/status`", dict.fromkeys(sizes, "/status")),
                ("order list `/status/orders`", dict.fromkeys(sizes, "/status/orders")),
                ("order list, next page (cursor)", second_pages),
                ("order list `?status=PAID`", dict.fromkeys(sizes, "/status/orders?status=PAID")),
            ):
                figures = measure(client, recorder, index, ddb, tables, name=name, paths=paths, repeat=repeat)
                for n, page in figures.items():
                    pages[n].append(page)
                hubs = ", ".join(f"{1000 * statistics.median(f.hub):.1f}" for f in figures.values())
                raws = ", ".join(f"{f.raw_wall:.1f}" for f in figures.values())
                at = time.perf_counter() - started
                print(f"  {name}: hub p50 {hubs} ms, raw on moto {raws} s (at {at:.0f} s)", file=sys.stderr)
        composition.override(None)
        index.clear()
    gc.unfreeze()
    gc.collect()
    return [SizeFigures(n, seeded[n][0], pages[n], seeded[n][1]) for n in sizes]


# ---------------------------------------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _requests(work: Work) -> str:
    return ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in sorted(work.requests.items()))


def report(sizes: list[SizeFigures], repeat: int) -> str:
    out = [
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; "
        f"{repeat} renders per page (the first on moto as it is, the others with MotoIndex); times in ms",
        "",
        "### Work per page (what DynamoDB and SQS are asked; what latency and cost follow on AWS)",
        "",
    ]
    rows = []
    for size in sizes:
        for page in size.pages:
            w = page.work
            rows.append(
                [
                    f"{size.orders:,}",
                    page.name,
                    _requests(w),
                    f"{w.items_read} / {w.items_returned}",
                    f"{w.units:g}",
                    f"{w.bytes_read / 1024:.1f}",
                    f"{w.wire_bytes / 1024:.1f}",
                    f"{page.html_bytes / 1024:.1f}",
                    str(page.rows),
                ]
            )
    header = ["orders stored", "page", "requests", "items read / returned", "RRU", "KB read"]
    out += table([*header, "KB answered", "HTML KB", "order rows"], rows)
    out += ["", "### Time per page", ""]
    rows = []
    for size in sizes:
        for page in size.pages:
            hub, moto = page.hub, page.moto
            modelled = (
                1000 * statistics.median(hub)
                + page.work.dynamodb_requests() * DYNAMODB_MS
                + page.work.sqs_requests() * SQS_MS
            )
            rows.append(
                [
                    f"{size.orders:,}",
                    page.name,
                    " / ".join(f"{1000 * v:.1f}" for v in (min(hub), statistics.median(hub), p95(hub))),
                    f"{1000 * page.raw_wall:,.0f} ({1000 * page.raw_moto:,.0f})",
                    f"{1000 * statistics.median(moto):,.0f}",
                    f"{modelled:.0f}",
                ]
            )
    header = ["orders stored", "page", "hub's own time min / p50 / p95", "raw wall time on moto (in moto)"]
    out += table([*header, "in moto p50 (MotoIndex after the 1st)", "modelled on AWS"], rows)
    out += ["", "### Flatness (largest size against smallest)", ""]
    smallest, largest = sizes[0], sizes[-1]
    for small, large in zip(smallest.pages, largest.pages, strict=True):
        same = small.work.key() == large.work.key()
        ratio = statistics.median(large.hub) / statistics.median(small.hub)
        varied = small.work_changed or large.work_changed
        changed = " (the requests or orders shown varied between renders!)" if varied else ""
        verdict = "same requests, same items read" if same else "DIFFERENT requests or items read"
        out.append(
            f"- {small.name}: {verdict}"
            f" ({small.work.items_read} → {large.work.items_read} items, "
            f"{small.work.units:g} → {large.work.units:g} RRU); hub time p50 ×{ratio:.2f}"
            f" ({1000 * statistics.median(small.hub):.1f} → {1000 * statistics.median(large.hub):.1f} ms),"
            f" min ×{min(large.hub) / min(small.hub):.2f};"
            f" raw wall time on moto ×{large.raw_wall / small.raw_wall:.1f}{changed}"
        )
    out += ["", "### The overview's requests, one by one (items read; same order at every size)", ""]
    rows = []
    per_size = [s.pages[0].work.queries for s in sizes]
    for i, query in enumerate(per_size[-1]):
        cells = []
        for queries in per_size:
            q = queries[i] if i < len(queries) else None
            cells.append(f"{q.items_read} ({q.bytes_read / 1024:.1f} KB)" if q else "–")
        rows.append([query.label, *cells])
    out += table(["request", *[f"{s.orders:,} orders" for s in sizes]], rows)
    out += ["", "Orders by status at each size: "]
    for size in sizes:
        out.append(
            f"- {size.orders:,} (seeded in {size.seed_seconds:.0f} s): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(size.statuses.items(), key=lambda kv: -kv[1]))
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sizes = run(args.orders, args.repeat, Recorder(), MotoIndex(), args.seed)
    print(report(sizes, args.repeat))
    if args.json is not None:
        raw = [
            {
                "orders": s.orders,
                "seed_seconds": s.seed_seconds,
                "statuses": s.statuses,
                "pages": [
                    {
                        "name": p.name,
                        "path": p.path,
                        "requests": dict(p.work.requests),
                        "items_read": p.work.items_read,
                        "items_returned": p.work.items_returned,
                        "bytes_read": p.work.bytes_read,
                        "wire_bytes": p.work.wire_bytes,
                        "read_units": p.work.units,
                        "queries": [q.__dict__ for q in p.work.queries],
                        "html_bytes": p.html_bytes,
                        "rows": p.rows,
                        "raw_wall_seconds": p.raw_wall,
                        "raw_moto_seconds": p.raw_moto,
                        "wall_seconds": p.wall,
                        "moto_seconds": p.moto,
                        "work_changed_between_repeats": p.work_changed,
                    }
                    for p in s.pages
                ],
            }
            for s in sizes
        ]
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
