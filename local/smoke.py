"""`python -m local.smoke` (`make smoke`): checks a running hub end to end, locally or on a deployed stage.

Health, the OpenAPI document, the order API and the status page (signed in as a browser signs in), then one
signed virtual order through the channel's real webhook door into a throwaway store (or an existing one,
`--store`), waited for on the order API until the lifecycle settles (COMPLETED: local/smoke_channels.py
says why that is deterministic), then cleaned up: the order cancelled if it is still open, the throwaway
connection deleted. Prints one line per check; exit 0 only when every check passed, 1 when one failed,
2 when the run could not start (no token, a URL it refuses, a hub it cannot reach, a token it refuses).

Only requests and the standard library: it runs from a laptop. It refuses every host but loopback unless
`--deployed` is given, and then only https, so a test can never reach out of the machine by mistake.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from local.smoke_channels import CHANNELS, SmokeStore, new_external_id

EXIT_PASSED, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
EXPECTED_STATUS = "COMPLETED"
# Where an order rests until something outside the hub acts (or for good): the wait ends there.
SETTLED = frozenset({"COMPLETED", "ON_HOLD", "FRAUD_REVIEW", "PAYMENT_PENDING", "FAILED", "CANCELLED"})
# An order in these can no longer be cancelled (409) or needs not be.
CLOSED = frozenset({"COMPLETED", "CANCELLED", "DELIVERED", "RETURNED", "REFUNDED"})
OVERVIEW_MARKERS = ('id="orders-by-status"', 'id="channels"', 'id="queues"')
REQUEST_TIMEOUT_S = 30.0


class Unusable(Exception):
    """The run cannot go on (no token, a refused URL, an unreachable hub, a refused token): said plainly."""


@dataclass
class Report:
    """One line per check, in the order they ran."""

    lines: list[tuple[bool, str, str]] = field(default_factory=list)
    out: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.lines.append((ok, name, detail))
        self.out(f"  {'ok  ' if ok else 'FAIL'}  {name}: {detail}")
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.lines) and all(ok for ok, _, _ in self.lines)


class Hub:
    """The hub's HTTP API under `base_url` (an API Gateway stage path included), with the operator token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.browser = requests.Session()  # the status page's session cookie lives here

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        session = kwargs.pop("session", None) or requests
        try:
            response: requests.Response = session.request(
                method, self.base_url + path, headers=headers, timeout=REQUEST_TIMEOUT_S, **kwargs
            )
        except requests.RequestException as exc:
            raise Unusable(f"cannot reach the hub at {self.base_url}: {_reason(exc)}") from None
        return response

    def sign_in(self) -> requests.Response:
        form = {"token": self._token, "next": "/status"}
        return self.call(
            "POST", "/status/login", auth=False, data=form, session=self.browser, allow_redirects=False
        )


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {REQUEST_TIMEOUT_S:.0f} s"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or host not found"
    return type(exc).__name__


