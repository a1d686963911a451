"""GIVEN Amazon's XML returns report WHEN parsed THEN each RMA is a ChannelReturn; what is missing is left
unset, what cannot be a return is skipped and named, and what is not a report is refused whole."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.returns.policy import REASONS
from chalicelib.integrations.amazon.returns_xml import REASON_CODES, MalformedReport, parse_returns_report

STORE = "A2HUB7SELLER01"
READ_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def envelope(*returns: str) -> bytes:
    body = "".join(returns)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<AmazonEnvelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="amzn-envelope.xsd"><Header><DocumentVersion>1.00</DocumentVersion>'
        f"</Header><MessageType>Returns-Report</MessageType><Message>{body}</Message></AmazonEnvelope>"
    ).encode()


def item(sku="MUG-CER-12", quantity="1", reason="CR-DEFECTIVE", refund=None, resolution="StandardRefund"):
    refund_xml = f"<refund_amount>{refund}</refund_amount>" if refund is not None else ""
    return (
        f"<item_details><item_name>Ceramic Mug &amp; Saucer</item_name><asin>B09XKJ8TQ1</asin>"
        f"<return_reason_code>{reason}</return_reason_code><merchant_sku>{sku}</merchant_sku>"
        f"<in_policy>Y</in_policy><return_quantity>{quantity}</return_quantity>"
        f"<resolution>{resolution}</resolution>{refund_xml}</item_details>"
    )


def details(
    *items, rma="DJ1XPkq5RRMA", order="112-1234567-7654321", status="Authorized", label=True, **extra
):
    label_xml = (
        "<label_details><tracking_id>9400111899223197428490</tracking_id><return_carrier>USPS</return_carrier>"
        "<currency_code>USD</currency_code><label_cost>7.45</label_cost><label_type>AmazonPrePaidLabel</label_type>"
        "</label_details>"
        if label
        else ""
    )
    fields = {"order_id": order, "amazon_rma_id": rma, "return_request_date": "2026-11-30T09:15:00Z", **extra}
    fields_xml = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v is not None)
    return (
        f"<return_details>{''.join(items) or item()}{fields_xml}"
        f"<return_request_status>{status}</return_request_status><a_to_z_claim>false</a_to_z_claim>"
        f"<is_prime>N</is_prime>{label_xml}<label_to_be_paid_by>Seller</label_to_be_paid_by>"
        "<return_type>C-Returns</return_type><order_amount>29.00</order_amount><order_quantity>2</order_quantity>"
        "</return_details>"
    )


def test_full_return__every_field_read():
    parsed = parse_returns_report(envelope(details(item(refund="14.50"))), STORE, read_at=READ_AT)

    assert parsed.skipped == []
    [ret] = parsed.returns
    assert (ret.channel, ret.store, ret.external_order_id, ret.external_return_id) == (
        "amazon", STORE, "112-1234567-7654321", "DJ1XPkq5RRMA",
    )  # fmt: skip
    assert ret.at == datetime(2026, 11, 30, 9, 15, tzinfo=UTC) and ret.status == "open"
    assert ret.label_provided and ret.tracking_number == "9400111899223197428490" and ret.carrier == "USPS"
    assert ret.refunded == Decimal("14.50") and ret.resolution == "refund"
    assert [(line.line_id, line.sku, line.quantity, line.reason) for line in ret.lines] == [
        (None, "MUG-CER-12", 1, "defective")
    ]


def test_same_sku_listed_per_unit__quantities_summed_per_reason():
    two_units = details(item(), item(), item(sku="TMP-ESP-58", reason="AMZ-PG-APP-TOO-SMALL"))
    [ret] = parse_returns_report(envelope(two_units), STORE, read_at=READ_AT).returns
    assert {(line.sku, line.quantity, line.reason) for line in ret.lines} == {
        ("MUG-CER-12", 2, "defective"),
        ("TMP-ESP-58", 1, "size"),
    }


def test_optional_elements_missing__fields_left_unset_not_a_crash():
    bare = details(label=False, return_request_date=None, status="")
    [ret] = parse_returns_report(envelope(bare), STORE, read_at=READ_AT).returns
    assert ret.tracking_number is None and ret.carrier is None and ret.refunded is None
    assert ret.at == READ_AT and ret.status == "requested"


@pytest.mark.parametrize(
    ("amazon", "hub"),
    [("Pending", "requested"), ("Approved", "open"), ("Closed", "closed"), ("Rejected", "declined"),
     ("Cancelled", "cancelled"), ("SomethingNew", "requested")],
)  # fmt: skip
def test_return_request_status__mapped_to_the_channel_return_statuses(amazon, hub):
    [ret] = parse_returns_report(envelope(details(status=amazon)), STORE, read_at=READ_AT).returns
    assert ret.status == hub


def test_reason_codes__every_mapped_reason_is_a_policy_reason_and_unknown_is_other():
    assert set(REASON_CODES.values()) <= REASONS
    [ret] = parse_returns_report(
        envelope(details(item(reason="CR-BRAND_NEW_CODE"))), STORE, read_at=READ_AT
    ).returns
    assert ret.lines[0].reason == "other"


def test_replacement__resolution_exchange():
    [ret] = parse_returns_report(
        envelope(details(item(resolution="Replacement"))), STORE, read_at=READ_AT
    ).returns
    assert ret.resolution == "exchange"


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (details(order=None), "no order_id"),
        (details(rma=None), "no amazon_rma_id"),
        (details(item(quantity="0")), "item_details"),
        (details(item(quantity="two")), "item_details"),
        (details(item(sku="")), "item_details"),
    ],
)
def test_malformed_return__skipped_and_named_the_rest_of_the_batch_read(broken, why):
    good = details(rma="DGOODONE1RMA")
    parsed = parse_returns_report(envelope(broken, good), STORE, read_at=READ_AT)

    assert [r.external_return_id for r in parsed.returns] == ["DGOODONE1RMA"]
    assert len(parsed.skipped) == 1 and why in parsed.skipped[0]


def test_bad_amounts_and_dates__that_field_unset():
    odd = details(item(refund="lots"), return_request_date="last Tuesday")
    [ret] = parse_returns_report(envelope(odd), STORE, read_at=READ_AT).returns
    assert ret.refunded is None and ret.at == READ_AT


def test_namespaced_document__still_read():
    content = envelope(details()).replace(b"<AmazonEnvelope ", b'<AmazonEnvelope xmlns="urn:amazon:returns" ')
    assert len(parse_returns_report(content, STORE, read_at=READ_AT).returns) == 1


def test_empty_report__no_returns():
    assert parse_returns_report(envelope(), STORE, read_at=READ_AT).returns == []


@pytest.mark.parametrize(
    "content",
    [
        b"not xml at all",
        b"<AmazonEnvelope><Message><return_details>",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><AmazonEnvelope>&lol;</AmazonEnvelope>',
        b'<!DOCTYPE x SYSTEM "http://169.254.169.254/latest/meta-data/"><x/>',
    ],
    ids=["not-xml", "truncated", "entity-declaration", "external-dtd"],
)
def test_not_a_report__refused_whole(content):
    with pytest.raises(MalformedReport):
        parse_returns_report(content, STORE, read_at=READ_AT)
