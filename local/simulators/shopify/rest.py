"""The REST Admin API subset: routes, and GET orders.json with Link-header cursor pagination."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from local.simulators.shopify.records import REST_THROTTLED, ApiReply
from local.simulators.shopify.shop import Shop
from local.simulators.shopify.values import STATUS, decode_cursor, encode_cursor, utc_text

STATUS_TEXT = {
    429: REST_THROTTLED,
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


_API_PATH = re.compile(
    r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/"
    r"(?:orders(?:/(?P<id>\d+)(?P<refunds>/refunds)?)?|(?P<graphql>graphql))\.json$"
)


def route_of(path: str) -> tuple[str, str, int | None] | None:
    """(kind, api version, order id) of an Admin API path: kind is order, refunds, orders or graphql."""
    match = _API_PATH.match(path)
    if match is None:
        return None
    if match.group("graphql"):
        return "graphql", match.group("version"), None
    if match.group("id") is None:
        return "orders", match.group("version"), None
    kind = "refunds" if match.group("refunds") else "order"
    return kind, match.group("version"), int(match.group("id"))


_LIST_FILTERS = ("status", "updated_at_min", "updated_at_max", "created_at_min", "created_at_max", "since_id")


_PAGE_PARAMS = frozenset({"page_info", "limit", "fields"})


class _BadRequest(ValueError):
    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors


def list_orders(sim: Shop, params: dict[str, str], version: str, base_url: str) -> ApiReply:
    """Orders newest first (created_at, then id); `page_info` carries the filters, as Shopify's does."""
    try:
        limit, cursor = _page_request(params)
        filters = cursor["filters"]
        matching = sorted((o for o in sim.orders() if _rest_match(o, filters)), key=_rest_key, reverse=True)
    except _BadRequest as exc:
        return ApiReply(400, {"errors": exc.errors})
    except ValueError as exc:
        return ApiReply(400, {"errors": str(exc)})
    keys = [_rest_key(o) for o in matching]
    if cursor.get("before") is not None:
        page = [o for o, k in zip(matching, keys, strict=True) if k > tuple(cursor["before"])][-limit:]
    elif cursor.get("after") is not None:
        page = [o for o, k in zip(matching, keys, strict=True) if k < tuple(cursor["after"])][:limit]
    else:
        page = matching[:limit]
    links = []
    if page and _rest_key(page[0]) < keys[0]:
        previous = {"filters": filters, "before": _rest_key(page[0])}
        links.append(_link(base_url, version, limit, previous, "previous"))
    if page and _rest_key(page[-1]) > keys[-1]:
        links.append(
            _link(base_url, version, limit, {"filters": filters, "after": _rest_key(page[-1])}, "next")
        )
    fields = [f for f in params.get("fields", "").split(",") if f]
    body = [{k: o[k] for k in fields if k in o} if fields else o for o in page]
    return ApiReply(200, {"orders": body}, {"Link": ", ".join(links)} if links else {})


def _page_request(params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """The page size and the cursor ({filters, after | before}) a list request asks for."""
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise _BadRequest({"limit": ["must be a number"]}) from None
    if not 1 <= limit <= 250:
        raise _BadRequest({"limit": ["must be between 1 and 250"]})
    if "page_info" not in params:
        cursor: dict[str, Any] = {"filters": {k: params[k] for k in _LIST_FILTERS if k in params}}
    elif extra := sorted(set(params) - _PAGE_PARAMS):
        message = f"cannot be combined with {', '.join(extra)}: only limit and fields may go with it"
        raise _BadRequest({"page_info": [message]})
    else:
        try:
            cursor = decode_cursor(params["page_info"])
            if not isinstance(cursor.get("filters"), dict):
                raise ValueError("no filters")
        except ValueError:
            raise _BadRequest({"page_info": ["Invalid value."]}) from None
    if cursor["filters"].get("status", "open") not in STATUS:
        raise _BadRequest({"status": [f"must be one of {', '.join(STATUS)}"]})
    return limit, cursor


def _rest_key(order: Mapping[str, Any]) -> tuple[str, int]:
    return utc_text(order["created_at"]), int(order["id"])


def _rest_match(order: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    bounds = [
        ("updated_at", filters.get("updated_at_min"), filters.get("updated_at_max")),
        ("created_at", filters.get("created_at_min"), filters.get("created_at_max")),
    ]
    in_range = all(
        (low is None or utc_text(order[name]) >= utc_text(low))
        and (high is None or utc_text(order[name]) <= utc_text(high))
        for name, low, high in bounds
    )
    since_id = filters.get("since_id")
    in_status = STATUS[filters.get("status", "open")](order)
    return in_status and in_range and (since_id is None or int(order["id"]) > int(since_id))


def _link(base_url: str, version: str, limit: int, cursor: Mapping[str, Any], rel: str) -> str:
    query = urlencode({"limit": limit, "page_info": encode_cursor(cursor)})
    return f'<{base_url}/admin/api/{version}/orders.json?{query}>; rel="{rel}"'