def refuse_unless_allowed(base_url: str, *, deployed: bool) -> None:
    """Loopback over http(s) without `--deployed`; with it, https only (a deployed stage's API)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unusable(f"{base_url!r} is not an http(s) URL")
    if deployed:
        if parts.scheme != "https":
            raise Unusable("--deployed talks to a stage over https only")
        return
    if not _loopback(parts.hostname):
        raise Unusable(
            f"{parts.hostname} is not this machine: pass --deployed to smoke-test a deployed stage"
        )


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the checks ------------------------------------------------------------------------------------


def check_health(hub: Hub, report: Report) -> None:
    answer = hub.call("GET", "/health", auth=False)
    body = _json(answer)
    components = body.get("components")
    if not isinstance(components, dict):
        report.check("health", False, f"GET /health answered {answer.status_code}: {_short(answer)}")
        return
    states = {name: c.get("status") if isinstance(c, dict) else c for name, c in components.items()}
    gating = [states.get(name) == "ok" for name in ("table", "queues", "workflows")]
    # The scheduler has not beaten yet right after a start ("waiting"); "late" means schedules stopped.
    scheduler_fine = states.get("scheduler") in ("ok", "waiting")
    ok = answer.status_code == 200 and body.get("status") == "ok" and all(gating) and scheduler_fine
    detail = ", ".join(f"{name} {state}" for name, state in states.items())
    report.check("health", ok, f"{answer.status_code} status {body.get('status')}; {detail}")


def check_openapi(hub: Hub, report: Report) -> None:
    answer = hub.call("GET", "/openapi.json", auth=False)
    body = _json(answer)
    listed = body.get("paths")
    paths: dict[str, Any] = listed if isinstance(listed, dict) else {}
    needed = ("/health", "/api/orders", "/api/connections/{connection_id}", "/webhooks/woocommerce")
    missing = [p for p in needed if p not in paths]
    version = str(body.get("openapi", ""))
    ok = answer.status_code == 200 and version.startswith("3.1") and not missing
    detail = f"OpenAPI {version or '?'}, {len(paths)} paths" + (f", missing {missing}" if missing else "")
    report.check("openapi", ok, detail)


def check_api(hub: Hub, report: Report) -> None:
    answer = hub.call("GET", "/api/orders", params={"limit": "1"})
    if answer.status_code == 401:
        raise Unusable(
            "the hub refused the operator token (401 on GET /api/orders): pass the stage's token "
            "(TOKEN=... or HUB_OPERATOR_TOKEN)"
        )
    body = _json(answer)
    ok = answer.status_code == 200 and isinstance(body.get("orders"), list)
    report.check("api", ok, f"GET /api/orders answered {answer.status_code}")


def check_status_page(hub: Hub, report: Report, store: SmokeStore, order_id: str | None) -> None:
    """Signs in with the token as the login form does, then reads the overview and the order's page."""
    signed = hub.sign_in()
    if signed.status_code != 303 or not hub.browser.cookies:
        report.check("status page", False, f"sign-in answered {signed.status_code}, no session cookie")
        return
    overview = hub.call("GET", "/status", auth=False, session=hub.browser, allow_redirects=False)
    markers = [*OVERVIEW_MARKERS, f'data-store="{html.escape(store.channel)}:{html.escape(store.store)}"']
    missing = [m for m in markers if m not in overview.text]
    ok = overview.status_code == 200 and not missing
    detail = f"signed in; overview {overview.status_code}" + (f", missing {missing}" if missing else "")
    if order_id is not None:
        page = hub.call(
            "GET", f"/status/orders/{order_id}", auth=False, session=hub.browser, allow_redirects=False
        )
        ok = ok and page.status_code == 200 and order_id in page.text
        detail += f"; order page {page.status_code}"
    report.check("status page", ok, detail)


@contextmanager
def connected(hub: Hub, report: Report, store: SmokeStore) -> Iterator[bool]:
    """The store connected for the block: a throwaway one registered, then deleted however the block ends."""
    if not store.throwaway:
        listed = _json(hub.call("GET", "/api/connections")).get("connections", [])
        found = any(c.get("channel") == store.channel and c.get("store") == store.store for c in listed)
        report.check(
            "connection",
            found,
            f"existing {store.channel} store {store.store}" + ("" if found else " is not connected"),
        )
        yield found
        return
    answer = hub.call("POST", "/api/connections", json=store.connection_body())
    body = _json(answer)
    connection_id = body.get("connection_id") if answer.status_code == 201 else None
    report.check(
        "connection",
        connection_id is not None,
        f"throwaway {store.channel} store {store.store} registered ({answer.status_code})",
    )
    try:
        yield connection_id is not None
    finally:
        if connection_id is not None:
            _delete_connection(hub, report, store, str(connection_id))


def _delete_connection(hub: Hub, report: Report, store: SmokeStore, connection_id: str) -> None:
    deleted = hub.call("DELETE", f"/api/connections/{quote(connection_id, safe='')}")
    listed = _json(hub.call("GET", "/api/connections")).get("connections", [])
    gone = not any(c.get("connection_id") == connection_id for c in listed)
    report.check(
        "cleanup connection",
        deleted.status_code == 204 and gone,
        f"throwaway store {'deleted' if gone else 'still connected'} ({deleted.status_code})",
    )


def send_order(hub: Hub, report: Report, store: SmokeStore, external_id: int) -> bool:
    body, headers = store.order_delivery(external_id, datetime.now(UTC))
    answer = hub.call("POST", store.webhook_path, auth=False, data=body, headers=headers)
    return report.check(
        "webhook",
        answer.status_code == 200,
        f"signed {store.channel} order {external_id} answered {answer.status_code}",
    )


