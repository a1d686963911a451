"""ShopifyAdmin against the running Shopify simulator: risk, authorizations, capture, throttling, failures."""

import json
import logging
from decimal import Decimal

import pytest
import requests

from chalicelib.domain.errors import HubError, InvalidInput
from chalicelib.domain.fraud import ShopifyRisk
from chalicelib.integrations.shopify.admin import ShopifyAdmin
from chalicelib.integrations.shopify.errors import (
    ShopifyAuthError,
    ShopifyNotFound,
    ShopifyRejected,
    ShopifyUnavailable,
)
from chalicelib.integrations.shopify.transactions import Authorization
from local.simulators.shopify import API_VERSION, ShopifySimulator
from tests.fake_time import Sleeps
from tests.lossy_session import LosesFirstAnswer
from tests.webhook_receiver import ShopifyReceiver

SHOP = "sim-store.myshopify.com"
SECRET = "shpss_simulated_webhook_secret"
TOKEN = "shpat_simulated_access_token_9f8e7d"
ITEMS = [{"title": "Merino Crew Sweater", "sku": "MCS-CHR-M", "price": "89.00", "quantity": 1}]


Receiver = ShopifyReceiver


@pytest.fixture
def make_sim(started, receiver, clock):
    return started.maker(
        ShopifySimulator, SHOP, SECRET, TOKEN, clock=clock, webhook_url=receiver.url, seed=11, senders=1
    )


def admin_for(sim: ShopifySimulator, sleeps: Sleeps | None = None, **options) -> ShopifyAdmin:
    options.setdefault("backoff", 0.01)
    sleeps = sleeps if sleeps is not None else Sleeps()
    return ShopifyAdmin(
        SHOP,
        TOKEN,
        api_base=sim.url,
        sleep=sleeps,
        clock=sleeps.clock,
        jitter=lambda: 0.0,
        **options,
    )


def authorized_order(sim: ShopifySimulator) -> dict:
    # 89.00 + 10.00 shipping + 6 % sales tax on the item: 104.34 USD.
    return sim.create_order(
        currency="USD", items=ITEMS, shipping=["10.00"], discount={}, financial_status="authorized"
    )


def only_authorization(admin: ShopifyAdmin, order: dict) -> Authorization:
    (auth,) = admin.capturable_authorizations(str(order["id"]))
    return auth


# --- reads --------------------------------------------------------------------------------------------


def test_order_risk__reads_the_default_and_a_risk_set_later(sim):
    order = sim.create_order()
    admin = admin_for(sim)
    assert admin.order_risk(str(order["id"])) == ShopifyRisk("ACCEPT", ("LOW",))
    sim.set_risk(order["id"], "INVESTIGATE", ["HIGH", "medium"])
    risk = admin.order_risk(order["admin_graphql_api_id"])  # a gid works as well as the legacy id
    assert risk == ShopifyRisk("INVESTIGATE", ("HIGH", "MEDIUM"))


def test_order_risk__unknown_order_is_not_found_and_a_bad_id_is_invalid_input(sim):
    admin = admin_for(sim)
    with pytest.raises(ShopifyNotFound):
        admin.order_risk("1")
    with pytest.raises(InvalidInput):
        admin.order_risk("gid://shopify/Customer/1")


def test_capturable_authorizations__an_authorized_order_has_one_for_its_total(sim):
    order = authorized_order(sim)
    auth = only_authorization(admin_for(sim), order)
    assert auth.transaction_id.startswith("gid://shopify/OrderTransaction/")
    assert (auth.amount, auth.currency) == (Decimal("104.34"), "USD")
    assert auth.amount == Decimal(order["total_price"])
    assert (auth.captured, auth.capturable, auth.remaining, auth.captures) == (
        Decimal(0),
        True,
        auth.amount,
        (),
    )


def test_capturable_authorizations__a_paid_order_holds_a_sale_not_an_authorization(sim):
    order = sim.create_order(financial_status="paid")
    assert admin_for(sim).capturable_authorizations(str(order["id"])) == []
    assert [t["kind"] for t in sim.transactions(order["id"])] == ["SALE"]


