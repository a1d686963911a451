"""The operators' status page: `/status` (overview), `/status/orders` (list), `/status/orders/{id}` (order).

Server-rendered HTML behind the operator token. The login form checks the token once and keeps a session
cookie: `<expiry>.<HMAC-SHA256(token, expiry)>`, HttpOnly, SameSite=Strict, Secure outside the local
stack, 12 hours. The token itself never sits in the browser, and rotating the token ends every session.
Each action is a POST form carrying a CSRF token (an HMAC of the session), answered with a 303 back to
the page with a short message. `Authorization: Bearer <token>` works as well (scripts, the bench).

The overview refreshes itself every 30 seconds and reads only aggregates and indexed queries
(adapters/status_board.py): its cost does not grow with the number of orders stored.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from secrets import token_hex
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from chalice import Blueprint, Response

from chalicelib.composition import Services, services
from chalicelib.domain.errors import ConcurrentUpdate, HubError, InvalidInput, NotFound
from chalicelib.domain.order import OrderStatus
from chalicelib.entrypoints import status_html as html
from chalicelib.entrypoints import status_reads
from chalicelib.entrypoints import status_returns_html as returns_html
from chalicelib.entrypoints.auth import is_authorised
from chalicelib.observability import logger
from chalicelib.settings import ConfigurationError

bp = Blueprint(__name__)

COOKIE = "hub_session"
SESSION_SECONDS = 12 * 3600
REFRESH_SECONDS = 30
FORM = ["application/x-www-form-urlencoded"]
REVIEW_QUEUE_SIZE = 25
FAILED_LIST_SIZE = 25
ORDER_PAGE_SIZE = 50


# --- session and CSRF ------------------------------------------------------------------------------


def _sign(token: str, purpose: str, value: str) -> str:
    return hmac.new(token.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now: float) -> str:
    expires = str(int(now) + SESSION_SECONDS)
    return f"{expires}.{_sign(token, 'status-session', expires)}"


def session_valid(cookie: str | None, token: str | None, now: float) -> bool:
    if not cookie or not token:
        return False
    expires, _, signature = cookie.partition(".")
    # Ten ASCII digits at most: int() of a 5,000-digit value raises (Python's 4,300-digit limit).
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 10 or int(expires) < now:
        return False
    return hmac.compare_digest(signature, _sign(token, "status-session", expires))


def csrf_token(token: str, session: str) -> str:
    return _sign(token, "status-csrf", session)[:32]


def _cookies() -> dict[str, str]:
    header = bp.current_request.headers.get("cookie") or ""
    jar = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            jar[name] = value
    return jar


def _base() -> str:
    """The stage prefix of API Gateway's default endpoint (`/api`), or nothing (custom domain, local)."""
    context = bp.current_request.context or {}
    stage, path = context.get("stage"), str(context.get("path") or "")
    if stage and path.startswith(f"/{stage}/"):
        return f"/{stage}"
    return ""


class _Operator:
    """Who is asking: signed in by cookie (then `csrf` is needed on forms) or by bearer token."""

    def __init__(self, token: str, session: str | None) -> None:
        self.token = token
        self.session = session
        self.csrf = csrf_token(token, session) if session else ""


def _operator() -> _Operator | None:
    token = services().operator_token()
    if not token:
        return None
    if is_authorised(bp.current_request.headers.get("authorization"), token):
        return _Operator(token, None)
    session = _cookies().get(COOKIE)
    if session_valid(session, token, time.time()):
        return _Operator(token, session)
    return None


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body,
        status_code=status,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            "Referrer-Policy": "same-origin",
            **(headers or {}),
        },
    )


def _redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body="", status_code=303, headers={"Location": location, **(headers or {})})


def _form() -> dict[str, str]:
    raw = bp.current_request.raw_body or b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _safe_next(value: str | None, base: str) -> str:
    """Only back to a status page (never an open redirect), in printable ASCII (no header injection)."""
    printable = value is not None and value.isascii() and value.isprintable() and " " not in value
    if printable and value and value.startswith(f"{base}/status") and "//" not in value and "\\" not in value:
        return value
    return f"{base}/status"


def _with_message(location: str, message: str) -> str:
    path, _, query = location.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items() if k != "msg"}
    params["msg"] = message[:300]
    return f"{path}?{urlencode(params)}"


def _page(render: Callable[[Services, _Operator, str], Response]) -> Response:
    """A GET page: signed in, or sent to the login form."""
    base = _base()
    operator = _operator()
    if operator is None:
        here = bp.current_request.context.get("path") or f"{base}/status"
        return _redirect(f"{base}/status/login?{urlencode({'next': _safe_next(here, base)})}")
    return render(services(), operator, base)


