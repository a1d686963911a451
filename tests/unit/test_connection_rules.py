"""What a connection may hold: public https store URLs, valid host names, bounded printable secrets.

A bad-input catalogue over POST /api/connections (input → 400, nothing stored in the connections or the
secrets), then the call-time check: the transport's hook refuses a host that resolves to a private,
loopback or link-local address (an injected resolver stands in for DNS), redirects included.
"""

from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import BaseAdapter

from chalicelib.domain.connections import register
from chalicelib.domain.errors import InvalidInput
from chalicelib.integrations.http import BlockedHost, GuardedAdapter, HostGuard, guard_hosts, guard_session
from tests.fakes import InMemoryConnectionRepository, InMemorySecretStore
from tests.unit.api import AUTH

WOO = {
    "channel": "woocommerce",
    "store": "https://shop.example.com/",
    "webhook_secret": "wc-secret",
    "consumer_key": "ck_1",
    "consumer_secret": "cs_1",
}
SHOPIFY = {
    "channel": "shopify",
    "store": "demo.myshopify.com",
    "webhook_secret": "s",
    "access_token": "shpat_1",
}
MEGABYTE = "x" * (1024 * 1024)

# body → the word the 400's message names
REFUSED = [
    (
        "woo store at the instance metadata address",
        {**WOO, "store": "http://169.254.169.254/latest/meta-data/"},
        "store",
    ),
    (
        "woo store at the metadata address over https",
        {**WOO, "store": "https://169.254.169.254/"},
        "link-local",
    ),
    ("woo store on loopback", {**WOO, "store": "https://127.0.0.1/"}, "loopback"),
    ("woo store on IPv6 loopback", {**WOO, "store": "https://[::1]/"}, "loopback"),
    (
        "woo store on an IPv4-mapped metadata address",
        {**WOO, "store": "https://[::ffff:169.254.169.254]/"},
        "link-local",
    ),
    ("woo store at localhost", {**WOO, "store": "https://localhost/"}, "localhost"),
    ("woo store under .localhost", {**WOO, "store": "https://shop.localhost/"}, "localhost"),
    ("woo store on RFC 1918 10/8", {**WOO, "store": "https://10.0.0.5/"}, "private"),
    ("woo store on RFC 1918 192.168/16", {**WOO, "store": "https://192.168.1.1/"}, "private"),
    ("woo store on RFC 1918 172.16/12", {**WOO, "store": "https://172.16.0.1/"}, "private"),
    ("woo store on IPv6 unique-local fc00::/7", {**WOO, "store": "https://[fd00:ec2::254]/"}, "private"),
    ("woo store on the unspecified address", {**WOO, "store": "https://0.0.0.0/"}, "unspecified"),
    ("woo store on a multicast address", {**WOO, "store": "https://224.0.0.1/"}, "multicast"),
    ("woo store as a decimal number (169.254.169.254)", {**WOO, "store": "https://2852039166/"}, "host name"),
    ("woo store over plain http", {**WOO, "store": "http://shop.example.com/"}, "https"),
    ("woo store with user-info", {**WOO, "store": "https://user:pw@shop.example.com/"}, "user-info"),
    ("woo store host holding HTML", {**WOO, "store": "https://<script>alert(1)</script>.example/"}, "store"),
    ("woo store host with a space", {**WOO, "store": "https://shop example.com/"}, "store"),
    ("woo store host with an underscore", {**WOO, "store": "https://shop_1.example.com/"}, "host name"),
    ("woo store host label over 63", {**WOO, "store": f"https://{'a' * 64}.example.com/"}, "host name"),
    ("woo store with a query", {**WOO, "store": "https://shop.example.com/?x=1"}, "query"),
    (
        "woo store with a port that is not a number",
        {**WOO, "store": "https://shop.example.com:http/"},
        "store",
    ),
    ("shopify store holding HTML", {**SHOPIFY, "store": "<b>x</b>.myshopify.com"}, "myshopify"),
    ("shopify store with user-info", {**SHOPIFY, "store": "https://u@demo.myshopify.com"}, "myshopify"),
    ("shopify store with a space", {**SHOPIFY, "store": "de mo.myshopify.com"}, "myshopify"),
    ("a 1 MB webhook secret", {**WOO, "webhook_secret": MEGABYTE}, "webhook_secret"),
    ("a secret over 4,096 characters", {**SHOPIFY, "access_token": "t" * 4097}, "access_token"),
    ("a secret with a line break", {**WOO, "consumer_secret": "cs\nX-Injected: 1"}, "consumer_secret"),
    ("a secret with a NUL", {**WOO, "consumer_key": "ck\x00"}, "consumer_key"),
    ("a secret with U+202E", {**SHOPIFY, "webhook_secret": "abc\u202edef"}, "webhook_secret"),
    (
        "a 1 MB Stripe key",
        {"channel": "stripe", "secret_key": "sk_test_" + MEGABYTE, "webhook_secret": "whsec_1"},
        "secret_key",
    ),
    (
        "a 1 MB 3PL key",
        {
            "channel": "3pl",
            "store": "acme",
            "api_base": "https://api.acme-3pl.example",
            "api_key": MEGABYTE,
            "webhook_secret": "s",
        },
        "api_key",
    ),
]


