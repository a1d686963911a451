"""The returns mutations of the GraphQL subset (returnRequest, returnCreate, returnApproveRequest,
returnDeclineRequest, returnClose, returnProcess) and the `return(id:)` query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.simulators.shopify.records import MutationRejected
from local.simulators.shopify.returns import approve, close, decline, gql_return, open_return, process
from local.simulators.shopify.shop import Shop
from local.simulators.shopify.values import legacy_id_of


def _object(args: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = args.get(name)
    return value if isinstance(value, dict) else {}


def _m_return_request(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _object(args, "input")
    order_id = legacy_id_of(given.get("orderId"), "Order") or 0
    with sim._lock:
        return {"return": gql_return(open_return(sim, order_id, given.get("returnLineItems"), "REQUESTED"))}


def _m_return_create(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _object(args, "returnInput")
    order_id = legacy_id_of(given.get("orderId"), "Order") or 0
    with sim._lock:
        return {"return": gql_return(open_return(sim, order_id, given.get("returnLineItems"), "OPEN"))}


def _m_return_approve(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _object(args, "input")
    with sim._lock:
        return {"return": gql_return(approve(sim, given.get("id")))}


def _m_return_decline(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = _object(args, "input")
    reason, note = str(given.get("declineReason") or "OTHER"), given.get("declineNote")
    with sim._lock:
        return {"return": gql_return(decline(sim, given.get("id"), reason, note))}


def _m_return_close(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    with sim._lock:
        return {"return": gql_return(close(sim, args.get("id")))}


def _m_return_process(sim: Shop, args: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    given = args.get("input")
    if not isinstance(given, dict):
        raise MutationRejected(["input"], "input is required", "BLANK")
    with sim._lock:
        return process(sim, given, key)


RETURN_MUTATIONS = {
    "returnRequest": _m_return_request,
    "returnCreate": _m_return_create,
    "returnApproveRequest": _m_return_approve,
    "returnDeclineRequest": _m_return_decline,
    "returnClose": _m_return_close,
    "returnProcess": _m_return_process,
}


def return_node(sim: Shop, return_id: int) -> dict[str, Any] | None:
    """The `return(id:)` query's node (null when unknown)."""
    with sim._lock:
        found = sim._returns.get(return_id)
        return gql_return(found) if found is not None else None
