"""GIVEN the Amazon simulator on a free port WHEN the SP-API client calls it THEN tokens, pages, throttles."""

from datetime import UTC, datetime, timedelta

import pytest
import requests

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.totals import totals_issues
from chalicelib.integrations.amazon.errors import SpApiAuthError, SpApiError, SpApiNotFound, SpApiThrottled
from chalicelib.integrations.amazon.notifications import (
    normalise_amazon_order,
    parse_order_change_notification,
)
from chalicelib.integrations.amazon.spapi import SpApiClient, endpoint_for_marketplace
from local.simulators.amazon import JP_MARKETPLACE, RDT_PATH, AmazonSimulator
from tests.fake_time import FakeTime

SELLER, MARKETPLACE = "A2HUB7SELLER01", "ATVPDKIKX0DER"
CLIENT_ID = "amzn1.application-oa2-client.hub"
CLIENT_SECRET, REFRESH_TOKEN = "lwa-secret-0f9e", "Atzr|IwEBI-refresh"


@pytest.fixture
def fake_time():
    """One clock (a FakeTime) for client and simulator; sleeping advances it instead of waiting."""
    return FakeTime()


@pytest.fixture
def simulator(started, fake_time, request):
    options = getattr(request, "param", {})
    sim = AmazonSimulator(
        SELLER, MARKETPLACE, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, seed=42, clock=fake_time, **options
    )
    return started(sim.start())


def make_client(sim, fake_time, **options):
    settings = {
        "endpoint": sim.url,
        "lwa_endpoint": sim.lwa_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "clock": fake_time,
        "sleep": fake_time.sleep,
        "jitter": lambda: 0.5,  # backoff × 0.75: deterministic
        "timeout": 20.0,
    }
    return SpApiClient(**{**settings, **options})


@pytest.fixture
def client(simulator, fake_time):
    return make_client(simulator, fake_time)


# --- LWA ---------------------------------------------------------------------------------------------


def test_access_token__exchanged_once_and_cached_until_shortly_before_expiry(simulator, client, fake_time):
    order = simulator.create_order()

    client.get_order(order["AmazonOrderId"])
    client.get_order_items(order["AmazonOrderId"])
    first = client.access_token()
    assert simulator.requests["lwaToken"] == 1

    fake_time.now += 3600 - 61
    assert client.access_token() == first
    fake_time.now += 2  # inside the refresh margin: exchanged again before the old one dies
    second = client.access_token()

    assert second != first and simulator.requests["lwaToken"] == 2


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "amzn1.application-oa2-client.other"}, "invalid_client"),
        ({"refresh_token": "Atzr|revoked"}, "invalid_grant"),
    ],
)
def test_access_token__bad_credentials__auth_error_without_retrying(simulator, fake_time, credentials, code):
    client = make_client(simulator, fake_time, **credentials)

    with pytest.raises(SpApiAuthError) as caught:
        client.get_order("113-0000000-0000000")

    assert caught.value.code == code
    assert simulator.requests["lwaToken"] == 1 and fake_time.sleeps == []
    assert simulator.requests["getOrder"] == 0
    assert "wrong" not in str(caught.value) and "revoked" not in str(caught.value)


def test_access_token__lwa_server_error__retried_with_backoff(simulator, client, fake_time):
    simulator.fail_next("lwaToken", 500)

    assert client.access_token().startswith("Atza|")

    assert simulator.requests["lwaToken"] == 2 and fake_time.sleeps == [0.75]


def test_revoked_access_token__one_fresh_exchange_then_the_call_succeeds(simulator, client):
    order = simulator.create_order()
    client.get_order(order["AmazonOrderId"])
    simulator.revoke_tokens()

    assert client.get_order(order["AmazonOrderId"])["AmazonOrderId"] == order["AmazonOrderId"]
    assert simulator.requests["lwaToken"] == 2


@pytest.mark.parametrize("simulator", [{"token_ttl": 0}], indirect=True)
def test_403_even_with_a_fresh_token__auth_error(simulator, client):
    with pytest.raises(SpApiAuthError) as caught:
        client.get_order(simulator.create_order()["AmazonOrderId"])

    assert caught.value.status == 403 and caught.value.code == "Unauthorized"
    assert simulator.requests["lwaToken"] == 2


