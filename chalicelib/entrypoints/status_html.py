"""HTML of the status page: small server-rendered pages, no script, one inline style sheet (phone-light).

Pure functions from data to markup; every value from outside goes through `esc`. No address, no card
data, no secret is ever rendered: orders show channel, store, numbers, statuses and amounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from chalicelib.domain.lifecycle import failure_summary
from chalicelib.domain.order import Order
from chalicelib.domain.retention import PERSONAL_DATA_REDACTED, REDACTED
from chalicelib.domain.status_views import OrderRow, Traffic

STYLE = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b1f24;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header a{color:#cfe3ff}h1{font-size:1.1rem;margin:0}main{padding:.5rem 1rem;max-width:75rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:.8rem 0;padding:.5rem .8rem;overflow-x:auto}
h2{font-size:1rem;margin:.2rem 0 .5rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eef0f3;vertical-align:top}
th{font-weight:600;color:#57606a}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
form.inline{display:inline}button{font:inherit;padding:.15rem .6rem;border-radius:4px;border:1px solid #8c959f;
background:#fff;cursor:pointer}button.ok{border-color:#1a7f37;color:#1a7f37}button.bad{border-color:#cf222e;color:#cf222e}
.flash{background:#ddf4ff;border:1px solid #54aeff;padding:.4rem .8rem;border-radius:6px}
.err{background:#ffebe9;border-color:#ff8182}.muted{color:#57606a}.warn{color:#9a6700}.bad-t{color:#cf222e}
.chips span{display:inline-block;background:#eef0f3;border-radius:9px;padding:0 .5rem;margin:0 .2rem .2rem 0}
pre{white-space:pre-wrap;font-size:12px;background:#f6f8fa;padding:.5rem;border-radius:4px;max-height:30rem;overflow:auto}
input{font:inherit;padding:.3rem;width:100%;max-width:24rem}
"""


# Characters that would act on the page instead of showing: C0/C1 controls, line and paragraph separators,
# bidirectional overrides and isolates (U+202E turns `txt.exe` around), zero-width and BOM characters.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _visible(match: re.Match[str]) -> str:
    return f"[U+{ord(match.group()):04X}]"


def esc(value: Any) -> str:
    """HTML-escaped, and every invisible or reordering character shown as `[U+XXXX]`."""
    return escape(_INVISIBLE.sub(_visible, "" if value is None else str(value)), quote=True)


def ago(at: datetime | str | None, now: datetime) -> str:
    """'3 min ago', '2 h ago', ...; '–' for never."""
    if at is None or at == "":
        return "–"
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def page(
    title: str,
    body: str,
    *,
    base: str,
    flash: str | None = None,
    refresh: int | None = None,
    signed_in: bool = True,
    csrf: str = "",
) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    nav = ""
    if signed_in:
        nav = (
            f'<a href="{base}/status">Overview</a> <a href="{base}/status/orders">Orders</a>'
            f'<form class="inline" method="post" action="{base}/status/logout">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}"><button>Sign out</button></form>'
        )
    note = ""
    if flash:
        kind = "flash err" if flash.lower().startswith(("error", "refused", "not ")) else "flash"
        note = f'<p class="{kind}" role="status">{esc(flash)}</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{meta}<title>{esc(title)} · order-hub</title><style>{STYLE}</style></head>"
        f"<body><header><h1>order-hub · {esc(title)}</h1>{nav}</header><main>{note}{body}</main></body></html>"
    )


def login_page(base: str, next_path: str, error: str | None = None) -> str:
    body = (
        '<section id="login"><h2>Sign in</h2>'
        + (f'<p class="flash err" role="alert">{esc(error)}</p>' if error else "")
        + f'<form method="post" action="{base}/status/login">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<p><label for="token">Operator token</label><br>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required></p>'
        '<p><button class="ok" type="submit">Sign in</button></p></form></section>'
    )
    return page("sign in", body, base=base, signed_in=False)


def action(base: str, path: str, label: str, csrf: str, back: str, *, css: str = "", **fields: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())
    return (
        f'<form class="inline" method="post" action="{base}{esc(path)}">{hidden}'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}"><input type="hidden" name="next" value="{esc(back)}">'
        f'<button class="{css}" type="submit">{esc(label)}</button></form>'
    )


