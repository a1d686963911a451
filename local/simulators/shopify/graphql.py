"""The GraphQL Admin API subset, matched by regular expressions (what is supported is listed below)."""

from __future__ import annotations

import copy
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from local.simulators.shopify.mutations import MUTATIONS
from local.simulators.shopify.nodes import gql_cursor, gql_node
from local.simulators.shopify.records import (
    FINAL_CAPTURE_SINCE,
    FULFILLMENT_CREATE_SINCE,
    IDEMPOTENT_REQUIRED_SINCE,
    REFUND_METHOD_SINCE,
    ApiReply,
    CaptureRejected,
    MutationRejected,
)
from local.simulators.shopify.return_mutations import RETURN_MUTATIONS, return_node
from local.simulators.shopify.shop import Shop
from local.simulators.shopify.values import STATUS, decode_cursor, legacy_id_of, utc_text, version_at_least

# --- GraphQL: a regex-matched subset -----------------------------------------------------------------
# Supported, arguments given inline or as $variables (one operation per document):
# - `orders(first: N, after: "...", query: "...", sortKey: ID|CREATED_AT|UPDATED_AT, reverse: true|false)`.
#   The search query understands `updated_at:` and `created_at:` with > >= < <= (quoted or bare ISO 8601
#   values), `status:open|closed|cancelled|any`, and AND. Every node carries id, legacyResourceId, name,
#   email, phone, createdAt, updatedAt, cancelledAt, cancelReason, closedAt, displayFinancialStatus,
#   displayFulfillmentStatus, currencyCode, taxesIncluded, paymentGatewayNames, the MoneyBags
#   totalPriceSet subtotalPriceSet totalTaxSet totalDiscountsSet totalOutstandingSet
#   totalShippingPriceSet currentTotalPriceSet, `customer { id legacyResourceId firstName lastName
#   defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } }`, billingAddress and
#   shippingAddress (MailingAddress: firstName lastName name company address1 address2 city province
#   provinceCode zip country countryCodeV2 phone), `lineItems { nodes { id title variantTitle name sku
#   quantity currentQuantity originalUnitPriceSet discountAllocations { allocatedAmountSet
#   discountApplication { index } } taxLines { title rate ratePercentage channelLiable priceSet } } }`,
#   `shippingLines { nodes { id title code source isRemoved originalPriceSet discountedPriceSet
#   discountAllocations taxLines } }` and `refunds` (as below); edges carry cursor; pageInfo carries
#   hasNextPage, hasPreviousPage, startCursor, endCursor. Cost: 2 + first requested, 2 + nodes actual.
# - `order(id: "gid://shopify/Order/N")`: null when unknown, else the node above plus `risk
#   { recommendation assessments { riskLevel facts provider } }` and `transactions` (OrderTransaction:
#   id kind status gateway createdAt manuallyCapturable multiCapturable errorCode amountSet
#   parentTransaction { id kind }). Cost: 1, plus 1 each when risk or transactions are selected.
# - `mutation { orderCapture(input: {id parentTransactionId amount currency finalCapture}) }` answering
#   { transaction userErrors { field message } }; finalCapture only from API version 2024-07. Cost: 10.
# - The order node also carries presentmentCurrencyCode, canMarkAsPaid, `fulfillments` (Fulfillment: id
#   status displayStatus trackingInfo { company number url } events { nodes } fulfillmentLineItems
#   { nodes { id quantity lineItem { id } } }), `fulfillmentOrders { nodes { id status assignedLocation
#   { location { id } } lineItems { nodes { id totalQuantity remainingQuantity lineItem { id } } } } }` and
#   `refunds` (id legacyResourceId note createdAt totalRefundedSet transactions { nodes { id kind status
#   gateway createdAt amountSet } }); +1 cost each when selected. Connection arguments
#   (first:) are not applied: every node comes back.
# - Publishing mutations, arguments as $variables, each costing 10 and answering Shopify's payloads:
#   fulfillmentCreate(fulfillment:) (2024-10+), fulfillmentEventCreate(fulfillmentEvent:),
#   orderCancel(orderId: reason: refund:|refundMethod: restock: notifyCustomer: staffNote:) answering
#   { job orderCancelUserErrors userErrors } (refundMethod from 2025-07, `refund` required before),
#   refundCreate(input:) @idempotent(key:) (the key is required from 2026-04; a repeated key answers
#   the first result), orderMarkAsPaid(input:).
# - Returns (return_mutations.py, 10 each): returnRequest(input:), returnCreate(returnInput:),
#   returnApproveRequest(input:), returnDeclineRequest(input:), returnClose(id:), returnProcess(input:)
#   answering { return userErrors { field message code } }; `return(id:)` (cost 2) answers the Return with
#   returnLineItems (processedQuantity unprocessedQuantity fulfillmentLineItem { lineItem }),
#   reverseFulfillmentOrders { lineItems { dispositions } } and refunds.
# The selection set is not read otherwise: every object carries all the fields listed.