def _act(do: Callable[[Services], str]) -> Response:
    """A form POST: signed in, CSRF checked, done, back where it came from with what happened."""
    base = _base()
    operator = _operator()
    if operator is None:
        return _html(html.login_page(base, f"{base}/status", "Your session has ended: sign in again."), 401)
    form = _form()
    if operator.session is not None and not hmac.compare_digest(form.get("csrf", ""), operator.csrf):
        return _html(html.page("refused", "<p>The form is stale: reload the page.</p>", base=base), 403)
    try:
        message = do(services())
    except (ConcurrentUpdate, InvalidInput, NotFound) as exc:
        message = f"Refused: {exc}"
    except (HubError, ConfigurationError) as exc:
        logger.warning("status page action failed", extra={"error": type(exc).__name__})
        message = f"Error: {type(exc).__name__}: {exc}"
    return _redirect(_with_message(_safe_next(form.get("next"), base), message))


def _message() -> str | None:
    params: dict[str, str] = dict(bp.current_request.query_params or {})
    return params.get("msg")


# The same sign-in, CSRF and answers for the return pages (status_returns.py).
signed_in_page = _page
form_action = _act
form_fields = _form
flash_message = _message
html_response = _html


# --- pages -----------------------------------------------------------------------------------------


@bp.route("/status/login", methods=["GET"])
def login_form() -> Response:
    base = _base()
    params: dict[str, str] = dict(bp.current_request.query_params or {})
    next_path = _safe_next(params.get("next"), base)
    return _html(html.login_page(base, next_path))


@bp.route("/status/login", methods=["POST"], content_types=FORM)
def login() -> Response:
    base = _base()
    form = _form()
    token = services().operator_token()
    given = form.get("token", "")
    if not token or not given or not hmac.compare_digest(given.encode(), token.encode()):
        logger.warning("status page sign-in refused")
        return _html(html.login_page(base, _safe_next(form.get("next"), base), "Wrong token."), 401)
    session = new_session(token, time.time())
    secure = "" if services().settings.local else "; Secure"
    attributes = f"Path={base}/status; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}"
    cookie = f"{COOKIE}={session}; {attributes}"
    return _redirect(_safe_next(form.get("next"), base), {"Set-Cookie": cookie})


@bp.route("/status/logout", methods=["POST"], content_types=FORM)
def logout() -> Response:
    """Signing out is an action like the others: a signed-in browser must send the page's CSRF token."""
    base = _base()
    operator = _operator()
    signed_in = operator is not None and operator.session is not None
    if signed_in and operator and not hmac.compare_digest(_form().get("csrf", ""), operator.csrf):
        return _html(html.page("refused", "<p>The form is stale: reload the page.</p>", base=base), 403)
    cookie = f"{COOKIE}=; Path={base}/status; Max-Age=0; HttpOnly; SameSite=Strict"
    return _redirect(f"{base}/status/login", {"Set-Cookie": cookie})


@bp.route("/status", methods=["GET"])
def overview() -> Response:
    return _page(_overview)


def _overview(svc: Services, operator: _Operator, base: str) -> Response:
    now = svc.now()
    board = svc.status_board()
    back = f"{base}/status"
    stores = [(c.channel, c.store) for c in svc.connections.list()]
    thresholds = svc.stuck_thresholds()
    store = svc.store()
    counts = board.status_counts()
    sections = [
        html.status_section(base, counts),
        html.review_section(
            base,
            board.in_status(OrderStatus.FRAUD_REVIEW, REVIEW_QUEUE_SIZE, oldest_first=True),
            operator.csrf,
            back,
            now,
        ),
        html.failed_section(
            base, board.in_status(OrderStatus.FAILED, FAILED_LIST_SIZE), operator.csrf, back, now
        ),
        html.stuck_section(base, board.stuck(now, thresholds), now),
        html.queues_section(
            base,
            svc.plumbing().queue_depths(),
            operator.csrf,
            back,
        ),
        html.channels_section(board.traffic(sorted(stores), now), now),
        html.reconciliation_section(base, _last_runs(svc), operator.csrf, back, now),
        html.carriers_section(base, store.carrier_stats(), store.flagged_shipments(), now),
        returns_html.returns_section(base, status_reads.returns_view(svc, board, counts, now), now),
        returns_html.liabilities_section(status_reads.liabilities(svc)),
    ]
    body = html.page(
        "status", "".join(sections), base=base, flash=_message(), refresh=REFRESH_SECONDS, csrf=operator.csrf
    )
    return _html(body)