def test_client_repr_and_errors_never_show_secrets(simulator, client):
    simulator.create_order()
    token = client.access_token()

    with pytest.raises(SpApiNotFound) as caught:
        client.get_order("999-0000000-0000000")

    for text in (repr(client), str(caught.value)):
        assert CLIENT_SECRET not in text and REFRESH_TOKEN not in text and token not in text


# --- restricted data tokens and getOrderAddress -----------------------------------------------------


def address_path(order_id):
    return f"/orders/v0/orders/{order_id}/address"


def create_rdt(sim, token, *paths):
    body = {"restrictedResources": [{"method": "GET", "path": path} for path in paths]}
    return requests.post(sim.url + RDT_PATH, json=body, headers={"x-amz-access-token": token}, timeout=20)


def get_address(sim, order_id, token):
    return requests.get(sim.url + address_path(order_id), headers={"x-amz-access-token": token}, timeout=20)


def test_simulator__rdt_issued_for_the_address_path__opens_it_with_the_full_address(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped", pii=False)["AmazonOrderId"]
    issued = create_rdt(simulator, client.access_token(), address_path(order_id))

    assert issued.status_code == 200 and issued.headers["x-amzn-RateLimit-Limit"] == "1"
    body = issued.json()
    assert body["restrictedDataToken"].startswith("Atz.sprdt|") and body["expiresIn"] == 3600
    answer = get_address(simulator, order_id, body["restrictedDataToken"])
    assert answer.status_code == 200 and answer.headers["x-amzn-RateLimit-Limit"] == "0.5"
    payload = answer.json()["payload"]
    assert payload["AmazonOrderId"] == order_id
    assert payload["ShippingAddress"] == simulator.shipping_address(order_id)
    assert {"Name", "AddressLine1", "City", "StateOrRegion", "PostalCode", "CountryCode", "Phone"} <= set(
        payload["ShippingAddress"]
    )
    # getOrder itself still shows only where the parcel goes.
    assert "AddressLine1" not in simulator.order(order_id)["ShippingAddress"]


def test_simulator__rdt_for_another_orders_path__403(simulator, client):
    mine, other = (simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"] for _ in range(2))
    rdt = create_rdt(simulator, client.access_token(), address_path(other)).json()["restrictedDataToken"]

    answer = get_address(simulator, mine, rdt)

    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "Unauthorized"
    assert get_address(simulator, other, rdt).status_code == 200


def test_simulator__plain_lwa_token_on_the_address_endpoint__403(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    token = client.access_token()

    answer = get_address(simulator, order_id, token)

    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "Unauthorized"
    assert "ShippingAddress" not in answer.text


def test_simulator__rdt_is_not_an_access_token_for_other_operations(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    rdt = create_rdt(simulator, client.access_token(), address_path(order_id)).json()["restrictedDataToken"]

    answer = requests.get(
        f"{simulator.url}/orders/v0/orders/{order_id}", headers={"x-amz-access-token": rdt}, timeout=20
    )

    assert answer.status_code == 403


def test_simulator__expired_rdt__403_expired(simulator, client, fake_time):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    rdt = create_rdt(simulator, client.access_token(), address_path(order_id)).json()["restrictedDataToken"]
    fake_time.now += 3599
    assert get_address(simulator, order_id, rdt).status_code == 200

    fake_time.now += 1
    answer = get_address(simulator, order_id, rdt)

    assert answer.status_code == 403
    error = answer.json()["errors"][0]
    assert error["code"] == "Unauthorized" and "expired" in error["details"]


@pytest.mark.parametrize(
    "resources",
    [
        [],
        [{"method": "GET", "path": "/orders/v0/orders/{orderId}/address"}],
        [{"method": "PATCH", "path": "/orders/v0/orders/123-1234567-1234567/address"}],
        [{"method": "GET", "path": "/orders/v0/orders/123-1234567-1234567/shipmentConfirmation"}],
    ],
)
def test_simulator__create_rdt__resources_it_cannot_grant__400(simulator, client, resources):
    answer = requests.post(
        simulator.url + RDT_PATH,
        json={"restrictedResources": resources},
        headers={"x-amz-access-token": client.access_token()},
        timeout=20,
    )

    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "InvalidInput"


def test_simulator__create_rdt__needs_a_valid_lwa_token(simulator):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]

    answer = create_rdt(simulator, "Atza|forged", address_path(order_id))

    assert answer.status_code == 403 and "restrictedDataToken" not in answer.json()


def test_get_order_address__rdt_then_the_full_address(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped", pii=False)["AmazonOrderId"]

    address = client.get_order_address(order_id)

    assert address == simulator.shipping_address(order_id)
    assert address["AddressLine1"] and address["Name"] and address["Phone"]
    assert simulator.requests["createRestrictedDataToken"] == 1
    assert simulator.requests["getOrderAddress"] == 1


def test_get_order_address__pending_order__empty_until_amazon_releases_it(simulator, client):
    order_id = simulator.create_order(OrderStatus="Pending")["AmazonOrderId"]

    assert client.get_order_address(order_id) == {}
    simulator.set_status(order_id, "Unshipped")
    assert client.get_order_address(order_id)["AddressLine1"]


def test_get_order_address__each_call_makes_its_own_rdt(simulator, client):
    first, second = (simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"] for _ in range(2))

    client.get_order_address(first)
    client.get_order_address(second)
    client.get_order_address(first)

    assert simulator.requests["createRestrictedDataToken"] == 3


def test_get_order_address__rdt_refused__one_fresh_rdt_then_success(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    client.access_token()
    real_create = simulator._create_rdt
    calls = []

    def first_rdt_for_the_wrong_order(body):
        calls.append(body)
        if len(calls) == 1:
            body = {"restrictedResources": [{"method": "GET", "path": address_path("111-1111111-1111111")}]}
        return real_create(body)

    simulator._create_rdt = first_rdt_for_the_wrong_order

    assert client.get_order_address(order_id) == simulator.shipping_address(order_id)
    assert len(calls) == 2 and simulator.requests["getOrderAddress"] == 2
    assert calls[1] == {"restrictedResources": [{"method": "GET", "path": address_path(order_id)}]}


@pytest.mark.parametrize("simulator", [{"rdt_ttl": 0}], indirect=True)
def test_get_order_address__rdt_refused_even_when_fresh__auth_error(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]

    with pytest.raises(SpApiAuthError) as caught:
        client.get_order_address(order_id)

    assert caught.value.status == 403 and caught.value.operation == "getOrderAddress"
    assert simulator.requests["createRestrictedDataToken"] == 2


def test_get_order_address__throttled_rdt_and_address__backed_off_then_answered(simulator, client, fake_time):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    simulator.fail_next("createRestrictedDataToken", 429)
    simulator.fail_next("getOrderAddress", 503)

    assert client.get_order_address(order_id)["AddressLine1"]
    # 429: backoff 0.75 s, then the drained bucket (1 rps) waits the remaining 0.25 s; 503: backoff 0.75 s.
    assert fake_time.sleeps == [0.75, 0.25, 0.75]
    assert simulator.requests["createRestrictedDataToken"] == 2 and simulator.requests["getOrderAddress"] == 2


def test_get_order_address__paced_to_its_usage_plan(simulator, fake_time):
    client = make_client(simulator, fake_time, rate_limits={"getOrderAddress": (0.5, 1)})
    first, second = (simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"] for _ in range(2))

    client.get_order_address(first)
    client.get_order_address(second)

    assert fake_time.sleeps == [2.0]
    assert client.rate_limit("createRestrictedDataToken") == 1.0


def test_get_order_address__unknown_order__not_found(client):
    with pytest.raises(SpApiNotFound) as caught:
        client.get_order_address("999-0000000-0000000")

    assert caught.value.operation == "getOrderAddress"


def test_get_order_address__never_logs_the_address_or_tokens(simulator, client, caplog):
    order_id = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    simulator.fail_next("getOrderAddress", 503)
    caplog.set_level("DEBUG")

    address = client.get_order_address(order_id)

    logged = caplog.text
    assert "sp-api retry" in logged  # something was logged, so the checks below mean something
    for value in (address["AddressLine1"], address["Name"], address["Phone"], "Atz.sprdt|", "Atza|"):
        assert value not in logged


# --- Orders v0 -------------------------------------------------------------------------------------


def test_get_order__answers_the_payload(simulator, client):
    order = simulator.create_order(OrderStatus="Unshipped", pii=True)

    fetched = client.get_order(order["AmazonOrderId"])

    assert fetched == simulator.order(order["AmazonOrderId"])
    assert fetched["ShippingAddress"]["Name"] and fetched["OrderTotal"]["Amount"]


def test_get_order__unknown_order__not_found(client):
    with pytest.raises(SpApiNotFound) as caught:
        client.get_order("999-0000000-0000000")

    assert isinstance(caught.value, NotFound)
    assert caught.value.status == 404 and caught.value.operation == "getOrder"


@pytest.mark.parametrize("simulator", [{"items_page_size": 5}], indirect=True)
def test_get_order_items__follows_next_token_across_pages(simulator, client):
    order = simulator.create_order(item_count=12)

    items = client.get_order_items(order["AmazonOrderId"])

    assert len(items) == 12 and len({item["OrderItemId"] for item in items}) == 12
    assert simulator.requests["getOrderItems"] == 3


@pytest.mark.parametrize("simulator", [{"orders_page_size": 2, "jp_rate": 0.0}], indirect=True)
def test_get_orders__pages_through_recently_updated_orders(simulator, client):
    created = {simulator.create_order()["AmazonOrderId"] for _ in range(3)}
    since = datetime.now(UTC) - timedelta(minutes=5)

    first, token = client.get_orders([MARKETPLACE], since)
    second, last = client.get_orders([MARKETPLACE], since, token)

    assert len(first) == 2 and token is not None and len(second) == 1 and last is None
    assert {o["AmazonOrderId"] for o in first + second} == created


def test_get_orders__no_marketplace__invalid_input_error(client):
    with pytest.raises(SpApiError) as caught:
        client.get_orders([], datetime.now(UTC))

    assert caught.value.status == 400 and caught.value.code == "InvalidInput"


# --- usage plans and throttling ------------------------------------------------------------------


@pytest.mark.parametrize("simulator", [{"rate_limits": {"getOrder": (0.5, 2)}}], indirect=True)
def test_429__backed_off_then_paced_until_the_quota_refills(simulator, client, fake_time):
    order_id = simulator.create_order()["AmazonOrderId"]

    for _ in range(3):  # the simulator's burst is 2: the third call is throttled once
        assert client.get_order(order_id)["AmazonOrderId"] == order_id

    # 0.75 s jittered backoff, then the pacer waits for the next token at 0.5 per second.
    assert fake_time.sleeps == [0.75, 1.25]
    assert simulator.requests["getOrder"] == 4
    assert client.rate_limit("getOrder") == 0.5  # learnt from x-amzn-RateLimit-Limit


def test_429__retries_spent__throttled_error(simulator, fake_time):
    client = make_client(simulator, fake_time, max_retries=2)
    order_id = simulator.create_order()["AmazonOrderId"]
    simulator.fail_next("getOrder", 429, times=5)

    with pytest.raises(SpApiThrottled) as caught:
        client.get_order(order_id)

    assert simulator.requests["getOrder"] == 3  # the first try and two retries
    assert [s for s in fake_time.sleeps if s in (0.75, 1.5)] == [0.75, 1.5]  # exponential backoff
    assert caught.value.status == 429 and caught.value.code == "QuotaExceeded"


@pytest.mark.parametrize("simulator", [{"retry_after": 7}], indirect=True)
def test_429_with_retry_after__waits_exactly_that_long(simulator, client, fake_time):
    order_id = simulator.create_order()["AmazonOrderId"]
    simulator.fail_next("getOrder", 429)

    client.get_order(order_id)

    assert fake_time.sleeps[0] == 7


@pytest.mark.parametrize("simulator", [{"rate_limits": {"getOrders": (0.0167, 1)}}], indirect=True)
def test_pacer__next_slot_beyond_max_wait__throttled_without_sleeping(simulator, fake_time):
    client = make_client(simulator, fake_time, rate_limits={"getOrders": (0.0167, 1)}, max_wait=30)
    client.get_orders([MARKETPLACE], datetime.now(UTC))

    with pytest.raises(SpApiThrottled) as caught:
        client.get_orders([MARKETPLACE], datetime.now(UTC))

    assert caught.value.retry_after == pytest.approx(1 / 0.0167)
    assert fake_time.sleeps == [] and simulator.requests["getOrders"] == 1


def test_server_errors__retried_with_backoff(simulator, client, fake_time):
    order_id = simulator.create_order(item_count=2)["AmazonOrderId"]
    simulator.fail_next("getOrderItems", 503, times=2)

    assert len(client.get_order_items(order_id)) == 2
    assert fake_time.sleeps == [0.75, 1.5]


def test_endpoint_for_marketplace__regional_endpoints():
    assert endpoint_for_marketplace("ATVPDKIKX0DER") == "https://sellingpartnerapi-na.amazon.com"
    assert endpoint_for_marketplace("A1PA6795UKMFR9") == "https://sellingpartnerapi-eu.amazon.com"
    assert endpoint_for_marketplace(JP_MARKETPLACE) == "https://sellingpartnerapi-fe.amazon.com"
    with pytest.raises(InvalidInput):
        endpoint_for_marketplace("XX")


# --- simulator ↔ channel adapter -----------------------------------------------------------------


@pytest.mark.parametrize("simulator", [{"jp_rate": 0.4, "items_page_size": 2}], indirect=True)
def test_simulated_orders__notification_fetch_normalise__figures_add_up(simulator, client):
    notifications: list[dict] = []
    simulator.notify = notifications.append
    for _ in range(12):
        simulator.create_order()
    simulator.create_order(OrderStatus="Pending")
    simulator.create_order(pii=False, MarketplaceId=JP_MARKETPLACE)

    currencies = set()
    for body in notifications:
        change = parse_order_change_notification(body)
        assert change is not None and change.seller_id == SELLER
        order = client.get_order(change.amazon_order_id)
        snapshot = normalise_amazon_order(order, client.get_order_items(change.amazon_order_id), SELLER)
        assert totals_issues(snapshot.order) == [], snapshot.order.external_id
        currencies.add(snapshot.order.currency)

    assert {"USD", "JPY"} <= currencies


def test_mfn_order_without_pii__address_fetched_with_rdt__normalised_with_street_and_name(simulator, client):
    order_id = simulator.create_order(OrderStatus="Unshipped", pii=False)["AmazonOrderId"]
    order, items = client.get_order(order_id), client.get_order_items(order_id)
    assert "AddressLine1" not in order["ShippingAddress"]

    full = client.get_order_address(order_id)
    shipping = normalise_amazon_order(order, items, SELLER, full).order.shipping_address

    assert shipping is not None
    assert (shipping.name, shipping.line1, shipping.city, shipping.postal_code, shipping.country) == (
        full["Name"],
        full["AddressLine1"],
        full["City"],
        full["PostalCode"],
        full["CountryCode"],
    )
    assert shipping.line1 is not None and shipping.name is not None


def test_simulator__set_status__bumps_last_update_date_and_notifies(simulator):
    notifications: list[dict] = []
    simulator.notify = notifications.append
    order = simulator.create_order(OrderStatus="Pending")

    shipped = simulator.set_status(order["AmazonOrderId"], "Unshipped")
    again = simulator.set_status(order["AmazonOrderId"], "Shipped")

    assert order["LastUpdateDate"] < shipped["LastUpdateDate"] < again["LastUpdateDate"]
    assert "OrderTotal" not in order and "OrderTotal" in shipped  # shown once payment clears
    assert again["NumberOfItemsUnshipped"] == 0
    statuses = [parse_order_change_notification(n).order_status for n in notifications]
    assert statuses == ["Pending", "Unshipped", "Shipped"]


@pytest.mark.parametrize("simulator", [{"duplicate_rate": 1.0}], indirect=True)
def test_simulator__duplicates__same_notification_id_twice(simulator):
    simulator.create_order()

    first, second = simulator.delivered
    assert first == second
    assert first["NotificationMetadata"]["NotificationId"] == second["NotificationMetadata"]["NotificationId"]


@pytest.mark.parametrize("simulator", [{"reorder_rate": 1.0}], indirect=True)
def test_simulator__reorder__holds_one_back_until_after_the_next(simulator):
    order = simulator.create_order(OrderStatus="Unshipped")
    assert simulator.delivered == []

    simulator.set_status(order["AmazonOrderId"], "Shipped")
    simulator.set_status(order["AmazonOrderId"], "Canceled")  # held again
    simulator.flush()

    statuses = [
        n["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] for n in simulator.delivered
    ]
    assert statuses == ["Shipped", "Unshipped", "Canceled"]