_GQL_ORDERS = re.compile(r"\borders\s*\(([^)]*)\)", re.S)


_GQL_ORDER = re.compile(r"\border\s*\(([^)]*)\)", re.S)


_GQL_CAPTURE = re.compile(r"\borderCapture\s*\(\s*input\s*:\s*(\$\w+|\{[^}]*\})\s*\)", re.S)


_GQL_ARG = re.compile(r'(\w+)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|[\w.-]+)')


_CAPTURE_INPUT = ("id", "parentTransactionId", "amount", "currency", "finalCapture")


_CAPTURE_COST = 10


_GQL_TERM = re.compile(r"^(?P<field>updated_at|created_at):(?P<op><=|>=|<|>)?['\"]?(?P<value>[^'\"]+)['\"]?$")


_GQL_SORT = {"ID": "id", "CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}


def answer_graphql(sim: Shop, body: bytes, version: str) -> ApiReply:
    try:
        request = json.loads(body)
        query, variables = str(request["query"]), dict(request.get("variables") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiReply(400, {"errors": {"query": "Required parameter missing or invalid"}})
    if _GQL_CAPTURE.search(query):
        return _gql_order_capture(sim, query, variables, version)
    mutation = _GQL_MUTATION.search(query) if _GQL_IS_MUTATION.match(query) else None
    if mutation is not None:
        return _gql_mutation(
            sim, mutation.group(1), mutation.group(2), query, variables=variables, version=version
        )
    if _GQL_RETURN.search(query):
        return _gql_return_query(sim, query, variables)
    if _GQL_ORDER.search(query):
        return _gql_order_query(sim, query, variables)
    return _gql_orders(sim, query, variables)


_GQL_RETURN = re.compile(r"\breturn\s*\(([^)]*)\)", re.S)


def _gql_return_query(sim: Shop, query: str, variables: Mapping[str, Any]) -> ApiReply:
    """`return(id: "gid://shopify/Return/N")`: the Return (null when unknown). Cost: 2."""
    match = _GQL_RETURN.search(query)
    raw_id = _gql_object(match.group(1), variables).get("id") if match else None
    return_id = legacy_id_of(raw_id, "Return")
    if return_id is None:
        error = {
            "message": f"Invalid global id '{raw_id}'",
            "extensions": {"code": "argumentLiteralsIncompatible"},
        }
        return ApiReply(200, {"errors": [error]})
    level, throttled = _gql_throttled(sim, 2)
    if throttled is not None:
        return throttled
    data = {"return": return_node(sim, return_id)}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, 2, 2, level)})