# --- capture ------------------------------------------------------------------------------------------


def test_capture__the_full_amount_pays_the_order_and_sends_its_webhooks(sim, receiver):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    result = admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "usd")
    assert result.status == "SUCCESS"
    assert (result.amount, result.currency, result.replayed) == (Decimal("104.34"), "USD", False)
    assert result.parent_transaction_id == auth.transaction_id
    assert [(c.transaction_id, c.amount) for c in sim.captures(order["id"])] == [
        (result.transaction_id, Decimal("104.34"))
    ]
    after = sim.get_order(order["id"])
    assert (after["financial_status"], after["total_outstanding"]) == ("paid", "0.00")
    assert after["updated_at"] > order["updated_at"]
    auth_after = only_authorization(admin, order)
    assert (auth_after.captured, auth_after.capturable, auth_after.remaining) == (auth.amount, False, 0)
    received = receiver.wait_for(3)
    assert [topic for topic, _ in received] == ["orders/create", "orders/paid", "orders/updated"]
    assert received[-1][1]["financial_status"] == "paid"


def test_capture__partial_leaves_the_order_partially_paid_and_spends_a_single_capture_authorization(
    sim, receiver
):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    result = admin.capture(str(order["id"]), auth.transaction_id, Decimal("50.00"), "USD")
    assert (result.amount, result.replayed) == (Decimal("50.00"), False)
    after = sim.get_order(order["id"])
    assert (after["financial_status"], after["total_outstanding"]) == ("partially_paid", "54.34")
    # Not multi-capturable: Shopify releases the rest, so a further capture is refused.
    auth_after = only_authorization(admin, order)
    assert (auth_after.captured, auth_after.capturable, auth_after.remaining) == (Decimal(50), False, 0)
    with pytest.raises(ShopifyRejected, match="already been captured"):
        admin.capture(
            str(order["id"]), auth.transaction_id, Decimal("20.00"), "USD", captured_before=Decimal(50)
        )
    assert len(sim.captures(order["id"])) == 1
    assert [topic for topic, _ in receiver.wait_for(2)] == ["orders/create", "orders/updated"]


def test_capture__called_twice_returns_the_existing_capture(sim, receiver):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    first = admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    again = admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    assert again.replayed and not first.replayed
    assert (again.transaction_id, again.amount) == (first.transaction_id, first.amount)
    assert len(sim.captures(order["id"])) == 1
    assert sim.flush(20)
    assert [topic for topic, _ in receiver.received].count("orders/paid") == 1


def test_capture__more_than_authorized_is_rejected_and_changes_nothing(sim):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    with pytest.raises(ShopifyRejected) as caught:
        admin.capture(str(order["id"]), auth.transaction_id, auth.amount + Decimal("0.01"), "USD")
    assert isinstance(caught.value, HubError)
    ((field, message),) = caught.value.user_errors
    assert field == "input.amount"
    assert "104.34" in message
    assert sim.captures(order["id"]) == []
    assert sim.get_order(order["id"])["financial_status"] == "authorized"


def test_capture__unknown_parent_voided_authorization_and_wrong_currency_are_rejected(sim):
    order = authorized_order(sim)
    admin = admin_for(sim)
    with pytest.raises(ShopifyRejected, match="does not exist"):
        admin.capture(str(order["id"]), "gid://shopify/OrderTransaction/1", Decimal(10), "USD")
    auth = only_authorization(admin, order)
    sim.cancel_order(order["id"])
    assert only_authorization(admin, order).capturable is False
    with pytest.raises(ShopifyRejected, match="voided"):
        admin.capture(str(order["id"]), auth.transaction_id, Decimal(10), "USD")
    assert sim.captures(order["id"]) == []
    other = authorized_order(sim)
    with pytest.raises(ShopifyRejected, match="presentment currency USD"):
        admin.capture(str(other["id"]), only_authorization(admin, other).transaction_id, Decimal(10), "EUR")