def order_link(base: str, order_id: str, text: str | None = None) -> str:
    return f'<a href="{base}/status/orders/{quote(order_id, safe="")}">{esc(text or order_id)}</a>'


def _table(head: Sequence[str], rows: Iterable[str], empty: str) -> str:
    cells = "".join(
        f'<th class="n">{esc(h[1:])}</th>' if h.startswith("#") else f"<th>{esc(h)}</th>" for h in head
    )
    body = "".join(rows)
    if not body:
        return f'<p class="muted">{esc(empty)}</p>'
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def channels_section(traffic: list[Traffic], now: datetime) -> str:
    rows = []
    for t in traffic:
        silent = t.last_event_at is None or (now - t.last_event_at).total_seconds() > 6 * 3600
        rows.append(
            f'<tr data-store="{esc(t.channel)}:{esc(t.store)}"><td>{esc(t.channel)}</td><td>{esc(t.store)}</td>'
            + "".join(
                f'<td class="n">{t.hour[k]} / {t.day[k]}</td>'
                for k in ("received", "rejected", "duplicates", "ignored")
            )
            + f'<td class="{"warn" if silent else ""}">{ago(t.last_event_at, now)}</td>'
            f"<td>{ago(t.last_throttled_at, now)}</td></tr>"
        )
    table = _table(
        ["Channel", "Store", "#Received", "#Rejected", "#Duplicates", "#Ignored", "Last event", "Throttled"],
        rows,
        "No store connected yet.",
    )
    return f'<section id="channels"><h2>Channels <small class="muted">(last hour / day)</small></h2>{table}</section>'


def status_section(base: str, counts: dict[str, int]) -> str:
    chips = "".join(
        f'<span><a href="{base}/status/orders?{urlencode({"status": s})}">{esc(s)}</a> <b>{n}</b></span>'
        for s, n in counts.items()
        if n
    )
    total = sum(counts.values())
    return (
        f'<section id="orders-by-status"><h2>Orders by status <small class="muted">({total})</small></h2>'
        f'<p class="chips">{chips or "<span>none yet</span>"}</p></section>'
    )


def stuck_section(base: str, rows: list[OrderRow], now: datetime) -> str:
    body = [
        f'<tr data-order-id="{esc(r.order_id)}"><td>{order_link(base, r.order_id)}</td><td>{esc(r.channel)}</td>'
        f"<td>{esc(r.external_id)}</td><td>{esc(r.status)}</td><td>{ago(r.updated_at, now)}</td></tr>"
        for r in rows
    ]
    return (
        '<section id="stuck"><h2>Stuck orders <small class="muted">(in one status beyond its limit)</small>'
        f"</h2>{_table(['Order', 'Channel', 'Number', 'Status', 'In status since'], body, 'Nothing stuck.')}</section>"
    )


def review_section(base: str, rows: list[OrderRow], csrf: str, back: str, now: datetime) -> str:
    body = []
    for r in rows:
        order = r.order
        fraud = order.fraud if order else None
        reasons = ", ".join(fraud.reasons) if fraud else ""
        total = f"{order.totals.total} {order.currency}" if order else ""
        body.append(
            f'<tr data-order-id="{esc(r.order_id)}"><td>{order_link(base, r.order_id)}</td>'
            f'<td>{esc(r.channel)} {esc(r.external_id)}</td><td class="n">{esc(total)}</td>'
            f'<td class="n">{esc(fraud.score if fraud else "")}</td><td>{esc(reasons)}</td>'
            f"<td>{ago(r.updated_at, now)}</td><td>{_review_buttons(base, r.order_id, csrf, back)}</td></tr>"
        )
    table = _table(
        ["Order", "From", "#Total", "#Score", "Reasons", "Waiting", ""], body, "No order waits for review."
    )
    return f'<section id="review-queue"><h2>Fraud review queue</h2>{table}</section>'


def _failure(order: Order | None) -> str:
    if order is None:
        return ""
    entry = next((h for h in reversed(order.history) if h.event == "failed"), None)
    if entry is None:
        return ""
    return f"{entry.detail.get('error', '')}: {failure_summary(entry.detail.get('cause'))[:160]}"