def _gql_throttled(sim: Shop, requested: int, *, mutation: bool = False) -> tuple[float, ApiReply | None]:
    """Take a query's requested cost from the bucket: the level after, or Shopify's THROTTLED answer."""
    forced = sim._throttles.take(lambda queued: mutation or queued.scope is None) is not None
    allowed, level = (False, sim.graphql_bucket.size) if forced else sim.graphql_bucket.take(requested)
    if allowed:
        return level, None
    error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
    return level, ApiReply(200, {"errors": [error], "extensions": _gql_cost(sim, requested, None, level)})


def _gql_orders(sim: Shop, query: str, variables: Mapping[str, Any]) -> ApiReply:
    try:
        args = _gql_arguments(query, variables)
        first = int(args["first"])
        if not 1 <= first <= 250:
            raise ValueError("first must be between 1 and 250")
        sort = _GQL_SORT[str(args.get("sortKey", "ID"))]
        predicate = _gql_filter(str(args.get("query") or ""))
        after = decode_cursor(str(args["after"])) if args.get("after") else None
    except (ValueError, KeyError, TypeError) as exc:
        return ApiReply(200, {"errors": [{"message": f"unsupported by the simulator: {exc}"}]})
    requested = 2 + first
    level, throttled = _gql_throttled(sim, requested)
    if throttled is not None:
        return throttled

    def key(order: Mapping[str, Any]) -> tuple[str, int]:
        return (utc_text(order[sort]) if sort != "id" else f"{int(order['id']):020d}"), int(order["id"])

    reverse = args.get("reverse") in (True, "true")
    matching = sorted((o for o in sim.orders() if predicate(o)), key=key, reverse=reverse)
    if after is not None:
        mark = (str(after["last_value"]), int(after["last_id"]))
        matching = [o for o in matching if (key(o) < mark if reverse else key(o) > mark)]
    page = matching[:first]
    edges = [{"cursor": gql_cursor(key(o)), "node": gql_node(o)} for o in page]
    level = sim.graphql_bucket.give_back(requested - (2 + len(page)))
    info = {
        "hasNextPage": len(matching) > first,
        "hasPreviousPage": after is not None,
        "startCursor": edges[0]["cursor"] if edges else None,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    data = {"orders": {"edges": edges, "pageInfo": info}}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, requested, 2 + len(page), level)})


