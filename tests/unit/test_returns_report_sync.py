"""GIVEN connected Amazon stores WHEN the returns schedule runs THEN each store's report is read from its
cursor minus the overlap, every return goes to the intake, and the cursor moves only past what was read."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.connections import Connection
from chalicelib.domain.errors import InvalidInput, OrderNotYetKnown
from chalicelib.domain.returns.events import ChannelReturn, ChannelReturnLine
from chalicelib.domain.returns.report_sync import FIRST_LOOKBACK, OVERLAP, sync_channel_returns
from chalicelib.domain.runtime_settings import Policies
from chalicelib.domain.upstream import UpstreamUnavailable
from chalicelib.integrations.amazon.returns_report import AmazonReturnsReport
from chalicelib.integrations.amazon.spapi import SpApiClient
from local.scheduler import scheduled_event
from local.simulators.amazon import AmazonSimulator
from tests.fake_time import FakeTime
from tests.fakes import InMemoryConnectionRepository, InMemorySettingsStore

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SELLER, MARKETPLACE = "A2HUB7SELLER01", "ATVPDKIKX0DER"


class InMemoryCursor:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], datetime] = {}

    def read_until(self, channel, store):
        return self.marks.get((channel, store))

    def set_read_until(self, channel, store, at):
        self.marks[(channel, store)] = at


class ScriptedReport:
    """A store's report answering (or failing) as told, remembering each `since` it was asked for."""

    def __init__(self, answer):
        self.answer = answer
        self.asked: list[datetime] = []

    def returns_since(self, since):
        self.asked.append(since)
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)


def connection(store, channel="amazon"):
    return Connection(f"conn-{store}", channel, store, f"ref-{store}", NOW, {"marketplace_id": MARKETPLACE})


def channel_return(rma, at=NOW - timedelta(days=1), store=SELLER):
    line = ChannelReturnLine(quantity=1, sku="MUG-CER-12", reason="defective")
    return ChannelReturn(
        "amazon", store, "112-0000000-0000001", rma, "open", (line,), at, label_provided=True
    )


def run(connections, reports, record, cursor, now=NOW):
    return sync_channel_returns(
        channel="amazon",
        connections=connections,
        report_for=lambda c: reports[c.store],
        record=record,
        cursor=cursor,
        now=lambda: now,
    )


@pytest.fixture
def connections():
    repo = InMemoryConnectionRepository()
    repo.put(connection(SELLER))
    return repo


def test_first_run__reads_a_lookback_then_the_cursor_is_the_runs_start(connections):
    cursor, recorded = InMemoryCursor(), []
    report = ScriptedReport([channel_return("D1RMA")])

    [result] = run(connections, {SELLER: report}, recorded.append, cursor)

    assert report.asked == [NOW - FIRST_LOOKBACK]
    assert [r.external_return_id for r in recorded] == ["D1RMA"]
    assert result.recorded == 1 and result.error is None
    assert cursor.marks[("amazon", SELLER)] == NOW


def test_second_run__rereads_the_overlap_and_hands_the_same_rma_again(connections):
    cursor, recorded = InMemoryCursor(), []
    report = ScriptedReport([channel_return("D1RMA")])
    run(connections, {SELLER: report}, recorded.append, cursor)

    later = NOW + timedelta(hours=6)
    run(connections, {SELLER: report}, recorded.append, cursor, now=later)

    assert report.asked[1] == NOW - OVERLAP  # the overlap: returns that reached the report late
    assert [r.external_return_id for r in recorded] == ["D1RMA", "D1RMA"]  # the intake keeps one
    assert cursor.marks[("amazon", SELLER)] == later


def test_a_store_whose_report_fails__reported_cursor_kept_others_go_on(connections):
    connections.put(connection("A9OTHERSELLER"))
    cursor, recorded = InMemoryCursor(), []
    cursor.marks[("amazon", SELLER)] = NOW - timedelta(hours=6)
    reports = {
        SELLER: ScriptedReport(UpstreamUnavailable("getReport gave up", operation="getReport")),
        "A9OTHERSELLER": ScriptedReport([channel_return("D2RMA", store="A9OTHERSELLER")]),
    }

    results = {r.store: r for r in run(connections, reports, recorded.append, cursor)}

    assert results[SELLER].error == "UpstreamUnavailable" and results[SELLER].cursor is None
    assert cursor.marks[("amazon", SELLER)] == NOW - timedelta(hours=6)
    assert [r.external_return_id for r in recorded] == ["D2RMA"]
    assert cursor.marks[("amazon", "A9OTHERSELLER")] == NOW