@pytest.mark.parametrize(("body", "names"), [pytest.param(b, n, id=case) for case, b, n in REFUSED])
def test_post_connection__refused_with_400__nothing_stored(client, svc, body, names):
    answer = client.http.post("/api/connections", headers=AUTH, body=json.dumps(body))
    assert answer.status_code == 400, answer.body
    message = json.loads(answer.body)["Message"]
    assert names in message
    assert MEGABYTE not in message and "supersecret" not in message and len(message) < 2000
    assert svc.connections.list() == [] and svc.secrets.values == {}


ACCEPTED = [
    ("a public https store", {**WOO, "store": "https://Shop.Example.com/wp"}, "https://shop.example.com/wp/"),
    ("a public address literal", {**WOO, "store": "https://93.184.216.34/"}, "https://93.184.216.34/"),
    (
        "a store with its port",
        {**WOO, "store": "https://shop.example.com:8443/"},
        "https://shop.example.com:8443/",
    ),
    ("a 4,096-character secret", {**SHOPIFY, "access_token": "t" * 4096}, "demo.myshopify.com"),
]


@pytest.mark.parametrize(("body", "store"), [pytest.param(b, s, id=case) for case, b, s in ACCEPTED])
def test_post_connection__public_hosts_and_bounded_secrets_are_accepted(client, svc, body, store):
    answer = client.http.post("/api/connections", headers=AUTH, body=json.dumps(body))
    assert answer.status_code == 201, answer.body
    assert json.loads(answer.body)["store"] == store and len(svc.secrets.values) == 1


def _register(body, *, allow_private_hosts):
    repo, secrets = InMemoryConnectionRepository(), InMemorySecretStore()
    connection, _ = register(
        body,
        connections=repo,
        secrets=secrets,
        secret_prefix="order-hub/test/",
        now=lambda: __import__("datetime").datetime(2026, 11, 23),
        allow_private_hosts=allow_private_hosts,
    )
    return connection


def test_the_local_stack_may_register_its_own_loopback_simulators__never_the_metadata_address():
    local = _register({**WOO, "store": "http://127.0.0.1:8765/"}, allow_private_hosts=True)
    assert local.store == "http://127.0.0.1:8765/"
    assert _register({**WOO, "store": "http://localhost:8765/"}, allow_private_hosts=True).store
    for store in ("http://169.254.169.254/", "http://0.0.0.0/", "http://[fe80::1]/"):
        with pytest.raises(InvalidInput):
            _register({**WOO, "store": store}, allow_private_hosts=True)
    with pytest.raises(InvalidInput, match="https"):
        _register({**WOO, "store": "http://127.0.0.1:8765/"}, allow_private_hosts=False)
    with pytest.raises(InvalidInput, match="loopback"):
        _register({**WOO, "store": "https://127.0.0.1:8765/"}, allow_private_hosts=False)


def test_the_setting_is_off_unless_the_environment_turns_it_on():
    from chalicelib.settings import from_environ

    assert from_environ({}).allow_private_hosts is False
    assert from_environ({"HUB_ALLOW_PRIVATE_HOSTS": "1"}).allow_private_hosts is True


# What a name resolves to → refused (the word the error names) or None (called)
RESOLVED = [
    (["93.184.216.34"], None),
    (["2606:2800:220:1:248:1893:25c8:1946"], None),
    (["169.254.169.254"], "link-local"),
    (["93.184.216.34", "10.1.2.3"], "private"),  # one bad address is enough: the client may pick it
    (["127.0.0.1"], "loopback"),
    (["::1"], "loopback"),
    (["fd00:ec2::254"], "private"),
    (["::ffff:169.254.169.254"], "link-local"),
    (["0.0.0.0"], "unspecified"),  # noqa: S104
    (["100.64.0.1"], "private"),  # carrier-grade NAT: not public
]


@pytest.mark.parametrize(("addresses", "why"), RESOLVED, ids=[",".join(a) for a, _ in RESOLVED])
def test_host_guard__checks_every_address_the_name_resolves_to(addresses, why):
    asked = []

    def resolve(host, port):
        asked.append((host, port))
        return addresses

    guard = HostGuard(resolve=resolve)
    if why is None:
        guard.check("https://shop.example.com/wp-json/wc/v3/orders")
    else:
        with pytest.raises(BlockedHost, match=why):
            guard.check("https://shop.example.com/wp-json/wc/v3/orders")
    assert asked == [("shop.example.com", 443)]


