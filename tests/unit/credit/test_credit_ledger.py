"""The credit ledger's use cases with the in-memory repository: issue, redeem as payment, reverse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.cancellation import cancel
from chalicelib.domain.credit.ledger import issue, mutate_with_movements, recorded_movements
from chalicelib.domain.credit.model import (
    CODE_ALPHABET,
    CreditKind,
    CreditRefused,
    MovementKind,
    Refusal,
    credit_account,
    customer_key,
    normalise_code,
    voucher_account,
)
from chalicelib.domain.credit.redemption import CreditCompensator, redeemed
from chalicelib.domain.manual_channel import normalise_manual
from chalicelib.domain.order import OrderStatus
from chalicelib.domain.payment import PaymentPolicy, take_payment
from tests.fakes import InMemoryOrderRepository, RecordingWorkflow
from tests.fakes_credit import issue_with
from tests.fakes_payments import FakeGateway

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EMAIL = "Ada@Example.com"


def now() -> datetime:
    return NOW


def place(repo, external_id: str, *, credits=None, payment=None, currency="EUR", price="20.00") -> str:
    body: dict[str, Any] = {
        "external_id": external_id,
        "currency": currency,
        "placed_at": "2026-11-23T10:00:00Z",
        "customer": {"email": EMAIL},
        "lines": [{"title": "Lamp", "quantity": 1, "unit_price": price}],
        "payment": {"source": "manual", **(payment or {})},
    }
    if credits is not None:
        body["payment"]["credits"] = credits
    order = normalise_manual(body)
    order.status = OrderStatus.APPROVED
    repo.save(order, expected_version=None)
    return order.order_id


def give(
    repo, kind: str, amount: str, *, return_id="ret-1", days: int | None = 365, at=NOW
) -> dict[str, Any]:
    """Resolve a (pretend) return of an earlier order as credit: the movement written with that order."""
    origin = place(repo, f"origin-{return_id}")
    movement = issue_with(repo, origin, kind=kind, amount=amount, return_id=return_id, at=at, days=days)
    return {"order_id": origin, "movement": movement}


def card_order(repo, external_id: str, code: str, credit: str):
    """A 20.00 order authorised on a card (pi_1) and paid partly or wholly by a voucher."""
    gateway = FakeGateway()
    gateway.add("pi_1", 2000)
    credits = [{"kind": "voucher", "code": code, "amount": credit}]
    return gateway, place(
        repo, external_id, credits=credits, payment={"source": "stripe", "reference": "pi_1"}
    )


def pay(repo, order_id, gateway=None):
    return take_payment(
        order_id,
        orders=repo,
        gateway=lambda: gateway or FakeGateway(),
        channel_capturer=lambda o: None,
        policy=PaymentPolicy(recovery_seconds=60, max_attempts=3),
        now=now,
    )


@pytest.fixture
def repo():
    return InMemoryOrderRepository()


def test_a_voucher_code_is_sixteen_readable_symbols_in_groups_and_typed_any_way_it_normalises():
    code = issue(
        normalise_manual(
            {
                "external_id": "x",
                "currency": "EUR",
                "placed_at": "2026-11-23T10:00:00Z",
                "lines": [{"title": "Lamp", "quantity": 1, "unit_price": "1.00"}],
            }
        ),
        kind="voucher",
        amount=Decimal("5"),
        currency="EUR",
        return_id="r",
        now=NOW,
        expires_in_days=None,
    ).code
    assert code is not None and len(code) == 19 and code.count("-") == 3
    assert set(code.replace("-", "")) <= set(CODE_ALPHABET) and not set("0O1I") & set(code)
    assert normalise_code(code.lower().replace("-", " ")) == code
    assert normalise_code("0OOO-1111-IIII-AAAA") is None


def test_issuing_a_voucher_writes_balance_movement_and_liability_with_the_order_once(repo):
    given = give(repo, "voucher", "15.00")
    movement = given["movement"]
    assert movement.movement_id == "issue:ret-1" and movement.kind is MovementKind.ISSUE
    assert movement.expires_at == NOW + timedelta(days=365)
    balance = repo.credit.voucher(movement.code)
    assert (balance.amount, balance.currency, balance.code) == (Decimal("15.00"), "EUR", movement.code)
    assert repo.credit.liabilities() == {"EUR": Decimal("15.00")}
    history = recorded_movements(repo.get(given["order_id"]).order, MovementKind.ISSUE)
    assert history == [movement.to_detail()]


def test_a_retried_issue_reuses_the_code_kept_in_the_order_and_writes_nothing_twice(repo):
    first = give(repo, "voucher", "15.00")

    again = issue_with(
        repo, first["order_id"], kind="voucher", amount="15", return_id="ret-1", at=NOW, days=1
    )
    assert again.code == first["movement"].code
    assert repo.credit.liabilities() == {"EUR": Decimal("15.00")}
    assert len(recorded_movements(repo.get(first["order_id"]).order, MovementKind.ISSUE)) == 1


def test_store_credit_goes_to_the_customer_account_keyed_by_a_hash_never_the_email(repo):
    movement = give(repo, "store_credit", "8.00")["movement"]
    assert movement.account == credit_account("manual", "default", EMAIL)
    assert movement.account.endswith(customer_key("ada@example.com")) and "@" not in movement.account
    assert movement.code is None


def test_store_credit_without_a_customer_email_is_refused(repo):
    order = normalise_manual(
        {
            "external_id": "anon",
            "currency": "EUR",
            "placed_at": "2026-11-23T10:00:00Z",
            "lines": [{"title": "Lamp", "quantity": 1, "unit_price": "1.00"}],
        }
    )
    with pytest.raises(CreditRefused) as refused:
        issue(
            order,
            kind=CreditKind.STORE_CREDIT,
            amount=Decimal(1),
            currency="EUR",
            return_id="r",
            now=NOW,
            expires_in_days=None,
        )
    assert refused.value.reason is Refusal.NO_CUSTOMER


def test_a_voucher_paying_part_of_an_order_is_redeemed_and_stripe_captures_only_the_rest(repo):
    code = give(repo, "voucher", "15.00")["movement"].code
    gateway, order_id = card_order(repo, "P-1", code, "15.00")
    assert pay(repo, order_id, gateway)["outcome"] == "paid"
    assert [(c[0], c[2]) for c in gateway.calls] == [("capture", 500)]  # 20.00 − 15.00
    order = repo.get(order_id).order
    assert order.status == OrderStatus.PAID and redeemed(order) == Decimal("15.00")
    assert repo.credit.voucher(code).amount == Decimal("0.00")
    assert repo.credit.liabilities() == {"EUR": Decimal("0.00")}


def test_credit_paying_the_whole_order_leaves_nothing_owed_and_paying_twice_redeems_once(repo):
    give(repo, "store_credit", "30.00")
    order_id = place(repo, "P-2", credits=[{"kind": "store_credit", "amount": "20.00"}])
    assert pay(repo, order_id)["outcome"] == "paid"
    assert pay(repo, order_id)["already"] is True
    order = repo.get(order_id).order
    assert order.status == OrderStatus.PAID
    assert [h.event for h in order.history].count("credit_redeem") == 1
    assert repo.credit.balance(credit_account("manual", "default", EMAIL)).amount == Decimal("10.00")


@pytest.mark.parametrize(
    ("issued", "credit", "decline"),
    [
        (
            {"kind": "voucher", "amount": "15.00", "at": NOW - timedelta(days=10), "days": 5},
            "15.00",
            "expired",
        ),
        ({"kind": "voucher", "amount": "10.00"}, "15.00", "insufficient"),
        (None, "15.00", "unknown"),
    ],
    ids=["expired", "insufficient", "unknown"],
)
def test_a_refused_voucher_waits_for_payment_with_the_reason_and_moves_nothing(repo, issued, credit, decline):
    code = "ABCD-EFGH-JKLM-NPQR"
    if issued is not None:
        given = give(
            repo, issued["kind"], issued["amount"], at=issued.get("at", NOW), days=issued.get("days", 365)
        )
        code = given["movement"].code
    before = repo.credit.liabilities()
    order_id = place(repo, "P-3", credits=[{"kind": "voucher", "code": code, "amount": credit}])
    result = pay(repo, order_id)
    assert result["outcome"] == "pending" and decline in result["reason"]
    order = repo.get(order_id).order
    assert order.status == OrderStatus.PAYMENT_PENDING
    failed = next(h for h in order.history if h.event == "payment_failed")
    assert failed.detail["decline_code"] == f"credit_{decline}"
    assert code not in failed.detail["reason"]  # the code is a bearer secret: masked
    assert redeemed(order) == 0 and repo.credit.liabilities() == before


def test_a_voucher_used_up_is_refused_as_used(repo):
    code = give(repo, "voucher", "20.00")["movement"].code
    first = place(repo, "P-4", credits=[{"kind": "voucher", "code": code, "amount": "20.00"}])
    assert pay(repo, first)["outcome"] == "paid"
    second = place(repo, "P-5", credits=[{"kind": "voucher", "code": code, "amount": "5.00"}])
    result = pay(repo, second)
    assert result["outcome"] == "pending" and result["reason"].startswith("credit refused: used")


def test_a_voucher_in_another_currency_is_refused(repo):
    code = give(repo, "voucher", "50.00")["movement"].code
    order_id = place(
        repo, "P-6", currency="GBP", credits=[{"kind": "voucher", "code": code, "amount": "5.00"}]
    )
    assert pay(repo, order_id)["reason"].startswith("credit refused: currency")
    assert repo.credit.voucher(code).amount == Decimal("50.00")


def test_redeeming_two_credits_is_all_or_nothing(repo):
    code = give(repo, "voucher", "5.00")["movement"].code
    order_id = place(
        repo,
        "P-7",
        credits=[
            {"kind": "voucher", "code": code, "amount": "5.00"},
            {"kind": "store_credit", "amount": "1.00"},
        ],
    )
    assert pay(repo, order_id)["outcome"] == "pending"  # no store credit on the account: unknown
    assert repo.credit.voucher(code).amount == Decimal("5.00")


def test_cancelling_an_order_gives_its_redemptions_back_once(repo):
    code = give(repo, "voucher", "20.00")["movement"].code
    order_id = place(repo, "P-8", credits=[{"kind": "voucher", "code": code, "amount": "12.50"}])
    gateway = FakeGateway()
    pay(repo, order_id, gateway)
    compensator = CreditCompensator(repo, now)
    using = {"orders": repo, "workflow": RecordingWorkflow(), "now": now, "compensators": [compensator]}
    result = cancel(order_id, "customer changed mind", source="operator", **using)
    assert result["compensations"][0]["action"] == "credit_reversed"
    assert result["compensations"][0]["amount"] == "12.50"
    assert compensator.compensate(repo.get(order_id).order, "again") is None
    cancel(order_id, "again", source="operator", **using)
    assert repo.credit.voucher(code).amount == Decimal("20.00")
    order = repo.get(order_id).order
    assert [h.event for h in order.history].count("credit_reverse") == 1 and redeemed(order) == 0


def test_a_movement_the_ledger_already_holds_is_done_and_the_order_is_still_written(repo):
    given = give(repo, "voucher", "9.00")
    movement = given["movement"]
    other = place(repo, "P-9")
    # The same movement id reaching the ledger again with another order's change (a replayed resolution).
    result = mutate_with_movements(repo, other, lambda order: ("written", [movement]))
    assert result == "written"
    assert repo.credit.liabilities() == {"EUR": Decimal("9.00")}
    assert recorded_movements(repo.get(other).order, MovementKind.ISSUE)[0]["movement_id"] == "issue:ret-1"
    assert voucher_account(movement.code) == movement.account


def test_a_card_order_paid_wholly_by_a_voucher_captures_nothing(repo):
    code = give(repo, "voucher", "20.00")["movement"].code
    gateway, order_id = card_order(repo, "P-10", code, "20.00")
    assert pay(repo, order_id, gateway)["outcome"] == "paid"
    assert gateway.calls == []
    assert repo.get(order_id).order.status == OrderStatus.PAID