def test_capture__multi_capturable_authorization_takes_several_captures_until_the_final_one(make_sim):
    sim = make_sim(multi_capture=True)
    order = authorized_order(sim)
    admin = admin_for(sim, api_version="2024-07")
    auth = only_authorization(admin, order)
    admin.capture(str(order["id"]), auth.transaction_id, Decimal(30), "USD", final_capture=False)
    assert only_authorization(admin, order).remaining == Decimal("74.34")
    second = admin.capture(
        str(order["id"]), auth.transaction_id, Decimal(20), "USD", captured_before=Decimal(30)
    )
    again = admin.capture(
        str(order["id"]), auth.transaction_id, Decimal(20), "USD", captured_before=Decimal(30)
    )
    assert (second.replayed, again.replayed, again.transaction_id) == (False, True, second.transaction_id)
    assert [(c.amount, c.final_capture) for c in sim.captures(order["id"])] == [
        (Decimal(30), False),
        (Decimal(20), True),
    ]
    final = only_authorization(admin, order)
    assert (final.captured, final.capturable) == (Decimal(50), False)
    assert sim.get_order(order["id"])["total_outstanding"] == "54.34"


def test_capture__sends_final_capture_on_the_default_version(sim):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD", final_capture=True)
    assert API_VERSION >= "2024-07"
    assert [c.final_capture for c in sim.captures(order["id"])] == [True]


def test_capture__on_2024_04_does_not_send_final_capture_which_that_version_rejects(sim):
    order = authorized_order(sim)
    admin = admin_for(sim, api_version="2024-04")
    auth = only_authorization(admin, order)
    admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD", final_capture=True)
    assert [c.final_capture for c in sim.captures(order["id"])] == [None]
    mutation = (
        "mutation C($input: OrderCaptureInput!) { orderCapture(input: $input) { userErrors { message } } }"
    )
    fields = {"id": order["admin_graphql_api_id"], "parentTransactionId": auth.transaction_id}
    answer = requests.post(
        f"{sim.url}/admin/api/2024-04/graphql.json",
        json={"query": mutation, "variables": {"input": {**fields, "amount": "1.00", "finalCapture": True}}},
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=20,
    ).json()
    assert "Field is not defined on OrderCaptureInput" in answer["errors"][0]["message"]


def test_capture__a_lost_answer_is_read_back_instead_of_capturing_again(sim):
    order = authorized_order(sim)
    session = LosesFirstAnswer("orderCapture")
    admin = admin_for(sim, session=session)
    auth = only_authorization(admin, order)
    result = admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    assert session.lost == 1
    assert result.replayed
    assert [c.transaction_id for c in sim.captures(order["id"])] == [result.transaction_id]


class Answers(requests.Session):
    """Answers every POST with the same GraphQL body and counts the calls (no server)."""

    def __init__(self, body: dict) -> None:
        super().__init__()
        self.body, self.calls = body, 0

    def post(self, url, **kwargs):
        self.calls += 1
        response = requests.Response()
        response.status_code, response._content = 200, json.dumps(self.body).encode()
        return response


def test_capture__a_pending_capture_counts_so_a_second_call_does_not_capture_again():
    def txn(number: int, kind: str, status: str, parent: int | None = None) -> dict:
        money = {"amount": "40.00", "currencyCode": "EUR"}
        return {
            "id": f"gid://shopify/OrderTransaction/{number}",
            "kind": kind,
            "status": status,
            "manuallyCapturable": False,
            "amountSet": {"presentmentMoney": money},
            "parentTransaction": {"id": f"gid://shopify/OrderTransaction/{parent}"} if parent else None,
        }

    transactions = [txn(1, "AUTHORIZATION", "SUCCESS"), txn(2, "CAPTURE", "PENDING", parent=1)]
    session = Answers({"data": {"order": {"id": "gid://shopify/Order/9", "transactions": transactions}}})
    admin = ShopifyAdmin(SHOP, TOKEN, session=session)
    result = admin.capture("9", "1", Decimal(40), "EUR")
    assert (result.transaction_id, result.status, result.replayed) == (
        "gid://shopify/OrderTransaction/2",
        "PENDING",
        True,
    )
    assert session.calls == 1  # the read only: no orderCapture was sent


# --- throttling and failures --------------------------------------------------------------------------


