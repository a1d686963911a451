"""HTML of the status page's returns: the overview's returns and liabilities sections, a return's own page
with its actions, and an order's returns with the forms that open a return or refund without one.

Pure functions from data to markup; every value from outside goes through `esc`. Lists show ids, statuses,
counts and amounts, never a customer's name, e-mail, phone or address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

from chalicelib.domain.order import Order
from chalicelib.domain.returns.intake import RETURNABLE
from chalicelib.domain.returns.model import (
    FINAL_RETURN_STATUSES,
    OrderReturn,
    Outcome,
    Resolution,
    ReturnStatus,
    returns_of,
)
from chalicelib.domain.returns.overview import ReturnRow, ReturnsOverview, shown_flags
from chalicelib.domain.returns.policy import REASONS
from chalicelib.entrypoints.status_html import (
    action,
    ago,
    detail_text,
    esc,
    key_values,
    order_link,
    page,
    table,
)

# Before the parcel is counted: an operator may mark it received, record the inspection, or reject.
_BEFORE_RECEIPT = frozenset(
    {ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.LABEL_SENT, ReturnStatus.IN_TRANSIT}
)


def return_path(order_id: str, rid: str) -> str:
    return f"/status/orders/{quote(order_id, safe='')}/returns/{quote(rid, safe='')}"


def return_link(base: str, order_id: str, rid: str) -> str:
    return f'<a href="{base}{return_path(order_id, rid)}">{esc(rid)}</a>'


# --- overview --------------------------------------------------------------------------------------


def _rows(base: str, rows: Iterable[ReturnRow], now: datetime) -> list[str]:
    return [
        f'<tr data-return-id="{esc(r.return_id)}"><td>{return_link(base, r.order_id, r.return_id)}</td>'
        f"<td>{order_link(base, r.order_id, f'{r.channel} {r.order_number}'.strip() or None)}</td>"
        f'<td>{esc(r.status)}</td><td>{esc(r.resolution)}</td><td class="n">{esc(r.units or "")}</td>'
        f"<td>{ago(r.since, now)}</td><td>{esc(r.why or ', '.join(r.flags))}</td></tr>"
        for r in rows
    ]


_HEAD = ["Return", "Order", "Status", "Resolution", "#Units", "Since", "Note"]


def returns_section(base: str, view: ReturnsOverview, now: datetime) -> str:
    groups = [
        ("returns-failed", "Failed", view.failed, "No return failed."),
        ("returns-overdue", "Overdue", view.overdue, "Nothing overdue."),
        ("returns-parcel", "Awaiting the parcel", view.awaiting_parcel, "No parcel awaited."),
        ("returns-inspection", "Awaiting inspection", view.awaiting_inspection, "Nothing to inspect."),
    ]
    if view.awaiting_resolution:
        groups.append(("returns-resolution", "Being resolved", view.awaiting_resolution, ""))
    parts = [
        f'<div id="{gid}"><h3>{esc(title)} <small class="muted">({len(rows)})</small></h3>'
        f"{table(_HEAD, _rows(base, rows, now), empty)}</div>"
        for gid, title, rows, empty in groups
    ]
    resolved = ", ".join(return_link(base, r.order_id, r.return_id) for r in view.resolved_today)
    more = view.resolved_today_count - len(view.resolved_today)
    parts.append(
        f'<div id="returns-resolved"><h3>Resolved today <small class="muted">'
        f'(<span class="count">{view.resolved_today_count}</span>)</small></h3>'
        f"<p>{resolved or '<span class=muted>None yet.</span>'}{f' and {more} more' if more > 0 else ''}"
        "</p></div>"
    )
    partial = ""
    if view.orders_open > view.orders_read:
        partial = (
            f'<p class="warn">Showing the returns of {view.orders_read} of {view.orders_open} orders with '
            "an open return (the newest and the oldest): "
            f'<a href="{base}/status/orders?status=RETURN_REQUESTED">all of them</a>.</p>'
        )
    return f'<section id="returns"><h2>Returns</h2>{partial}{"".join(parts)}</section>'


def liabilities_section(totals: Mapping[str, Decimal] | None) -> str:
    """Outstanding store credit and vouchers per currency (None: the ledger could not be read)."""
    if totals is None:
        body = '<p class="muted">The credit ledger is not available.</p>'
    else:
        rows = [
            f'<tr data-currency="{esc(c)}"><td>{esc(c)}</td><td class="n">{esc(f"{a:f}")}</td></tr>'
            for c, a in sorted(totals.items())
        ]
        body = table(["Currency", "#Outstanding"], rows, "No store credit or voucher outstanding.")
    return f'<section id="liabilities"><h2>Store credit and vouchers owed</h2>{body}</section>'


# --- an order's returns ----------------------------------------------------------------------------


def order_returns_section(base: str, order: Order, csrf: str, back: str, form_key: str) -> str:
    rows = [
        f'<tr data-return-id="{esc(r.return_id)}"><td>{return_link(base, order.order_id, r.return_id)}</td>'
        f"<td>{esc(r.status.value)}</td><td>{esc(r.resolution.value)}</td>"
        f'<td class="n">{sum(ln.quantity for ln in r.lines)}</td>'
        f"<td>{esc(r.requested_at.isoformat(timespec='minutes'))}</td>"
        f"<td>{esc(', '.join(shown_flags(r)))}</td></tr>"
        for r in returns_of(order)
    ]
    listed = table(["Return", "Status", "Resolution", "#Units", "Requested", "Flags"], rows, "None.")
    return (
        f'<section id="returns"><h2>Returns</h2>{listed}{_open_form(base, order, csrf, back, form_key)}'
        f"{_refund_form(base, order, csrf, back, form_key)}</section>"
    )


def _hidden(csrf: str, back: str, **fields: str) -> str:
    pairs = {"csrf": csrf, "next": back, **fields}
    return "".join(_field(k, v) for k, v in pairs.items())


def _field(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def _units(name: str, most: int, value: int) -> str:
    return (
        f'<input name="{esc(name)}" type="number" min="0" max="{most}" value="{value}" '
        'aria-label="units" style="width:5rem">'
    )


def _select(name: str, options: Iterable[str], chosen: str) -> str:
    opts = "".join(f"<option{' selected' if o == chosen else ''}>{esc(o)}</option>" for o in options)
    return f'<select name="{esc(name)}">{opts}</select>'


def _open_form(base: str, order: Order, csrf: str, back: str, form_key: str) -> str:
    if order.status not in RETURNABLE:
        status = esc(order.status.value)
        return f'<p class="muted">A return can be opened once the order is delivered ({status}).</p>'
    rows = [
        f"<tr><td>{esc(line.sku or line.title)}{_field(f'rl{i}', line.line_id)}</td>"
        f'<td class="n">{esc(line.quantity)}</td>'
        f"<td>{_units(f'rq{i}', line.quantity, 0)}</td>"
        f"<td>{_select(f'rv{i}', sorted(REASONS), 'other')}</td></tr>"
        for i, line in enumerate(order.lines)
    ]
    path = f"{base}/status/orders/{quote(order.order_id, safe='')}/returns"
    return (
        f'<form id="open-return" method="post" action="{esc(path)}"><h3>Open a return</h3>'
        f"{_hidden(csrf, back, key=f'{form_key}-return')}"
        f"{table(['Line', '#Ordered', '#Return', 'Reason'], rows, 'No line.')}"
        f"<p>Resolution {_select('resolution', [r.value for r in Resolution], Resolution.REFUND.value)} "
        '<button class="ok" type="submit">Open return</button></p></form>'
    )


def _refund_form(base: str, order: Order, csrf: str, back: str, form_key: str) -> str:
    left = order.payment.amount_captured - order.payment.amount_refunded
    if order.status.value == "CANCELLED" or left <= 0:
        return ""
    path = f"{base}/status/orders/{quote(order.order_id, safe='')}/refunds"
    return (
        f'<form id="refund" method="post" action="{esc(path)}"><h3>Refund without a return</h3>'
        f"{_hidden(csrf, back, key=f'{form_key}-refund')}"
        f"<p><label>Amount ({esc(order.currency)}, at most {esc(f'{left:f}')}) "
        '<input name="amount" inputmode="decimal" required></label></p>'
        '<p><label>Reason <input name="reason" maxlength="500" required></label></p>'
        '<p><button class="bad" type="submit">Refund</button></p></form>'
    )


# --- a return's own page ---------------------------------------------------------------------------


def return_page(base: str, order: Order, ret: OrderReturn, csrf: str, flash: str | None) -> str:
    back = f"{base}{return_path(order.order_id, ret.return_id)}"
    body = (
        f'<section id="return"><h2>Return {esc(ret.return_id)}</h2>{_summary(base, order, ret)}</section>'
        f'<section id="return-lines"><h2>Lines</h2>{_lines(order, ret)}</section>'
        f'<section id="return-actions"><h2>Actions</h2>{_actions(base, order, ret, csrf, back)}</section>'
        f'<section id="return-timeline"><h2>Timeline</h2>{_timeline(order, ret)}</section>'
        f'<section id="return-label"><h2>Label</h2>{_label(ret)}</section>'
        f'<section id="return-inspection"><h2>Inspection</h2>{_inspection(ret)}</section>'
        f'<section id="return-money"><h2>Money</h2>{_money(ret, order.currency)}</section>'
    )
    return page(f"return {ret.return_id}", body, base=base, flash=flash, csrf=csrf)


def _summary(base: str, order: Order, ret: OrderReturn) -> str:
    pairs = [
        ("Status", ret.status.value),
        ("Resolution", ret.resolution.value),
        ("Source", ret.source),
        ("Channel return", ret.external_id or "–"),
        ("Requested", ret.requested_at.isoformat(timespec="seconds")),
        ("Updated", ret.updated_at.isoformat(timespec="seconds")),
        ("Flags", ", ".join(shown_flags(ret)) or "–"),
    ]
    if ret.refusal:
        pairs.append(("Refusal", f"{ret.refusal.get('rule', '')}: {ret.refusal.get('detail', '')}"))
    if ret.override:
        o = ret.override
        pairs.append(("Override", f"{o.get('rule', '')} by {o.get('by', '')}: {o.get('note', '')}"))
    if ret.exchange_lines:
        wanted = ", ".join(f"{x.get('quantity')} × {x.get('sku')}" for x in ret.exchange_lines)
        pairs.append(("Exchange for", wanted))
    exchange = ""
    if ret.exchange_order_id:
        exchange = f"<p>Replacement order: {order_link(base, ret.exchange_order_id)}</p>"
    number = f"{order.channel} {order.external_number or order.external_id}"
    order_row = f"<p>Order {order_link(base, order.order_id, number)}</p>"
    return order_row + key_values(pairs) + exchange


def _lines(order: Order, ret: OrderReturn) -> str:
    titles = {line.line_id: line.title for line in order.lines}
    rows = [
        f"<tr><td>{esc(ln.line_id)}</td><td>{esc(ln.sku)}</td><td>{esc(titles.get(ln.line_id, ''))}</td>"
        f'<td class="n">{ln.quantity}</td><td>{esc(ln.reason)}</td></tr>'
        for ln in ret.lines
    ]
    return table(["Line", "SKU", "Title", "#Quantity", "Reason"], rows, "No line.")


def _timeline(order: Order, ret: OrderReturn) -> str:
    rows = [
        f"<tr><td>{esc(h.at.isoformat(timespec='seconds'))}</td><td>{esc(h.event)}</td>"
        f"<td>{esc(detail_text({k: v for k, v in h.detail.items() if k != 'return_id'}))}</td></tr>"
        for h in reversed(order.history)
        if h.detail.get("return_id") == ret.return_id
    ]
    return table(["At", "Event", "Detail"], rows, "Empty.")


def _label(ret: OrderReturn) -> str:
    label = ret.label
    if label is None:
        why = "No label yet." if ret.label_needed else "The channel gave the customer a label."
        return f'<p class="muted">{why}</p>'
    url = label.label_url or ""
    link = "–"
    if url.startswith(("https://", "http://")):
        link = f'<a href="{esc(url)}" rel="noreferrer">label</a>'
    pairs = [
        ("Carrier", label.carrier),
        ("Tracking number", label.tracking_number),
        ("Paid by", label.paid_by),
        ("Cost", f"{label.cost:f}"),
    ]
    return key_values(pairs) + f"<p>Label: {link}</p>"


def _inspection(ret: OrderReturn) -> str:
    rows = [
        f'<tr><td>{esc(u.line_id)}</td><td>{esc(u.sku)}</td><td class="n">{u.quantity}</td>'
        f"<td>{esc(u.outcome.value)}</td></tr>"
        for u in ret.inspected
    ]
    received = (
        f"<p>Received {esc(ret.received_at.isoformat(timespec='seconds'))}</p>" if ret.received_at else ""
    )
    return received + table(["Line", "SKU", "#Quantity", "Outcome"], rows, "Not inspected yet.")


def _money(ret: OrderReturn, currency: str) -> str:
    m = ret.money
    if m is None:
        return '<p class="muted">Priced once inspected.</p>'
    amounts = [
        ("Lines", m.lines),
        ("Tax", m.tax),
        ("Shipping", m.shipping),
        ("Restocking fee", -m.restocking_fee),
        ("Label cost", -m.label_cost),
        ("Bonus", m.bonus),
        ("Total", m.total),
    ]
    pairs = [(name, f"{value:f} {currency}") for name, value in amounts]
    return key_values([*pairs, ("Method", m.method or "–"), ("Reference", m.reference or "–")])


def _actions(base: str, order: Order, ret: OrderReturn, csrf: str, back: str) -> str:
    if ret.status in FINAL_RETURN_STATUSES or ret.status == ReturnStatus.INSPECTED:
        return f'<p class="muted">Nothing to do: the return is {esc(ret.status.value)}.</p>'
    path = return_path(order.order_id, ret.return_id)
    seen = ret.status.value
    forms = []
    if ret.status in _BEFORE_RECEIPT:
        forms.append(
            "<p>"
            + action(base, f"{path}/receive", "Mark received", csrf, back, css="ok", expected_status=seen)
            + "</p>"
        )
    forms.append(_inspect_form(base, path, ret, csrf, back))
    if ret.status in _BEFORE_RECEIPT or ret.status == ReturnStatus.RECEIVED:
        forms.append(
            f'<form id="reject" method="post" action="{base}{esc(path)}/reject">'
            f"{_hidden(csrf, back, expected_status=seen)}"
            '<p><label>Reason <input name="reason" maxlength="300" required></label> '
            '<button class="bad" type="submit">Reject</button></p></form>'
        )
    return "".join(forms)


def _inspect_form(base: str, path: str, ret: OrderReturn, csrf: str, back: str) -> str:
    """One row per returned line (all its units, restock), and a spare row per line to split them."""
    outcomes = [o.value for o in Outcome]
    rows = []
    index = 0
    for ln in ret.lines:
        for quantity, outcome in ((ln.quantity, Outcome.RESTOCK.value), (0, Outcome.SCRAP.value)):
            rows.append(
                f"<tr><td>{esc(ln.sku or ln.line_id)}{_field(f'il{index}', ln.line_id)}</td>"
                f"<td>{_units(f'iq{index}', ln.quantity, quantity)}</td>"
                f"<td>{_select(f'iv{index}', outcomes, outcome)}</td></tr>"
            )
            index += 1
    return (
        f'<form id="inspect" method="post" action="{base}{esc(path)}/inspect"><h3>Record inspection</h3>'
        f"{_hidden(csrf, back, expected_status=ret.status.value)}"
        f"{table(['Line', '#Units', 'Outcome'], rows, 'No line.')}"
        '<p><button class="ok" type="submit">Record inspection</button></p></form>'
    )