def _gql_arguments(query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    match = _GQL_ORDERS.search(query)
    if match is None:
        raise ValueError("only orders(...), order(id:) and orderCapture(input:) are answered")
    args = _gql_object(match.group(1), variables)
    if args.get("first") is None:
        raise ValueError("you must provide first")
    return args


def _gql_object(text: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Flat `name: value` pairs (arguments or an input object literal); bare values stay text."""
    args: dict[str, Any] = {}
    for name, raw in _GQL_ARG.findall(text):
        if raw.startswith("$"):
            args[name] = variables.get(raw[1:])
        elif raw.startswith('"'):
            args[name] = json.loads(raw)
        else:
            args[name] = {"true": True, "false": False, "null": None}.get(raw, raw)
    return args


def _gql_order_query(sim: Shop, query: str, variables: Mapping[str, Any]) -> ApiReply:
    match = _GQL_ORDER.search(query)
    raw_id = _gql_object(match.group(1), variables).get("id") if match else None
    order_id = legacy_id_of(raw_id, "Order")
    if order_id is None:
        error = {
            "message": f"Invalid global id '{raw_id}'",
            "extensions": {"code": "argumentLiteralsIncompatible"},
        }
        return ApiReply(200, {"errors": [error]})
    selected = ("risk", "transactions", "fulfillments", "fulfillmentOrders", "refunds")
    requested = 1 + sum(1 for name in selected if re.search(rf"\b{name}\b", query))
    level, throttled = _gql_throttled(sim, requested)
    if throttled is not None:
        return throttled
    data = {"order": sim.graphql_order(order_id)}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, requested, requested, level)})


def _gql_order_capture(sim: Shop, query: str, variables: Mapping[str, Any], version: str) -> ApiReply:
    match = _GQL_CAPTURE.search(query)
    raw = match.group(1) if match else ""
    value = variables.get(raw[1:]) if raw.startswith("$") else _gql_object(raw[1:-1], variables)
    if not isinstance(value, dict):
        return ApiReply(
            200,
            {
                "errors": [
                    {"message": "Variable $input of type OrderCaptureInput! was provided invalid value"}
                ]
            },
        )
    known = [
        f for f in _CAPTURE_INPUT if f != "finalCapture" or version_at_least(version, FINAL_CAPTURE_SINCE)
    ]
    problems = [
        {"path": [k], "explanation": "Field is not defined on OrderCaptureInput"}
        for k in value
        if k not in known
    ]
    problems += [
        {"path": [k], "explanation": "Expected value to not be null"}
        for k in ("id", "parentTransactionId", "amount")
        if value.get(k) is None
    ]
    if problems:
        first = problems[0]
        message = (
            f"Variable $input of type OrderCaptureInput! was provided invalid value for "
            f"{first['path'][0]} ({first['explanation']})"
        )
        error = {"message": message, "extensions": {"value": value, "problems": problems}}
        return ApiReply(200, {"errors": [error]})
    level, throttled = _gql_throttled(sim, _CAPTURE_COST, mutation=True)
    if throttled is not None:
        return throttled
    try:
        transaction = sim.capture(
            value["id"],
            value["parentTransactionId"],
            str(value["amount"]),
            currency=value.get("currency"),
            final_capture=value.get("finalCapture"),
        )
        payload: dict[str, Any] = {"transaction": transaction, "userErrors": []}
    except CaptureRejected as exc:
        payload = {
            "transaction": None,
            "userErrors": [{"field": ["input", exc.field], "message": exc.message}],
        }
    data = {"orderCapture": payload}
    return ApiReply(200, {"data": data, "extensions": _gql_cost(sim, _CAPTURE_COST, _CAPTURE_COST, level)})


_GQL_IS_MUTATION = re.compile(r"^\s*mutation\b")


_GQL_MUTATION = re.compile(
    r"\b(fulfillmentCreate|fulfillmentEventCreate|orderCancel|refundCreate|orderMarkAsPaid|returnRequest"
    r"|returnCreate|returnApproveRequest|returnDeclineRequest|returnClose|returnProcess)\s*\(([^)]*)\)",
    re.S,
)


_GQL_IDEMPOTENT = re.compile(r'@idempotent\s*\(\s*key\s*:\s*("(?:[^"\\]|\\.)*"|\$\w+)\s*\)')


_MUTATION_COST = 10


# What each mutation answers besides its userErrors when it changed nothing.
_EMPTY_PAYLOADS: dict[str, dict[str, Any]] = {
    "fulfillmentCreate": {"fulfillment": None},
    "fulfillmentEventCreate": {"fulfillmentEvent": None},
    "orderCancel": {"job": None},
    "refundCreate": {"refund": None, "order": None},
    "orderMarkAsPaid": {"order": None},
    **{name: {"return": None} for name in RETURN_MUTATIONS},
}


def is_mutation(body: bytes) -> bool:
    try:
        query = json.loads(body).get("query")
    except (ValueError, AttributeError):
        return False
    return isinstance(query, str) and bool(_GQL_IS_MUTATION.match(query))


def _gql_error(message: str, code: str) -> ApiReply:
    return ApiReply(200, {"errors": [{"message": message, "extensions": {"code": code}}]})


def _gql_mutation(
    sim: Shop,
    name: str,
    arguments: str,
    query: str,
    *,
    variables: Mapping[str, Any],
    version: str,
) -> ApiReply:
    """One publishing mutation: version rules, cost, forced userErrors, idempotency keys, then the change."""
    args = _gql_object(arguments, variables)
    directive = _GQL_IDEMPOTENT.search(query)
    key: str | None = None
    if directive is not None:
        raw = directive.group(1)
        key = str(variables.get(raw[1:]) if raw.startswith("$") else json.loads(raw))
    problem = _mutation_version_problem(name, args, key, version)
    if problem is not None:
        return problem
    level, throttled = _gql_throttled(sim, _MUTATION_COST, mutation=True)
    if throttled is not None:
        return throttled
    fingerprint = json.dumps([name, args], sort_keys=True, default=str)
    with sim._lock:
        queued = sim._rejections.get(name) or []
        forced = queued.pop(0) if queued else None
        remembered = sim._idempotency.get(key) if key else None
    if remembered is not None and remembered[0] != fingerprint:
        return _gql_error("The idempotency key was already used with different arguments.", "BAD_REQUEST")
    if remembered is not None:
        payload = copy.deepcopy(remembered[1])
    else:
        try:
            if forced is not None:
                raise forced
            payload = {**MUTATIONS, **RETURN_MUTATIONS}[name](sim, args, key)
        except MutationRejected as exc:
            errors = [exc.as_error()]
            payload = {**_EMPTY_PAYLOADS[name], "userErrors": errors}
            if name == "orderCancel":
                payload["orderCancelUserErrors"] = errors
        else:
            payload.setdefault("userErrors", [])
            if name == "orderCancel":
                payload.setdefault("orderCancelUserErrors", [])
        if key is not None and not payload["userErrors"]:
            with sim._lock:
                sim._idempotency[key] = (fingerprint, copy.deepcopy(payload))
    cost = _gql_cost(sim, _MUTATION_COST, _MUTATION_COST, level)
    return ApiReply(200, {"data": {name: payload}, "extensions": cost})


def _mutation_version_problem(
    name: str, args: Mapping[str, Any], key: str | None, version: str
) -> ApiReply | None:
    if name == "fulfillmentCreate" and not version_at_least(version, FULFILLMENT_CREATE_SINCE):
        return _gql_error("Field 'fulfillmentCreate' doesn't exist on type 'Mutation'", "undefinedField")
    if name == "orderCancel":
        recent = version_at_least(version, REFUND_METHOD_SINCE)
        if "refundMethod" in args and not recent:
            return _gql_error(
                "Field 'orderCancel' doesn't accept argument 'refundMethod'", "argumentNotAccepted"
            )
        if "refund" not in args and not recent:
            return _gql_error(
                "Field 'orderCancel' is missing required arguments: refund", "missingRequiredArguments"
            )
    if name == "refundCreate" and key is None and version_at_least(version, IDEMPOTENT_REQUIRED_SINCE):
        return _gql_error("The @idempotent directive is required for this mutation.", "BAD_REQUEST")
    return None


_COMPARE: dict[str, Callable[[str, str], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _gql_filter(search: str) -> Callable[[Mapping[str, Any]], bool]:
    status = "any"
    bounds: list[tuple[str, Callable[[str, str], bool], str]] = []
    for term in search.replace(" AND ", " ").split():
        if term.startswith("status:"):
            status = term.split(":", 1)[1]
            if status not in STATUS:
                raise ValueError(f"status {status!r}")
            continue
        match = _GQL_TERM.match(term)
        if match is None:
            raise ValueError(f"search term {term!r}")
        bounds.append(
            (match.group("field"), _COMPARE[match.group("op") or ">="], utc_text(match.group("value")))
        )

    def predicate(order: Mapping[str, Any]) -> bool:
        in_range = all(compare(utc_text(order[name]), bound) for name, compare, bound in bounds)
        return in_range and STATUS[status](order)

    return predicate


def _gql_cost(sim: Shop, requested: int, actual: int | None, level: float) -> dict[str, Any]:
    bucket = sim.graphql_bucket
    throttle = {
        "maximumAvailable": float(bucket.size),
        "currentlyAvailable": int(bucket.size - level),
        "restoreRate": float(bucket.leak_per_s),
    }
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": throttle}}