def test_host_guard__refuses_without_resolving_what_the_url_already_shows():
    def resolve(host, port):
        raise AssertionError("not resolved")

    guard = HostGuard(resolve=resolve)
    for url, why in [
        ("http://shop.example.com/", "https"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://localhost/", "localhost"),
        ("https://2852039166/", "host name"),
    ]:
        with pytest.raises(BlockedHost, match=why):
            guard.check(url)
    guard.check("https://93.184.216.34/")  # a public literal needs no lookup


def test_host_guard__local_stack_calls_its_loopback_simulators__never_link_local():
    guard = HostGuard(allow_private=True, resolve=lambda host, port: ["127.0.0.1"])
    guard.check("http://127.0.0.1:9000/api")
    guard.check("http://localhost:9000/api")
    with pytest.raises(BlockedHost, match="link-local"):
        HostGuard(allow_private=True, resolve=lambda host, port: ["169.254.169.254"]).check(
            "http://x.example/"
        )


def test_host_guard__a_name_that_does_not_resolve_is_unreachable__retried_like_any_connection_error():
    def resolve(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(requests.ConnectionError):
        HostGuard(resolve=resolve).check("https://shop.example.com/")


class Answers(BaseAdapter):
    """The network: answers each URL from a table (a redirect, or 200), recording what was sent."""

    def __init__(self, redirects: dict[str, str]) -> None:
        super().__init__()
        self.redirects = redirects
        self.sent: list[str] = []

    def send(self, request, *args, **kwargs):
        self.sent.append(request.url)
        response = requests.Response()
        response.url = request.url
        response.request = request
        response.status_code = 302 if request.url in self.redirects else 200
        if request.url in self.redirects:
            response.headers["Location"] = self.redirects[request.url]
        response._content = b"{}"
        return response

    def close(self):
        pass


@pytest.fixture
def installed_guard():
    addresses = {"shop.example.com": ["93.184.216.34"], "evil.example.com": ["169.254.169.254"]}
    guard_hosts(HostGuard(resolve=lambda host, port: addresses[host]))
    yield
    guard_hosts(None)


def test_transport_hook__a_redirect_to_the_metadata_service_is_never_followed(installed_guard):
    network = Answers(
        {
            "https://shop.example.com/a": "https://evil.example.com/latest/meta-data/",
            "https://shop.example.com/b": "https://169.254.169.254/latest/meta-data/",
        }
    )
    session = requests.Session()
    session.mount("https://", network)
    guard_session(session)
    guard_session(session)  # once only
    assert isinstance(session.get_adapter("https://x"), GuardedAdapter)
    assert not isinstance(session.get_adapter("https://x").inner, GuardedAdapter)
    assert session.get("https://shop.example.com/ok").status_code == 200
    for start in ("https://shop.example.com/a", "https://shop.example.com/b"):
        with pytest.raises(BlockedHost):
            session.get(start)
    assert network.sent == [
        "https://shop.example.com/ok",
        "https://shop.example.com/a",
        "https://shop.example.com/b",
    ]


def test_transport_hook__a_client_calling_a_blocked_store_gets_its_vendor_error__nothing_sent(
    installed_guard,
):
    from chalicelib.domain.upstream import UpstreamError, UpstreamThrottled, UpstreamUnavailable
    from chalicelib.integrations.http import HttpTransport, RetryPolicy, give_up_as

    network = Answers({})
    session = requests.Session()
    session.mount("https://", network)
    transport = HttpTransport(RetryPolicy(sleep=lambda s: None), UpstreamError, session=session)
    with pytest.raises(UpstreamError, match="link-local") as info:
        transport.request(
            "list orders",
            "GET",
            "https://evil.example.com/wp-json/wc/v3/orders",
            classify=lambda r: r,
            give_up=give_up_as(UpstreamUnavailable, UpstreamThrottled),
        )
    assert not isinstance(info.value, UpstreamUnavailable)  # refused, not retried
    assert network.sent == []


def test_no_guard_installed__tests_call_their_local_simulators_freely():
    network = Answers({})
    session = requests.Session()
    session.mount("http://", network)
    guard_session(session)
    assert session.get("http://127.0.0.1:9/x").status_code == 200


@pytest.mark.parametrize(
    ("api_base", "allow_private", "accepted"),
    [
        ("https://api.acme-3pl.example/", False, True),
        ("http://api.acme-3pl.example", False, False),  # the API key would travel in clear
        ("http://127.0.0.1:9000", False, False),  # loopback: only on the local stack
        ("http://127.0.0.1:9000", True, True),
        ("https://169.254.169.254/", True, False),  # the metadata service, never
        ("https://api.acme-3pl.example/?a=1", False, False),
    ],
)
def test_a_3pl_connection_carries_its_api_base_next_to_its_key(api_base, allow_private, accepted):
    from chalicelib.domain.connections import parse_connection

    body = {"channel": "3pl", "store": "acme", "api_base": api_base, "api_key": "k", "webhook_secret": "s"}
    if accepted:
        parsed = parse_connection(body, allow_private_hosts=allow_private)
        assert parsed.api_base == api_base.rstrip("/")  # type: ignore[union-attr]
    else:
        with pytest.raises(InvalidInput, match="api_base"):
            parse_connection(body, allow_private_hosts=allow_private)


def test_a_3pl_connection_without_its_api_base_is_refused():
    from chalicelib.domain.connections import parse_connection

    with pytest.raises(InvalidInput, match="api_base"):
        parse_connection({"channel": "3pl", "store": "acme", "api_key": "k", "webhook_secret": "s"})
