"""GIVEN the Amazon simulator's Reports API WHEN the hub reads merchant-fulfilled returns THEN the report is
built asynchronously, downloaded (GZIP or not), parsed defensively and read into ChannelReturns."""

import gzip
from datetime import UTC, datetime, timedelta

import pytest
import requests

from chalicelib.domain.upstream import UpstreamError, UpstreamUnavailable
from chalicelib.integrations.amazon import spapi
from chalicelib.integrations.amazon.errors import SpApiError
from chalicelib.integrations.amazon.returns_report import AmazonReturnsReport, ReportFailed, ReportNotReady
from chalicelib.integrations.amazon.returns_xml import REPORT_TYPE
from chalicelib.integrations.amazon.spapi import SpApiClient
from local.simulators.amazon import AmazonSimulator
from tests.fake_time import FakeTime

SELLER, MARKETPLACE = "A2HUB7SELLER01", "ATVPDKIKX0DER"
CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "amzn1.application-oa2-client.hub", "lwa-secret", "Atzr|refresh"


@pytest.fixture
def fake_time():
    """One clock for client, reader and simulator; sleeping advances it instead of waiting."""
    return FakeTime()


@pytest.fixture
def simulator(started, fake_time, request):
    options = {
        "seed": 11,
        "clock": fake_time,
        "jp_rate": 0.0,
        "report_delay": 30.0,
        **getattr(request, "param", {}),
    }
    return started(
        AmazonSimulator(SELLER, MARKETPLACE, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, **options).start()
    )


@pytest.fixture
def client(simulator, fake_time):
    return SpApiClient(
        endpoint=simulator.url,
        lwa_endpoint=simulator.lwa_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        clock=fake_time,
        sleep=fake_time.sleep,
        jitter=lambda: 0.5,
        timeout=20,
    )


def reader(client, fake_time, **options):
    return AmazonReturnsReport(client, SELLER, MARKETPLACE, sleep=fake_time.sleep, **options)


def shipped_order(sim, **overrides):
    order = sim.create_order(item_count=2, OrderStatus="Unshipped", **overrides)
    sim.set_status(order["AmazonOrderId"], "Shipped")
    items = sim.order_for_return(order["AmazonOrderId"])[1]
    return order["AmazonOrderId"], [i["SellerSKU"] for i in items]


def window():
    now = datetime.now(UTC)
    return now - timedelta(days=1), now


