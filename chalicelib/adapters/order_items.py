"""An order's items in the single table: one small order item and one item per entry of its growing lists.

Partition `ORDER#<order id>`:
- `ORDER`: the canonical order without `history`, `publications` and `returns`, the lists' lengths, the index
  keys, the version, the execution ARN and task tokens. Bounded: what grows lives in the items below.
- `H#<n>`: history entry n (zero-padded, so the items sort in the list's order);
- `P#<n>`: outbox milestone n; `R#<n>`: return n.
Only the first `lists[name]` entries of each list are the order's: an entry item past the length (a lost
write's leftover) is never read and is overwritten by the next entry at that position. The order's other
items in the partition (`TOKEN#...`, fulfilment_store.py) sort after `R$` and are not part of it.

Reading an order is one Query of the sort-key range [H#, R$]. Saving compares the new images with the ones
read (or written) at the expected version and writes only what changed (order_repository.py).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import Any

from chalicelib.domain.order import Order

ORDER_SK = "ORDER"
# The order's lists kept as items, by the prefix of their sort keys.
LISTS = {"history": "H", "publications": "P", "returns": "R"}
FIRST_SK, LAST_SK = "H#", "R$"  # "H#..." < "ORDER" < "P#..." < "R#..." < "R$" < "TOKEN#..."
_POSITION_DIGITS = 6


def order_pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def entry_sk(prefix: str, position: int) -> str:
    return f"{prefix}#{position:0{_POSITION_DIGITS}d}"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Images:
    """What one version of an order is stored as: the order item's document and index attributes, and each
    list entry's item body (canonical JSON, so that equal means unchanged)."""

    document: str
    attributes: dict[str, str | None]
    entries: dict[str, str]
    lengths: dict[str, int]
    # False for an item in the old layout (every list inside its document): the next save rewrites it all.
    split: bool = True
    execution_arn: str | None = field(default=None, compare=False)


# The order item's attributes besides its document, lengths, version, ARN and tokens.
INDEX_ATTRIBUTES = (
    "status",
    "channel",
    "store",
    "external_id",
    *(f"gsi{n}{part}" for n in range(1, 6) for part in ("pk", "sk")),
)


def progress_at(order: Order) -> datetime:
    return order.history[-1].at if order.history else order.updated_at


def index_attributes(order: Order, entered_status: str | None = None) -> dict[str, str | None]:
    """The order item's attributes besides its document: what the indexes key on and project.
    `entered_status`: the by-status sort key kept while the status does not move."""
    placed = order.placed_at.isoformat()
    pending = [p.created_at for p in order.publications if p.status == "pending"]
    return {
        "status": order.status.value,
        "channel": order.channel,
        "store": order.store,
        "external_id": order.external_id,
        "gsi1pk": f"CHANNEL#{order.channel}#{order.external_id}",
        "gsi1sk": order.store,
        "gsi2pk": f"STATUS#{order.status.value}",
        # By status, ordered by when the order entered it (what "stuck" measures).
        "gsi2sk": entered_status or f"{progress_at(order).isoformat()}#{order.order_id}",
        "gsi3pk": f"STORE#{order.channel}#{order.store}",
        "gsi3sk": f"{placed}#{order.order_id}",
        "gsi4pk": "ORDERS",
        "gsi4sk": f"{placed}#{order.order_id}",
        # Present only while the outbox has pending milestones (a sparse index).
        "gsi5pk": "PUBPENDING" if pending else None,
        "gsi5sk": f"{min(pending).isoformat()}#{order.order_id}" if pending else None,
    }


def images(order: Order, before: Images | None = None) -> Images:
    """The images of `order` as it is now; `before` (the stored version it replaces) keeps the by-status
    sort key while the status does not move."""
    data = order.to_json()
    entries: dict[str, str] = {}
    lengths: dict[str, int] = {}
    for name, prefix in LISTS.items():
        values = data.pop(name)
        lengths[name] = len(values)
        entries.update((entry_sk(prefix, n), canonical(v)) for n, v in enumerate(values))
    kept = None
    if before is not None and before.attributes.get("status") == order.status.value:
        kept = before.attributes.get("gsi2sk")
    return Images(canonical(data), index_attributes(order, kept), entries, lengths)


def read(main: dict[str, Any], bodies: dict[str, Any]) -> tuple[Order, Images]:
    """The order and its stored images from its order item (`document`, `lists`, index attributes) and its
    entry items' bodies by sort key. An old-layout item (no `lists`) carries every list in its document."""
    document = dict(main["document"])
    lengths = main.get("lists")
    if lengths is not None:
        for name, prefix in LISTS.items():
            document[name] = [bodies[entry_sk(prefix, n)] for n in range(int(lengths.get(name, 0)))]
    order = Order.model_validate(document)
    stored = images(order)
    attributes = {name: main.get(name) for name in stored.attributes}
    return order, Images(
        stored.document,
        attributes,
        stored.entries,
        stored.lengths,
        split=lengths is not None,
        execution_arn=main.get("execution_arn"),
    )


@dataclass(frozen=True)
class Changes:
    document: bool
    attributes: dict[str, str | None]  # to set (None: remove)
    puts: dict[str, str]  # entry items to write
    deletes: list[str]  # entry items no list holds any more
    lengths: bool

    @property
    def none(self) -> bool:
        return not (self.document or self.attributes or self.puts or self.deletes or self.lengths)


def changes(before: Images | None, after: Images) -> Changes:
    if before is None or not before.split:
        return Changes(True, dict(after.attributes), dict(after.entries), [], True)
    return Changes(
        document=before.document != after.document,
        attributes={k: v for k, v in after.attributes.items() if before.attributes.get(k) != v},
        puts={sk: body for sk, body in after.entries.items() if before.entries.get(sk) != body},
        deletes=sorted(set(before.entries) - set(after.entries)),
        lengths=before.lengths != after.lengths,
    )


class Snapshots:
    """The images of the versions this process read or wrote, by (order id, version): a version is one
    stored state, so a save at that expected version can compare against it without reading. Bounded."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[str, int], Images] = OrderedDict()
        self._lock = Lock()

    def get(self, order_id: str, version: int) -> Images | None:
        with self._lock:
            return self._kept.get((order_id, version))

    def put(self, order_id: str, version: int, stored: Images) -> None:
        with self._lock:
            self._kept[(order_id, version)] = stored
            self._kept.move_to_end((order_id, version))
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def moved(self, order_id: str, old: int, new: int, execution_arn: str | None = None) -> None:
        """The order item's version moved on without its images changing (an ARN or a token was set)."""
        with self._lock:
            kept = self._kept.get((order_id, old))
        if kept is not None:
            if execution_arn is not None:
                kept = Images(
                    kept.document,
                    kept.attributes,
                    kept.entries,
                    kept.lengths,
                    kept.split,
                    execution_arn,
                )
            self.put(order_id, new, kept)