def failed_section(base: str, rows: list[OrderRow], csrf: str, back: str, now: datetime) -> str:
    body = []
    for r in rows:
        quoted = quote(r.order_id, safe="")
        body.append(
            f'<tr data-order-id="{esc(r.order_id)}"><td>{order_link(base, r.order_id)}</td>'
            f"<td>{esc(r.channel)} {esc(r.external_id)}</td><td>{esc(_failure(r.order))}</td>"
            f"<td>{ago(r.updated_at, now)}</td><td>"
            + action(base, f"/status/orders/{quoted}/retry", "Retry", csrf, back, css="ok")
            + " "
            + action(base, f"/status/orders/{quoted}/cancel", "Cancel", csrf, back, css="bad")
            + "</td></tr>"
        )
    table = _table(["Order", "From", "Reason", "Failed", ""], body, "No failed order.")
    return f'<section id="failed"><h2>Failed orders</h2>{table}</section>'


def queues_section(base: str, queues: list[dict[str, Any]], csrf: str, back: str) -> str:
    body = []
    for q in queues:
        dlq = q.get("dlq_depth")
        button = ""
        if dlq:
            button = action(
                base, f"/status/queues/{quote(q['key'], safe='')}/redrive", "Redrive", csrf, back, css="ok"
            )
        body.append(
            f'<tr data-queue="{esc(q["key"])}"><td>{esc(q["name"])}</td>'
            f'<td class="n depth">{esc(q.get("depth", "?"))}</td><td class="n">{esc(q.get("in_flight", "?"))}</td>'
            f'<td class="n dlq-depth{" bad-t" if dlq else ""}">{esc("?" if dlq is None else dlq)}</td>'
            f"<td>{esc(q.get('error', ''))}{_parked(q.get('parked'))}{button}</td></tr>"
        )
    table = _table(["Queue", "#Waiting", "#In flight", "#Dead letters", ""], body, "No queue.")
    return f'<section id="queues"><h2>Queues</h2>{table}</section>'


def _parked(reasons: dict[str, int] | None) -> str:
    """Why the dead letters shown are there (read from the first few), e.g. "MalformedDelivery ×2"."""
    if not reasons:
        return ""
    text = ", ".join(f"{reason} ×{n}" for reason, n in sorted(reasons.items()))
    return f'<span class="parked-reasons">{esc(text)}</span> '


def reconciliation_section(
    base: str, reports: list[dict[str, Any]], csrf: str, back: str, now: datetime
) -> str:
    body = []
    for r in reports:
        drift = len(r.get("drift_applied") or [])
        flagged = len(r.get("drift_flagged") or [])
        restored = len(r.get("missing_restored") or [])
        open_items = len(r.get("errors") or []) + len(r.get("external_refunds") or []) + flagged
        open_items += len(r.get("external_captures") or []) + len(r.get("captures_not_in_stripe") or [])
        body.append(
            f'<tr data-store="{esc(r.get("channel"))}:{esc(r.get("store"))}"><td>{esc(r.get("channel"))}</td>'
            f"<td>{esc(r.get('store'))}</td><td>{ago(r.get('finished_at') or r.get('started_at'), now)}</td>"
            f'<td class="n">{esc(r.get("seen", 0))}</td><td class="n">{restored}</td><td class="n">{drift}</td>'
            f'<td class="n{" bad-t" if open_items else ""}">{open_items}</td></tr>'
        )
    table = _table(
        ["Channel", "Store", "Last run", "#Seen", "#Restored", "#Drift healed", "#Open items"],
        body,
        "No reconciliation run yet.",
    )
    run = action(base, "/status/reconciliation/run", "Run now", csrf, back)
    return f'<section id="reconciliation"><h2>Reconciliation {run}</h2>{table}</section>'


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def carriers_section(
    base: str, stats: list[dict[str, Any]], flagged: list[dict[str, Any]], now: datetime
) -> str:
    rows = [
        f'<tr><td>{esc(s["carrier"])}</td><td>{esc(s["country"])}</td><td class="n">{esc(s["delivered"])}</td>'
        f'<td class="n">{_share(s["on_time_share"])}</td></tr>'
        for s in stats
    ]
    perf = _table(["Carrier", "Country", "#Delivered", "#On time"], rows, "No delivery yet.")
    flag_rows = [
        f'<tr data-order-id="{esc(f["order_id"])}"><td>{order_link(base, str(f["order_id"]))}</td>'
        f"<td>{esc(f['shipment_id'])}</td><td>{esc(', '.join(f['flags']))}</td><td>{ago(f['flagged_at'], now)}</td></tr>"
        for f in flagged
    ]
    late = _table(["Order", "Shipment", "Flags", "Since"], flag_rows, "No late or troubled shipment.")
    return (
        f'<section id="carriers"><h2>Carriers</h2>{perf}<h2>Late and exception shipments</h2>{late}</section>'
    )