def minutes_ago(minutes=10):
    """A return requested a little while ago: inside a window ending now (the reader stays 2 min behind)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


# --- the simulator's Reports API ---------------------------------------------------------------------


def test_report__queued_then_in_progress_then_done__on_the_simulators_clock(simulator, client, fake_time):
    order_id, skus = shipped_order(simulator)
    rma = simulator.reports.add_return(order_id, skus[0], 1, "CR-DEFECTIVE", requested_at=minutes_ago())

    report_id = client.create_report(REPORT_TYPE, [MARKETPLACE], *window())
    assert client.get_report(report_id)["processingStatus"] == "IN_QUEUE"
    fake_time.now += 15
    assert client.get_report(report_id)["processingStatus"] == "IN_PROGRESS"
    fake_time.now += 15
    report = client.get_report(report_id)

    assert report["processingStatus"] == "DONE" and report["processingStartTime"]
    document = client.get_report_document(report["reportDocumentId"])
    assert "compressionAlgorithm" not in document
    content = client.download_report_document(document).decode()
    assert (
        f"<amazon_rma_id>{rma}</amazon_rma_id>" in content and f"<order_id>{order_id}</order_id>" in content
    )
    assert "<label_details>" in content and f"<merchant_sku>{skus[0]}</merchant_sku>" in content


@pytest.mark.parametrize("simulator", [{"gzip_reports": True}], indirect=True)
def test_report_document__gzip__served_compressed_and_the_client_inflates_it(simulator, client, fake_time):
    order_id, skus = shipped_order(simulator)
    rma = simulator.reports.add_return(order_id, skus[1], requested_at=minutes_ago())
    report_id = client.create_report(REPORT_TYPE, [MARKETPLACE], *window())
    fake_time.now += 30

    document = client.get_report_document(client.get_report(report_id)["reportDocumentId"])
    raw = requests.get(document["url"], timeout=10).content

    assert document["compressionAlgorithm"] == "GZIP" and raw[:2] == b"\x1f\x8b"
    assert rma.encode() in gzip.decompress(raw) and rma.encode() in client.download_report_document(document)


def test_report__nothing_in_the_window__cancelled_by_amazon_without_a_document(simulator, client, fake_time):
    report_id = client.create_report(REPORT_TYPE, [MARKETPLACE], *window())
    fake_time.now += 30
    report = client.get_report(report_id)

    assert report["processingStatus"] == "CANCELLED" and report["processingStartTime"]
    assert "reportDocumentId" not in report


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"reportType": "GET_FLAT_FILE_OPEN_LISTINGS_DATA"}, "reportType"),
        ({"marketplaceIds": []}, "marketplaceIds"),
        ({"dataStartTime": "2026-01-01T00:00:00Z", "dataEndTime": "2026-03-15T00:00:00Z"}, "60 days"),
        ({"dataStartTime": "yesterday"}, "ISO 8601"),
    ],
)
def test_create_report__bad_request__400_invalid_input(simulator, client, spec, why):
    body = {"reportType": REPORT_TYPE, "marketplaceIds": [MARKETPLACE], **spec}
    token = client.access_token()
    answer = requests.post(
        f"{simulator.url}/reports/2021-06-30/reports",
        json=body,
        headers={"x-amz-access-token": token},
        timeout=10,
    )
    assert answer.status_code == 400
    assert (
        answer.json()["errors"][0]["code"] == "InvalidInput" and why in answer.json()["errors"][0]["message"]
    )


@pytest.mark.parametrize("simulator", [{"rate_limits": {"createReport": (0.0167, 1)}}], indirect=True)
def test_create_report__usage_plan__a_second_report_waits_for_its_token(simulator, client, fake_time):
    client.create_report(REPORT_TYPE, [MARKETPLACE], *window())
    before = fake_time.now
    client.create_report(REPORT_TYPE, [MARKETPLACE], *window())

    assert fake_time.now - before >= 1 / 0.0167 - 1  # paced (or retried) until the bucket refilled
    assert len(simulator.reports.reports()) == 2


def test_create_report__throttled_by_amazon__answers_429_quota_exceeded(simulator, client):
    simulator.fail_next("createReport", 429)
    token = client.access_token()
    body = {"reportType": REPORT_TYPE, "marketplaceIds": [MARKETPLACE]}
    answer = requests.post(
        f"{simulator.url}/reports/2021-06-30/reports",
        json=body,
        headers={"x-amz-access-token": token},
        timeout=10,
    )
    assert answer.status_code == 429 and answer.json()["errors"][0]["code"] == "QuotaExceeded"


def test_add_return__more_units_than_ordered_or_unshipped_order__refused(simulator):
    order_id, skus = shipped_order(simulator)
    ordered = next(i for i in simulator.order_for_return(order_id)[1] if i["SellerSKU"] == skus[0])
    with pytest.raises(ValueError, match="already in a return"):
        simulator.reports.add_return(
            order_id, skus[0], ordered["QuantityOrdered"] + 1, requested_at=minutes_ago()
        )
    unshipped = simulator.create_order(OrderStatus="Unshipped")["AmazonOrderId"]
    with pytest.raises(ValueError, match="only shipped orders"):
        simulator.reports.add_return(unshipped, simulator.order_for_return(unshipped)[1][0]["SellerSKU"])


# --- the reader ----------------------------------------------------------------------------------------


def test_returns_since__reads_each_return_as_a_channel_return(simulator, client, fake_time):
    order_id, skus = shipped_order(simulator)
    rma = simulator.reports.add_return(
        order_id, skus[0], 1, "CR-DAMAGED_BY_CARRIER", refunded=True, requested_at=minutes_ago()
    )

    found = reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=2))

    assert len(found) == 1
    ret = found[0]
    assert (ret.channel, ret.store, ret.external_order_id, ret.external_return_id) == (
        "amazon", SELLER, order_id, rma,
    )  # fmt: skip
    assert ret.status == "open" and ret.label_provided and ret.carrier == "USPS" and ret.tracking_number
    assert [(line.sku, line.quantity, line.reason, line.line_id) for line in ret.lines] == [
        (skus[0], 1, "damaged", None)
    ]
    assert ret.refunded is not None and ret.refunded > 0
    assert fake_time.sleeps and fake_time.sleeps[0] == 5.0  # polled with backoff, never busy


def test_returns_since__a_return_before_the_window__not_read(simulator, client, fake_time):
    order_id, skus = shipped_order(simulator)
    old = datetime.now(UTC) - timedelta(days=10)
    simulator.reports.add_return(order_id, skus[0], requested_at=old)
    recent = simulator.reports.add_return(order_id, skus[1], requested_at=minutes_ago())

    found = reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=2))

    assert [r.external_return_id for r in found] == [recent]


def test_returns_since__no_returns__empty_list_not_an_error(simulator, client, fake_time):
    assert reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=2)) == []


def test_returns_since__window_over_60_days__read_as_several_reports_each_rma_once(
    simulator, client, fake_time
):
    order_id, skus = shipped_order(simulator)
    rma = simulator.reports.add_return(order_id, skus[0], requested_at=datetime.now(UTC) - timedelta(days=70))

    found = reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=100))

    assert [r.external_return_id for r in found] == [rma]
    assert len(simulator.reports.reports()) == 2


def test_returns_since__report_fatal__report_failed_an_upstream_error(simulator, client, fake_time):
    simulator.reports.fail_next_report()
    with pytest.raises(ReportFailed) as caught:
        reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=2))
    assert isinstance(caught.value, UpstreamError) and caught.value.code == "FATAL"


def test_returns_since__report_cancelled_while_queued__report_failed(simulator, client, fake_time):
    def cancel_then_sleep(seconds):
        for report in simulator.reports.reports():
            simulator.reports.cancel_report(report["reportId"])
        fake_time.sleep(seconds)

    report = AmazonReturnsReport(client, SELLER, MARKETPLACE, sleep=cancel_then_sleep)
    with pytest.raises(ReportFailed, match="cancelled"):
        report.returns_since(datetime.now(UTC) - timedelta(days=2))


@pytest.mark.parametrize("simulator", [{"report_delay": 3600.0}], indirect=True)
def test_returns_since__report_slower_than_the_patience__not_ready_a_transient_error(
    simulator, client, fake_time
):
    with pytest.raises(ReportNotReady) as caught:
        reader(client, fake_time, patience=120.0).returns_since(datetime.now(UTC) - timedelta(days=2))
    assert isinstance(caught.value, UpstreamUnavailable) and caught.value.retry_after
    assert sum(fake_time.sleeps) <= 120.0


def test_returns_since__report_document_gone__upstream_error_naming_the_code(simulator, client, fake_time):
    order_id, skus = shipped_order(simulator)
    simulator.reports.add_return(order_id, skus[0], requested_at=minutes_ago())
    simulator.fail_next("feedDocument", 403, times=1)  # the simulated S3 refuses the pre-signed URL
    with pytest.raises(SpApiError, match="403"):
        reader(client, fake_time).returns_since(datetime.now(UTC) - timedelta(days=2))


def test_returns_since__naive_since__refused():
    with pytest.raises(ValueError, match="time zone"):
        AmazonReturnsReport(object(), SELLER, MARKETPLACE).returns_since(datetime(2026, 1, 1))  # type: ignore[arg-type]


# --- document decompression --------------------------------------------------------------------------


def test_document_content__gzip_bomb__refused_not_inflated(monkeypatch):
    monkeypatch.setattr(spapi, "MAX_DOCUMENT_BYTES", 1024)
    with pytest.raises(SpApiError, match="inflates beyond"):
        spapi.document_content(gzip.compress(b"x" * 100_000), "GZIP", "getReportDocument")


@pytest.mark.parametrize(("content", "algorithm"), [(b"not gzip", "GZIP"), (b"plain", "ZSTD")])
def test_document_content__not_what_it_says__upstream_error(content, algorithm):
    with pytest.raises(SpApiError):
        spapi.document_content(content, algorithm, "getReportDocument")


def test_document_content__uncompressed__as_is():
    assert spapi.document_content(b"<x/>", None, "getReportDocument") == b"<x/>"