def test_throttled__waits_until_the_requested_cost_is_restored_then_succeeds(sim, sleeps):
    order = sim.create_order()
    sim.graphql_bucket.size, sim.graphql_bucket.leak_per_s = 20, 10.0
    assert sim.graphql_bucket.take(20)[0]  # another app just emptied the bucket
    risk = admin_for(sim, sleeps).order_risk(str(order["id"]))
    assert risk == ShopifyRisk("ACCEPT", ("LOW",))
    # order + risk cost 2 points at 10 points/s: 0.2 s, once (the clock moves only while it sleeps).
    assert sleeps == [0.2]


def test_throttled__longer_than_max_wait_gives_up_as_unavailable(sim, sleeps):
    order = sim.create_order()
    sim.graphql_bucket.size, sim.graphql_bucket.leak_per_s = 20, 0.1
    sim.graphql_bucket.take(20)
    with pytest.raises(ShopifyUnavailable) as caught:
        admin_for(sim, sleeps).order_risk(str(order["id"]))
    assert caught.value.code == "THROTTLED"
    assert caught.value.retry_after is not None and caught.value.retry_after > 10
    assert sleeps == []


def test_throttle_status__paces_the_next_call_before_the_bucket_runs_dry(sim, sleeps):
    order = sim.create_order()
    sim.graphql_bucket.size, sim.graphql_bucket.leak_per_s = 3, 2.0
    admin = admin_for(sim, sleeps)
    admin.order_risk(str(order["id"]))  # costs 2 of 3: 1 point left
    assert sleeps == []
    admin.order_risk(str(order["id"]))
    # It waited for the missing point (0.5 s at 2 points/s) instead of being THROTTLED and waiting again.
    assert sleeps == [0.5]


def test_5xx__is_retried_with_backoff_then_succeeds(sim, sleeps):
    order = authorized_order(sim)
    sim.fail_api(times=2, status=503)
    auths = admin_for(sim, sleeps).capturable_authorizations(str(order["id"]))
    assert [a.amount for a in auths] == [Decimal("104.34")]
    assert sleeps == [0.005, 0.01]


def test_5xx__past_max_attempts_is_unavailable(sim):
    order = sim.create_order()
    sim.fail_api(times=3, status=502)
    with pytest.raises(ShopifyUnavailable) as caught:
        admin_for(sim).order_risk(str(order["id"]))
    assert (caught.value.status, caught.value.maybe_executed) == (502, True)
    assert admin_for(sim).order_risk(str(order["id"])) is not None  # the outage is over


def test_5xx__during_capture_still_captures_exactly_once(sim):
    order = authorized_order(sim)
    admin = admin_for(sim)
    auth = only_authorization(admin, order)
    sim.fail_api(times=1, status=500)
    result = admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    assert not result.replayed
    assert len(sim.captures(order["id"])) == 1


def test_429__waits_for_retry_after(sim, sleeps):
    order = sim.create_order()
    sim.fail_api(times=1, status=429, retry_after=0.2)
    assert admin_for(sim, sleeps).order_risk(str(order["id"])) is not None
    assert sleeps == [0.2]


def test_a_refused_token_is_an_auth_error_not_retried(sim, sleeps):
    order = sim.create_order()
    admin = ShopifyAdmin(SHOP, "shpat_wrong", api_base=sim.url, sleep=sleeps)
    with pytest.raises(ShopifyAuthError):
        admin.order_risk(str(order["id"]))
    assert sleeps == []


def test_the_token_shows_in_no_repr_and_no_log_line(sim, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    order = authorized_order(sim)
    admin = admin_for(sim)
    assert TOKEN not in repr(admin)
    assert TOKEN not in str(admin)
    assert SHOP in repr(admin)
    sim.fail_api(times=1, status=503)
    auth = only_authorization(admin, order)
    admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    admin.capture(str(order["id"]), auth.transaction_id, auth.amount, "USD")
    logged = caplog.text + "".join(capsys.readouterr())
    assert "shopify retry" in logged
    assert "shopify capture already done" in logged
    assert TOKEN not in logged
    assert sim.get_order(order["id"])["shipping_address"]["address1"] not in logged