def order_list_page(
    base: str,
    orders: list[Order],
    *,
    status: str | None,
    next_cursor: str | None,
    statuses: Iterable[str],
    csrf: str,
) -> str:
    options = "".join(
        f'<option value="{esc(s)}"{" selected" if s == status else ""}>{esc(s)}</option>' for s in statuses
    )
    search = (
        f'<form method="get" action="{base}/status/orders"><select name="status"><option value="">any status</option>'
        f"{options}</select> <button>Show</button></form>"
    )
    rows = [
        f'<tr data-order-id="{esc(o.order_id)}"><td>{order_link(base, o.order_id)}</td><td>{esc(o.channel)}</td>'
        f"<td>{esc(o.store)}</td><td>{esc(o.external_number or o.external_id)}</td><td>{esc(o.status.value)}</td>"
        f'<td class="n">{esc(o.totals.total)} {esc(o.currency)}</td><td>{esc(o.placed_at.isoformat(timespec="minutes"))}</td></tr>'
        for o in orders
    ]
    table = _table(["Order", "Channel", "Store", "Number", "Status", "#Total", "Placed"], rows, "No order.")
    more = ""
    if next_cursor:
        query = urlencode({k: v for k, v in (("status", status), ("cursor", next_cursor)) if v})
        more = f'<p><a rel="next" href="{base}/status/orders?{query}">Older orders →</a></p>'
    body = f'<section id="order-list"><h2>Orders</h2>{search}{table}{more}</section>'
    return page("orders", body, base=base, csrf=csrf)


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs) + "</table>"


def order_page(
    base: str, order: Order, csrf: str, flash: str | None, now: datetime, *, returns: str = ""
) -> str:
    quoted = quote(order.order_id, safe="")
    back = f"{base}/status/orders/{quoted}"
    body = (
        f'<section id="summary"><h2>Order {esc(order.order_id)}</h2>{_order_summary(order, now)}'
        f"<p>{_order_actions(base, order, csrf, back)}</p></section>"
        f'<section id="timeline"><h2>Timeline</h2>{_timeline(order)}</section>'
        f'<section id="payments"><h2>Payments</h2>{_payment(order)}</section>'
        f'<section id="shipments"><h2>Shipments</h2>{_shipments(order)}</section>'
        f"{returns}"
        f'<section id="publications"><h2>Publications</h2>{_publications(base, order, csrf, back, now)}</section>'
    )
    return page(f"order {order.order_id}", body, base=base, flash=flash, csrf=csrf)


def _review_buttons(base: str, order_id: str, csrf: str, back: str) -> str:
    path = f"/status/orders/{quote(order_id, safe='')}/review"
    return (
        action(base, path, "Approve", csrf, back, css="ok", decision="approve")
        + " "
        + action(base, path, "Reject", csrf, back, css="bad", decision="reject")
    )


def _order_actions(base: str, order: Order, csrf: str, back: str) -> str:
    quoted = quote(order.order_id, safe="")
    actions = []
    if order.status.value == "FRAUD_REVIEW":
        actions.append(_review_buttons(base, order.order_id, csrf, back))
    if order.status.value == "FAILED":
        actions.append(action(base, f"/status/orders/{quoted}/retry", "Retry", csrf, back, css="ok"))
    if order.status.value not in ("CANCELLED", "COMPLETED", "REFUNDED", "DELIVERED"):
        actions.append(action(base, f"/status/orders/{quoted}/cancel", "Cancel", csrf, back, css="bad"))
    return " ".join(actions)