def _last_runs(svc: Services) -> list[dict[str, Any]]:
    """The newest report of each store (reports come newest first; every run writes one per store)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for report in svc.reconciliation().reports(limit=100):
        latest.setdefault((str(report.get("channel")), str(report.get("store"))), report)
    return sorted(latest.values(), key=lambda r: (str(r.get("channel")), str(r.get("store"))))


@bp.route("/status/orders", methods=["GET"])
def order_list() -> Response:
    def render(svc: Services, operator: _Operator, base: str) -> Response:
        params: dict[str, str] = dict(bp.current_request.query_params or {})
        status = params.get("status") or None
        try:
            chosen = OrderStatus(status) if status else None
            page = svc.orders.list_orders(
                status=chosen, channel=None, limit=ORDER_PAGE_SIZE, cursor=params.get("cursor")
            )
        except (ValueError, InvalidInput) as exc:
            return _html(html.page("orders", f"<p>{html.esc(exc)}</p>", base=base, csrf=operator.csrf), 400)
        statuses = [s.value for s in OrderStatus]
        return _html(
            html.order_list_page(
                base,
                page.orders,
                status=status,
                next_cursor=page.next_cursor,
                statuses=statuses,
                csrf=operator.csrf,
            )
        )

    return _page(render)


@bp.route("/status/orders/{order_id}", methods=["GET"])
def order_view(order_id: str) -> Response:
    def render(svc: Services, operator: _Operator, base: str) -> Response:
        stored = svc.orders.get(order_id)
        if stored is None:
            body = f"<p>No order {html.esc(order_id)}.</p>"
            return _html(html.page("not found", body, base=base, csrf=operator.csrf), 404)
        back = f"{base}/status/orders/{quote(order_id, safe='')}"
        returns = returns_html.order_returns_section(base, stored.order, operator.csrf, back, token_hex(8))
        return _html(
            html.order_page(base, stored.order, operator.csrf, _message(), svc.now(), returns=returns)
        )

    return _page(render)


# --- actions ---------------------------------------------------------------------------------------


@bp.route("/status/orders/{order_id}/review", methods=["POST"], content_types=FORM)
def review_action(order_id: str) -> Response:
    from chalicelib.domain import review

    decision = _form().get("decision", "")

    def do(svc: Services) -> str:
        review.review(order_id, decision, orders=svc.orders, workflow=svc.workflow, now=svc.now)
        return f"Order {order_id}: review {'approved' if decision == 'approve' else 'rejected'}."

    return _act(do)


@bp.route("/status/orders/{order_id}/cancel", methods=["POST"], content_types=FORM)
def cancel_action(order_id: str) -> Response:
    from chalicelib.domain import cancellation

    def do(svc: Services) -> str:
        reason = "operator request (status page)"
        result = cancellation.cancel(order_id, reason, source="operator", **svc.wind_down_with())
        return f"Order {order_id}: {'already ' if result['already_cancelled'] else ''}cancelled."

    return _act(do)


@bp.route("/status/orders/{order_id}/retry", methods=["POST"], content_types=FORM)
def retry_action(order_id: str) -> Response:
    from chalicelib.domain.lifecycle import retry_failed

    def do(svc: Services) -> str:
        result = retry_failed(order_id, orders=svc.orders, workflow=svc.workflow, now=svc.now)
        return f"Order {order_id}: retried from {result['status']} (attempt {result['attempt']})."

    return _act(do)


@bp.route(
    "/status/orders/{order_id}/publications/{publication_id}/retry", methods=["POST"], content_types=FORM
)
def publication_retry_action(order_id: str, publication_id: str) -> Response:
    from chalicelib.domain import publishing

    def do(svc: Services) -> str:
        publishing.retry_publication(order_id, publication_id, orders=svc.orders)
        return f"Order {order_id}: publication {publication_id} goes out with the next run."

    return _act(do)


@bp.route("/status/queues/{queue}/redrive", methods=["POST"], content_types=FORM)
def redrive_action(queue: str) -> Response:
    from chalicelib.entrypoints.operations_api import redrive_queue

    def do(svc: Services) -> str:
        result = redrive_queue(queue)
        return f"Queue {result['queue']}: {result['moved']} message(s) redriven, {result['remaining']} left."

    return _act(do)


@bp.route("/status/reconciliation/run", methods=["POST"], content_types=FORM)
def reconcile_action() -> Response:
    from chalicelib.entrypoints.reconciliation_api import run_all

    def do(svc: Services) -> str:
        reports = run_all(svc)
        restored = sum(len(r.get("missing_restored") or []) for r in reports)
        return f"Reconciled {len(reports)} store(s): {restored} missing order(s) restored."

    return _act(do)