def test_a_return_the_intake_cannot_record_yet__holds_the_cursor_so_the_next_run_reads_it(connections):
    cursor = InMemoryCursor()
    late = channel_return("D3RMA", at=NOW - timedelta(days=5))
    report = ScriptedReport([channel_return("D1RMA"), late])

    def record(ret):
        if ret.external_return_id == "D3RMA":
            raise OrderNotYetKnown("order not ingested yet")

    [result] = run(connections, {SELLER: report}, record, cursor)
    run(connections, {SELLER: report}, record, cursor, now=NOW + timedelta(hours=6))

    assert result.recorded == 1 and result.failed == ["D3RMA: OrderNotYetKnown"]
    assert report.asked[1] == late.at  # read again from that return on


def test_a_return_the_intake_refuses__reported_and_the_cursor_moves_on(connections):
    cursor = InMemoryCursor()

    def record(ret):
        raise InvalidInput("unknown SKU")

    [result] = run(connections, {SELLER: ScriptedReport([channel_return("D4RMA")])}, record, cursor)

    assert result.failed == ["D4RMA: InvalidInput"] and cursor.marks[("amazon", SELLER)] == NOW


def test_other_channels__not_read(connections):
    connections.put(connection("acme.myshopify.com", channel="shopify"))
    results = run(connections, {SELLER: ScriptedReport([])}, lambda r: None, InMemoryCursor())
    assert [r.store for r in results] == [SELLER]


def test_against_the_simulator__second_run_reads_the_same_rma_again(started):
    fake_time = FakeTime()
    sim = AmazonSimulator(
        SELLER, MARKETPLACE, "client", "secret", "Atzr|refresh", seed=5, clock=fake_time, jp_rate=0.0
    )
    started(sim.start())
    order = sim.create_order(item_count=1, OrderStatus="Unshipped")["AmazonOrderId"]
    sim.set_status(order, "Shipped")
    sku = sim.order_for_return(order)[1][0]["SellerSKU"]
    rma = sim.reports.add_return(order, sku, requested_at=datetime.now(UTC) - timedelta(hours=1))
    client = SpApiClient(
        endpoint=sim.url, lwa_endpoint=sim.lwa_url, client_id="client", client_secret="secret",
        refresh_token="Atzr|refresh", clock=fake_time, sleep=fake_time.sleep, timeout=20,
    )  # fmt: skip
    report = AmazonReturnsReport(client, SELLER, MARKETPLACE, sleep=fake_time.sleep)
    repo, cursor, recorded = InMemoryConnectionRepository(), InMemoryCursor(), []
    repo.put(connection(SELLER))

    for _ in range(2):
        sync_channel_returns(
            channel="amazon", connections=repo, report_for=lambda c: report,
            record=recorded.append, cursor=cursor, now=lambda: datetime.now(UTC),
        )  # fmt: skip

    assert [r.external_return_id for r in recorded] == [rma, rma]
    assert len(sim.reports.reports()) == 2


# --- the schedule entrypoint ----------------------------------------------------------------------------


@pytest.fixture
def intake(monkeypatch):
    """The returns intake's use case, recorded instead of run."""
    from chalicelib.domain.returns import intake as real_intake

    calls = []

    def record_channel_return(event, *, orders, workflow, policies, now, resume=None):
        calls.append((event.external_return_id, workflow, policies))
        return {"return_id": f"r-{event.external_return_id}"}

    monkeypatch.setattr(real_intake, "record_channel_return", record_channel_return)
    return calls


def test_schedule__records_through_the_intake_with_the_return_collaborators(svc, intake, monkeypatch, client):

    svc.connections.put(connection(SELLER))
    svc.returns_cursor = InMemoryCursor()
    svc.returns_report = lambda c: ScriptedReport([channel_return("D5RMA")])
    monkeypatch.setattr(svc, "return_workflow", "return-workflow", raising=False)
    svc.policies = Policies(InMemorySettingsStore({"returns_policy": {"window_days": 10}}))

    event = scheduled_event("amazon_returns", "us-east-1", "123456789012", NOW)
    answer = client.lambda_.invoke("amazon_returns", event).payload

    assert answer == {"stores": 1, "failed_stores": 0, "returns": 1, "recorded": 1}
    assert intake == [("D5RMA", "return-workflow", svc.return_policies)]
    assert svc.return_policies.default.window_days == 10
    assert svc.returns_cursor.marks[("amazon", SELLER)] == svc.now()