def _personal_data(order: Order) -> list[tuple[str, str]]:
    """Once retention has redacted the order, the page says so where the customer would be."""
    for entry in order.history:
        if entry.event == PERSONAL_DATA_REDACTED:
            return [("Customer", f"{REDACTED} since {entry.at.date().isoformat()} (retention)")]
    return []


def _order_summary(order: Order, now: datetime) -> str:
    return _kv(
        [
            ("Status", order.status.value),
            ("Channel", f"{order.channel} · {order.store}"),
            ("Channel order", order.external_number or order.external_id),
            ("Placed", order.placed_at.isoformat(timespec="seconds")),
            ("Updated", f"{order.updated_at.isoformat(timespec='seconds')} ({ago(order.updated_at, now)})"),
            ("Total", f"{order.totals.total} {order.currency}"),
            ("Lines", ", ".join(f"{line.quantity} × {line.sku or line.title}" for line in order.lines)),
            ("Ships to", order.shipping_address.country if order.shipping_address else "–"),
            *_personal_data(order),
            *([("Missing", ", ".join(order.missing))] if order.missing else []),
            ("Fraud", f"{order.fraud.decision or '–'} (score {order.fraud.score})"),
        ]
    )


def _payment(order: Order) -> str:
    p = order.payment
    return _kv(
        [
            ("Source", p.source),
            ("Status", p.status),
            ("Reference", p.reference),
            ("Authorised", p.amount_authorized),
            ("Captured", p.amount_captured),
            ("Refunded", p.amount_refunded),
        ]
    )


def _shipments(order: Order) -> str:
    rows = [
        f"<tr><td>{esc(s.shipment_id)}</td><td>{esc(s.status)}</td><td>{esc(s.warehouse)}</td>"
        f"<td>{esc(', '.join(f'{x.carrier} {x.tracking_number} ({x.status})' for x in s.parcels))}</td>"
        f"<td>{esc(s.promised_at.isoformat(timespec='minutes') if s.promised_at else '')}</td>"
        f"<td>{esc(', '.join(s.flags))}</td></tr>"
        for s in order.shipments
    ]
    return _table(["Shipment", "Status", "Warehouse", "Parcels", "Promised", "Flags"], rows, "None yet.")


def _publications(base: str, order: Order, csrf: str, back: str, now: datetime) -> str:
    quoted = quote(order.order_id, safe="")
    rows = []
    for pub in order.publications:
        retry = ""
        if pub.status == "failed":
            path = f"/status/orders/{quoted}/publications/{quote(pub.publication_id, safe='')}/retry"
            retry = action(base, path, "Publish again", csrf, back)
        rows.append(
            f'<tr><td>{esc(pub.kind)}</td><td>{esc(pub.status)}</td><td class="n">{esc(pub.attempts)}</td>'
            f"<td>{esc(pub.last_error or '')}</td><td>{ago(pub.created_at, now)}</td><td>{retry}</td></tr>"
        )
    return _table(["Milestone", "Status", "#Attempts", "Last error", "Created", ""], rows, "None.")


def _timeline(order: Order) -> str:
    rows = [
        f"<tr><td>{esc(h.at.isoformat(timespec='seconds'))}</td><td>{esc(h.event)}</td>"
        f"<td>{esc(_detail(h.detail))}</td></tr>"
        for h in reversed(order.history)
    ]
    return _table(["At", "Event", "Detail"], rows, "Empty.")


# History details that could carry personal data are left out of the timeline.
_HIDDEN_DETAIL = {"address", "shipping_address", "billing_address", "email", "phone", "customer", "name"}


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={(failure_summary(v) if k == 'cause' else str(v))[:120]}"
        for k, v in detail.items()
        if k not in _HIDDEN_DETAIL and v not in (None, "", [], {})
    )


# Shared with the return pages (status_returns_html.py).
table = _table
key_values = _kv
detail_text = _detail