def wait_for_order(
    hub: Hub, report: Report, store: SmokeStore, external_id: int, timeout_s: float
) -> dict[str, Any] | None:
    """The order once it settles (polled on the order API, bounded by `timeout_s`), or its last state."""
    path = f"/api/orders/by-channel/{store.channel}/{external_id}"
    started = time.monotonic()
    order: dict[str, Any] | None = None
    while True:
        answer = hub.call("GET", path, params={"store": store.store})
        if answer.status_code == 200:
            order = _json(answer)
            if order.get("status") in SETTLED:
                break
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(0.5)
    waited = time.monotonic() - started
    if order is None:
        report.check("order", False, f"no {store.channel} order {external_id} within {timeout_s:.0f} s")
        return None
    status = str(order.get("status"))
    events = " → ".join(str(h.get("event")) for h in order.get("history", []))
    reached = "reached" if status in SETTLED else f"still {status} after"
    report.check(
        "order",
        status == EXPECTED_STATUS,
        f"{order.get('order_id')} {reached} {status} in {waited:.1f} s ({events})",
    )
    return order


def cancel_if_open(hub: Hub, report: Report, order: dict[str, Any]) -> None:
    status, order_id = str(order.get("status")), str(order.get("order_id"))
    if status in CLOSED:
        return
    answer = hub.call("POST", f"/api/orders/{quote(order_id, safe='')}/cancel", json={"reason": "smoke test"})
    report.check(
        "cleanup order",
        answer.status_code == 200,
        f"{order_id} was {status}: cancel answered {answer.status_code}",
    )


def run(hub: Hub, store: SmokeStore, *, timeout_s: float, report: Report) -> Report:
    check_health(hub, report)
    check_openapi(hub, report)
    check_api(hub, report)
    with connected(hub, report, store) as ready:
        order: dict[str, Any] | None = None
        if ready:
            external_id = new_external_id()
            if send_order(hub, report, store, external_id):
                order = wait_for_order(hub, report, store, external_id, timeout_s)
        try:
            check_status_page(hub, report, store, order.get("order_id") if order else None)
        finally:
            if order is not None:
                cancel_if_open(hub, report, order)
    return report


# --- command line ----------------------------------------------------------------------------------


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _short(answer: requests.Response) -> str:
    return " ".join(answer.text.split())[:200]


def parse_args(argv: list[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    default_url = environ.get("HUB_SMOKE_BASE_URL") or f"http://127.0.0.1:{environ.get('HUB_PORT', '8000')}"
    parser = argparse.ArgumentParser(
        prog="python -m local.smoke", description="Checks a running hub end to end."
    )
    parser.add_argument(
        "--base-url",
        default=default_url,
        help="the hub's base URL, a stage path included (HUB_SMOKE_BASE_URL; default %(default)s)",
    )
    parser.add_argument("--deployed", action="store_true", help="allow a non-loopback https URL")
    parser.add_argument("--channel", choices=CHANNELS, default="woocommerce")
    parser.add_argument("--store", help="use this connected store instead of a throwaway one")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the order")
    args = parser.parse_args(argv)
    args.token = environ.get("HUB_OPERATOR_TOKEN", "")
    args.webhook_secret = environ.get("HUB_SMOKE_WEBHOOK_SECRET", "")
    return args


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = parse_args(argv, dict(os.environ) if environ is None else environ)
    report = Report()
    try:
        if not args.token:
            raise Unusable("no operator token: set HUB_OPERATOR_TOKEN (make smoke TOKEN=...)")
        if args.store and not args.webhook_secret:
            raise Unusable("--store needs that store's webhook secret in HUB_SMOKE_WEBHOOK_SECRET")
        refuse_unless_allowed(args.base_url, deployed=args.deployed)
        store = (
            SmokeStore(args.channel, args.store, args.webhook_secret, throwaway=False)
            if args.store
            else SmokeStore.throwaway_store(args.channel)
        )
        print(f"order-hub smoke test of {args.base_url}")
        run(Hub(args.base_url, args.token), store, timeout_s=args.timeout, report=report)
    except Unusable as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    failed = sum(1 for ok, _, _ in report.lines if not ok)
    print(
        f"smoke {'passed' if report.passed else 'FAILED'}: {len(report.lines) - failed} of "
        f"{len(report.lines)} checks passed"
    )
    return EXIT_PASSED if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
