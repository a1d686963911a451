"""The status page's returns: a return's own page and its actions (mark received, record the inspection,
reject), and on an order's page opening a return or refunding without one.

Same sign-in, CSRF and answers as the rest of the status page (status_page.py): each action is a POST form
answered with a 303 back to the page and a message. A return's actions carry `expected_status` (what the
operator saw): when another operator moved it on meanwhile, the page says so instead of acting twice.
Opening a return or refunding carries a key made when the form was drawn, so a double submit acts once.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.composition import Services
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.manual_channel import idempotency_key
from chalicelib.domain.returns import intake, receiving, refunds
from chalicelib.domain.returns.errors import ReturnRefused, ReturnStepConflict
from chalicelib.domain.returns.model import find_return
from chalicelib.entrypoints import status_html as html
from chalicelib.entrypoints import status_returns_html as returns_html
from chalicelib.entrypoints.status_page import (
    FORM,
    flash_message,
    form_action,
    form_fields,
    html_response,
    signed_in_page,
)

bp = Blueprint(__name__)
OPERATOR = "status_page"
MAX_FORM_ROWS = 500


@bp.route("/status/orders/{order_id}/returns/{return_id}", methods=["GET"])
def return_view(order_id: str, return_id: str) -> Response:
    def render(svc: Services, operator: Any, base: str) -> Response:
        stored = svc.orders.get(order_id)
        ret = find_return(stored.order, return_id) if stored else None
        if stored is None or ret is None:
            body = f"<p>No return {html.esc(return_id)} on order {html.esc(order_id)}.</p>"
            return html_response(html.page("not found", body, base=base, csrf=operator.csrf), 404)
        page = returns_html.return_page(base, stored.order, ret, operator.csrf, flash_message())
        return html_response(page)

    return signed_in_page(render)


def _expected(form: dict[str, str]) -> dict[str, Any]:
    seen = form.get("expected_status") or None
    return {"expected_status": seen} if seen else {}


def _whole(value: str | None, where: str) -> int:
    text = (value or "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise InvalidInput(f"{where} must be a whole number")
    return int(text)


def _rows(form: dict[str, str], prefix: str, default: str) -> list[tuple[str, int, str]]:
    """A form's numbered rows (`<prefix>l<i>` line id, `<prefix>q<i>` units, `<prefix>v<i>` the row's
    choice) with units above 0, as (line id, units, choice)."""
    rows = []
    for i in range(MAX_FORM_ROWS):
        line = form.get(f"{prefix}l{i}")
        if line is None:
            break
        units = _whole(form.get(f"{prefix}q{i}"), f"row {i + 1}: units")
        if units:
            rows.append((line, units, form.get(f"{prefix}v{i}", default)))
    return rows


def inspection_units(form: dict[str, str]) -> list[dict[str, Any]]:
    """The inspect form's rows (prefix `i`, the choice is the outcome)."""
    units = [{"line_id": ln, "quantity": n, "outcome": o} for ln, n, o in _rows(form, "i", "")]
    if not units:
        raise InvalidInput("record at least one unit")
    return units


def return_request_body(form: dict[str, str]) -> dict[str, Any]:
    """The open-return form (prefix `r`, the choice is the reason; `resolution`) as the API's body."""
    lines = [{"line_id": ln, "quantity": n, "reason": r} for ln, n, r in _rows(form, "r", "other")]
    if not lines:
        raise InvalidInput("choose at least one unit to return")
    return {"lines": lines, "resolution": form.get("resolution", "refund")}


def _act_on_return(order_id: str, return_id: str, act: str) -> Response:
    form = form_fields()

    def do(svc: Services) -> str:
        body = _expected(form)
        if act == "inspect":
            body["units"] = inspection_units(form)
        elif act == "reject":
            body["reason"] = form.get("reason", "").strip() or None
        try:
            ret = receiving.operator_action(
                order_id,
                return_id,
                act,
                body,
                orders=svc.orders,
                store=svc.store(),
                workflow=svc.workflow,
                now=svc.now,
                operator=OPERATOR,
            )
        except ReturnStepConflict as exc:
            return f"Refused: this return moved on: reload ({exc})"
        return f"Return {return_id}: {ret.status.value}."

    return form_action(do)


@bp.route("/status/orders/{order_id}/returns/{return_id}/receive", methods=["POST"], content_types=FORM)
def receive_action(order_id: str, return_id: str) -> Response:
    return _act_on_return(order_id, return_id, "receive")


@bp.route("/status/orders/{order_id}/returns/{return_id}/inspect", methods=["POST"], content_types=FORM)
def inspect_action(order_id: str, return_id: str) -> Response:
    return _act_on_return(order_id, return_id, "inspect")


@bp.route("/status/orders/{order_id}/returns/{return_id}/reject", methods=["POST"], content_types=FORM)
def reject_action(order_id: str, return_id: str) -> Response:
    return _act_on_return(order_id, return_id, "reject")


@bp.route("/status/orders/{order_id}/returns", methods=["POST"], content_types=FORM)
def open_return_action(order_id: str) -> Response:
    form = form_fields()

    def do(svc: Services) -> str:
        request = intake.parse_return_request(return_request_body(form))
        try:
            ret, created = intake.request_return(
                order_id,
                request,
                orders=svc.orders,
                workflow=svc.returns(),
                policies=svc.return_policies,
                now=svc.now,
                source=OPERATOR,
                operator=OPERATOR,
                idempotency_key=idempotency_key(form.get("key") or None),
            )
        except ReturnRefused as exc:
            return f"Refused by the returns policy: {exc.rule}: {exc.detail}"
        return f"Return {ret.return_id} {'opened' if created else 'already opened'}."

    return form_action(do)


@bp.route("/status/orders/{order_id}/refunds", methods=["POST"], content_types=FORM)
def refund_action(order_id: str) -> Response:
    form = form_fields()

    def do(svc: Services) -> str:
        body = {"amount": form.get("amount", "").strip(), "reason": form.get("reason", "")}
        try:
            made, created = refunds.refund(
                order_id,
                body,
                orders=svc.orders,
                gateway=svc.payments,
                now=svc.now,
                key=idempotency_key(form.get("key") or None),
                operator=OPERATOR,
            )
        except ReturnRefused as exc:
            return f"Refused: {exc.rule}: {exc.detail}"
        state = f"{made.get('status', 'requested')}{'' if created else ' (already)'}"
        return f"Refund {made.get('refund_ref')} of {made.get('amount')}: {state}."

    return form_action(do)
